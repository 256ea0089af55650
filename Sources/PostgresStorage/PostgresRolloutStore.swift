// The progressive rollout's share of the PostgreSQL store (schema version 2): the state, operators'
// requests, the leader lease and each replica's report of its proxies. Every replica of `meshctl
// serve` on the store reads and writes these; the rules that make that safe are the database's:
// - the lease is one row claimed with an upsert that only succeeds when the row is free, expired (by
//   the database's clock: replicas' clocks never matter) or already ours; its `term` grows each time it
//   changes hands;
// - the state is written only by the holder of the current term, checked in the same transaction with
//   the lease row locked FOR SHARE, so a takeover (which updates that row) waits for a save in flight
//   and a leader that lost the lease cannot overwrite its successor's state;
// - requests are deleted as they are taken (DELETE … RETURNING over SKIP LOCKED rows): several replicas
//   taking at once each get different ones, every request exactly once.
import Foundation
import NIOCore
import PostgresNIO
import SnapshotStorage

extension PostgresSnapshotStore: RolloutCoordinating {
    /// Reads and writes of the rollout tables (present from schema version 2; `read` migrates an older store). The
    /// server makes these several times a second: the schema is checked once per connection, not per call.
    func rollout<T>(_ body: (PostgresConnection) throws(SnapshotStoreError) -> T) throws(SnapshotStoreError) -> T {
        try read(emptyValue: nil, checkOncePerConnection: true, body)
    }

    // MARK: State

    public func loadRolloutState() throws(SnapshotStoreError) -> Data? {
        try loadRolloutState(newerThan: -1)?.state
    }

    public func loadRolloutState(newerThan revision: Int64) throws(SnapshotStoreError) -> (revision: Int64, state: Data)? {
        try read(emptyValue: Optional<(revision: Int64, state: Data)>.none, checkOncePerConnection: true) { c throws(SnapshotStoreError) in
            let rows = try c.run("SELECT revision, state FROM meshctl_rollout_state WHERE id = 1 AND revision > \(revision)", location: location)
            guard let row = rows.first, let (saved, text) = try? row.decode((Int64, String).self) else { return nil }
            return (saved, Data(text.utf8))
        }
    }

    /// Unfenced: for a single writer (tests, tools). The server saves through the fenced variant.
    public func saveRolloutState(_ state: Data) throws(SnapshotStoreError) {
        try rollout { c throws(SnapshotStoreError) in try upsertState(c, state, writer: "meshctl", term: 0) }
    }

    public func saveRolloutState(_ state: Data, replica: String, term: Int64) throws(SnapshotStoreError) -> Bool {
        try rollout { c throws(SnapshotStoreError) in
            try transaction(c) { () throws(SnapshotStoreError) -> Bool in
                let held = try c.run("""
                    SELECT 1 FROM meshctl_rollout_leader WHERE id = 1 AND holder = \(replica) AND term = \(term)
                        AND expires_at > clock_timestamp() FOR SHARE
                    """, location: location)
                guard held.first != nil else { return false }
                try upsertState(c, state, writer: replica, term: term)
                return true
            }
        }
    }

    private func upsertState(_ c: PostgresConnection, _ state: Data, writer: String, term: Int64) throws(SnapshotStoreError) {
        let text = String(decoding: state, as: UTF8.self)
        _ = try c.run("""
            INSERT INTO meshctl_rollout_state (id, revision, state, written_by, term) VALUES (1, 1, \(text), \(writer), \(term))
            ON CONFLICT (id) DO UPDATE SET revision = meshctl_rollout_state.revision + 1, state = EXCLUDED.state,
                written_by = EXCLUDED.written_by, term = EXCLUDED.term, saved_at = clock_timestamp()
            """, location: location)
    }

    // MARK: Requests

