// Owns what a run measured: latency summaries, and the matching of received responses to
// published snapshot versions. The method (see docs/BENCHMARKS.md): a SotW response's
// `version_info` is a per-type content hash, so for every version published during the run
// the store is read, each group's expected per-type versions are recomputed exactly as the
// server computes them (ServedSnapshot + the names a proxy subscribes to), and a proxy has
// received version V when it has received, for every type V changed in its group, a response
// carrying V's content for that type. Delta responses carry V itself as system_version_info.
// Publish time = the store's history record of the publish (or rollback) of V.
import Foundation
import MeshModel
import XDSWire
import XDSCache
import SnapshotStorage
import XDSProtocol

/// count / min / p50 / p90 / p99 / max of a set of durations, in milliseconds.
public struct LatencySummary: Codable, Sendable, Equatable {
    public var count: Int
    public var min: Double
    public var p50: Double
    public var p90: Double
    public var p99: Double
    public var max: Double

    public init(milliseconds values: [Double]) {
        let sorted = values.sorted()
        count = sorted.count
        func rank(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let index = Swift.min(sorted.count - 1, Swift.max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))
            return (sorted[index] * 1000).rounded() / 1000
        }
        min = sorted.first.map { ($0 * 1000).rounded() / 1000 } ?? 0
        p50 = rank(0.5)
        p90 = rank(0.9)
        p99 = rank(0.99)
        max = rank(1.0)
    }
}

/// What happened to one version published while the load ran.
public struct VersionDelivery: Codable, Sendable, Equatable {
    public var version: String
    /// Publish time used for the latencies (see `publishTime`).
    public var publishedAt: Date
    /// When the store's history records the version going live.
    public var liveAt: Date
    /// Proxies whose group's content changed in this version.
    public var proxiesAffected: Int
    /// Affected proxies that received it / ACKed it / NACKed part of it (a later version may overtake an earlier one).
    public var received: Int
    public var acked: Int
    public var nacked: Int
    /// Response bytes (gRPC framing included) the proxies received between this publish and the next (or the end).
    public var bytesDelivered: Int
    public var publishToReceipt: LatencySummary
    public var publishToAck: LatencySummary
}

/// Everything a run measured (printed as a table; written as JSON with --json).
public struct LoadReport: Codable, Sendable {
    public var mode: String
    public var proxies: Int
    public var connections: Int
    public var groups: [String]
    public var durationSeconds: Double
    public var readyConnections: Int
    public var failedConnections: Int
    public var configuredProxies: Int
    public var failedProxies: Int
    /// With reconnects: proxies configured on their connection when the run ended, connections lost, reconnect attempts.
    public var configuredAtEnd: Int
    public var connectionsLost: Int
    public var reconnects: Int
    public var failures: [String: Int]
    /// Time from a proxy's stream opening to its complete configuration (CDS, EDS, LDS, RDS all received).
    public var timeToFullConfig: LatencySummary
    /// Time from the start of the run to each proxy's complete configuration (the connect storm).
    public var fullConfigSinceStart: LatencySummary
    public var responses: Int
    public var acksSent: Int
    public var nacksSent: Int
    public var bytesReceived: Int
    /// Versions published during the run (needs --store); empty otherwise.
    public var versions: [VersionDelivery]
    /// All versions together.
    public var publishToReceipt: LatencySummary
    public var publishToAck: LatencySummary
    public var notes: [String]

    static func build(options: LoadGeneratorOptions, proxies: [SimulatedProxy], startedAt: Double, stoppedAt: Double,
                      progress: LoadProgress, failureCounts: [String: Int], initialStoreVersion: String?) -> LoadReport {
        var notes: [String] = []
        let opened = proxies.compactMap { p in p.fullConfigAt.flatMap { full in p.streamOpenedAt.map { (full - $0) * 1000 } } }
        let sinceStart = proxies.compactMap { $0.fullConfigAt.map { ($0 - startedAt) * 1000 } }
        var versions: [MeasuredDelivery] = []
        if let store = options.store {
            do {
                versions = try deliveries(store: store, proxies: proxies, mode: options.mode,
                                          startedAt: startedAt, stoppedAt: stoppedAt, initialVersion: initialStoreVersion)
            } catch {
                notes.append("cannot read the store \(store.location): \(error)")
            }
        } else {
            notes.append("no --store: publish-to-receipt/ACK latencies need the store the server serves from")
        }
        var receiptAll: [Double] = [], ackAll: [Double] = []
        for delivery in versions {
            receiptAll += delivery.samples.receipt
            ackAll += delivery.samples.ack
        }
        return LoadReport(
            mode: options.mode.rawValue, proxies: options.proxies, connections: options.connections, groups: options.groups,
            durationSeconds: ((stoppedAt - startedAt) * 1000).rounded() / 1000,
            readyConnections: progress.readyConnections, failedConnections: progress.failedConnections,
            configuredProxies: progress.configuredProxies, failedProxies: progress.failedProxies,
            configuredAtEnd: progress.configuredNow, connectionsLost: progress.connectionsLost, reconnects: progress.reconnects,
            failures: failureCounts,
            timeToFullConfig: LatencySummary(milliseconds: opened), fullConfigSinceStart: LatencySummary(milliseconds: sinceStart),
            responses: proxies.reduce(0) { $0 + $1.receipts.count }, acksSent: proxies.reduce(0) { $0 + $1.acksSent },
            nacksSent: proxies.reduce(0) { $0 + $1.nacksSent }, bytesReceived: proxies.reduce(0) { $0 + $1.bytesReceived },
            versions: versions.map(\.delivery), publishToReceipt: LatencySummary(milliseconds: receiptAll),
            publishToAck: LatencySummary(milliseconds: ackAll), notes: notes)
    }

