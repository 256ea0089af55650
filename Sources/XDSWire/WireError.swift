// Errors and status codes at the xDS wire boundary: what a stream is closed with
// when a peer's bytes or requests are unacceptable.

/// The canonical gRPC status codes (grpc/doc/statuscodes.md) that an xDS stream can end with.
public enum GRPCStatusCode: Int32, Sendable, Hashable, CustomStringConvertible {
    case ok = 0
    case cancelled = 1
    case unknown = 2
    case invalidArgument = 3
    case deadlineExceeded = 4
    case notFound = 5
    case alreadyExists = 6
    case permissionDenied = 7
    case resourceExhausted = 8
    case failedPrecondition = 9
    case aborted = 10
    case outOfRange = 11
    case unimplemented = 12
    case `internal` = 13
    case unavailable = 14
    case dataLoss = 15
    case unauthenticated = 16

    /// The upper-case name gRPC uses in logs, e.g. `INVALID_ARGUMENT`.
    public var description: String {
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
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        }
    }
}

/// Bytes that do not decode as the expected envelope message.
public struct WireError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Fully-qualified protobuf name of the message that was expected.
    public var messageType: String
    /// How many bytes were offered.
    public var byteCount: Int
    /// Why the message was refused when it parsed but asks for something unsupported.
    public var reason: String?

    public init(messageType: String, byteCount: Int, reason: String? = nil) {
        self.messageType = messageType
        self.byteCount = byteCount
        self.reason = reason
    }

    /// The status a stream should be closed with: the peer sent something malformed.
    public var grpcStatusCode: GRPCStatusCode { .invalidArgument }

    public var description: String {
        reason.map { "\(messageType): \($0)" } ?? "\(byteCount) bytes do not parse as \(messageType)"
    }
}
