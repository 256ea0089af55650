// A gRPC client stream that records what the server sent back, for tests that drive
// the xDS services with the transport's own client.
import Foundation
import Transport
import GRPCStatusCodes

/// Records one client stream.
public final class RecordingCall: GRPCClientConnectionDelegate, GRPCClientStreamHandler, @unchecked Sendable {
    // @unchecked Sendable: fields are written on the client loop and read after `done` is signalled.
    private let lock = NSLock()
    private var messages: [[UInt8]] = []
    private var finalStatus: GRPCStatus?
    private let done = DispatchSemaphore(value: 0)

    public init() {}

    public func onMessage(_ message: [UInt8]) { lock.withLock { messages.append(message) } }
    public func onFinish(_ status: GRPCStatus, trailers: [HeaderField]) {
        lock.withLock { finalStatus = status }
        done.signal()
    }
    public func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason) {
        lock.withLock { if finalStatus == nil { finalStatus = GRPCStatus(.unavailable, "connection closed: \(reason)") } }
        done.signal()
    }

    public func status(timeout: Double = 10) -> GRPCStatus? {
        _ = done.wait(timeout: .now() + timeout)
        return lock.withLock { finalStatus }
    }

    public func firstMessage(timeout: Double = 10) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let first = lock.withLock({ messages.first }) { return first }
            usleep(20_000)
        }
        return nil
    }
}

