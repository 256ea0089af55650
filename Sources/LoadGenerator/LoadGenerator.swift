// Owns a load-generation run: the client event loops, paced connection set-up, the
// simulated proxies spread over the connections, early failure detection, and stopping.
// Proxy state lives on the loops; the generator only sees thread-safe counters until the
// loops are joined, then reads the proxies' records to build the report.
import Locking
import Foundation
import Glibc
import SnapshotStorage
import Synchronization
import Transport
import GRPCStatusCodes

/// Thread-safe progress of a run, updated from the loops.
final class GeneratorEvents: Sendable {
    struct State {
        var readyConnections = 0
        var failedConnections = 0
        var connectsInFlight = 0
        var configuredProxies = 0
        /// Proxies configured on their current connection (falls when connections are lost, rises as they return).
        var configuredNow = 0
        var reconnects = 0
        var connectionsLost = 0
        var failedProxies = 0
        var failedBeforeConfig = 0
        var firstConnectionFailure: (ConnectionCloseReason?, String)?
        var firstProxyFailure: (Int, GRPCStatus)?
        var failureCounts: [String: Int] = [:]
    }

    let state = Locked(State())
    let stopping = Atomic<Bool>(false)
    let endRequested = Atomic<Bool>(false)

    var isStopping: Bool { stopping.load(ordering: .acquiring) }

    func proxyConfigured(first: Bool) {
        state.withLock {
            if first { $0.configuredProxies += 1 }
            $0.configuredNow += 1
        }
    }

    func proxyLostConfiguredSession() { state.withLock { $0.configuredNow -= 1 } }

    func proxyFailed(index: Int, status: GRPCStatus, configured: Bool) {
        state.withLock {
            $0.failedProxies += 1
            if !configured { $0.failedBeforeConfig += 1 }
            if $0.firstProxyFailure == nil { $0.firstProxyFailure = (index, status) }
            $0.failureCounts["\(status.code): \(status.message)", default: 0] += 1
        }
    }
}

/// A snapshot of a run's progress.
public struct LoadProgress: Sendable, Equatable {
    public let readyConnections: Int
    public let failedConnections: Int
    public let configuredProxies: Int
    public let failedProxies: Int
    /// Proxies configured on their current connection (with `reconnect`: back after a loss).
    public var configuredNow = 0
    public var reconnects = 0
    public var connectionsLost = 0
}

/// Simulated Envoy proxies over mutual TLS against one xDS server, measuring what each proxy gets and when.
public final class LoadGenerator: @unchecked Sendable {
    // @unchecked Sendable: `proxies`/`connections` are filled before `start` hands them to the loops and
    // read again only after the loops are joined (`stop`); everything shared in between is in `events`.
    public let options: LoadGeneratorOptions
    private let client: GRPCClient
    private let loops: EventLoopGroup
    private let events = GeneratorEvents()
    private let proxies: [SimulatedProxy]
    private let connectionSlots: Locked<[GRPCClientConnection?]>
    private var connector: Thread?
    private let connectorDone = DispatchSemaphore(value: 0)
    private(set) var startedAt = 0.0
    private var initialStoreVersion: String?

    /// Checks the options and loads the TLS credentials (a bad file is a `.credentials` error naming it).
    public init(options: LoadGeneratorOptions) throws(LoadGeneratorError) {
        if let problem = options.problem() { throw LoadGeneratorError(.credentials, problem) }
        self.options = options
        var configuration = GRPCClientConfiguration(host: options.host, port: options.port, security: .tls(options.credentials),
                                                    authority: options.credentials.serverName)
        configuration.limits.keepaliveInterval = nil
        do {
            client = try GRPCClient(configuration: configuration)
        } catch {
            throw LoadGeneratorError(.credentials, "cannot load TLS credentials: \(error)")
        }
        loops = EventLoopGroup(loopCount: max(1, options.eventLoops))
        let events = self.events
        let readings = SharedResourceReadings()
        proxies = (0..<options.proxies).map {
            SimulatedProxy(index: $0, group: options.groups[$0 % options.groups.count], mode: options.mode,
                           nackRate: options.nackRate, seed: options.seed, events: events, readings: readings,
                           reconnects: options.reconnects)
        }
        connectionSlots = Locked(Array(repeating: nil, count: options.connections))
    }

