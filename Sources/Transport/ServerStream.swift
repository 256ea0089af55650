// Owns the server side of one gRPC stream: inbound deframing with its size
// limit, lazy response headers, the bounded outbound queue, and ending the
// stream with a status exactly once.
import GRPCStatusCodes

/// The server's handle to one gRPC stream, for sending messages and the final status.
///
/// Thread rules: use it only on `eventLoop`'s thread (the thread that delivered it); from elsewhere,
/// hop with `stream.eventLoop.execute { … }`.
public final class ServerStream: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is only touched on `eventLoop` (checked by
    // `assertInEventLoop` in the public methods); the type is Sendable only so it can be captured
    // by a closure handed to `eventLoop.execute`.
    public let path: String
    public let connection: ConnectionContext
    public let eventLoop: EventLoop
    /// Its connection until the stream closes (`closed`, called for every stream the connection opened, ends the
    /// cycle). Not weak: a weak reference gave every connection a side table for its life (48 bytes per idle proxy).
    private var owner: GRPCServerConnection?
    private let limitsReference: LimitsReference
    private var limits: TransportLimits { limitsReference.limits }
    var handler: (any GRPCStreamHandler)?
    private var deframer: GRPCMessageDeframer
    private var messagesReceived = 0
    private var firstMessageTimer = ScheduledTimer.none
    // The small fields together, last (stored properties are laid out in declaration order).
    let streamID: HTTP2StreamID
    /// True once a status has been submitted.
    public private(set) var isFinished = false
    /// True once the stream is gone (`onClose` delivered).
    public private(set) var isClosed = false
    private var headersSent = false
    private var inboundRejected = false
    /// Counted against its connection's identity (`TransportLimits.maxStreamsPerIdentity`) until it closes.
    var countedAgainstIdentity = false

    init(streamID: HTTP2StreamID, path: String, connection: ConnectionContext, eventLoop: EventLoop,
         owner: GRPCServerConnection, limits: LimitsReference) {
        self.streamID = streamID
        self.path = path
        self.connection = connection
        self.eventLoop = eventLoop
        self.owner = owner
        self.limitsReference = limits
        deframer = GRPCMessageDeframer(maxMessageBytes: limits.limits.maxReceiveMessageBytes)
    }

    /// Arms the first-message deadline (called once the stream is dispatched, on its loop).
    func startFirstMessageTimer() {
        let timeout = limits.firstMessageTimeout
        // Holds the stream until it fires or is cancelled (by the first message, or by `closed`): a weak capture would
        // give every stream a weak-reference side table for its whole life (48 bytes per idle proxy).
        firstMessageTimer = eventLoop.schedule(after: timeout) { [self] in
            guard messagesReceived == 0 else { return }
            self.firstMessageTimer = .none
            self.finish(GRPCStatus(.deadlineExceeded, "no request message within \(timeout) of opening the stream"))
        }
    }

    private func cancelFirstMessageTimer() {
        eventLoop.cancel(firstMessageTimer)
        firstMessageTimer = .none
    }

    private static let responseHeaders = [HeaderField(":status", "200"), HeaderField("content-type", "application/grpc")]

    /// Queues one message. Refused (`.queueFull`) while the queue holds `maxQueuedBytesPerStream` or more;
    /// an empty queue always accepts one message, however large (up to `maxSendMessageBytes`).
    public func send(_ message: [UInt8]) -> SendResult {
        eventLoop.assertInEventLoop()
        guard !isFinished, !isClosed, let owner, let session = owner.connection.session else { return .closed }
        guard message.count <= limits.maxSendMessageBytes else { return .messageTooLarge }
        guard session.queuedBytes(streamID: streamID) < limits.maxQueuedBytesPerStream else { return .queueFull }
        if !headersSent {
            headersSent = true
            _ = session.submitResponse(streamID: streamID, headers: Self.responseHeaders, endStream: false)
        }
        session.enqueue(streamID: streamID, GRPCFraming.prefix(forLength: message.count), message)
        owner.outboundChanged()
        return .enqueued
    }

    /// Ends the stream with `status` after the queued messages; returns false if it already ended.
    @discardableResult
    public func finish(_ status: GRPCStatus) -> Bool {
        eventLoop.assertInEventLoop()
        guard !isFinished, !isClosed, let owner, let session = owner.connection.session else { return false }
        isFinished = true
        cancelFirstMessageTimer()
        if headersSent {
            session.finishOutbound(streamID: streamID, trailers: status.trailers)
        } else {
            // Trailers-only response: one HEADERS frame with END_STREAM.
            _ = session.submitResponse(streamID: streamID, headers: Self.responseHeaders + status.trailers, endStream: true)
        }
        owner.outboundChanged()
        return true
    }

    /// Bytes waiting in this stream's outbound queue (not yet admitted by HTTP/2 flow control).
    public var queuedBytes: Int {
        eventLoop.assertInEventLoop()
        return owner?.connection.session?.queuedBytes(streamID: streamID) ?? 0
    }

    /// Whether `send` would accept a message now.
    public var isWritable: Bool {
        !isFinished && !isClosed && queuedBytes < limits.maxQueuedBytesPerStream
    }

    // MARK: events from the connection

    func receive(_ data: UnsafeRawBufferPointer) {
        guard !isFinished, !inboundRejected, !isClosed else { return }
        var messages: [[UInt8]] = []
        do {
            try deframer.append(data, to: &messages)
        } catch {
            inboundRejected = true
            deliver(messages)
            finish(error.status)
            return
        }
        deliver(messages)
    }

    private func deliver(_ messages: [[UInt8]]) {
        if !messages.isEmpty && messagesReceived == 0 { cancelFirstMessageTimer() }
        messagesReceived += messages.count
        for message in messages {
            guard !isFinished, !isClosed, let handler else { return }
            handler.onMessage(message)
        }
    }

    func requestEnded() {
        guard !isFinished, !inboundRejected, !isClosed else { return }
        if deframer.hasPartialMessage {
            inboundRejected = true
            finish(GRPCStatus(.internalError, "stream ended inside a gRPC message (length prefix exceeds the data sent)"))
            return
        }
        handler?.onRequestEnd()
    }

    func flushed() {
        guard !isClosed, !isFinished else { return }
        handler?.onFlushed()
    }

    func closed(_ reason: StreamCloseReason) {
        guard !isClosed else { return }
        isClosed = true
        owner = nil
        cancelFirstMessageTimer()
        let handler = self.handler
        self.handler = nil
        handler?.onClose(reason)
    }
}
