// Owns the gRPC server: the listening socket, accepting under the connection
// limit, spreading connections over the loops, per-loop connection tables,
// request validation and handler dispatch, drain, and load statistics.
internal import CTransportShims
import Locking
import Dispatch
import Glibc
import Synchronization
import GRPCStatusCodes
import OpenSSLSupport

/// A gRPC server over HTTP/2 (nghttp2) and mutual TLS (OpenSSL) on epoll event loops.
///
/// Thread rules: the public methods may be called from any thread. The handler's `onStreamOpen`
/// runs on the loop thread of the stream's connection, concurrently on different loops.
public final class GRPCServer: Sendable {
    private let core: ServerCore

    /// Validates the configuration and loads the TLS credentials (fails early on bad files).
    /// Uses `group` when given, else creates `configuration.eventLoopCount` loops and stops them on `shutdown`.
    public init(configuration: GRPCServerConfiguration, group: EventLoopGroup? = nil) throws(TransportError) {
        let tls: TLSContext?
        switch configuration.security {
        case .mutualTLS(let credentials): tls = try TLSContext.server(credentials)
        case .insecurePlaintext: tls = nil
        }
        core = ServerCore(
            configuration: configuration, tlsContext: tls,
            group: group ?? EventLoopGroup(loopCount: configuration.eventLoopCount), ownsGroup: group == nil)
    }

    /// The loops serving this server's connections.
    public var eventLoopGroup: EventLoopGroup { core.group }

    /// Binds, listens and starts accepting; returns the bound port (useful with port 0).
    @discardableResult
    public func start(handler: any GRPCServerHandler) throws(TransportError) -> Int {
        try core.start(handler: handler)
    }

    /// The port the server listens on (0 before `start`).
    public var boundPort: Int { core.state.withLock { $0.boundPort } }

    /// A snapshot of the server's counters.
    public var statistics: TransportStatistics { core.counters.snapshot() }

    /// The certificate new TLS handshakes present (nil for a plaintext server).
    public var certificate: CertificateSummary? { core.tlsContext?.certificateSummary }

    /// Loads new credentials (certificate chain, key, client CA bundle) for the connections accepted from now on;
    /// established connections keep the material they were accepted with, so no stream is dropped. If the files
    /// cannot be loaded, the key does not match the certificate, or the certificate is not valid now, this throws
    /// and the current credentials stay in use. A CA bundle may hold old and new CAs during a CA rotation.
    @discardableResult
    public func reloadCredentials(_ credentials: TLSServerCredentials) throws(TransportError) -> CertificateSummary? {
        guard core.tlsContext != nil else {
            throw TransportError(.tlsConfiguration, "this server runs without TLS (insecure plaintext): there are no credentials to reload")
        }
        let context = try TLSContext.server(credentials)
        core.replaceTLSContext(context)
        return context.certificateSummary
    }

    /// Stops accepting, sends GOAWAY on every connection, lets streams finish for `gracePeriod`, then ends
    /// the rest with UNAVAILABLE and closes; returns when every connection is closed.
    public func drain(gracePeriod: Duration) async {
        await core.drain(gracePeriod: gracePeriod)
    }

    /// Drains with no grace period and stops the event loops the server created.
    public func shutdown() async {
        await core.drain(gracePeriod: .zero)
        if core.ownsGroup { core.group.shutdown() }
    }
}

/// Atomic counters shared by all loops of one server.
final class ServerCounters: Sendable {
    let activeConnections = Atomic<Int>(0)
    let activeStreams = Atomic<Int>(0)
    let accepted = Atomic<Int>(0)
    let refused = Atomic<Int>(0)
    let buffered = Atomic<Int>(0)
    let peakBuffered = Atomic<Int>(0)
    /// Connections closed since the heap was last trimmed, and whether a trim is already scheduled.
    let closedSinceTrim = Atomic<Int>(0)
    let trimScheduled = Atomic<Bool>(false)
    let heapTrims = Atomic<Int>(0)

