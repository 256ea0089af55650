// Fleet status in the store's database: every `serve` replica writes where its connected proxies stand, so
// `meshctl status --store postgres://…` and any replica's status page show the whole fleet from one query.
//
// Tables (schema version 2):
//   meshctl_replicas      one row per replica: its addresses, start time, heartbeat (the database's now() at its
//                         last write), the snapshot it serves, whether it holds the maintenance lock
//   meshctl_proxy_status  one row per (replica, group, node id): `record` is the replica's ProxyStreamRecord as
//                         JSON (mode, peer, identity, and per type the version sent/ACKed, the latest NACK's
//                         version, Envoy's error detail and the times); `nacked` is set when any type is NACKED
//
// Write rate is bounded by the writer, not by proxy events: a replica writes at most once per flush interval,
// and each write is ONE statement and one round trip (the schema version is checked once per connection) (heartbeat upsert + changed rows upserted + gone rows deleted, as data-modifying
// CTEs), whatever the number of proxies that changed. A replica that stops writing keeps its rows; readers show
// them as stale once its heartbeat is older than their threshold, and the maintenance leader deletes the replica
// and its rows once the heartbeat is older than the expiry (`expireFleet`).
import Foundation
import NIOCore
import PostgresNIO
import SnapshotStorage

/// One proxy row a replica writes.
public struct FleetProxyWrite: Sendable, Hashable {
    public var group: String
    public var nodeID: String
    public var nacked: Bool
    /// The replica's record of the proxy (ProxyStreamRecord as JSON).
    public var recordJSON: String

    public init(group: String, nodeID: String, nacked: Bool, recordJSON: String) {
        self.group = group
        self.nodeID = nodeID
        self.nacked = nacked
        self.recordJSON = recordJSON
    }
}

/// The replica's own row, written with every batch (its heartbeat).
public struct FleetReplicaBeat: Sendable, Hashable {
    public var replicaID: String
    public var xdsAddress: String
    public var adminAddress: String?
    public var startedAt: Date
    public var servingVersion: String?
    public var maintenanceLeader: Bool

    public init(replicaID: String, xdsAddress: String, adminAddress: String?, startedAt: Date, servingVersion: String?, maintenanceLeader: Bool) {
        self.replicaID = replicaID
        self.xdsAddress = xdsAddress
        self.adminAddress = adminAddress
        self.startedAt = startedAt
        self.servingVersion = servingVersion
        self.maintenanceLeader = maintenanceLeader
    }
}

/// One batch: the rows that changed since the last one, the proxies that left, and with `replaceAll` the
/// instruction to delete every other row of this replica (the first write, and the one after a failed write).
public struct FleetBatch: Sendable {
    public var replica: FleetReplicaBeat
    public var upserts: [FleetProxyWrite]
    public var removed: [(group: String, nodeID: String)]
    public var replaceAll: Bool

    public init(replica: FleetReplicaBeat, upserts: [FleetProxyWrite], removed: [(group: String, nodeID: String)], replaceAll: Bool) {
        self.replica = replica
        self.upserts = upserts
        self.removed = removed
        self.replaceAll = replaceAll
    }
}

/// What one read of the fleet returns: replicas (with the age of their heartbeat by the database's clock) and rows.
public struct FleetRows: Sendable {
    public struct Replica: Sendable, Hashable {
        public var replicaID: String
        public var xdsAddress: String
        public var adminAddress: String?
        public var servingVersion: String?
        public var maintenanceLeader: Bool
        public var heartbeatAgeSeconds: Double
    }

    public struct Proxy: Sendable, Hashable {
        public var replicaID: String
        public var group: String
        public var nodeID: String
        public var nacked: Bool
        public var recordJSON: String
        public var updatedAgeSeconds: Double
    }

    public var replicas: [Replica] = []
    public var proxies: [Proxy] = []
}

