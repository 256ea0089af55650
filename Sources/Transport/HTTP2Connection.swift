// Owns one connection's life on its event loop: connect/accept, the TLS
// handshake, moving bytes between the socket, TLS and nghttp2 with bounded
// buffering, keepalive PINGs, the handshake/max-age/drain timers, and closing
// (gracefully with GOAWAY, or at once) with exactly one log record.
internal import CTransportShims
import Glibc
import GRPCStatusCodes

/// Stream-level events of an `HTTP2Connection`, delivered on its loop (gRPC server or client role).
protocol HTTP2ConnectionRole: AnyObject {
    func connectionBecameActive(_ connection: HTTP2Connection)
    func connection(_ connection: HTTP2Connection, receivedHeaders headers: [HeaderField],
                    kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool)
    func connection(_ connection: HTTP2Connection, receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID)
    func connection(_ connection: HTTP2Connection, receivedEndStream streamID: HTTP2StreamID)
    func connection(_ connection: HTTP2Connection, streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode)
    func connection(_ connection: HTTP2Connection, receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID)
    func connection(_ connection: HTTP2Connection, flushed streamIDs: [HTTP2StreamID])
    /// Ends every open stream with `status` (drain / max-age deadline).
    func connection(_ connection: HTTP2Connection, cancelAllStreamsWith status: GRPCStatus)
    /// Called once, after the socket is closed and outside any nghttp2 callback.
    func connection(_ connection: HTTP2Connection, closedWith reason: ConnectionCloseReason)
}

/// One TCP connection carrying HTTP/2 (over TLS unless plaintext was chosen); confined to its event loop.
final class HTTP2Connection: EventLoopSelectable {
    enum Phase: Equatable {
        case connecting, handshaking, active, closing, closed
    }

    private enum IOStep {
        case bytes(Int)
        case wouldBlock
        case wantsOppositeEvent
        case endOfStream
        case failed(ConnectionCloseReason)
    }

    let id: UInt64
    let loop: EventLoop
    let peerAddress: String
    let limitsReference: LimitsReference
    var limits: TransportLimits { limitsReference.limits }
    private let logger: TransportLogger
    private let tls: TLSConnection?
    /// Strong on purpose: the role and its connection keep each other alive until the close callback,
    /// which breaks the cycle, so an open connection never disappears because its user dropped a reference.
    var owner: HTTP2ConnectionRole?

    private(set) var phase: Phase
    private(set) var session: HTTP2Session?
    private(set) var peerIdentity: PeerIdentity?
    private var token: UInt64 = 0
    private var pending = ByteQueue()
    private var intendedCloseReason: ConnectionCloseReason?
    private var refusedStreams = 0
    private var lastReadAt = ContinuousClock.now
    private var pingSentAt: ContinuousClock.Instant?
    // One slot per pending timer, each cancelled on close. (An array of every timer scheduled grew by two entries per
    // keepalive interval, as each tick schedules the next, for the connection's life: 46 KB per connection a day.)
    private var handshakeTimer = ScheduledTimer.none
    private var maxAgeTimer = ScheduledTimer.none
    private var keepaliveTimer = ScheduledTimer.none
    private var graceTimer = ScheduledTimer.none
    private var lingerTimer = ScheduledTimer.none
    /// Set while nghttp2's outbound frame buffer has resident pages from a write (see `releaseIdleFrameBuffer`).
    private var frameBufferTimer = ScheduledTimer.none
    /// When stream data was last encoded; control frames do not count.
    private var lastEncodedAt = ContinuousClock.now
    /// When the buffer was released after the last stream data (nil: stream data written since).
    private var frameBufferReleasedAt: ContinuousClock.Instant?
    /// Releases after stream data so far; the first (often in the middle of a proxy's first configuration, whose
    /// responses straggle behind ACK round trips under load) never makes the connection busy.
    private var frameBufferReleases = 0
    /// The quiet period in force: `releaseIdleFrameBufferAfter`, or `keepBusyFrameBufferFor` while busy; zero
    /// until the first stream data.
    private var frameBufferQuiet: Duration = .zero
    private var reportedBufferedBytes = 0
    private var peakBufferedBytes = 0
    /// Reports changes of this connection's buffered outbound bytes (delta) and new per-connection peaks.
    var bufferedBytesObserver: ((_ delta: Int, _ peak: Int?) -> Void)?
    // The small fields together, last: stored properties are laid out in declaration order, and each one between
    // two 8-byte fields took 8 bytes of every connection.
    let fd: Int32
    private var interest: UInt32 = 0
    private var sentGoAwayError: HTTP2ErrorCode?
    private var receivedGoAwayError: HTTP2ErrorCode?
    private let role: HTTP2Session.Role
    private(set) var isDraining = false
    private var handshakeWantsWrite = false
    private var readWantsWritable = false
    private var flushScheduled = false

