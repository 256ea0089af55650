// The fleet table between the server's types (XDSCache, ControlPlane) and the database's (PostgresStorage):
// what a replica writes, what `meshctl status --store URL` and the status page read, and the maintenance
// leader's loop (gc, history trimming and expiring dead replicas' rows, one replica at a time).
import ControlPlane
import Foundation
import Locking
import PostgresStorage
import ServerTelemetry
import SnapshotStorage
import XDSCache

enum Fleet {
    /// The database rows as operators read them; a replica whose heartbeat is older than `staleAfter` is stale.
    static func view(_ rows: FleetRows, staleAfter: Double) -> FleetView {
        var unreadable = 0
        let stale = Set(rows.replicas.filter { $0.heartbeatAgeSeconds > staleAfter }.map(\.replicaID))
        let proxies = rows.proxies.compactMap { row -> FleetView.Proxy? in
            guard let record = FleetRecordCoding.decode(row.recordJSON) else { unreadable += 1; return nil }
            return FleetView.Proxy(replicaID: row.replicaID, record: record, stale: stale.contains(row.replicaID))
        }
        let replicas = rows.replicas.map {
            FleetView.Replica(replicaID: $0.replicaID, xdsAddress: $0.xdsAddress, adminAddress: $0.adminAddress, servingVersion: $0.servingVersion,
                              maintenanceLeader: $0.maintenanceLeader, heartbeatAgeSeconds: $0.heartbeatAgeSeconds, stale: stale.contains($0.replicaID))
        }
        return FleetView(replicas: replicas, proxies: proxies, unreadableRows: unreadable)
    }

    /// The recorder's batch as the database's.
    static func databaseBatch(_ batch: FleetStatusRecorder.Batch, replica: FleetReplicaBeat) -> FleetBatch {
        var beat = replica
        beat.servingVersion = batch.servingVersion
        let upserts = batch.upserts.map { record in
            FleetProxyWrite(group: record.group, nodeID: record.nodeID, nacked: record.types.contains { $0.status == .nacked },
                            recordJSON: FleetRecordCoding.encode(record))
        }
        return FleetBatch(replica: beat, upserts: upserts, removed: batch.removed, replaceAll: batch.replaceAll)
    }
}

/// Store maintenance on a replica: on a PostgreSQL store only the holder of the maintenance lock (a session-level
/// advisory lock; see PostgresMaintenanceLock) runs it; on a directory store the replica does (one machine).
final class StoreMaintenance: @unchecked Sendable {
    // @unchecked Sendable: `leader` is a Locked; the rest is immutable or owned by the one maintenance thread.
    let store: any SnapshotStoring
    let lock: PostgresMaintenanceLock?
    let gcKeep: Int?
    let historyKeep: Int?
    let interval: Double
    let expireAfter: Double
    let log: ServerLog
    /// Whether this replica holds the maintenance lock (written into its heartbeat row).
    let leader = Locked(false)
    private let stopped = Locked(false)

    init(store: any SnapshotStoring, gcKeep: Int?, historyKeep: Int?, interval: Double, expireAfter: Double, log: ServerLog) throws {
        self.store = store
        if let database = store as? PostgresSnapshotStore {
            lock = try PostgresMaintenanceLock(url: database.url)
        } else {
            lock = nil
        }
        self.gcKeep = gcKeep
        self.historyKeep = historyKeep
        self.interval = interval
        self.expireAfter = expireAfter
        self.log = log
    }

    /// Starts the maintenance thread (nothing to do on a directory store without --gc-keep).
    func start() {
        guard lock != nil || gcKeep != nil else { return }
        let thread = Thread { [self] in run() }
        thread.name = "meshctl-maintenance"
        thread.start()
    }

    /// Stops the jobs (draining); the maintenance thread gives the lock up when it next wakes (≤ 2 s), or the
    /// process's exit does. The lock object is the maintenance thread's alone, so it is not touched from here.
    func stop() {
        stopped.withLock { $0 = true }
    }

    private func run() {
        // Leadership is checked often (a dead leader is replaced within `tick`); the jobs run every `interval`.
        let tick = min(interval, lock == nil ? interval : 2)
        var nextJobs = Date().addingTimeInterval(interval)
        defer {
            lock?.release()
            leader.withLock { $0 = false }
        }
        while !stopped.withLock({ $0 }) {
            Thread.sleep(forTimeInterval: tick)
            if stopped.withLock({ $0 }) { return }
            if let lock {
                let was = leader.withLock { $0 }
                let now: Bool
                do throws(SnapshotStoreError) {
                    now = try lock.acquireOrKeep()
                } catch {
                    now = false
                    if was { log.warning("maintenance.lock-lost", ["error": "\(error)", "effect": "another replica takes over store maintenance"]) }
                }
                leader.withLock { $0 = now }
                if now && !was {
                    log.info("maintenance.leader", ["jobs": jobNames, "note": "this replica holds the maintenance lock; the others skip these jobs"])
                    nextJobs = Date().addingTimeInterval(interval)
                } else if !now && was {
                    log.info("maintenance.standby", ["note": "another replica holds the maintenance lock"])
                }
                guard now else { continue }
                expireFleetRows()
            }
            if Date() >= nextJobs {
                nextJobs = Date().addingTimeInterval(interval)
                runJobs()
            }
        }
    }

    private var jobNames: String {
        (["expire fleet rows older than \(Int(expireAfter)) s"] + (gcKeep.map { ["gc --keep \($0)"] } ?? [])
            + (historyKeep.map { ["trim history to \($0) lines"] } ?? [])).joined(separator: ", ")
    }

    private func expireFleetRows() {
        guard let database = store as? PostgresSnapshotStore else { return }
        do throws(SnapshotStoreError) {
            let (replicas, proxies) = try database.expireFleet(olderThanSeconds: expireAfter)
            if replicas + proxies > 0 {
                log.info("fleet.expired", ["replicas": "\(replicas)", "proxy_rows": "\(proxies)", "older_than_s": "\(Int(expireAfter))"])
            }
        } catch {
            log.warning("fleet.expire-failed", ["error": "\(error)"])
        }
    }

    private func runJobs() {
        if let keep = gcKeep {
            do throws(SnapshotStoreError) {
                let report = try store.gc(keep: keep)
                log.info("store.gc", ["keep": "\(keep)", "removed_versions": "\(report.removedVersions.count)",
                                      "removed_objects": "\(report.removedObjects)", "freed_bytes": "\(report.freedBytes)"])
            } catch {
                log.warning("store.gc-failed", ["error": "\(error)"])
            }
        }
        if let keep = historyKeep, let database = store as? PostgresSnapshotStore {
            do throws(SnapshotStoreError) {
                let trimmed = try database.trimHistory(keep: keep)
                log.info("store.history-trimmed", ["keep": "\(keep)", "removed_lines": "\(trimmed)"])
            } catch {
                log.warning("store.history-trim-failed", ["error": "\(error)"])
            }
        }
    }
}