    deinit {
        loops.shutdown()
    }

    public var progress: LoadProgress {
        events.state.withLock { LoadProgress(readyConnections: $0.readyConnections, failedConnections: $0.failedConnections,
                                             configuredProxies: $0.configuredProxies, failedProxies: $0.failedProxies,
                                             configuredNow: $0.configuredNow, reconnects: $0.reconnects, connectionsLost: $0.connectionsLost) }
    }

    /// Starts connecting (paced, on a background thread) and returns at once.
    public func start() {
        startedAt = wallClock()
        initialStoreVersion = try? options.store?.currentVersion()
        let thread = Thread { [self] in
            connectAll()
            connectorDone.signal()
        }
        thread.stackSize = 1 << 20
        connector = thread
        thread.start()
        if options.churnPerSecond > 0 {
            Thread { [self] in churn() }.start()
        }
        if let path = options.progressFile {
            Thread { [self] in writeProgress(to: path) }.start()
        }
    }

    private func connectAll() {
        for index in 0..<options.connections {
            while !events.isStopping && events.state.withLock({ $0.connectsInFlight }) >= options.maxConnectsInFlight {
                usleep(1000)
            }
            if events.isStopping { return }
            events.state.withLock { $0.connectsInFlight += 1 }
            connect(index, attempt: 0)
        }
    }

    /// Opens connection `index` for its proxies (their streams start when it is ready). With reconnects, a lost
    /// connection comes back here after a jittered backoff: 0.25 s doubling to 4 s, like Envoy's default.
    private func connect(_ index: Int, attempt: Int, first: Bool = true) {
        guard !events.isStopping else { return }
        let loop = loops.loops[index % loops.loops.count]
        let members = stride(from: index, to: proxies.count, by: options.connections).map { proxies[$0] }
        let delegate = ConnectionObserver(events: events, proxies: members, countsAsFirst: first, onLost: !options.reconnects ? nil : { [weak self] wasReady in
            guard let self, !self.events.isStopping else { return }
            let next = wasReady ? 0 : attempt + 1
            let base = wasReady ? 0.05 : min(4.0, 0.25 * Double(1 << min(next, 5)))
            let delay = base * Double.random(in: 0.5...1.5)
            // `schedule` is loop-only: hop onto the loop when the loss was seen elsewhere (a connect that failed at once).
            let retry: @Sendable () -> Void = {
                _ = loop.schedule(after: .milliseconds(Int(delay * 1000))) { [weak self] in
                    guard let self else { return }
                    self.events.state.withLock { $0.reconnects += 1 }
                    self.connect(index, attempt: next, first: false)
                }
            }
            if loop.inEventLoop { retry() } else { loop.execute(retry) }
        })
        do {
            let connection = try client.connect(on: loop, delegate: delegate)
            connectionSlots.withLock { $0[index] = connection }
        } catch {
            delegate.failedAtOnce(error.description)
        }
    }

    /// Closes `churnPerSecond` random connections per second until the run stops; each reconnects.
    private func churn() {
        var random = SplitMix64(state: options.seed &* 31 &+ 7)
        var owed = 0.0
        while !events.isStopping && !events.endRequested.load(ordering: .acquiring) {
            usleep(100_000)
            owed += options.churnPerSecond / 10
            while owed >= 1 {
                owed -= 1
                let index = Int(random.nextUnit() * Double(options.connections)) % options.connections
                guard let connection = connectionSlots.withLock({ $0[index] }) else { continue }
                connection.eventLoop.execute { connection.close() }
            }
        }
    }

    /// One JSON line per 100 ms: seconds since start and the progress counters.
    private func writeProgress(to path: String) {
        guard let file = fopen(path, "w") else { return }
        defer { fclose(file) }
        while !events.isStopping {
            let p = progress
            let line = "{\"t\":\(String(format: "%.3f", wallClock() - startedAt)),\"ready_connections\":\(p.readyConnections),\"configured\":\(p.configuredProxies),\"configured_now\":\(p.configuredNow),\"reconnects\":\(p.reconnects),\"connections_lost\":\(p.connectionsLost),\"failed_proxies\":\(p.failedProxies)}\n"
            fputs(line, file)
            fflush(file)
            usleep(100_000)
        }
    }

