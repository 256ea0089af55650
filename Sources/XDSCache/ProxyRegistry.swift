// Who is connected and where each proxy stands, per resource type: the one record
// behind CSDS, `meshctl status`, /debug/proxies, the status page, the rollout
// controller and the connected-proxies metric. Each stream keeps its status in a
// `ProxyStreamStatus` it updates after every event that changes it (on its own
// loop); the registry holds every stream's, and readers take consistent copies.
import Foundation
import MeshModel
import XDSProtocol
import XDSWire

extension SubscriptionMode {
    /// The mode a stream of this protocol variant and binding speaks.
    public init(variant: DiscoveryStream.Variant, binding: DiscoveryStream.Binding) {
        switch binding {
        case .aggregated: self.init(aggregated: true, delta: variant == .delta)
        case .singleType: self.init(aggregated: false, delta: variant == .delta)
        }
    }
}

/// One proxy's state for one resource type (from one stream).
public struct ProxyTypeStatus: Sendable, Codable, Hashable {
    /// Short name: LDS, RDS, CDS, EDS, SDS (or the type URL for others).
    public var type: String
    public var typeURL: String
    public var status: SyncVerdict
    public var versionSent: String?
    /// The snapshot the latest response was built from.
    public var snapshotSent: String?
    public var sentAt: Date?
    public var versionAcked: String?
    public var ackedAt: Date?
    /// The latest rejection (kept after later ACKs).
    public var nack: NackSummary?
    /// "*" for a wildcard subscription, else the number of names subscribed.
    public var subscribed: String

    public struct NackSummary: Sendable, Codable, Hashable {
        public var rejectedVersion: String?
        /// The proxy's `error_detail.message`.
        public var message: String
        public var at: Date
    }
}

/// One xDS stream's proxy: identity, group, mode and per-type status.
public struct ProxyStreamRecord: Sendable, Codable, Hashable {
    public var nodeID: String
    public var group: String
    public var mode: SubscriptionMode
    /// "address:port" of the proxy's connection.
    public var peer: String
    /// The verified certificate identity (SPIFFE ID or common name); nil with --insecure-plaintext.
    public var identity: String?
    public var userAgent: String
    public var connectedAt: Date
    public var types: [ProxyTypeStatus]

    public init(nodeID: String, group: String, mode: SubscriptionMode, peer: String, identity: String?, userAgent: String,
                connectedAt: Date, types: [ProxyTypeStatus]) {
        self.nodeID = nodeID
        self.group = group
        self.mode = mode
        self.peer = peer
        self.identity = identity
        self.userAgent = userAgent
        self.connectedAt = connectedAt
        self.types = types
    }
}

/// One admitted stream's proxy and per-type status, shared by reference: its stream writes it after every event that
/// changes a type's status (on the stream's loop), the registry's readers (CSDS, `meshctl status`, the admin
/// endpoint) and the rollout controller read it from their own threads. The registry and the rollout controller
/// used to keep a copy each, updated under their own lock — two locks every stream of the fleet contended for, per
/// type, on every response and ACK, and ≈ 1.4 KB per idle proxy (docs/BENCHMARKS.md, session 12). The lock here
/// is the stream's own: its writer never waits for another stream.
public final class ProxyStreamStatus: @unchecked Sendable {
    // @unchecked Sendable: rule 2 (docs/ARCHITECTURE.md) — `types` is only touched under `lock`; the rest is immutable.
    /// The stream's record without its types: it never changes, so it is read without the lock.
    private let stream: ProxyStreamRecord
    public var nodeID: String { stream.nodeID }
    public var group: String { stream.group }
    public var mode: SubscriptionMode { stream.mode }
    private let lock = NSLock()
    /// The machine's status of each type as last copied, with when it was last sent and ACKed: kept as they come and
    /// turned into the operators' `ProxyTypeStatus` only when read (on every event that was ≈ 1,500 instructions per
    /// type, for a view read a few times a minute).
    private var types: [TypeEntry] = []

    /// One type's status and times; the times as plain nanoseconds (`never` for none): two optionals took 16 bytes
    /// more per type of every stream.
    private struct TypeEntry {
        static let never = Int64.min
        var status: ProxyStatus
        var sentAt: Int64
        var ackedAt: Int64
        var sent: WallClockTime? { sentAt == Self.never ? nil : WallClockTime(nanosecondsSinceEpoch: sentAt) }
        var acked: WallClockTime? { ackedAt == Self.never ? nil : WallClockTime(nanosecondsSinceEpoch: ackedAt) }
    }

    public init(_ record: ProxyStreamRecord) {
        var bare = record
        bare.types = []
        stream = bare
    }

    /// The stream's record as it stands.
    public var record: ProxyStreamRecord {
        let types = lock.withLock { self.types }
        var result = stream
        result.types = types.map { ProxyTypeStatus($0.status, sentAt: $0.sent, ackedAt: $0.acked) }
        return result
    }