    /// Bytes encoded but not yet accepted by the socket, plus bytes waiting in stream queues.
    var bufferedOutboundBytes: Int { pending.count + (session?.queuedBytes ?? 0) }

    init(id: UInt64, loop: EventLoop, fd: Int32, peerAddress: String, role: HTTP2Session.Role,
         tls: TLSContext?, serverName: String?, connecting: Bool, limits: LimitsReference,
         logger: @escaping TransportLogger) throws(TransportError) {
        self.id = id
        self.loop = loop
        self.fd = fd
        self.peerAddress = peerAddress
        self.role = role
        self.limitsReference = limits
        self.logger = logger
        self.tls = try tls.map { context throws(TransportError) in
            try TLSConnection(context: context, fd: fd, serverName: serverName)
        }
        phase = connecting ? .connecting : (tls == nil ? .active : .handshaking)
        if role == .client {
            // Clients may open streams before the handshake completes; nghttp2 holds them until then.
            session = try makeSession()
        }
    }

    private func makeSession() throws(TransportError) -> HTTP2Session {
        let session = try HTTP2Session(
            role: role, maxHeaderListBytes: limits.maxHeaderListBytes,
            maxConcurrentStreams: limits.maxConcurrentStreamsPerConnection)
        session.delegate = self
        // DATA payloads go from the stream queues straight to the output: no copy into nghttp2's frame buffer, whose
        // pages then stay untouched by responses (an idle connection's released pages are not faulted in per push).
        session.dataFrameWriter = { [unowned self] bytes in
            self.pending.append(bytes)
            return self.pending.count < self.limits.connectionWriteBufferBytes
        }
        var settings: [HTTP2Setting] = [
            // No HPACK decoder table. An xDS or gRPC connection carries one or a few long-lived streams, so the peer
            // sends each header block about once and indexing saves nothing; the table's entries (≈ 0.8 KB of an
            // Envoy's request headers) would be kept for the connection's life. nghttp2 frees them when the peer
            // acknowledges these SETTINGS; headers sent before that still decode against the default table.
            .headerTableSize(0),
            .initialWindowSize(UInt32(clamping: limits.initialWindowSize)),
            .maxHeaderListSize(UInt32(clamping: limits.maxHeaderListBytes)),
        ]
        if role == .server {
            settings.insert(.maxConcurrentStreams(UInt32(clamping: limits.maxConcurrentStreamsPerConnection)), at: 0)
        } else {
            settings.append(.enablePush(false))
        }
        session.submitSettings(settings)
        return session
    }

    /// Registers with the loop and starts the handshake (or HTTP/2 at once for plaintext); on-loop only.
    func start(handshakeTimeout: Duration?, maxAge: Duration?) {
        loop.assertInEventLoop()
        interest = phase == .connecting ? transport_epollout() : transport_epollin() | transport_epollrdhup()
        token = loop.register(fd: fd, handler: self, events: interest)
        guard token != 0 else {
            close(.ioError("epoll registration failed: \(String(cString: strerror(errno)))"))
            return
        }
        if let handshakeTimeout {
            handshakeTimer = loop.schedule(after: handshakeTimeout) { [unowned self] in
                self.handshakeTimer = .none
                guard self.phase == .connecting || self.phase == .handshaking else { return }
                self.close(.handshakeTimeout)
            }
        }
        if let maxAge {
            // ±10% jitter so connections accepted together do not all reconnect together.
            let jitter = Double.random(in: 0.9...1.1)
            maxAgeTimer = loop.schedule(after: maxAge * jitter) { [unowned self] in
                self.maxAgeTimer = .none
                self.beginGracefulClose(.maxConnectionAge, grace: self.limits.maxConnectionAgeGrace)
            }
        }
        switch phase {
        case .handshaking: driveHandshake()
        case .active: becomeActive()
        default: break
        }
    }