    func notePeak(_ value: Int) {
        var current = peakBuffered.load(ordering: .relaxed)
        while value > current {
            let (exchanged, original) = peakBuffered.compareExchange(
                expected: current, desired: value, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    func snapshot() -> TransportStatistics {
        TransportStatistics(
            activeConnections: activeConnections.load(ordering: .relaxed),
            activeStreams: activeStreams.load(ordering: .relaxed),
            acceptedConnections: accepted.load(ordering: .relaxed),
            refusedConnections: refused.load(ordering: .relaxed),
            bufferedOutboundBytes: buffered.load(ordering: .relaxed),
            peakConnectionOutboundBytes: peakBuffered.load(ordering: .relaxed),
            http2HeapBytes: HTTP2MemoryAccounting.currentBytes,
            heapTrims: heapTrims.load(ordering: .relaxed))
    }
}

/// The connections one loop serves; only touched on that loop.
final class LoopConnections: @unchecked Sendable {
    // @unchecked Sendable: `connections` and `paths` are read and written only on the loop with this index.
    var connections: [UInt64: GRPCServerConnection] = [:]
    /// One copy of each method path this loop's streams use, up to `maxPaths`.
    private var paths: Set<String> = []
    static let maxPaths = 64

    /// The loop's copy of `path`: a stream keeps its method path for its life, and the copy decoded from its request
    /// (the xDS paths are ≈ 80 bytes) cost 128 bytes per idle proxy. The few paths a server serves are shared; past
    /// `maxPaths` distinct ones (a client trying names), paths are kept as they come.
    func shared(path: String) -> String {
        if let index = paths.firstIndex(of: path) { return paths[index] }
        if paths.count < Self.maxPaths { paths.insert(path) }
        return path
    }
}

/// Server state shared by the public facade, the listener and every loop.
final class ServerCore: Sendable {
    struct State {
        var handler: (any GRPCServerHandler)?
        var boundPort = 0
        var draining = false
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        var listener: Listener?
    }

    let configuration: GRPCServerConfiguration
    /// The credentials new connections are accepted with; replaced whole by a reload (a connection keeps a
    /// reference to the context it started with, and OpenSSL reference-counts the SSL_CTX under it).
    private let currentTLSContext: Locked<TLSContext?>
    var tlsContext: TLSContext? { currentTLSContext.withLock { $0 } }
    let group: EventLoopGroup
    let ownsGroup: Bool
    let counters = ServerCounters()
    let state = Locked(State())
    /// Connections and streams held per client identity (for the per-identity limits).
    private let identityUsage = Locked<[String: (connections: Int, streams: Int)]>([:])
    let loopConnections: [LoopConnections]
    private let nextConnectionID = Atomic<UInt64>(1)

    init(configuration: GRPCServerConfiguration, tlsContext: TLSContext?, group: EventLoopGroup, ownsGroup: Bool) {
        self.configuration = configuration
        limitsReference = LimitsReference(configuration.limits)
        currentTLSContext = Locked(tlsContext)
        self.group = group
        self.ownsGroup = ownsGroup
        loopConnections = group.loops.map { _ in LoopConnections() }
    }

    var limits: TransportLimits { configuration.limits }
    /// What each connection and stream reads its limits through.
    let limitsReference: LimitsReference

    /// Counts a connection (or, with `stream`, a stream) against `identity`; false when its limit is reached.
    func admit(identity: String, stream: Bool) -> Bool {
        identityUsage.withLock { usage in
            var held = usage[identity] ?? (0, 0)
            if stream {
                guard held.streams < limits.maxStreamsPerIdentity else { return false }
                held.streams += 1
            } else {
                guard held.connections < limits.maxConnectionsPerIdentity else { return false }
                held.connections += 1
            }
            usage[identity] = held
            return true
        }
    }

    func release(identity: String, connections: Int, streams: Int) {
        identityUsage.withLock { usage in
            guard var held = usage[identity] else { return }
            held.connections -= connections
            held.streams -= streams
            usage[identity] = held.connections <= 0 && held.streams <= 0 ? nil : held
        }
    }

    func replaceTLSContext(_ context: TLSContext) {
        currentTLSContext.withLock { $0 = context }
    }

    func start(handler: any GRPCServerHandler) throws(TransportError) -> Int {
        guard state.withLock({ $0.handler == nil && !$0.draining }) else {
            throw TransportError(.socket, "server already started or drained", context: "\(configuration.host):\(configuration.port)")
        }
        var port: Int32 = 0
        let fd = transport_listen(configuration.host, Int32(configuration.port), Int32(configuration.limits.listenBacklog), &port)
        guard fd >= 0 else {
            throw TransportError(.socket, "cannot listen: \(String(cString: strerror(-fd)))",
                                 context: "\(configuration.host):\(configuration.port)")
        }
        let loop = group.loops[0]
        let listener = Listener(fd: fd, loop: loop, core: self)
        state.withLock {
            $0.handler = handler
            $0.boundPort = Int(port)
            $0.listener = listener
        }
        loop.execute { listener.register() }
        configuration.logger(TransportLogRecord(
            level: .info, connectionID: nil, peer: "", closeReason: nil,
            message: "listening on \(configuration.host):\(port) (\(tlsContext == nil ? "INSECURE plaintext h2c" : "mTLS, ALPN h2"), \(group.loops.count) event loops)"))
        return Int(port)
    }

    /// Takes over an accepted socket on `loop` (called on that loop).
    func adopt(fd: Int32, peer: String, loop: EventLoop) {
        let (handler, draining) = state.withLock { ($0.handler, $0.draining) }
        guard let handler, !draining else {
            Glibc.close(fd)
            connectionEnded()
            return
        }
        let id = nextConnectionID.wrappingAdd(1, ordering: .relaxed).oldValue
        let tlsContext = self.tlsContext
        do {
            let connection = try HTTP2Connection(
                id: id, loop: loop, fd: fd, peerAddress: peer, role: .server, tls: tlsContext, serverName: nil,
                connecting: false, limits: limitsReference, logger: configuration.logger)
            let server = GRPCServerConnection(core: self, connection: connection, handler: handler)
            connection.owner = server
            connection.bufferedBytesObserver = { [counters] delta, peak in
                counters.buffered.wrappingAdd(delta, ordering: .relaxed)
                if let peak { counters.notePeak(peak) }
            }
            loopConnections[loop.index].connections[id] = server
            connection.start(handshakeTimeout: tlsContext == nil ? nil : limits.handshakeTimeout,
                             maxAge: limits.maxConnectionAge)
        } catch {
            configuration.logger(TransportLogRecord(
                level: .warning, connectionID: id, peer: peer, closeReason: nil,
                message: "cannot set up connection: \(error)"))
            Glibc.close(fd)
            connectionEnded()
        }
    }

    func connectionClosed(_ server: GRPCServerConnection) {
        loopConnections[server.connection.loop.index].connections[server.connection.id] = nil
        connectionEnded()
    }

    private func connectionEnded() {
        let remaining = counters.activeConnections.wrappingSubtract(1, ordering: .relaxed).newValue
        if remaining == 0 { resumeDrainWaitersIfIdle() }
        releaseMemoryIfManyClosed()
    }

    /// Hands free heap pages back to the kernel once `releaseMemoryAfterClosedConnections` connections have closed,
    /// batched: one trim 2 s after the threshold, off the event loops (malloc_trim walks every arena).
    private func releaseMemoryIfManyClosed() {
        guard let threshold = configuration.limits.releaseMemoryAfterClosedConnections else { return }
        let closed = counters.closedSinceTrim.wrappingAdd(1, ordering: .relaxed).newValue
        guard closed >= threshold,
              counters.trimScheduled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        let counters = self.counters
        DispatchQueue.global(qos: .utility).asyncAfter(deadline: .now() + 2) {
            counters.closedSinceTrim.store(0, ordering: .relaxed)
            _ = transport_malloc_trim()
            counters.heapTrims.wrappingAdd(1, ordering: .relaxed)
            counters.trimScheduled.store(false, ordering: .relaxed)
        }
    }

    private func resumeDrainWaitersIfIdle() {
        let waiters: [CheckedContinuation<Void, Never>] = state.withLock { state in
            guard state.draining, counters.activeConnections.load(ordering: .relaxed) == 0 else { return [] }
            defer { state.drainWaiters.removeAll() }
            return state.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func drain(gracePeriod: Duration) async {
        let listener: Listener? = state.withLock { state in
            state.draining = true
            defer { state.listener = nil }
            return state.listener
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            state.withLock { $0.drainWaiters.append(continuation) }
            if let listener {
                listener.loop.execute { listener.close() }
            }
            for loop in group.loops {
                let table = loopConnections[loop.index]
                loop.execute {
                    for id in table.connections.keys.sorted() {
                        table.connections[id]?.connection.beginGracefulClose(.serverDrain, grace: gracePeriod)
                    }
                }
            }
            resumeDrainWaitersIfIdle()
        }
    }
}

/// The listening socket, registered on loop 0; hands accepted sockets to loops round-robin.
final class Listener: EventLoopSelectable, @unchecked Sendable {
    // @unchecked Sendable: created on the starting thread, then used only on `loop`.
    let fd: Int32
    let loop: EventLoop
    private let core: ServerCore
    private var token: UInt64 = 0
    private var closed = false
    private var lastRefusalLog: ContinuousClock.Instant?
    private var refusalsSinceLog = 0

    init(fd: Int32, loop: EventLoop, core: ServerCore) {
        self.fd = fd
        self.loop = loop
        self.core = core
    }

    func register() {
        guard !closed else { return }
        token = loop.register(fd: fd, handler: self, events: transport_epollin())
    }

    func close() {
        guard !closed else { return }
        closed = true
        if token != 0 { loop.unregister(fd: fd, token: token) }
        Glibc.close(fd)
    }

    func handleEvent(readable: Bool, writable: Bool, hangup: Bool) {
        var address = [CChar](repeating: 0, count: 64)
        var port: Int32 = 0
        let counters = core.counters
        // Bounded per wakeup so a connection storm cannot starve this loop's own connections.
        for _ in 0..<64 where !closed {
            let fd = transport_accept(self.fd, &address, address.count, &port)
            if fd < 0 {
                if errno == EMFILE || errno == ENFILE {
                    logRefusal("out of file descriptors (\(String(cString: strerror(errno))))")
                    pauseAccepting()
                }
                return
            }
            let peer = "\(String(nulTerminated: address)):\(port)"
            let active = counters.activeConnections.wrappingAdd(1, ordering: .relaxed).newValue
            if active > core.limits.maxConnections {
                counters.activeConnections.wrappingSubtract(1, ordering: .relaxed)
                counters.refused.wrappingAdd(1, ordering: .relaxed)
                Glibc.close(fd)
                logRefusal("\(ConnectionCloseReason.connectionLimit) (\(core.limits.maxConnections)), last peer \(peer)")
                continue
            }
            counters.accepted.wrappingAdd(1, ordering: .relaxed)
            _ = transport_set_nodelay(fd)
            let target = core.group.next()
            let core = self.core
            target.execute { core.adopt(fd: fd, peer: peer, loop: target) }
        }
    }

    /// Refusals are logged at most once a second (with a count) so a storm cannot flood the log.
    private func logRefusal(_ message: String) {
        refusalsSinceLog += 1
        let now = ContinuousClock.now
        if let last = lastRefusalLog, now - last < .seconds(1) { return }
        let count = refusalsSinceLog
        refusalsSinceLog = 0
        lastRefusalLog = now
        core.configuration.logger(TransportLogRecord(
            level: .warning, connectionID: nil, peer: "", closeReason: .connectionLimit,
            message: "refused \(count) connection(s): \(message)"))
    }

    private func pauseAccepting() {
        guard token != 0 else { return }
        loop.modify(fd: fd, token: token, events: 0)
        loop.schedule(after: .milliseconds(100)) { [weak self] in
            guard let self, !self.closed else { return }
            self.loop.modify(fd: self.fd, token: self.token, events: transport_epollin())
        }
    }
}

/// The gRPC server role of one connection: validates request headers, dispatches streams to the handler.
final class GRPCServerConnection: HTTP2ConnectionRole {
    private let core: ServerCore
    let connection: HTTP2Connection
    private let handler: any GRPCServerHandler
    private var streams = StreamMap<ServerStream>()
    /// The identity this connection is counted against (nil: plaintext, no certificate, or refused).
    private var countedIdentity: String?
    /// Streams counted against `countedIdentity` (each marked `countedAgainstIdentity`).
    private var countedStreams = 0
    /// Requests that are not gRPC, waiting for their end before they are answered.
    private var rejected = StreamMap<NonGRPCRequest>()
    private var context: ConnectionContext

    init(core: ServerCore, connection: HTTP2Connection, handler: any GRPCServerHandler) {
        self.core = core
        self.connection = connection
        self.handler = handler
        context = ConnectionContext(
            id: connection.id, remoteAddress: connection.peerAddress, peerIdentity: nil,
            eventLoopIndex: connection.loop.index)
    }

    func outboundChanged() {
        connection.requestFlush()
        connection.reportBufferedBytes()
    }

    func connectionBecameActive(_ connection: HTTP2Connection) {
        context = ConnectionContext(
            id: connection.id, remoteAddress: connection.peerAddress, peerIdentity: connection.peerIdentity,
            eventLoopIndex: connection.loop.index)
        guard let identity = connection.peerIdentity.flatMap({ $0.spiffeID ?? $0.commonName }) else { return }
        if core.admit(identity: identity, stream: false) {
            countedIdentity = identity
        } else {
            let limit = core.limits.maxConnectionsPerIdentity
            var record = TransportLogRecord(level: .warning, connectionID: connection.id, peer: connection.peerAddress, closeReason: nil,
                                            message: "refused connection: identity \(identity) already holds \(limit) connections")
            record.identityLimit = IdentityLimitRefusal(kind: .connections, identity: identity, limit: limit)
            core.configuration.logger(record)
            connection.closeAfterFlush(.identityConnectionLimit(identity: identity, limit: limit), goAwayError: .enhanceYourCalm)
        }
    }

    func connection(_ connection: HTTP2Connection, receivedHeaders headers: [HeaderField],
                    kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool) {
        switch kind {
        case .request:
            openStream(streamID: streamID, headers: headers, endStream: endStream)
        case .trailers:
            if endStream { streams[streamID]?.requestEnded() }
        case .response:
            break
        }
    }

    private func openStream(streamID: HTTP2StreamID, headers: [HeaderField], endStream: Bool) {
        guard connection.session != nil else { return }
        var method = "", path = "", contentType = "", encoding: String?
        var metadata: [HeaderField] = []
        for field in headers {
            switch field.name {
            case ":method": method = field.value
            case ":path": path = field.value
            case "content-type": contentType = field.value
            case "grpc-encoding": encoding = field.value
            default: break
            }
            if !field.name.hasPrefix(":") { metadata.append(field) }
        }
        // Not gRPC at all: a plain HTTP answer, as the gRPC spec asks (405 for another method, 415 for another
        // content type). It is sent when the request is complete, never while frames of it are in flight, so
        // the peer's HTTP/2 errors on those frames are judged the same whatever the packet boundaries.
        if method != "POST" || !contentType.hasPrefix("application/grpc") {
            let rejection = method != "POST"
                ? NonGRPCRequest(httpStatus: 405, grpcStatus: GRPCStatus(.internalError, "method \(method) is not allowed: gRPC requests are POST"))
                : NonGRPCRequest(httpStatus: 415, grpcStatus: GRPCStatus(.invalidArgument, "content-type '\(contentType)' is not gRPC: send application/grpc"))
            rejected[streamID] = rejection
            if endStream {
                answer(rejectedStreamID: streamID)
            } else {
                // A body that never ends must not hold the stream: answer after the first-message timeout.
                _ = connection.loop.schedule(after: connection.limits.firstMessageTimeout) { [weak self] in
                    self?.answer(rejectedStreamID: streamID)
                }
            }
            return
        }
        path = core.loopConnections[connection.loop.index].shared(path: path)
        let stream = ServerStream(
            streamID: streamID, path: path, connection: context, eventLoop: connection.loop, owner: self,
            limits: connection.limitsReference)
        streams[streamID] = stream
        core.counters.activeStreams.wrappingAdd(1, ordering: .relaxed)
        if let identity = countedIdentity {
            guard core.admit(identity: identity, stream: true) else {
                let limit = core.limits.maxStreamsPerIdentity
                var record = TransportLogRecord(level: .warning, connectionID: connection.id, peer: connection.peerAddress, closeReason: nil,
                                                message: "refused stream \(path): identity \(identity) already holds \(limit) streams")
                record.identityLimit = IdentityLimitRefusal(kind: .streams, identity: identity, limit: limit)
                core.configuration.logger(record)
                stream.finish(GRPCStatus(.resourceExhausted, "identity \(identity) already holds \(limit) streams on this server (per-identity limit)"))
                return
            }
            stream.countedAgainstIdentity = true
            countedStreams += 1
        }
        if let encoding, encoding != "identity" {
            stream.finish(GRPCStatus(.unimplemented, "grpc-encoding \(encoding) is not supported"))
            return
        }
        let head = GRPCRequestHead(path: path, metadata: metadata, connection: context)
        if let streamHandler = handler.onStreamOpen(head, stream: stream) {
            stream.handler = streamHandler
        } else if !stream.isFinished {
            stream.finish(GRPCStatus(.unimplemented, "unknown method \(path)"))
        }
        if !stream.isFinished { stream.startFirstMessageTimer() }
        if endStream { stream.requestEnded() }
    }

    func connection(_ connection: HTTP2Connection, receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID) {
        if let stream = streams[streamID] {
            stream.receive(data)
        } else if rejected[streamID] != nil {
            // The body of a request that will be refused is discarded; a large one is answered before its end.
            rejected[streamID]!.discardedBytes += data.count
            if rejected[streamID]!.discardedBytes > NonGRPCRequest.maxDiscardedBytes { answer(rejectedStreamID: streamID) }
        }
    }

    func connection(_ connection: HTTP2Connection, receivedEndStream streamID: HTTP2StreamID) {
        if let stream = streams[streamID] {
            stream.requestEnded()
        } else if rejected[streamID] != nil {
            answer(rejectedStreamID: streamID)
        }
    }

    /// Sends the plain-HTTP refusal of a non-gRPC request (once): status, gRPC status headers, a one-line body.
    private func answer(rejectedStreamID streamID: HTTP2StreamID) {
        guard let request = rejected[streamID], !request.answered, let session = connection.session else { return }
        rejected[streamID]!.answered = true
        let body = Array("meshctl serves gRPC (Envoy xDS) here: \(request.grpcStatus.message)\n".utf8)
        let headers = [HeaderField(":status", "\(request.httpStatus)"), HeaderField("content-type", "text/plain; charset=utf-8"),
                       HeaderField("content-length", "\(body.count)")] + request.grpcStatus.trailers
        _ = session.submitResponse(streamID: streamID, headers: headers, endStream: false)
        session.enqueue(streamID: streamID, body)
        session.finishOutbound(streamID: streamID, trailers: nil)
        connection.requestFlush()
    }

    func connection(_ connection: HTTP2Connection, streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        rejected[streamID] = nil
        guard let stream = streams.removeValue(forKey: streamID) else { return }
        if let identity = countedIdentity, stream.countedAgainstIdentity {
            stream.countedAgainstIdentity = false
            countedStreams -= 1
            core.release(identity: identity, connections: 0, streams: 1)
        }
        core.counters.activeStreams.wrappingSubtract(1, ordering: .relaxed)
        stream.closed(stream.isFinished ? .finished : .cancelledByPeer(errorCode: errorCode))
    }

    func connection(_ connection: HTTP2Connection, receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID) {}

    func connection(_ connection: HTTP2Connection, flushed streamIDs: [HTTP2StreamID]) {
        for id in streamIDs { streams[id]?.flushed() }
    }

    func connection(_ connection: HTTP2Connection, cancelAllStreamsWith status: GRPCStatus) {
        for id in streams.keys.sorted() {
            connection.session?.discardQueued(streamID: id)
            streams[id]?.finish(status)
        }
    }

    func connection(_ connection: HTTP2Connection, closedWith reason: ConnectionCloseReason) {
        let open = streams
        streams.removeAll()
        rejected.removeAll()
        if let identity = countedIdentity {
            core.release(identity: identity, connections: 1, streams: countedStreams)
            countedIdentity = nil
            countedStreams = 0
        }
        core.counters.activeStreams.wrappingSubtract(open.count, ordering: .relaxed)
        for id in open.keys.sorted() { open[id]!.closed(.connectionClosed(reason)) }
        core.connectionClosed(self)
    }
}

/// A request on the gRPC port that is not gRPC (wrong method or content type), answered once it is complete.
struct NonGRPCRequest {
    /// Bodies up to this size are read to their end before the answer; beyond it the answer goes out at once.
    static let maxDiscardedBytes = 64 * 1024

    let httpStatus: Int
    let grpcStatus: GRPCStatus
    var discardedBytes = 0
    var answered = false
}