    /// Calls `body` with each type's status as the machine gave it, and when that type was last sent and ACKed, under
    /// the lock (keep `body` short): for readers that need a few fields of every stream's status — the rollout
    /// controller's fleet view, rebuilt as often as every 100 ms during a rollout — without building the operators' view.
    public func forEachType(_ body: (_ status: ProxyStatus, _ sentAt: WallClockTime?, _ ackedAt: WallClockTime?) -> Void) {
        lock.withLock { for entry in types { body(entry.status, entry.sent, entry.acked) } }
    }

    /// Replaces (or adds) one type's status; a time given replaces when the type was last sent or ACKed, nil keeps it.
    public func update(_ status: ProxyStatus, sentAt: WallClockTime?, ackedAt: WallClockTime?) {
        lock.withLock {
            if let i = types.firstIndex(where: { TypeURL.same($0.status.typeURL, status.typeURL) }) {
                types[i].status = status
                if let sentAt { types[i].sentAt = sentAt.nanosecondsSinceEpoch }
                if let ackedAt { types[i].ackedAt = ackedAt.nanosecondsSinceEpoch }
            } else {
                types.append(TypeEntry(status: status, sentAt: sentAt?.nanosecondsSinceEpoch ?? TypeEntry.never,
                                             ackedAt: ackedAt?.nanosecondsSinceEpoch ?? TypeEntry.never))
            }
        }
    }
}

/// Every connected proxy's streams. Thread-safe.
public final class ProxyRegistry: @unchecked Sendable {
    // @unchecked Sendable: `records` is only touched under `lock`.
    private let lock = NSLock()
    private var records: [ObjectIdentifier: ProxyStreamStatus] = [:]

    public init() {}

    /// Adds a stream.
    public func open(_ key: ObjectIdentifier, _ status: ProxyStreamStatus) { lock.withLock { records[key] = status } }

    /// Removes a stream.
    public func close(_ key: ObjectIdentifier) { _ = lock.withLock { records.removeValue(forKey: key) } }

    /// Every stream's record, ordered by group, node id, then mode.
    public var streams: [ProxyStreamRecord] {
        lock.withLock { Array(records.values) }.map(\.record).sorted { ($0.group, $0.nodeID, $0.mode.rawValue) < ($1.group, $1.nodeID, $1.mode.rawValue) }
    }

    /// One entry per proxy: its per-type streams (per-type mode) merged into one record.
    public var proxies: [ProxyStreamRecord] {
        var merged: [String: ProxyStreamRecord] = [:]
        var order: [String] = []
        for stream in streams {
            let key = stream.group + "\u{0}" + stream.nodeID
            if var existing = merged[key] {
                existing.types += stream.types
                existing.connectedAt = min(existing.connectedAt, stream.connectedAt)
                merged[key] = existing
            } else {
                merged[key] = stream
                order.append(key)
            }
        }
        return order.map { key in
            var record = merged[key]!
            record.types.sort { (Self.displayRank($0.typeURL), $0.typeURL) < (Self.displayRank($1.typeURL), $1.typeURL) }
            return record
        }
    }

    /// Connected streams per (group, mode), for the connected-proxies gauge.
    public var streamCounts: [String: [SubscriptionMode: Int]] {
        lock.withLock {
            var counts: [String: [SubscriptionMode: Int]] = [:]
            for stream in records.values { counts[stream.group, default: [:]][stream.mode, default: 0] += 1 }
            return counts
        }
    }

    public var count: Int { lock.withLock { records.count } }

    /// Columns in the order operators read them: LDS, RDS, CDS, EDS, SDS, then others.
    public static let displayOrder = [TypeURL.listener, TypeURL.route, TypeURL.cluster, TypeURL.endpoint, TypeURL.secret]

    static func displayRank(_ typeURL: String) -> Int { displayOrder.firstIndex(of: typeURL) ?? displayOrder.count }
}

extension ProxyTypeStatus {
    /// Builds the operator view of a state machine's per-type status.
    public init(_ status: ProxyStatus, sentAt: WallClockTime?, ackedAt: WallClockTime?) {
        typeURL = status.typeURL
        type = TypeURL.shortName(status.typeURL)
        self.status = status.verdict
        versionSent = status.versionSent
        snapshotSent = status.snapshotVersionSent
        self.sentAt = sentAt.map(Date.init(wallClock:))
        versionAcked = status.versionAcked
        self.ackedAt = ackedAt.map(Date.init(wallClock:))
        nack = status.lastNack.map { NackSummary(rejectedVersion: $0.rejectedVersion, message: $0.errorDetail.message, at: Date(wallClock: $0.at)) }
        subscribed = status.wildcard ? "*" : String(status.subscribedNames.count)
    }
}

extension Date {
    public init(wallClock: WallClockTime) { self.init(timeIntervalSince1970: Double(wallClock.nanosecondsSinceEpoch) / 1e9) }

    public var nanosecondsSinceEpoch: Int64 { Int64((timeIntervalSince1970 * 1e9).rounded()) }
}