    struct MeasuredDelivery {
        var delivery: VersionDelivery
        var samples: (receipt: [Double], ack: [Double])
    }

    static let followedTypes = [TypeURL.cluster, TypeURL.endpoint, TypeURL.listener, TypeURL.route]

    /// The per-type response versions a proxy of `group` ends up with when served `view` (SotW: content versions
    /// over the names it subscribes to; delta: the snapshot version).
    static func expectedVersions(_ view: GroupView, mode: SubscriptionMode) -> [String: String] {
        let clusters = view.resources(typeURL: TypeURL.cluster)
        let listeners = view.resources(typeURL: TypeURL.listener)
        let endpointNames = Set(clusters.values.compactMap { ResourceReferences.endpointName(ofCluster: $0.body.bytes) })
        let routeNames = Set(listeners.values.flatMap { ResourceReferences.routeNames(ofListener: $0.body.bytes) })
        let endpoints = view.resources(typeURL: TypeURL.endpoint).filter { endpointNames.contains($0.key) }
        let routes = view.resources(typeURL: TypeURL.route).filter { routeNames.contains($0.key) }
        let content: [String: String] = [
            TypeURL.cluster: ContentVersion.of(clusters.values), TypeURL.listener: ContentVersion.of(listeners.values),
            TypeURL.endpoint: ContentVersion.of(endpoints.values), TypeURL.route: ContentVersion.of(routes.values),
        ]
        return mode.isDelta ? content.mapValues { _ in view.version } : content
    }

    static func deliveries(store: any SnapshotStoring, proxies: [SimulatedProxy], mode: SubscriptionMode, startedAt: Double, stoppedAt: Double,
                           initialVersion: String?) throws -> [MeasuredDelivery] {
        let events = try store.history().filter { ($0.kind == .publish || $0.kind == .rollback) && $0.time.timeIntervalSince1970 >= startedAt }
        guard !events.isEmpty else { return [] }
        var previous: ServedSnapshot? = try initialVersion.map { try ServedSnapshot(store.load(version: $0)) }
        var previousPublishedAt = startedAt
        var result: [MeasuredDelivery] = []
        let byGroup = Dictionary(grouping: proxies, by: { $0.node.cluster })
        let snapshots = try events.map { try store.load(version: $0.version) }
        let times = zip(events, snapshots).map { publishTime(event: $0, metadata: $1.metadata) }
        for (eventIndex, event) in events.enumerated() {
            let publishedAt = times[eventIndex]
            let windowEnd = eventIndex + 1 < events.count ? times[eventIndex + 1] : stoppedAt
            let bytesDelivered = proxies.reduce(0) { sum, proxy in
                sum + proxy.receipts.reduce(0) { $0 + ($1.receivedAt >= publishedAt && $1.receivedAt < windowEnd ? $1.bytes + 5 : 0) }
            }
            let served = ServedSnapshot(snapshots[eventIndex])
            var receipt: [Double] = [], ack: [Double] = []
            var affected = 0, received = 0, acked = 0, nacked = 0
            for (group, members) in byGroup {
                guard let view = served.groups[group] else { continue }
                let now = expectedVersions(view, mode: mode)
                let before = previous?.groups[group].map { expectedVersions($0, mode: mode) } ?? [:]
                // Delta: every version differs, so "changed" is judged on the content, keyed by the snapshot version.
                let contentNow = expectedVersions(view, mode: .adsStateOfTheWorld)
                let contentBefore = previous?.groups[group].map { expectedVersions($0, mode: .adsStateOfTheWorld) } ?? [:]
                let changed = followedTypes.filter { contentNow[$0] != contentBefore[$0] && !(view.resources(typeURL: $0).isEmpty && before[$0] == nil) }
                guard !changed.isEmpty else { continue }
                for proxy in members {
                    affected += 1
                    var latestReceipt = 0.0, latestAck = 0.0
                    var complete = true, wasNacked = false, ackComplete = true
                    for typeURL in changed {
                        guard let hit = proxy.receipts.first(where: { $0.typeURL == typeURL && $0.version == now[typeURL] && $0.receivedAt >= previousPublishedAt }) else {
                            complete = false
                            break
                        }
                        latestReceipt = max(latestReceipt, hit.receivedAt)
                        if hit.nacked { wasNacked = true }
                        if let flushed = hit.answerFlushedAt { latestAck = max(latestAck, flushed) } else { ackComplete = false }
                    }
                    guard complete else { continue }
                    received += 1
                    receipt.append((latestReceipt - publishedAt) * 1000)
                    if wasNacked {
                        nacked += 1
                    } else if ackComplete {
                        acked += 1
                        ack.append((latestAck - publishedAt) * 1000)
                    }
                }
            }
            result.append(MeasuredDelivery(
                delivery: VersionDelivery(version: event.version, publishedAt: Date(timeIntervalSince1970: publishedAt), liveAt: event.time, proxiesAffected: affected, received: received,
                                          acked: acked, nacked: nacked, bytesDelivered: bytesDelivered, publishToReceipt: LatencySummary(milliseconds: receipt),
                                          publishToAck: LatencySummary(milliseconds: ack)),
                samples: (receipt, ack)))
            previous = served
            previousPublishedAt = publishedAt
        }
        return result
    }