    // MARK: events

    func handleEvent(readable: Bool, writable: Bool, hangup: Bool) {
        switch phase {
        case .connecting:
            finishConnect()
        case .handshaking:
            driveHandshake()
        case .active, .closing:
            if writable || readWantsWritable {
                flush()
            }
            if readable || hangup || readWantsWritable {
                readWantsWritable = false
                readAvailable()
            }
            flush()
        case .closed:
            return
        }
        updateInterest()
    }

    private func finishConnect() {
        let error = transport_socket_error(fd)
        guard error == 0 else {
            close(.ioError("connect failed: \(String(cString: strerror(error)))"))
            return
        }
        if tls != nil {
            phase = .handshaking
            driveHandshake()
        } else {
            becomeActive()
        }
        updateInterest()
    }

    private func driveHandshake() {
        guard let tls else { return }
        switch tls.handshake() {
        case .done:
            if tls.negotiatedProtocol != "h2" {
                close(.alpnNotNegotiated)
                return
            }
            peerIdentity = tls.peerIdentity()
            becomeActive()
        case .wantRead:
            handshakeWantsWrite = false
        case .wantWrite:
            handshakeWantsWrite = true
        case .closed:
            close(tls.refusedForALPN ? .alpnNotNegotiated : .tlsHandshakeFailed("connection closed during handshake"))
        case .failed(let why):
            close(tls.refusedForALPN ? .alpnNotNegotiated : .tlsHandshakeFailed(why))
        }
        updateInterest()
    }

    private func becomeActive() {
        if session == nil {
            do {
                session = try makeSession()
            } catch {
                close(.http2ProtocolError(error.message))
                return
            }
        }
        phase = .active
        lastReadAt = .now
        if let interval = limits.keepaliveInterval {
            scheduleKeepalive(at: .now + interval)
        }
        owner?.connectionBecameActive(self)
        flush()
        // The handshake may have pulled application data into the SSL already.
        readAvailable()
        flush()
    }

    private func readAvailable() {
        var budget = 256 * 1024
        let buffer = loop.readBuffer
        while phase == .active || phase == .closing {
            switch readOnce(into: buffer) {
            case .bytes(let count):
                lastReadAt = .now
                if phase == .active, let session {
                    if let fatal = session.receive(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
                        protocolFailure(fatal)
                        return
                    }
                }
                budget -= count
                // Level-triggered epoll reports unread socket bytes again; only bytes buffered inside the SSL would be
                // missed. So once OpenSSL holds nothing more (with read-ahead it takes what the socket had in one
                // read), or a plaintext read came back short, stop: reading on until EAGAIN cost one more read(2) per
                // proxy per event (strace, docs/BENCHMARKS.md session 12).
                if let tls {
                    if !tls.hasBufferedInput { return }
                } else if count < buffer.count || budget <= 0 {
                    return
                }
            case .wouldBlock:
                return
            case .wantsOppositeEvent:
                readWantsWritable = true
                return
            case .endOfStream:
                close(intendedCloseReason ?? (receivedGoAwayError.map { .goAwayReceived(errorCode: $0) } ?? .peerClosed))
                return
            case .failed(let reason):
                close(reason)
                return
            }
        }
    }

    /// Asks for a flush after the current event: many sends in one callback become one write.
    func requestFlush() {
        guard !flushScheduled, phase == .active || phase == .closing else { return }
        flushScheduled = true
        loop.deferOnLoop { [self] in
            flushScheduled = false
            flush()
            updateInterest()
        }
    }

