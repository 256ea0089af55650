// `meshctl serve`: the store, the cache, the xDS services and the transport put
// together, with metrics and logs attached as observers and the admin endpoint
// beside them. Loads the live snapshot, follows the store for new ones (hot
// reload), and drains gracefully on request. This file only wires.
import Foundation
import MeshAdmin
import MeshServer
import ServerTelemetry
import SnapshotStorage
import Transport
import XDSCache

/// Everything `meshctl serve` is configured with.
public struct XDSServerOptions: Sendable {
    public var host = "127.0.0.1"
    public var port = 18000
    /// nil with `insecurePlaintext`.
    public var tls: TLSServerCredentials?
    public var insecurePlaintext = false
    public var eventLoops = EventLoopGroup.onlineCPUCount
    public var limits = TransportLimits()
    public var drainGrace: Duration = .seconds(10)
    /// The admin endpoint's HOST:PORT (nil: none).
    public var admin: (host: String, port: Int)?
    /// Who may read the admin endpoint (a bearer token; open only on loopback, which `meshctl serve` enforces).
    public var adminAccess = AdminAccess.open
    /// Who may read proxy status over CSDS.
    public var statusReaders = StatusReaders.operators
    /// How often the TLS files are checked for changes (rotation without a restart; nil: only on `reloadCredentials`).
    public var credentialPollInterval: Duration? = .seconds(2)
    /// A local directory store kept as a copy of the last snapshot served (`--cache`): a replica started while
    /// its (remote) store is unreachable serves from it instead of serving nothing.
    public var cacheDirectory: String?
    /// Writes this replica's proxy status to a shared store's fleet table (nil: not recorded; a directory store).
    public var fleetWriter: FleetStatusRecorder.Writer?
    /// Seconds between fleet-status writes (the bound on this replica's write rate), and between heartbeats when
    /// nothing changed.
    public var fleetFlushInterval = 1.0
    public var fleetHeartbeatInterval = 5.0
    /// Reads the whole fleet for the status page (nil: the page shows this replica only).
    public var fleetReader: (@Sendable () -> Result<FleetView, any Error>)?
    /// While proxies wait for the first snapshot longer than this, the server says so (again at each interval),
    /// with why it has nothing to serve yet.
    public var startupWaitReportInterval: Duration = .seconds(5)

    public init() {}
}

/// Why the server could not start.
public struct XDSServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// A running xDS server.
public final class XDSServer: @unchecked Sendable {
    // @unchecked Sendable: `feed`, `admin`, `credentialWatch` and `boundPort` are set by `start` before it returns and read by `drain`/`stop` after it (never concurrently with `start`); `lagTimers` is guarded by `lagTimersLock`.
    public let hub = SnapshotHub()
    public let log: ServerLog
    /// Every connected proxy and where it stands (CSDS, admin endpoint).
    public let proxies = ProxyRegistry()
    public let metrics = ServerMetrics()
    /// Where snapshots come from (any backend).
    public let store: any SnapshotStoring
    /// Progressive rollouts of new snapshots (the policy each snapshot carries).
    public let rollouts: RolloutController
    private let options: XDSServerOptions
    private let grpc: GRPCServer
    private var feed: SnapshotFeed?
    private var admin: AdminServer?
    private let accepting = ManagedAtomicFlag()
    /// Why the store's live pointer cannot be read right now (nil: it can), for /readyz and the logs.
    private let storeProblem = SharedText()
    // Guards lagTimers: written on each loop, read by drain().
    private let lagTimersLock = NSLock()
    private var lagTimers: [(EventLoop, ScheduledTimer)] = []
    private var credentialWatch: CredentialFileWatch?
    private var fleetRecorder: FleetStatusRecorder?
    public private(set) var boundPort = 0
    /// The admin endpoint's port once started (0: none).
    public var adminPort: Int { admin?.boundPort ?? 0 }

    public init(options: XDSServerOptions, store: any SnapshotStoring, log: ServerLog) throws {
        self.options = options
        self.store = store
        self.log = log
        rollouts = RolloutController(hub: hub, store: store, log: log, metrics: metrics)
        let security: ServerTransportSecurity
        if options.insecurePlaintext {
            security = .insecurePlaintext
        } else if let tls = options.tls {
            security = .mutualTLS(tls)
        } else {
            throw XDSServerError(description: "mutual TLS needs --tls-cert, --tls-key and --client-ca (or --insecure-plaintext for local development)")
        }
        var configuration = GRPCServerConfiguration(host: options.host, port: options.port, security: security)
        configuration.eventLoopCount = max(1, options.eventLoops)
        configuration.limits = options.limits
        configuration.logger = Self.transportLogger(log: log, metrics: metrics)
        do {
            grpc = try GRPCServer(configuration: configuration)
        } catch {
            throw XDSServerError(description: "cannot set up the xDS listener: \(error)")
        }
    }

