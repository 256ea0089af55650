// The gRPC status a call ends with: one type for the transport (which puts it in `grpc-status`/`grpc-message`
// trailers) and the xDS protocol (whose state machine decides it), so no layer translates codes.

/// A gRPC status: a code and a message (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
public struct GRPCStatus: Sendable, Hashable, Error, CustomStringConvertible {
    /// The canonical gRPC status codes.
    public enum Code: Int, Sendable, Hashable, CaseIterable {
        case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists,
            permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange, unimplemented,
            internalError, unavailable, dataLoss, unauthenticated

        /// The upper-case name gRPC uses in logs, e.g. `INVALID_ARGUMENT`.
        public var name: String {
            switch self {
            case .ok: "OK"
            case .cancelled: "CANCELLED"
            case .unknown: "UNKNOWN"
            case .invalidArgument: "INVALID_ARGUMENT"
            case .deadlineExceeded: "DEADLINE_EXCEEDED"
            case .notFound: "NOT_FOUND"
            case .alreadyExists: "ALREADY_EXISTS"
            case .permissionDenied: "PERMISSION_DENIED"
            case .resourceExhausted: "RESOURCE_EXHAUSTED"
            case .failedPrecondition: "FAILED_PRECONDITION"
            case .aborted: "ABORTED"
            case .outOfRange: "OUT_OF_RANGE"
            case .unimplemented: "UNIMPLEMENTED"
            case .internalError: "INTERNAL"
            case .unavailable: "UNAVAILABLE"
            case .dataLoss: "DATA_LOSS"
            case .unauthenticated: "UNAUTHENTICATED"
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String = "") {
        self.code = code
        self.message = message
    }

    public init(code: Code, message: String) {
        self.init(code, message)
    }

    public static let ok = GRPCStatus(.ok)

    public var description: String { message.isEmpty ? "\(code)" : "\(code): \(message)" }
}