    /// Moves frames from nghttp2 to the socket while it accepts them, never holding more than the
    /// write-buffer limit of encoded bytes: the rest stays in stream queues under HTTP/2 flow control.
    func flush() {
        guard phase == .active || phase == .closing, let session else { return }
        var socketBlocked = false
        var encoded = false
        while !socketBlocked {
            // What the streams have queued, with room for frame headers (9 bytes per frame of at most 16 KiB).
            let queued = session.queuedBytes
            if queued > 0 { pending.reserveWhileEmpty(min(queued + queued / 1024 + 64, limits.connectionWriteBufferBytes)) }
            while pending.count < limits.connectionWriteBufferBytes {
                guard let chunk = session.nextOutbound() else {
                    protocolFailure("nghttp2 failed to encode frames")
                    return
                }
                if chunk.isEmpty { break }
                encoded = true
                pending.append(chunk)
            }
            if pending.isEmpty { break }
            switch pending.withReadableBytes({ writeOnce($0) }) {
            case .bytes(let count):
                pending.consume(count)
                if count == 0 { socketBlocked = true }
            case .wouldBlock, .wantsOppositeEvent:
                socketBlocked = true
            case .endOfStream:
                close(.peerClosed)
                return
            case .failed(let reason):
                close(reason)
                return
            }
        }
        // DATA written without a copy (see HTTP2Session.dataFrameWriter) is not among the chunks counted above.
        let streamData = session.takeEncodedStreamData()
        if encoded || streamData { frameBufferWritten(streamData: streamData) }
        let drained = session.takeDrainedStreams()
        if !drained.isEmpty { owner?.connection(self, flushed: drained) }
        reportBufferedBytes()
        closeIfFinished()
    }

    /// nghttp2 copies every frame it encodes into its 16 KiB outbound frame buffer, so one response leaves those
    /// pages resident for as long as the connection lives, mostly idle (xDS pushes are seconds to hours apart).
    /// Once no stream data was encoded for the quiet period, the pages go back to the kernel; the next response
    /// touches them again (a few page faults). The quiet period keeps a burst (a first push's several responses, a
    /// fan-out's ACK round trips) from paying for that on every write, and grows to `keepBusyFrameBufferFor` on a
    /// connection that writes again soon after a release: with pushes 5 s apart, a 1 s period released and faulted
    /// the pages between every two pushes (10–20 % of the server's CPU per change at 10,000 proxies); the first
    /// release does not count (a first configuration can straggle past the idle period). Control frames
    /// only bring the buffer back to be released after the idle period: a keepalive PING every 30 s kept a 30 s
    /// period from ever ending.
    private func frameBufferWritten(streamData: Bool) {
        guard let idle = limits.releaseIdleFrameBufferAfter else { return }
        let now = ContinuousClock.now
        if streamData {
            if let releasedAt = frameBufferReleasedAt {
                let busy = frameBufferReleases > 1 && limits.keepBusyFrameBufferFor.map { now - releasedAt < $0 } ?? false
                frameBufferQuiet = busy ? max(idle, limits.keepBusyFrameBufferFor!) : idle
            } else if frameBufferQuiet == .zero {
                frameBufferQuiet = idle
            }
            frameBufferReleasedAt = nil
            lastEncodedAt = now
        }
        // No timer outlives the connection's close (timers hold it unowned; close cancels those it knows of).
        guard frameBufferTimer == .none, phase != .closed else { return }
        // Only control frames since the release: their page goes back after the idle period.
        let due = frameBufferReleasedAt == nil ? lastEncodedAt + frameBufferQuiet : now + idle
        frameBufferTimer = loop.schedule(at: due) { [unowned self] in self.releaseIdleFrameBuffer() }
    }

    private func releaseIdleFrameBuffer() {
        frameBufferTimer = .none
        guard phase == .active || phase == .closing, let session, let idle = limits.releaseIdleFrameBufferAfter else { return }
        let now = ContinuousClock.now
        let due = frameBufferReleasedAt == nil ? lastEncodedAt + max(frameBufferQuiet, idle) : now
        if due > now || !pending.isEmpty || session.wantsWrite {
            // Written since, or still writing: look again a quiet period after the last write.
            frameBufferTimer = loop.schedule(at: max(due, now + idle / 4)) { [unowned self] in self.releaseIdleFrameBuffer() }
            return
        }
        _ = session.releaseIdlePages()
        // Only a release after stream data starts the busy window (`frameBufferQuiet` is zero before the first).
        if frameBufferReleasedAt == nil, frameBufferQuiet != .zero {
            frameBufferReleasedAt = now
            frameBufferReleases += 1
        }
    }

    private func closeIfFinished() {
        guard let session, phase == .active || phase == .closing else { return }
        guard pending.isEmpty && !session.wantsWrite else { return }
        if phase == .closing {
            close(intendedCloseReason ?? .localClose)
        } else if !session.wantsRead {
            // nghttp2 is done: GOAWAY exchanged and no streams left, or it terminated the session itself.
            close(intendedCloseReason ?? inferredCloseReason())
        }
    }