    /// Starts serving: the listener, then the store watcher (the live snapshot arrives as its first event).
    public func start() throws {
        var serviceConfiguration = XDSServiceConfiguration()
        serviceConfiguration.insecurePlaintext = options.insecurePlaintext
        serviceConfiguration.statusReaders = options.statusReaders
        var observers: [any XDSServerObserver] = [MetricsObserver(metrics: metrics), LogObserver(log: log), rollouts]
        if let writer = options.fleetWriter {
            let recorder = FleetStatusRecorder(proxies: proxies, hub: hub, flushInterval: options.fleetFlushInterval,
                                               heartbeatInterval: options.fleetHeartbeatInterval, log: log, write: writer)
            observers.append(recorder)
            fleetRecorder = recorder
        }
        let service = XDSService(hub: hub, configuration: serviceConfiguration, proxies: proxies, observers: observers)
        // Proxies may connect as soon as the port is open, before the store is first read below: they wait for it.
        hub.beginStartup()
        do {
            boundPort = try grpc.start(handler: service)
        } catch {
            throw XDSServerError(description: "cannot listen on \(options.host):\(options.port): \(error)")
        }
        accepting.set(true)
        fleetRecorder?.start()
        startLagSampling()
        if let tls = options.tls {
            noteServingCertificate()
            if let interval = options.credentialPollInterval {
                credentialWatch = CredentialFileWatch(files: [tls.certificateChainFile, tls.privateKeyFile, tls.clientCAFile], interval: interval) { [weak self] in
                    self?.reloadCredentials(trigger: "files changed")
                }
            }
        }
        let log = self.log
        let metrics = self.metrics
        let storeProblem = self.storeProblem
        let store = self.store
        metrics.storeReachable(true)
        let cacheWriter = options.cacheDirectory.map { SnapshotCacheWriter(directory: $0, log: log) }
        if let cacheWriter { startFromCacheIfStoreIsDown(cacheWriter) }
        let rollouts = self.rollouts
        rollouts.start()
        feed = SnapshotFeed(store: store, hub: hub, serve: { rollouts.serve($0) }) { event in
            switch event {
            case .loaded:
                metrics.snapshotLoaded()
            case .served(let snapshot, let notified, let handOff):
                cacheWriter?.keep(snapshot)
                log.info("snapshot.loaded", ["version": String(snapshot.metadata.version.prefix(12)), "groups": "\(snapshot.groups.count)",
                                             "resources": "\(snapshot.resourceCount)", "streams_notified": "\(notified)",
                                             "handoff_ms": "\(handOff.components.seconds * 1000 + handOff.components.attoseconds / 1_000_000_000_000_000)"])
            case .refused(let version, let error, let serving):
                metrics.snapshotLoadFailed()
                if version == "current" {
                    // The pointer cannot be read (a database store that is down): keep serving what we have.
                    storeProblem.set("\(error)")
                    metrics.storeReachable(false)
                    log.error("store.unavailable", ["error": "\(error)", "serving": String(serving?.prefix(12) ?? "none"),
                                                    "effect": "serving the last loaded snapshot; retrying with backoff"])
                } else {
                    log.error("snapshot.refused", ["version": String(version.prefix(12)), "error": "\(error)", "serving": String(serving?.prefix(12) ?? "none")])
                }
            case .storeReachable(let serving):
                storeProblem.set(nil)
                metrics.storeReachable(true)
                log.info("store.reachable", ["store": store.location, "serving": String(serving?.prefix(12) ?? "none")])
            }
        }
        log.info("server.listening", ["address": "\(options.host):\(boundPort)", "tls": options.insecurePlaintext ? "off (--insecure-plaintext)" : "mutual",
                                      "store": store.location, "loops": "\(options.eventLoops)"])
        reportStreamsWaitingAtStartup(since: ContinuousClock.now)
    }