extension PostgresSnapshotStore {
    /// Writes one batch as one statement; returns (rows upserted, rows deleted).
    @discardableResult
    public func writeFleet(_ batch: FleetBatch) throws(SnapshotStoreError) -> (upserted: Int, deleted: Int) {
        let r = batch.replica
        let groups = batch.upserts.map(\.group), nodes = batch.upserts.map(\.nodeID)
        let nacked = batch.upserts.map(\.nacked), records = batch.upserts.map(\.recordJSON)
        let goneGroups = batch.removed.map(\.group), goneNodes = batch.removed.map(\.nodeID)
        // The DELETE sees the table as it was before this statement: rows upserted here are in the kept set.
        let keptGroups = batch.replaceAll ? groups : [], keptNodes = batch.replaceAll ? nodes : []
        return try read(emptyValue: nil, checkOncePerConnection: true) { c throws(SnapshotStoreError) in
            let rows = try c.run("""
                WITH beat AS (
                    INSERT INTO meshctl_replicas (replica_id, xds_address, admin_address, started_at, heartbeat_at, serving_version, maintenance_leader)
                    VALUES (\(r.replicaID), \(r.xdsAddress), \(r.adminAddress), \(r.startedAt), now(), \(r.servingVersion), \(r.maintenanceLeader))
                    ON CONFLICT (replica_id) DO UPDATE SET xds_address = EXCLUDED.xds_address, admin_address = EXCLUDED.admin_address,
                        started_at = EXCLUDED.started_at, heartbeat_at = now(), serving_version = EXCLUDED.serving_version,
                        maintenance_leader = EXCLUDED.maintenance_leader
                ), upserted AS (
                    INSERT INTO meshctl_proxy_status (replica_id, group_name, node_id, nacked, record, updated_at)
                    SELECT \(r.replicaID), u.g, u.n, u.k, u.r::jsonb, now()
                    FROM unnest(\(groups)::text[], \(nodes)::text[], \(nacked)::bool[], \(records)::text[]) AS u(g, n, k, r)
                    ON CONFLICT (replica_id, group_name, node_id) DO UPDATE SET nacked = EXCLUDED.nacked, record = EXCLUDED.record,
                        updated_at = EXCLUDED.updated_at
                    RETURNING 1
                ), removed AS (
                    DELETE FROM meshctl_proxy_status p WHERE p.replica_id = \(r.replicaID) AND (
                        (p.group_name, p.node_id) IN (SELECT * FROM unnest(\(goneGroups)::text[], \(goneNodes)::text[]))
                        OR (\(batch.replaceAll) AND (p.group_name, p.node_id) NOT IN (SELECT * FROM unnest(\(keptGroups)::text[], \(keptNodes)::text[]))))
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM upserted)::int, (SELECT count(*) FROM removed)::int
                """, location: location)
            guard let (upserted, deleted) = try? rows.first?.decode((Int, Int).self) else { return (0, 0) }
            return (upserted, deleted)
        }
    }

    /// Every replica and every proxy row, from one query (a full join: rows whose replica row is gone still show).
    public func readFleet() throws(SnapshotStoreError) -> FleetRows {
        try read(emptyValue: FleetRows()) { c throws(SnapshotStoreError) in
            let rows = try c.run("""
                SELECT coalesce(r.replica_id, p.replica_id), r.xds_address, r.admin_address, r.serving_version,
                       coalesce(r.maintenance_leader, false), extract(epoch FROM now() - r.heartbeat_at)::float8,
                       p.group_name, p.node_id, p.nacked, p.record::text, extract(epoch FROM now() - p.updated_at)::float8
                FROM meshctl_replicas r FULL JOIN meshctl_proxy_status p ON p.replica_id = r.replica_id
                ORDER BY 1, p.group_name, p.node_id
                """, location: location)
            var fleet = FleetRows()
            var seen = Set<String>()
            for row in rows {
                guard let (replica, xds, admin, serving, leader, beatAge, group, node, nacked, record, updatedAge) = try? row.decode(
                    (String, String?, String?, String?, Bool, Double?, String?, String?, Bool?, String?, Double?).self) else { continue }
                if seen.insert(replica).inserted {
                    // No replica row (deleted while its rows were not yet): as old as its newest proxy row.
                    fleet.replicas.append(.init(replicaID: replica, xdsAddress: xds ?? "?", adminAddress: admin, servingVersion: serving,
                                                maintenanceLeader: leader, heartbeatAgeSeconds: beatAge ?? updatedAge ?? .infinity))
                }
                if let group, let node, let record {
                    fleet.proxies.append(.init(replicaID: replica, group: group, nodeID: node, nacked: nacked ?? false, recordJSON: record,
                                               updatedAgeSeconds: updatedAge ?? 0))
                }
            }
            return fleet
        }
    }