    /// When a version was published: the snapshot's `createdAt` (made just before the store write, so the window
    /// includes writing it), unless the event is a rollback or the snapshot was made more than a minute before it
    /// went live — then the history record (written just after `current` moved, so it can trail the server by a
    /// millisecond or two).
    static func publishTime(event: HistoryEvent, metadata: SnapshotMetadata) -> Double {
        let live = event.time.timeIntervalSince1970
        let created = metadata.createdAt.timeIntervalSince1970
        if event.kind == .publish, created <= live, live - created < 60 { return created }
        return live
    }

    /// The human-readable summary.
    public func table() -> String {
        func row(_ name: String, _ s: LatencySummary) -> String {
            func ms(_ v: Double) -> String { String(format: "%.1f", v) }
            return name.padding(toLength: 34, withPad: " ", startingAt: 0)
                + [String(s.count), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.max)].map { $0.leftPad(9) }.joined()
        }
        var lines: [String] = []
        lines.append("meshctl loadgen: \(proxies) proxies (\(mode)) over \(connections) connections, groups \(groups.joined(separator: ",")), \(String(format: "%.1f", durationSeconds)) s")
        lines.append("connections: \(readyConnections) up, \(failedConnections) failed; proxies: \(configuredProxies) configured, \(failedProxies) failed")
        if connectionsLost > 0 || reconnects > 0 {
            lines.append("reconnects: \(connectionsLost) connections lost, \(reconnects) reconnect attempts; \(configuredAtEnd) proxies configured at the end")
        }
        lines.append("responses \(responses), ACKs \(acksSent), NACKs \(nacksSent), bytes received \(bytesReceived)")
        lines.append("")
        lines.append("".padding(toLength: 34, withPad: " ", startingAt: 0) + ["count", "p50 ms", "p90 ms", "p99 ms", "max ms"].map { $0.leftPad(9) }.joined())
        lines.append(row("stream open → full config", timeToFullConfig))
        lines.append(row("run start → full config", fullConfigSinceStart))
        for v in versions {
            lines.append(row("publish → receipt \(v.version.prefix(12))", v.publishToReceipt))
            lines.append(row("publish → ACK     \(v.version.prefix(12))", v.publishToAck))
        }
        if versions.count > 1 {
            lines.append(row("publish → receipt (all versions)", publishToReceipt))
            lines.append(row("publish → ACK (all versions)", publishToAck))
        }
        for v in versions where v.received < v.proxiesAffected {
            lines.append("version \(v.version.prefix(12)): \(v.received) of \(v.proxiesAffected) affected proxies received it (later versions may supersede it)")
        }
        for (failure, count) in failures.sorted(by: { $0.key < $1.key }) { lines.append("stream failures: \(count)× \(failure)") }
        for note in notes { lines.append("note: \(note)") }
        return lines.joined(separator: "\n")
    }

    /// The report as JSON (sorted keys, ISO 8601 dates).
    public func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(self)
    }
}

extension String {
    fileprivate func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