    private func inferredCloseReason() -> ConnectionCloseReason {
        if let code = sentGoAwayError, code != .noError {
            let detail = session?.lastErrorDescription ?? "GOAWAY error code \(code)"
            return detail.contains("max concurrent streams") ? .tooManyStreams : .http2ProtocolError(detail)
        }
        if let code = receivedGoAwayError { return .goAwayReceived(errorCode: code) }
        return .peerClosed
    }

    func reportBufferedBytes() {
        let now = bufferedOutboundBytes
        guard now != reportedBufferedBytes else { return }
        var newPeak: Int?
        if now > peakBufferedBytes {
            peakBufferedBytes = now
            newPeak = now
        }
        bufferedBytesObserver?(now - reportedBufferedBytes, newPeak)
        reportedBufferedBytes = now
    }

    private func updateInterest() {
        guard phase != .closed, token != 0 else { return }
        var events = transport_epollin() | transport_epollrdhup()
        switch phase {
        case .connecting:
            events = transport_epollout()
        case .handshaking:
            if handshakeWantsWrite { events |= transport_epollout() }
        default:
            if !pending.isEmpty || readWantsWritable { events |= transport_epollout() }
        }
        if events != interest {
            interest = events
            loop.modify(fd: fd, token: token, events: events)
        }
    }

    // MARK: socket / TLS steps

    private func readOnce(into buffer: UnsafeMutableRawBufferPointer) -> IOStep {
        if let tls {
            switch tls.read(into: buffer) {
            case .done(let count): return .bytes(count)
            case .wantRead: return .wouldBlock
            case .wantWrite: return .wantsOppositeEvent
            case .closed: return .endOfStream
            case .failed(let why): return .failed(.ioError("TLS: \(why)"))
            }
        }
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count > 0 { return .bytes(count) }
            if count == 0 { return .endOfStream }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case ECONNRESET: return .endOfStream
            default: return .failed(.ioError(String(cString: strerror(errno))))
            }
        }
    }

    private func writeOnce(_ bytes: UnsafeRawBufferPointer) -> IOStep {
        if let tls {
            switch tls.write(bytes) {
            case .done(let count): return .bytes(count)
            case .wantWrite: return .wouldBlock
            case .wantRead: return .wantsOppositeEvent
            case .closed: return .endOfStream
            case .failed(let why): return .failed(.ioError("TLS: \(why)"))
            }
        }
        while true {
            let count = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
            if count >= 0 { return .bytes(count) }
            switch errno {
            case EINTR: continue
            case EAGAIN, EWOULDBLOCK: return .wouldBlock
            case EPIPE, ECONNRESET: return .endOfStream
            default: return .failed(.ioError(String(cString: strerror(errno))))
            }
        }
    }

    // MARK: keepalive

    private func scheduleKeepalive(at deadline: ContinuousClock.Instant) {
        loop.cancel(keepaliveTimer)  // one chain of ticks, whoever reschedules
        keepaliveTimer = loop.schedule(at: deadline) { [unowned self] in
            self.keepaliveTimer = .none
            self.keepaliveTick()
        }
    }

    private func keepaliveTick() {
        guard phase == .active, let interval = limits.keepaliveInterval, let session else { return }
        let now = ContinuousClock.now
        if let sentAt = pingSentAt {
            if now - sentAt >= limits.keepaliveTimeout {
                closeAfterFlush(.keepaliveTimeout, goAwayError: nil)
            } else {
                scheduleKeepalive(at: sentAt + limits.keepaliveTimeout)
            }
            return
        }
        if now - lastReadAt >= interval {
            session.submitPing()
            pingSentAt = now
            scheduleKeepalive(at: now + limits.keepaliveTimeout)
            flush()
            updateInterest()
        } else {
            scheduleKeepalive(at: lastReadAt + interval)
        }
    }

    // MARK: closing

    /// GOAWAY now; open streams may finish within `grace`, then end with UNAVAILABLE and the socket closes.
    func beginGracefulClose(_ reason: ConnectionCloseReason, grace: Duration) {
        guard phase != .closed else { return }
        guard phase == .active, let session else {
            close(reason)
            return
        }
        guard !isDraining else { return }
        isDraining = true
        intendedCloseReason = reason
        session.submitGoAway(errorCode: .noError)
        graceTimer = loop.schedule(after: grace) { [unowned self] in
            self.graceTimer = .none
            guard self.phase == .active else { return }
            self.owner?.connection(self, cancelAllStreamsWith: GRPCStatus(.unavailable, reason.description))
            self.closeAfterFlush(reason, goAwayError: nil)
        }
        requestFlush()
    }

    /// Stops reading, optionally sends GOAWAY with an error, flushes what is queued, then closes (at the latest after `closeLinger`).
    func closeAfterFlush(_ reason: ConnectionCloseReason, goAwayError: HTTP2ErrorCode?) {
        guard phase == .active, let session else {
            close(reason)
            return
        }
        if intendedCloseReason == nil || !(reason.isOrderly) { intendedCloseReason = reason }
        if let goAwayError { session.terminate(errorCode: goAwayError) }
        phase = .closing
        lingerTimer = loop.schedule(after: limits.closeLinger) { [unowned self] in
            self.close(self.intendedCloseReason ?? reason)
        }
        // May run inside an nghttp2 callback, where encoding frames is not allowed: flush after it.
        requestFlush()
    }

    private func protocolFailure(_ why: String) {
        // Best effort: tell the peer why, in the bytes the socket accepts right now.
        if let session, phase == .active {
            session.terminate(errorCode: .protocolError)
            phase = .closing
            intendedCloseReason = intendedCloseReason ?? .http2ProtocolError(why)
            flush()
        }
        close(intendedCloseReason ?? .http2ProtocolError(why))
    }

    /// Closes the socket now and reports `reason` once; later calls do nothing.
    func close(_ reason: ConnectionCloseReason) {
        guard phase != .closed else { return }
        let handshakeDone = phase == .active || phase == .closing
        phase = .closed
        for timer in [handshakeTimer, maxAgeTimer, keepaliveTimer, graceTimer, lingerTimer, frameBufferTimer] { loop.cancel(timer) }
        (handshakeTimer, maxAgeTimer, keepaliveTimer, graceTimer, lingerTimer, frameBufferTimer) = (.none, .none, .none, .none, .none, .none)
        if handshakeDone { tls?.shutdownQuietly() }
        if token != 0 { loop.unregister(fd: fd, token: token) }
        Glibc.close(fd)
        pending = ByteQueue()
        let record = TransportLogRecord(
            level: reason.isOrderly ? .info : .warning, connectionID: id, peer: peerAddress,
            closeReason: reason, message: "connection closed: \(reason)")
        logger(record)
        // Owners drop their references (and with them the nghttp2 session) only after the current
        // event, so nothing is freed under a running nghttp2 callback.
        loop.deferOnLoop { [self] in
            owner?.connection(self, closedWith: reason)
            owner = nil
            bufferedBytesObserver?(-reportedBufferedBytes, nil)
            reportedBufferedBytes = 0
            bufferedBytesObserver = nil
        }
    }
}

