// Errors and status codes at the xDS wire boundary: what a stream is closed with
// when a peer's bytes or requests are unacceptable.

public import GRPCStatusCodes

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
    public var grpcStatusCode: GRPCStatus.Code { .invalidArgument }

    public var description: String {
        reason.map { "\(messageType): \($0)" } ?? "\(byteCount) bytes do not parse as \(messageType)"
    }
}