    /// Deletes replicas whose heartbeat is older than `seconds`, with their proxy rows (and rows of no replica that
    /// are as old); the maintenance leader runs it. Returns (replicas, proxy rows) deleted.
    @discardableResult
    public func expireFleet(olderThanSeconds seconds: Double) throws(SnapshotStoreError) -> (replicas: Int, proxies: Int) {
        try read(emptyValue: (0, 0)) { c throws(SnapshotStoreError) in
            let rows = try c.run("""
                WITH dead AS (
                    DELETE FROM meshctl_replicas WHERE heartbeat_at < now() - make_interval(secs => \(seconds)) RETURNING replica_id
                ), gone AS (
                    DELETE FROM meshctl_proxy_status p WHERE p.replica_id IN (SELECT replica_id FROM dead)
                        OR (p.updated_at < now() - make_interval(secs => \(seconds))
                            AND NOT EXISTS (SELECT 1 FROM meshctl_replicas r WHERE r.replica_id = p.replica_id))
                    RETURNING 1
                )
                SELECT (SELECT count(*) FROM dead)::int, (SELECT count(*) FROM gone)::int
                """, location: location)
            guard let (replicas, proxies) = try? rows.first?.decode((Int, Int).self) else { return (0, 0) }
            return (replicas, proxies)
        }
    }

    /// A replica that stops cleanly removes its row and its proxies' rows at once.
    public func removeReplica(_ replicaID: String) throws(SnapshotStoreError) {
        try read(emptyValue: ()) { c throws(SnapshotStoreError) in
            _ = try c.run("""
                WITH gone AS (DELETE FROM meshctl_proxy_status WHERE replica_id = \(replicaID) RETURNING 1)
                DELETE FROM meshctl_replicas WHERE replica_id = \(replicaID)
                """, location: location)
        }
    }

    /// Deletes all but the newest `keep` history lines (history trimming, a maintenance-leader job). Returns how many.
    @discardableResult
    public func trimHistory(keep: Int) throws(SnapshotStoreError) -> Int {
        guard keep >= 1 else { throw .invalidSnapshot(reason: "history trimming must keep at least 1 line") }
        return try read(emptyValue: 0) { c throws(SnapshotStoreError) in
            let rows = try c.run("""
                WITH gone AS (
                    DELETE FROM meshctl_history WHERE seq < (SELECT min(seq) FROM (SELECT seq FROM meshctl_history ORDER BY seq DESC LIMIT \(keep)) newest)
                    RETURNING 1)
                SELECT count(*)::int FROM gone
                """, location: location)
            return (try? rows.first?.decode(Int.self)) ?? 0
        }
    }
}

/// The maintenance lock: a session-level `pg_try_advisory_lock` on a dedicated connection. The replica that holds
/// it is the maintenance leader (gc, history trimming, expiring dead replicas' fleet rows) for as long as that
/// connection lives; when the replica dies, PostgreSQL ends its session and releases the lock, and the next
/// replica to try takes it. Not thread-safe: one maintenance thread owns it.
public final class PostgresMaintenanceLock: @unchecked Sendable {
    // @unchecked Sendable: `connection` and `held` are only touched by the one maintenance thread that owns this object.
    /// The advisory lock key ("meshctl" + 2); the writers' lock is + 1, schema creation + 2.
    public static let key: Int64 = 0x6D65_7368_6374_6C02
    private let session: PostgresSession
    private var connection: PostgresConnection?
    public private(set) var held = false

    public init(url: PostgresStoreURL) throws(SnapshotStoreError) {
        session = try PostgresSession(url: url)
    }

    deinit { release() }

    /// Whether this replica is the leader now: keeps a held lock (checking its session is alive) or tries to take it.
    public func acquireOrKeep() throws(SnapshotStoreError) -> Bool {
        do throws(SnapshotStoreError) {
            if connection == nil || connection!.isClosed {
                drop()
                connection = try session.openConnection()
            }
            let c = connection!
            if held {
                // The session still answering means it still holds the lock.
                _ = try c.run("SELECT 1", location: session.location)
                return true
            }
            let rows = try c.run("SELECT pg_try_advisory_lock(\(Self.key))", location: session.location)
            held = (try? rows.first?.decode(Bool.self)) == true
            return held
        } catch {
            drop()
            throw error
        }
    }

    /// Gives the lock up (a draining replica) by closing its session.
    public func release() { drop() }

    private func drop() {
        if let connection { closeKeepingAlive(connection) }
        connection = nil
        held = false
    }
}