    /// Proxies that connect before the first snapshot is served wait (see `SnapshotHub.whenStarted`). That is a
    /// moment after a start, but a replica that follows a rollout holds a loaded version until the rollout
    /// leader saves its plan, and a store read can hang: then every proxy waits, silently on its side. Said
    /// here at each `startupWaitReportInterval` until something is served.
    private func reportStreamsWaitingAtStartup(since started: ContinuousClock.Instant) {
        let interval = options.startupWaitReportInterval
        let loop = grpc.eventLoopGroup.loops[0]
        loop.execute { [weak self] in
            func arm() {
                _ = loop.schedule(after: interval) { [weak self] in
                    guard let self, self.accepting.value, self.hub.isStartingUp else { return }
                    let waiting = self.hub.startupWaiterCount
                    if waiting > 0 {
                        let waited = ContinuousClock.now - started
                        let reason = self.rollouts.holdsLoadedVersionForPlan
                            ? "this replica loaded the live version but follows another replica's rollout: it serves nothing until the rollout leader saves its plan (is a leader running? meshctl status --store shows the replicas)"
                            : "the first read of the store has not finished (store: \(self.store.location))"
                        self.log.warning("startup.streams-waiting", ["streams": "\(waiting)", "waited_s": "\(waited.components.seconds)", "reason": reason])
                    }
                    arm()
                }
            }
            arm()
        }
    }

    /// Before following the store: when its live pointer cannot be read (a database that is down) and the cache
    /// has a snapshot, serve that one, so proxies connecting now get configuration; the store's live version
    /// replaces it as soon as the store answers.
    private func startFromCacheIfStoreIsDown(_ cache: SnapshotCacheWriter) {
        do {
            _ = try store.currentVersion()
        } catch {
            if let snapshot = cache.cached() {
                _ = hub.serve(snapshot)
                log.warning("store.starting-from-cache", ["store": store.location, "error": "\(error)", "cache": cache.directory,
                                                          "serving": String(snapshot.metadata.version.prefix(12)),
                                                          "effect": "serving the cached snapshot until the store answers"])
            } else {
                log.error("store.unavailable-no-cache", ["store": store.location, "error": "\(error)", "cache": cache.directory,
                                                         "effect": "nothing to serve until the store answers"])
            }
        }
    }

    /// Starts the admin endpoint (health, metrics, proxy table, status page) if one was configured.
    public func startAdmin() async throws {
        guard let (host, port) = options.admin else { return }
        let accepting = self.accepting
        let storeProblem = self.storeProblem
        let rollouts = self.rollouts
        let server = AdminServer(sources: AdminSources(hub: hub, proxies: proxies, metrics: metrics, store: store,
                                                       listening: { accepting.value }, storeProblem: { storeProblem.value },
                                                       rollout: { rollouts.state }, fleet: options.fleetReader),
                                 access: options.adminAccess)
        try await server.start(host: host, port: port, log: log)
        admin = server
    }

    public var statistics: TransportStatistics { grpc.statistics }

    /// After `drain`: waits (at most `seconds`) until the fleet-status writer has written its last batch.
    public func waitForFleetWriter(seconds: Double) {
        fleetRecorder?.waitUntilEnded(seconds: seconds)
    }

    /// Reloads `--tls-cert`, `--tls-key` and `--client-ca` for new connections (SIGHUP, or the files changed);
    /// established streams keep going. A file that cannot be used is refused with a log line and the current
    /// credentials stay. Returns whether the new credentials are in use.
    @discardableResult
    public func reloadCredentials(trigger: String) -> Bool {
        guard let tls = options.tls else {
            log.info("tls.reload-skipped", ["trigger": trigger, "reason": "serving without TLS (--insecure-plaintext)"])
            return false
        }
        do {
            let summary = try grpc.reloadCredentials(tls)
            metrics.tlsCredentialsReloaded(result: "reloaded")
            noteServingCertificate()
            log.info("tls.reloaded", ["trigger": trigger, "certificate": summary?.description ?? "", "client_ca": tls.clientCAFile])
            return true
        } catch {
            metrics.tlsCredentialsReloaded(result: "refused")
            log.error("tls.reload-refused", ["trigger": trigger, "error": "\(error)",
                                             "still_serving": grpc.certificate?.description ?? "",
                                             "fix": "correct the files; they are read again when they change or on SIGHUP"])
            return false
        }
    }

    private func noteServingCertificate() {
        if let date = grpc.certificate?.notAfterDate { metrics.servingCertificateExpires(at: date) }
    }

    /// Stops accepting, tells proxies to go elsewhere (GOAWAY, UNAVAILABLE), waits up to the grace period.
    public func drain() async {
        log.info("server.draining", ["grace": "\(options.drainGrace)"])
        accepting.set(false)
        feed?.stop()
        rollouts.stop()
        credentialWatch?.stop()
        for (loop, timer) in lagTimersLock.withLock({ lagTimers }) { loop.execute { loop.cancel(timer) } }
        await grpc.drain(gracePeriod: options.drainGrace)
        await grpc.shutdown()
        fleetRecorder?.stop()
        await admin?.stop()
    }

