// The server's Prometheus metrics: recorded through swift-metrics against a
// registry owned by this server (not the process-global MetricsSystem, so tests and
// embedders can run several servers), rendered in Prometheus text format for
// /metrics. Gauges that describe current state (connected proxies, served
// version) are computed from the ProxyRegistry and hub at scrape time.
import CoreMetrics
import Foundation
import MeshModel
import Metrics
import Prometheus
import XDSCache
import XDSProtocol

/// The server's metrics registry and the instruments the server's observers record into. Thread-safe.
public final class ServerMetrics: @unchecked Sendable {
    // @unchecked Sendable: the instrument caches are only touched under `lock`; the Prometheus registry is thread-safe.
    public let registry = PrometheusCollectorRegistry()
    private let factory: PrometheusMetricsFactory
    private let lock = NSLock()
    private var counters: [String: CoreMetrics.Counter] = [:]
    private var timers: [String: CoreMetrics.Timer] = [:]
    private var gauges: [String: CoreMetrics.Gauge] = [:]
    /// The per-response and per-ACK instruments by resource type, looked up without building a key or hashing the
    /// type URL (a served type is found by its position): at 10,000 proxies a change records ≈ 4 of them per proxy;
    /// making each key string was ≈ 3 % of the server's CPU per change, hashing the type's name ≈ 1 %.
    private var pushCounters = TypeURLTable<(pushes: CoreMetrics.Counter, bytes: CoreMetrics.Counter)>()
    private var publishToSendTimers = TypeURLTable<CoreMetrics.Timer>()
    private var sendToAckTimers = TypeURLTable<CoreMetrics.Timer>()
    /// Label sets a state gauge was ever given, so a group that disappears is reported as 0, not frozen.
    private var connectedLabels: Set<[String]> = []
    private var servedVersionLabel: String?

    /// Latency buckets from 1 ms to 1 minute: push latency spans loopback tests to fleets of 10,000.
    static let latencyBuckets: [Duration] = [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000].map { .milliseconds($0) }
    /// Event-loop lag buckets from 100 µs to 5 s.
    static let lagBuckets: [Duration] = [0.1, 0.5, 1, 5, 10, 50, 100, 500, 1000, 5000].map { .microseconds(Int64($0 * 1000)) }

