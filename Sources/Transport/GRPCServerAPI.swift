// Owns the public vocabulary between the transport and the layer above it
// (the xDS state machine): handler protocols, what a stream's owner learns
// about its connection, send results and statistics.

/// Receives new gRPC streams. One instance serves every loop, so it must be thread-safe.
public protocol GRPCServerHandler: Sendable {
    /// A client opened a stream. Return a handler to accept it, or nil to answer UNIMPLEMENTED
    /// (unless `stream.finish` was already called, e.g. with PERMISSION_DENIED).
    ///
    /// Called on the connection's loop thread. `stream` and the returned handler belong to that
    /// thread: use them there, or hop with `stream.eventLoop.execute`.
    func onStreamOpen(_ request: GRPCRequestHead, stream: ServerStream) -> (any GRPCStreamHandler)?
}

/// The per-stream callbacks of the layer above; all are invoked on the stream's loop thread.
public protocol GRPCStreamHandler: AnyObject {
    /// One complete inbound gRPC message (length prefix removed).
    func onMessage(_ message: [UInt8])
    /// The client half-closed its side (END_STREAM); the server may still send and must still `finish`.
    func onRequestEnd()
    /// The stream's outbound queue became empty: every message sent so far has been handed to HTTP/2
    /// (the peer's flow-control window admitted it). The moment to send the newest pending state.
    func onFlushed()
    /// The stream is gone; no further callbacks follow and `send` returns `.closed`.
    func onClose(_ reason: StreamCloseReason)
}

extension GRPCStreamHandler {
    public func onRequestEnd() {}
    public func onFlushed() {}
    public func onClose(_ reason: StreamCloseReason) {}
}

/// What the server knows about the connection a stream arrived on.
public struct ConnectionContext: Sendable, Hashable {
    /// Unique per server process, in accept order.
    public let id: UInt64
    /// "address:port" of the client.
    public let remoteAddress: String
    /// The verified client certificate identity (nil only with insecure plaintext).
    public let peerIdentity: PeerIdentity?
    /// The loop (thread) serving this connection.
    public let eventLoopIndex: Int
}

/// The head of a new gRPC stream: method path, metadata and connection.
public struct GRPCRequestHead: Sendable {
    /// ":path", e.g. "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources".
    public let path: String
    /// Request headers without HTTP/2 pseudo-headers, in arrival order.
    public let metadata: [HeaderField]
    public let connection: ConnectionContext
}

/// Why a server stream ended.
public enum StreamCloseReason: Sendable, Equatable {
    /// The server sent its status and the stream completed.
    case finished
    /// The client reset the stream (RST_STREAM with this HTTP/2 error code) before the server finished it.
    case cancelledByPeer(errorCode: HTTP2ErrorCode)
    /// The connection ended underneath the stream.
    case connectionClosed(ConnectionCloseReason)
}

/// The outcome of `ServerStream.send` / `ClientStream.send`.
public enum SendResult: Sendable, Equatable {
    /// Queued; it will be sent as the peer's flow-control window allows.
    case enqueued
    /// The stream's queue is at its limit: wait for `onFlushed`, then send the newest state.
    case queueFull
    /// Larger than `maxSendMessageBytes`; not sent.
    case messageTooLarge
    /// The stream is finished or closed.
    case closed
}

/// Counters describing a server's current load.
public struct TransportStatistics: Sendable, Equatable {
    public var activeConnections = 0
    public var activeStreams = 0
    public var acceptedConnections = 0
    public var refusedConnections = 0
    /// Outbound bytes held right now across all connections (stream queues + encoded frames awaiting the socket).
    public var bufferedOutboundBytes = 0
    /// The most outbound bytes one connection has ever held at once.
    public var peakConnectionOutboundBytes = 0
    /// Heap bytes in use by nghttp2 sessions (process-wide).
    public var http2HeapBytes = 0
    /// Times free heap pages were handed back to the kernel after many connections closed.
    public var heapTrims = 0
}