    /// Every second each loop notes how late its timer fired: the time a ready socket waits to be served.
    private func startLagSampling() {
        let metrics = self.metrics
        for loop in grpc.eventLoopGroup.loops {
            loop.execute { [weak self] in
                func arm() {
                    let due = ContinuousClock.now + .seconds(1)
                    let timer = loop.schedule(at: due) {
                        let late = ContinuousClock.now - due
                        metrics.eventLoopLag(loop: loop.index, seconds: Double(late.components.seconds) + Double(late.components.attoseconds) / 1e18)
                        arm()
                    }
                    self?.lagTimersLock.withLock { self?.lagTimers.removeAll { $0.0 === loop }; self?.lagTimers.append((loop, timer)) }
                }
                arm()
            }
        }
    }
    /// Transport records become server log events; failed handshakes are counted by reason.
    static func transportLogger(log: ServerLog, metrics: ServerMetrics) -> TransportLogger {
        { record in
            var fields: [String: String] = record.peer.isEmpty ? [:] : ["peer": record.peer]
            if let id = record.connectionID { fields["conn"] = "\(id)" }
            if let refusal = record.identityLimit {
                metrics.identityLimitRefused(kind: refusal.kind.rawValue)
                fields["identity"] = refusal.identity
                fields["limit"] = "\(refusal.limit)"
                log.warning(refusal.kind == .connections ? "limits.identity-connections" : "limits.identity-streams", fields)
                return
            }
            switch record.closeReason {
            case .tlsHandshakeFailed(let why)?:
                let reason = HandshakeFailureReason.classify(why)
                metrics.tlsHandshakeFailed(reason: reason)
                fields["reason"] = reason
                fields["detail"] = why
                log.warning("tls.handshake-failed", fields)
            case .handshakeTimeout?:
                metrics.tlsHandshakeFailed(reason: "timeout")
                fields["reason"] = "timeout"
                log.warning("tls.handshake-failed", fields)
            case .alpnNotNegotiated?:
                metrics.tlsHandshakeFailed(reason: "alpn_not_h2")
                fields["reason"] = "alpn_not_h2"
                log.warning("tls.handshake-failed", fields)
            case let reason?:
                fields["reason"] = reason.description
                if reason.isOrderly { log.debug("connection.closed", fields) } else { log.warning("connection.closed", fields) }
            case nil:
                fields["message"] = record.message
                if record.level == .warning { log.warning("transport", fields) } else { log.info("transport", fields) }
            }
        }
    }
}

/// An optional String shared across threads.
final class SharedText: @unchecked Sendable {
    // @unchecked Sendable: `text` is only touched under `lock`.
    private let lock = NSLock()
    private var text: String?
    var value: String? { lock.withLock { text } }
    func set(_ value: String?) { lock.withLock { text = value } }
}

/// A Bool shared across threads.
final class ManagedAtomicFlag: @unchecked Sendable {
    // @unchecked Sendable: `flag` is only touched under `lock`.
    private let lock = NSLock()
    private var flag = false
    var value: Bool { lock.withLock { flag } }
    func set(_ value: Bool) { lock.withLock { flag = value } }
}

/// Polls files for changes (size, modification time, inode) and calls `changed` once a change has settled (two
/// polls in a row saw the same new state), so a rotation tool writing certificate and key one after the other
/// triggers one reload, not one per file.
final class CredentialFileWatch: @unchecked Sendable {
    // @unchecked Sendable: `last`, `pending` are touched only on `queue`.
    private struct FileState: Equatable {
        var size: Int64, modified: Int, inode: UInt64
    }

    private let files: [String]
    private let queue = DispatchQueue(label: "meshctl.credential-watch")
    private let timer: DispatchSourceTimer
    private var last: [FileState?]
    private var pending: [FileState?]?

    init(files: [String], interval: Duration, changed: @escaping @Sendable () -> Void) {
        self.files = files
        last = files.map(Self.state)
        timer = DispatchSource.makeTimerSource(queue: queue)
        let nanoseconds = Int(interval.components.seconds) * 1_000_000_000 + Int(interval.components.attoseconds / 1_000_000_000)
        timer.schedule(deadline: .now() + .nanoseconds(nanoseconds), repeating: .nanoseconds(nanoseconds))
        timer.setEventHandler { [weak self] in
            guard let self else { return }
            let now = self.files.map(Self.state)
            if now == self.last {
                self.pending = nil
            } else if now == self.pending {
                self.last = now
                self.pending = nil
                changed()
            } else {
                self.pending = now
            }
        }
        timer.resume()
    }

    func stop() { timer.cancel() }

    private static func state(_ path: String) -> FileState? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileState(size: Int64(info.st_size), modified: info.st_mtim.tv_sec * 1_000_000_000 + info.st_mtim.tv_nsec, inode: UInt64(info.st_ino))
    }
}