    public init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.latencyBuckets
        factory.durationHistogramBuckets["meshctl_event_loop_lag_seconds"] = Self.lagBuckets
        self.factory = factory
    }

    // MARK: - Recording (hot paths: one dictionary lookup under a lock per call; per-response ones keyed by type alone)

    public func streamOpened(mode: SubscriptionMode) { counter("meshctl_xds_streams_opened_total", [("mode", mode.rawValue)]).increment() }
    public func streamClosed(mode: SubscriptionMode) { counter("meshctl_xds_streams_closed_total", [("mode", mode.rawValue)]).increment() }

    /// A response of `typeURL` was queued; labelled by the type's short name (CDS…).
    public func pushed(typeURL: String, bytes: Int) {
        let instruments = perType(typeURL, { $0.pushCounters[typeURL] }, { $0.pushCounters[typeURL] = $1 }) { type in
            (counter("meshctl_xds_pushes_total", [("type", type)]), counter("meshctl_xds_sent_bytes_total", [("type", type)]))
        }
        instruments.pushes.increment()
        instruments.bytes.increment(by: bytes)
    }

    public func nacked(type: String, group: String) { counter("meshctl_xds_nacks_total", [("type", type), ("group", group)]).increment() }

    public func publishToSend(typeURL: String, seconds: Double) {
        perType(typeURL, { $0.publishToSendTimers[typeURL] }, { $0.publishToSendTimers[typeURL] = $1 }) { type in timer("meshctl_xds_push_latency_seconds", [("phase", "publish_to_send"), ("type", type)]) }
            .recordSeconds(seconds)
    }
    public func sendToAck(typeURL: String, seconds: Double) {
        perType(typeURL, { $0.sendToAckTimers[typeURL] }, { $0.sendToAckTimers[typeURL] = $1 }) { type in timer("meshctl_xds_push_latency_seconds", [("phase", "send_to_ack"), ("type", type)]) }
            .recordSeconds(seconds)
    }

    public func authorizationDenied(group: String, service: String) {
        counter("meshctl_authorization_denials_total", [("group", group), ("service", service)]).increment()
    }

    public func tlsHandshakeFailed(reason: String) { counter("meshctl_tls_handshake_failures_total", [("reason", reason)]).increment() }
    public func snapshotLoadFailed() { counter("meshctl_snapshot_load_failures_total", []).increment() }
    public func snapshotLoaded() { counter("meshctl_snapshot_loads_total", []).increment() }
    /// 1 while the store's live pointer can be read, 0 while it cannot (a database store that is down).
    public func storeReachable(_ reachable: Bool) {
        lock.withLock { gaugeLocked("meshctl_store_reachable", []).record(reachable ? 1 : 0) }
    }
    public func identityLimitRefused(kind: String) { counter("meshctl_identity_limit_refusals_total", [("kind", kind)]).increment() }
    public func adminRequestRefused() { counter("meshctl_admin_unauthorized_requests_total", []).increment() }
    public func tlsCredentialsReloaded(result: String) { counter("meshctl_tls_credential_reloads_total", [("result", result)]).increment() }
    /// When the certificate new handshakes present expires (alert on it before proxies refuse it).
    public func servingCertificateExpires(at date: Date) {
        lock.withLock { gaugeLocked("meshctl_tls_certificate_expiry_timestamp_seconds", []).record(date.timeIntervalSince1970) }
    }
    /// A rollout ended (or halted) with `result`: completed, rolled_back, halted, aborted, superseded.
    public func rolloutFinished(result: String) { counter("meshctl_rollouts_total", [("result", result)]).increment() }
    /// The wave (1-based) `group` is in; 0 when no rollout holds the group back.
    public func rolloutWave(group: String, wave: Int) {
        lock.withLock { gaugeLocked("meshctl_rollout_wave", [("group", group)]).record(wave) }
    }
    /// 1 while this replica drives progressive rollouts (it holds the shared store's lease, or is the store's only
    /// server), 0 while it follows another replica.
    public func rolloutLeader(_ leads: Bool) {
        lock.withLock { gaugeLocked("meshctl_rollout_leader", []).record(leads ? 1 : 0) }
    }
    public func eventLoopLag(loop: Int, seconds: Double) { timer("meshctl_event_loop_lag_seconds", [("loop", "\(loop)")]).recordSeconds(seconds) }

    // MARK: - Scrape

    /// Prometheus text exposition of every metric, after refreshing the state gauges.
    public func render(proxies: ProxyRegistry, hub: SnapshotHub) -> String {
        let counts = proxies.streamCounts
        lock.withLock {
            var seen: Set<[String]> = []
            for (group, modes) in counts {
                for (mode, n) in modes {
                    seen.insert([group, mode.rawValue])
                    gaugeLocked("meshctl_connected_proxies", [("group", group), ("mode", mode.rawValue)]).record(n)
                }
            }
            for stale in connectedLabels.subtracting(seen) {
                gaugeLocked("meshctl_connected_proxies", [("group", stale[0]), ("mode", stale[1])]).record(0)
            }
            connectedLabels.formUnion(seen)
            let current = hub.current
            let version = current.map { String($0.version.prefix(12)) }
            if let old = servedVersionLabel, old != version { gaugeLocked("meshctl_snapshot_served", [("version", old)]).record(0) }
            if let version, let current {
                gaugeLocked("meshctl_snapshot_served", [("version", version)]).record(1)
                gaugeLocked("meshctl_snapshot_served_created_timestamp_seconds", []).record(current.metadata.createdAt.timeIntervalSince1970)
            }
            servedVersionLabel = version
        }
        return registry.emitToString()
    }

    // MARK: - Instrument cache

    /// The instrument of `typeURL` that `read` finds, or on first use one made by `make` from the type's short name
    /// (through the keyed cache, so two loops racing to make it get the same instrument) and kept with `store`. Read
    /// and store are closures, not a key path: through a key path each call copied the whole table generically.
    private func perType<T>(_ typeURL: String, _ read: (ServerMetrics) -> T?, _ store: (ServerMetrics, T) -> Void,
                            make: (String) -> T) -> T {
        if let known = lock.withLock({ read(self) }) { return known }
        let made = make(TypeURL.shortName(typeURL))
        return lock.withLock {
            if let raced = read(self) { return raced }
            store(self, made)
            return made
        }
    }

    private func key(_ label: String, _ dimensions: [(String, String)]) -> String {
        dimensions.reduce(label) { $0 + "\u{0}" + $1.0 + "=" + $1.1 }
    }

    private func counter(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        cached(&counters, label, dimensions) { CoreMetrics.Counter(label: $0, dimensions: $1, factory: $2) }
    }

    private func timer(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Timer {
        cached(&timers, label, dimensions) { CoreMetrics.Timer(label: $0, dimensions: $1, factory: $2) }
    }

    /// One instrument per (label, dimensions), made on first use; later calls are a lookup.
    private func cached<T>(_ cache: inout [String: T], _ label: String, _ dimensions: [(String, String)],
                           make: (String, [(String, String)], PrometheusMetricsFactory) -> T) -> T {
        let k = key(label, dimensions)
        lock.lock()
        defer { lock.unlock() }
        if let existing = cache[k] { return existing }
        let made = make(label, dimensions, factory)
        cache[k] = made
        return made
    }

    private func gaugeLocked(_ label: String, _ dimensions: [(String, String)]) -> CoreMetrics.Gauge {
        let k = key(label, dimensions)
        if let g = gauges[k] { return g }
        let g = CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
        gauges[k] = g
        return g
    }
}

extension CoreMetrics.Timer {
    func recordSeconds(_ seconds: Double) { recordNanoseconds(Int64(max(0, seconds) * 1e9)) }
}

/// Turns the transport's handshake failure text into a bounded label set for the metric.
public enum HandshakeFailureReason {
    public static func classify(_ why: String) -> String {
        let text = why.lowercased()
        if text.contains("peer did not return a certificate") || text.contains("certificate required") { return "no_client_certificate" }
        if text.contains("certificate has expired") || text.contains("expired") { return "certificate_expired" }
        if text.contains("not yet valid") { return "certificate_not_yet_valid" }
        if text.contains("unknown ca") || text.contains("unable to get local issuer") || text.contains("certificate verify failed") || text.contains("self-signed") || text.contains("self signed") { return "untrusted_certificate" }
        if text.contains("wrong version number") || text.contains("http request") || text.contains("unexpected eof") || text.contains("packet length too long") { return "not_tls" }
        if text.contains("no shared cipher") || text.contains("unsupported protocol") || text.contains("version too low") { return "protocol_mismatch" }
        if text.contains("closed during handshake") { return "closed_during_handshake" }
        return "other"
    }
}