    /// Blocks until the run should end: `duration` passed, or nothing can succeed any more (every connection
    /// or every proxy failed). Returns true when it ended early.
    @discardableResult
    public func waitForEnd(deadline: Double? = nil) -> Bool {
        let end = deadline ?? startedAt + Double(options.duration.components.seconds) + Double(options.duration.components.attoseconds) / 1e18
        while wallClock() < end {
            if hopeless || events.endRequested.load(ordering: .acquiring) { return true }
            usleep(10_000)
        }
        return false
    }

    /// Makes `waitForEnd` return at once (e.g. on SIGINT); callable from any thread.
    public func requestEnd() {
        events.endRequested.store(true, ordering: .releasing)
    }

    /// True when no proxy can still succeed.
    private var hopeless: Bool {
        events.state.withLock {
            (!options.reconnects && $0.failedConnections == options.connections) || $0.failedProxies == options.proxies
        }
    }

    /// Polls `condition` every 20 ms until it holds, the run turns hopeless, or `seconds` pass.
    public func wait(upTo seconds: Double, until condition: (LoadProgress) -> Bool) -> Bool {
        let end = wallClock() + seconds
        while wallClock() < end {
            if condition(progress) { return true }
            if hopeless || events.endRequested.load(ordering: .acquiring) { return false }
            usleep(20_000)
        }
        return condition(progress)
    }

    /// How many proxies have received and answered (ACK or NACK) `version` of `typeURL` (SotW `version_info` or
    /// delta `system_version_info`). Asks each loop; bounded wait.
    public func proxiesHavingAnswered(typeURL: String, version: String) -> Int {
        let count = Atomic<Int>(0)
        let done = DispatchSemaphore(value: 0)
        for (loopIndex, loop) in loops.loops.enumerated() {
            let members = proxies.enumerated().filter { ($0.offset % options.connections) % loops.loops.count == loopIndex }.map(\.element)
            let box = ProxyList(members)
            loop.execute {
                let n = box.proxies.filter { $0.hasAnswered(typeURL: typeURL, version: version) }.count
                count.add(n, ordering: .relaxed)
                done.signal()
            }
        }
        for _ in loops.loops { _ = done.wait(timeout: .now() + 10) }
        return count.load(ordering: .relaxed)
    }

    /// Ends the run: stops connecting, closes every stream and connection, joins the loops, and reports.
    public func stop() -> LoadReport {
        let stoppedAt = wallClock()
        events.stopping.store(true, ordering: .releasing)
        _ = connectorDone.wait(timeout: .now() + 30)
        let connections = connectionSlots.withLock { $0 }
        let closed = DispatchSemaphore(value: 0)
        for (index, loop) in loops.loops.enumerated() {
            let mine = ConnectionList(connections.enumerated().filter { $0.offset % loops.loops.count == index }.compactMap(\.element))
            let members = ProxyList(proxies.enumerated().filter { ($0.offset % options.connections) % loops.loops.count == index }.map(\.element))
            loop.execute {
                for proxy in members.proxies { proxy.stop() }
                for connection in mine.connections { connection.close() }
                closed.signal()
            }
        }
        for _ in loops.loops { _ = closed.wait(timeout: .now() + 10) }
        usleep(100_000)  // lets GOAWAYs reach the server before the loops stop
        loops.shutdown()
        let state = events.state.withLock { $0 }
        return LoadReport.build(options: options, proxies: proxies, startedAt: startedAt, stoppedAt: stoppedAt,
                                progress: progress, failureCounts: state.failureCounts,
                                initialStoreVersion: initialStoreVersion)
    }

