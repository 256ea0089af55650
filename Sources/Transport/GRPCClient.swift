// Owns the client side of gRPC on the same machinery as the server:
// connecting, opening streams, deframing responses, and turning trailers,
// stream resets and connection loss into a status. Used by the tests and by
// load generators.
internal import CTransportShims
import Glibc
import Synchronization
import GRPCStatusCodes

/// Connection-level events of a client connection, delivered on its loop thread.
public protocol GRPCClientConnectionDelegate: AnyObject {
    /// TLS (if any) completed and HTTP/2 is up.
    func connectionReady(_ connection: GRPCClientConnection)
    /// The server sent GOAWAY; streams above its last stream id end UNAVAILABLE, new streams are refused.
    func connection(_ connection: GRPCClientConnection, receivedGoAway errorCode: HTTP2ErrorCode)
    /// The connection is gone (called once).
    func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason)
}

extension GRPCClientConnectionDelegate {
    public func connectionReady(_ connection: GRPCClientConnection) {}
    public func connection(_ connection: GRPCClientConnection, receivedGoAway errorCode: HTTP2ErrorCode) {}
    public func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason) {}
}

/// The callbacks of one client stream, delivered on its loop thread.
public protocol GRPCClientStreamHandler: AnyObject {
    func onResponseHeaders(_ headers: [HeaderField])
    func onMessage(_ message: [UInt8])
    /// Everything sent so far has been handed to HTTP/2.
    func onFlushed()
    /// The call ended: from the server's trailers, or synthesized from a reset or lost connection. Called once.
    func onFinish(_ status: GRPCStatus, trailers: [HeaderField])
}

extension GRPCClientStreamHandler {
    public func onResponseHeaders(_ headers: [HeaderField]) {}
    public func onFlushed() {}
}

/// A factory of client connections sharing one configuration and TLS context.
public final class GRPCClient: Sendable {
    public let configuration: GRPCClientConfiguration
    private let tls: TLSContext?
    /// What each of its connections reads its limits through (one for all, like the server's).
    private let limitsReference: LimitsReference

    /// Loads the client's TLS credentials.
    public init(configuration: GRPCClientConfiguration) throws(TransportError) {
        self.configuration = configuration
        limitsReference = LimitsReference(configuration.limits)
        switch configuration.security {
        case .tls(let credentials): tls = try TLSContext.client(credentials)
        case .insecurePlaintext: tls = nil
        }
    }

    /// Starts connecting on `loop`; callable from any thread. Events go to `delegate` on the loop thread.
    /// Throws when the connection fails at once (e.g. nothing listens on a loopback port).
    public func connect(on loop: EventLoop, delegate: (any GRPCClientConnectionDelegate)?) throws(TransportError) -> GRPCClientConnection {
        var inProgress: Int32 = 0
        let fd = transport_connect(configuration.host, Int32(configuration.port), &inProgress)
        guard fd >= 0 else {
            throw TransportError(.socket, "cannot connect: \(String(cString: strerror(-fd)))",
                                 context: "\(configuration.host):\(configuration.port)")
        }
        let serverName: String?
        if case .tls(let credentials) = configuration.security { serverName = credentials.serverName } else { serverName = nil }
        let connection: HTTP2Connection
        do {
            connection = try HTTP2Connection(
                id: 0, loop: loop, fd: fd, peerAddress: "\(configuration.host):\(configuration.port)", role: .client,
                tls: tls, serverName: serverName, connecting: inProgress != 0, limits: limitsReference,
                logger: configuration.logger)
        } catch {
            Glibc.close(fd)
            throw error
        }
        let client = GRPCClientConnection(connection: connection, configuration: configuration, delegate: delegate)
        loop.execute { client.start() }
        return client
    }
}

/// One client HTTP/2 connection; after `connect` returns, use it only on `eventLoop`'s thread.
public final class GRPCClientConnection: HTTP2ConnectionRole, @unchecked Sendable {
    // @unchecked Sendable: built by `GRPCClient.connect`, then touched only on `eventLoop`
    // (the hand-over is the `execute` that starts it).
    public let eventLoop: EventLoop
    let connection: HTTP2Connection
    private let configuration: GRPCClientConfiguration
    private var delegate: (any GRPCClientConnectionDelegate)?
    private var streams: [HTTP2StreamID: ClientStream] = [:]
    /// True once HTTP/2 is up; false again after close.
    public private(set) var isReady = false
    private var closeReason: ConnectionCloseReason?