    public func submitRolloutRequest(_ request: RolloutRequest) throws(SnapshotStoreError) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        let text = String(decoding: (try? encoder.encode(request)) ?? Data(), as: UTF8.self)
        try read(emptyValue: nil) { c throws(SnapshotStoreError) in
            guard try livePointer(c).version != nil else { throw .noCurrentVersion }
            _ = try c.run("INSERT INTO meshctl_rollout_requests (request) VALUES (\(text))", location: location)
        }
    }

    public func takeRolloutRequests() throws(SnapshotStoreError) -> [RolloutRequest] {
        try read(emptyValue: [], checkOncePerConnection: true) { c throws(SnapshotStoreError) in
            let rows = try c.run("""
                DELETE FROM meshctl_rollout_requests WHERE seq IN
                    (SELECT seq FROM meshctl_rollout_requests ORDER BY seq FOR UPDATE SKIP LOCKED)
                RETURNING seq, request
                """, location: location)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .millisecondsSince1970
            return rows.compactMap { try? $0.decode((Int64, String).self) }.sorted { $0.0 < $1.0 }
                .compactMap { try? decoder.decode(RolloutRequest.self, from: Data($0.1.utf8)) }
        }
    }

    public func pendingRolloutRequestCount() throws(SnapshotStoreError) -> Int {
        try read(emptyValue: 0) { c throws(SnapshotStoreError) in
            let rows = try c.run("SELECT count(*)::int FROM meshctl_rollout_requests", location: location)
            return (try? rows.first?.decode(Int.self)) ?? 0
        }
    }

    public func recordRolloutHistory(_ event: HistoryEvent) throws(SnapshotStoreError) {
        try rollout { c throws(SnapshotStoreError) in _ = try appendHistory(c, event) }
    }

    // MARK: Lease

    public func claimRolloutLease(replica: String, ttlMilliseconds: Int64) throws(SnapshotStoreError) -> RolloutLease {
        try rollout { c throws(SnapshotStoreError) in
            // One statement: take a free or expired lease (a new term) or renew our own (the same term).
            _ = try c.run("""
                INSERT INTO meshctl_rollout_leader AS l (id, holder, term, expires_at)
                VALUES (1, \(replica), 1, clock_timestamp() + \(ttlMilliseconds) * interval '1 millisecond')
                ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
                    term = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > clock_timestamp() THEN l.term ELSE l.term + 1 END
                WHERE l.holder = EXCLUDED.holder OR l.expires_at <= clock_timestamp()
                """, location: location)
            let rows = try c.run("""
                SELECT holder, term, greatest(0, (extract(epoch FROM expires_at - clock_timestamp()) * 1000))::bigint
                FROM meshctl_rollout_leader WHERE id = 1
                """, location: location)
            guard let (holder, term, remaining) = try? rows.first?.decode((String, Int64, Int64).self) else {
                throw .database(location: location, detail: "the rollout lease row is missing after a claim")
            }
            return RolloutLease(holder: holder, term: term, remainingMilliseconds: remaining)
        }
    }

    public func currentRolloutLease() throws(SnapshotStoreError) -> RolloutLease? {
        try rollout { c throws(SnapshotStoreError) in
            let rows = try c.run("""
                SELECT holder, term, (extract(epoch FROM expires_at - clock_timestamp()) * 1000)::bigint
                FROM meshctl_rollout_leader WHERE id = 1 AND expires_at > clock_timestamp()
                """, location: location)
            guard let (holder, term, remaining) = try? rows.first?.decode((String, Int64, Int64).self) else { return nil }
            return RolloutLease(holder: holder, term: term, remainingMilliseconds: remaining)
        }
    }

    public func releaseRolloutLease(replica: String) throws(SnapshotStoreError) {
        try rollout { c throws(SnapshotStoreError) in
            // Expired rather than deleted: the next holder's term is still larger than every earlier one.
            _ = try c.run("""
                UPDATE meshctl_rollout_leader SET expires_at = clock_timestamp() - interval '1 millisecond'
                WHERE id = 1 AND holder = \(replica)
                """, location: location)
        }
    }

    // MARK: Replica reports

    public func saveReplicaReport(replica: String, report: Data) throws(SnapshotStoreError) {
        let text = String(decoding: report, as: UTF8.self)
        try rollout { c throws(SnapshotStoreError) in
            _ = try c.run("""
                INSERT INTO meshctl_rollout_replicas AS r (replica, revision, report) VALUES (\(replica), 1, \(text))
                ON CONFLICT (replica) DO UPDATE SET revision = r.revision + 1, report = EXCLUDED.report, heartbeat_at = clock_timestamp()
                """, location: location)
        }
    }

    public func touchReplicaReport(replica: String) throws(SnapshotStoreError) -> Bool {
        try rollout { c throws(SnapshotStoreError) in
            let result = try c.run("UPDATE meshctl_rollout_replicas SET heartbeat_at = clock_timestamp() WHERE replica = \(replica)", location: location)
            return result.metadata.rows == 1
        }
    }

    public func removeReplicaReport(replica: String) throws(SnapshotStoreError) {
        try rollout { c throws(SnapshotStoreError) in
            _ = try c.run("DELETE FROM meshctl_rollout_replicas WHERE replica = \(replica)", location: location)
        }
    }

    public func replicaReports(known: [String: Int64]) throws(SnapshotStoreError) -> [ReplicaReportRow] {
        let names = Array(known.keys)
        let revisions = names.map { known[$0]! }
        return try rollout { c throws(SnapshotStoreError) in
            let rows = try c.run("""
                SELECT r.replica, r.revision, greatest(0, (extract(epoch FROM clock_timestamp() - r.heartbeat_at) * 1000))::bigint,
                       CASE WHEN k.revision IS DISTINCT FROM r.revision THEN r.report END
                FROM meshctl_rollout_replicas r
                LEFT JOIN unnest(\(names)::text[], \(revisions)::bigint[]) AS k (replica, revision) ON k.replica = r.replica
                ORDER BY r.replica
                """, location: location)
            return rows.compactMap { row in
                guard let (replica, revision, age, body) = try? row.decode((String, Int64, Int64, String?).self) else { return nil }
                return ReplicaReportRow(replica: replica, revision: revision, ageMilliseconds: age, body: body.map { Data($0.utf8) })
            }
        }
    }

    public func pruneReplicaReports(olderThanMilliseconds: Int64) throws(SnapshotStoreError) -> Int {
        try rollout { c throws(SnapshotStoreError) in
            let result = try c.run("""
                DELETE FROM meshctl_rollout_replicas WHERE heartbeat_at < clock_timestamp() - \(olderThanMilliseconds) * interval '1 millisecond'
                """, location: location)
            return result.metadata.rows ?? 0
        }
    }

    public func rolloutCoordinator() throws(SnapshotStoreError) -> any RolloutCoordinating {
        try PostgresSnapshotStore(url: url, createIfMissing: false)
    }
}