    /// Why the run failed from the user's point of view, or nil when every proxy got its configuration and kept its streams.
    public func verdict() -> LoadGeneratorError? {
        let state = events.state.withLock { $0 }
        let target = "\(options.host):\(options.port)"
        if state.readyConnections == 0, let (reason, message) = state.firstConnectionFailure {
            switch reason {
            case .tlsHandshakeFailed(let why)?:
                return LoadGeneratorError(.handshake, "TLS handshake with \(target) failed: \(why) (is --ca the CA that signed the server's certificate, and does --server-name match it?)")
            case .alpnNotNegotiated?:
                return LoadGeneratorError(.handshake, "\(target) did not negotiate HTTP/2 (ALPN h2): is it an xDS server?")
            case .handshakeTimeout?:
                return LoadGeneratorError(.unreachable, "TLS handshake with \(target) timed out: is it an xDS server?")
            default:
                return LoadGeneratorError(.unreachable, "cannot reach the xDS server at \(target): \(message)")
            }
        }
        if let (index, status) = state.firstProxyFailure {
            let group = options.groups[index % options.groups.count]
            let what = state.failedProxies == 1 ? "1 proxy" : "\(state.failedProxies) proxies"
            return LoadGeneratorError(.refused, "the server ended the streams of \(what); first: loadgen-\(index) (group \(group)): \(status.code): \(status.message)")
        }
        let missing = options.proxies - state.configuredProxies
        if missing > 0 {
            return LoadGeneratorError(.incomplete, "\(missing) of \(options.proxies) proxies did not receive their complete configuration within the run (\(state.readyConnections) of \(options.connections) connections up)")
        }
        return nil
    }
}

/// Lists handed to a loop in one closure (the elements are confined to that loop).
// @unchecked Sendable: the proxies are handed to one loop by this list and touched only there afterwards.
private struct ProxyList: @unchecked Sendable { let proxies: [SimulatedProxy]; init(_ p: [SimulatedProxy]) { proxies = p } }
// @unchecked Sendable: the connections are handed to one loop by this list and touched only there afterwards.
private struct ConnectionList: @unchecked Sendable { let connections: [GRPCClientConnection]; init(_ c: [GRPCClientConnection]) { connections = c } }

/// One connection's events: opens its proxies' streams when HTTP/2 is up, counts failures; with reconnects, hands a
/// lost connection back to the generator (`onLost`) after its proxies have ended their sessions.
final class ConnectionObserver: GRPCClientConnectionDelegate, @unchecked Sendable {
    // @unchecked Sendable: its callbacks run on the connection's loop only.
    private let events: GeneratorEvents
    private let proxies: [SimulatedProxy]
    /// Whether this is the connection's first attempt (its outcome counts in ready/failed connections).
    private let countsAsFirst: Bool
    private let onLost: ((_ wasReady: Bool) -> Void)?
    private var settled = false
    private var ready = false

    init(events: GeneratorEvents, proxies: [SimulatedProxy], countsAsFirst: Bool = true, onLost: ((Bool) -> Void)? = nil) {
        self.events = events
        self.proxies = proxies
        self.countsAsFirst = countsAsFirst
        self.onLost = onLost
    }

    func connectionReady(_ connection: GRPCClientConnection) {
        ready = true
        settle(ready: true, reason: nil, message: "")
        guard !events.isStopping else { return }
        for proxy in proxies { proxy.start(on: connection) }
    }

    func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason) {
        settle(ready: false, reason: reason, message: reason.description)
        guard let onLost, !events.isStopping else { return }
        if ready {
            events.state.withLock { $0.connectionsLost += 1 }
            for proxy in proxies { proxy.sessionLost() }
        }
        onLost(ready)
    }

    func failedAtOnce(_ message: String) {
        settle(ready: false, reason: nil, message: message)
        onLost?(false)
    }

    private func settle(ready: Bool, reason: ConnectionCloseReason?, message: String) {
        guard !settled else { return }
        settled = true
        events.state.withLock {
            $0.connectsInFlight -= countsAsFirst ? 1 : 0
            guard countsAsFirst else { return }
            if ready {
                $0.readyConnections += 1
            } else {
                $0.failedConnections += 1
                if $0.firstConnectionFailure == nil { $0.firstConnectionFailure = (reason, message) }
            }
        }
    }
}