    init(connection: HTTP2Connection, configuration: GRPCClientConfiguration, delegate: (any GRPCClientConnectionDelegate)?) {
        self.connection = connection
        self.eventLoop = connection.loop
        self.configuration = configuration
        self.delegate = delegate
        connection.owner = self
    }

    func start() {
        connection.start(handshakeTimeout: configuration.limits.handshakeTimeout, maxAge: nil)
    }

    /// The server's verified certificate identity (after `connectionReady`).
    public var peerIdentity: PeerIdentity? { connection.peerIdentity }

    /// Opens a stream (POST `path`); nil when the connection is closed or draining. On-loop only.
    public func openStream(path: String, metadata: [HeaderField] = [], handler: any GRPCClientStreamHandler) -> ClientStream? {
        eventLoop.assertInEventLoop()
        guard closeReason == nil, let session = connection.session else { return nil }
        let scheme = configuration.security == .insecurePlaintext ? "http" : "https"
        let headers = [
            HeaderField(":method", "POST"), HeaderField(":scheme", scheme), HeaderField(":path", path),
            HeaderField(":authority", configuration.authority), HeaderField("content-type", "application/grpc"),
            HeaderField("te", "trailers"),
        ] + metadata
        guard let streamID = session.submitRequest(headers: headers) else { return nil }
        let stream = ClientStream(streamID: streamID, owner: self, handler: handler, limits: configuration.limits)
        streams[streamID] = stream
        connection.requestFlush()
        return stream
    }

    /// Sends GOAWAY and closes once it is written. On-loop only.
    public func close() {
        eventLoop.assertInEventLoop()
        connection.closeAfterFlush(.localClose, goAwayError: .noError)
    }

    func outboundChanged() {
        connection.requestFlush()
    }

    func remove(_ stream: ClientStream) {
        streams[stream.streamID] = nil
    }

    // MARK: HTTP2ConnectionRole

    func connectionBecameActive(_ connection: HTTP2Connection) {
        isReady = true
        delegate?.connectionReady(self)
    }

    func connection(_ connection: HTTP2Connection, receivedHeaders headers: [HeaderField],
                    kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool) {
        guard let stream = streams[streamID] else { return }
        switch kind {
        case .response:
            if endStream {
                stream.finish(GRPCStatus.fromTrailers(headers) ?? Self.status(forHTTPHeaders: headers), trailers: headers)
            } else {
                stream.responseHeaders(headers)
            }
        case .trailers:
            stream.finish(GRPCStatus.fromTrailers(headers) ?? GRPCStatus(.internalError, "trailers without grpc-status"),
                          trailers: headers)
        case .request:
            break
        }
    }

    /// gRPC's mapping of a non-gRPC HTTP response to a status.
    private static func status(forHTTPHeaders headers: [HeaderField]) -> GRPCStatus {
        let http = headers.first { $0.name == ":status" }?.value ?? "?"
        switch http {
        case "400": return GRPCStatus(.internalError, "HTTP 400")
        case "401": return GRPCStatus(.unauthenticated, "HTTP 401")
        case "403": return GRPCStatus(.permissionDenied, "HTTP 403")
        case "404": return GRPCStatus(.unimplemented, "HTTP 404")
        case "429", "502", "503", "504": return GRPCStatus(.unavailable, "HTTP \(http)")
        default: return GRPCStatus(.unknown, "HTTP \(http) without grpc-status")
        }
    }

    func connection(_ connection: HTTP2Connection, receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID) {
        streams[streamID]?.receive(data)
    }

    func connection(_ connection: HTTP2Connection, receivedEndStream streamID: HTTP2StreamID) {
        streams[streamID]?.finish(GRPCStatus(.internalError, "response ended without trailers"), trailers: [])
    }

    func connection(_ connection: HTTP2Connection, streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        streams[streamID]?.finish(GRPCStatus.forReset(errorCode: errorCode), trailers: [])
        streams[streamID] = nil
    }

    func connection(_ connection: HTTP2Connection, receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID) {
        delegate?.connection(self, receivedGoAway: errorCode)
    }