extension HTTP2Connection: HTTP2SessionDelegate {
    func session(receivedHeaders headers: [HeaderField], kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool) {
        owner?.connection(self, receivedHeaders: headers, kind: kind, streamID: streamID, endStream: endStream)
    }

    func session(receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID) {
        owner?.connection(self, receivedData: data, streamID: streamID)
    }

    func session(receivedEndStream streamID: HTTP2StreamID) {
        owner?.connection(self, receivedEndStream: streamID)
    }

    func session(streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        owner?.connection(self, streamClosed: streamID, errorCode: errorCode)
    }

    func session(receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID) {
        receivedGoAwayError = errorCode
        owner?.connection(self, receivedGoAway: errorCode, lastStreamID: lastStreamID)
    }

    func sessionReceivedPingAck() {
        pingSentAt = nil
    }

    func sessionRefusedStream() {
        refusedStreams += 1
        // nghttp2 refuses streams beyond SETTINGS_MAX_CONCURRENT_STREAMS one by one; a peer that keeps
        // doing it is flooding, so the whole connection goes.
        if refusedStreams > max(16, limits.maxConcurrentStreamsPerConnection) && phase == .active {
            intendedCloseReason = .tooManyStreams
            closeAfterFlush(.tooManyStreams, goAwayError: .enhanceYourCalm)
        }
    }

    func session(sentGoAway errorCode: HTTP2ErrorCode) {
        if sentGoAwayError == nil || errorCode != .noError { sentGoAwayError = errorCode }
    }
}