    func connection(_ connection: HTTP2Connection, flushed streamIDs: [HTTP2StreamID]) {
        for id in streamIDs { streams[id]?.flushed() }
    }

    func connection(_ connection: HTTP2Connection, cancelAllStreamsWith status: GRPCStatus) {
        for id in streams.keys.sorted() { streams[id]?.cancel() }
    }

    func connection(_ connection: HTTP2Connection, closedWith reason: ConnectionCloseReason) {
        closeReason = reason
        isReady = false
        let open = streams
        streams.removeAll()
        for id in open.keys.sorted() {
            open[id]!.finish(GRPCStatus(.unavailable, "connection closed: \(reason)"), trailers: [])
        }
        let delegate = self.delegate
        self.delegate = nil
        delegate?.connection(self, closedWith: reason)
    }
}

/// The client's handle to one gRPC stream; use it only on its connection's loop thread.
public final class ClientStream: @unchecked Sendable {
    // @unchecked Sendable: only touched on the owning connection's loop (checked in public methods).
    public let streamID: HTTP2StreamID
    private weak var owner: GRPCClientConnection?
    private var handler: (any GRPCClientStreamHandler)?
    private var deframer: GRPCMessageDeframer
    private let limits: TransportLimits
    private var sendClosed = false
    /// True once `onFinish` was delivered.
    public private(set) var isFinished = false

    init(streamID: HTTP2StreamID, owner: GRPCClientConnection, handler: any GRPCClientStreamHandler, limits: TransportLimits) {
        self.streamID = streamID
        self.owner = owner
        self.handler = handler
        self.limits = limits
        deframer = GRPCMessageDeframer(maxMessageBytes: limits.maxReceiveMessageBytes)
    }

    /// Queues one request message (same queue rules as `ServerStream.send`).
    public func send(_ message: [UInt8]) -> SendResult {
        guard let owner, !sendClosed, !isFinished, let session = owner.connection.session else { return .closed }
        owner.eventLoop.assertInEventLoop()
        guard message.count <= limits.maxSendMessageBytes else { return .messageTooLarge }
        guard session.queuedBytes(streamID: streamID) < limits.maxQueuedBytesPerStream else { return .queueFull }
        session.enqueue(streamID: streamID, GRPCFraming.prefix(forLength: message.count), message)
        owner.outboundChanged()
        return .enqueued
    }

    /// Queues bytes as-is, without gRPC framing (tests use it to send malformed messages).
    func sendRaw(_ bytes: [UInt8]) {
        guard let owner, !sendClosed, let session = owner.connection.session else { return }
        session.enqueue(streamID: streamID, bytes)
        owner.outboundChanged()
    }

    /// Half-closes: END_STREAM after the queued messages.
    public func closeSend() {
        guard let owner, !sendClosed, let session = owner.connection.session else { return }
        owner.eventLoop.assertInEventLoop()
        sendClosed = true
        session.finishOutbound(streamID: streamID, trailers: nil)
        owner.outboundChanged()
    }

    /// Resets the stream (RST_STREAM CANCEL); the handler gets CANCELLED.
    public func cancel() {
        guard let owner, !isFinished else { return }
        owner.eventLoop.assertInEventLoop()
        owner.connection.session?.submitReset(streamID: streamID, errorCode: .cancel)
        owner.outboundChanged()
        finish(GRPCStatus(.cancelled, "cancelled by client"), trailers: [])
    }

    func responseHeaders(_ headers: [HeaderField]) {
        handler?.onResponseHeaders(headers)
    }

    func receive(_ data: UnsafeRawBufferPointer) {
        guard !isFinished else { return }
        var messages: [[UInt8]] = []
        do {
            try deframer.append(data, to: &messages)
        } catch {
            for message in messages { handler?.onMessage(message) }
            owner?.connection.session?.submitReset(streamID: streamID, errorCode: .cancel)
            owner?.outboundChanged()
            finish(error.status, trailers: [])
            return
        }
        for message in messages where !isFinished { handler?.onMessage(message) }
    }

    func flushed() {
        if !isFinished { handler?.onFlushed() }
    }

    func finish(_ status: GRPCStatus, trailers: [HeaderField]) {
        guard !isFinished else { return }
        isFinished = true
        let handler = self.handler
        self.handler = nil
        owner?.remove(self)
        handler?.onFinish(status, trailers: trailers)
    }
}
