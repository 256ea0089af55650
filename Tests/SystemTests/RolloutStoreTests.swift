// The rollout's part of the store, on both backends (RolloutStateStoring: state, requests taken
// once, history records), and on PostgreSQL what several replicas rely on: the lease (one holder,
// terms that grow, fenced state writes), replica reports, requests taken exactly once by replicas
// taking at once, and the migration of a schema-1 store to schema 2.
import Foundation
import MeshTestSupport
import PostgresStorage
import SnapshotStorage
import XCTest

extension StoreConformance {
    func rolloutState() throws {
        let made = try make()
        guard let store = made.store as? any RolloutStateStoring else { return XCTFail("\(made.argument) keeps no rollout state") }
        XCTAssertNil(try store.loadRolloutState())
        _ = try made.store.publish(v(1))
        try store.saveRolloutState(Data(#"{"a":1}"#.utf8))
        try store.saveRolloutState(Data(#"{"a":2}"#.utf8))
        XCTAssertEqual(try store.loadRolloutState(), Data(#"{"a":2}"#.utf8))
        let at = Date(timeIntervalSince1970: 1_800_000_000)
        for action in ["pause", "resume", "promote"] {
            try store.submitRolloutRequest(RolloutRequest(action: action, by: "ana", reason: nil, target: "t", time: at))
        }
        XCTAssertEqual(try store.pendingRolloutRequestCount(), 3)
        XCTAssertEqual(try store.takeRolloutRequests().map(\.action), ["pause", "resume", "promote"], "oldest first")
        XCTAssertEqual(try store.takeRolloutRequests(), [], "each taken once")
        XCTAssertEqual(try store.pendingRolloutRequestCount(), 0)
        let live = try made.store.currentVersion()
        try store.recordRolloutHistory(HistoryEvent(kind: .collapsed, time: Date(), version: "abc", reason: "replaced in the queue"))
        XCTAssertEqual(try made.store.history().last?.kind, .collapsed)
        XCTAssertEqual(try made.store.currentVersion(), live, "a history record moves nothing")
        XCTAssertTrue(made.store.verify().problems.isEmpty)
        XCTAssertEqual(try made.store.history().last?.kind, .collapsed, "verify does not mistake it for a pointer move")
    }
}

final class PostgresRolloutCoordinationTests: XCTestCase {
    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    func stores(_ count: Int) throws -> [PostgresSnapshotStore] {
        let (_, url) = try SharedPostgres.database()
        let first = try XCTUnwrap(try openPublishTarget(url) as? PostgresSnapshotStore)
        _ = try first.publish(try Snapshot.make(groups: [ProxyGroupResources(group: "web", resources: [StoreTestSupport.cluster("api", "api-1")])],
                                                compilerVersion: "test"))
        return [first] + (try (1..<count).map { _ in try PostgresSnapshotStore(url: PostgresStoreURL(url)) })
    }

    func testOneLeaseHolderAtATimeTermsGrowAndAFormerLeaderCannotWrite() throws {
        let s = try stores(2)
        let a = try s[0].claimRolloutLease(replica: "A", ttlMilliseconds: 2000)
        XCTAssertEqual(a.holder, "A")
        XCTAssertGreaterThan(a.remainingMilliseconds, 1000)
        XCTAssertEqual(try s[1].claimRolloutLease(replica: "B", ttlMilliseconds: 2000).holder, "A", "held: B follows")
        XCTAssertEqual(try s[0].claimRolloutLease(replica: "A", ttlMilliseconds: 2000).term, a.term, "a renewal keeps the term")
        XCTAssertTrue(try s[0].saveRolloutState(Data("1".utf8), replica: "A", term: a.term))
        XCTAssertFalse(try s[1].saveRolloutState(Data("2".utf8), replica: "B", term: a.term), "B does not hold it")
        try s[0].releaseRolloutLease(replica: "A")
        let b = try s[1].claimRolloutLease(replica: "B", ttlMilliseconds: 300)
        XCTAssertEqual(b.holder, "B")
        XCTAssertEqual(b.term, a.term + 1)
        XCTAssertFalse(try s[0].saveRolloutState(Data("3".utf8), replica: "A", term: a.term), "the former leader is fenced off")
        XCTAssertTrue(try s[1].saveRolloutState(Data("4".utf8), replica: "B", term: b.term))
        XCTAssertEqual(try s[0].loadRolloutState(), Data("4".utf8))
        let revision = try XCTUnwrap(try s[0].loadRolloutState(newerThan: -1)?.revision)
        XCTAssertNil(try s[0].loadRolloutState(newerThan: revision), "unchanged since that revision")
        // B stops renewing: after its 300 ms the lease is free by the database's clock.
        usleep(400_000)
        XCTAssertFalse(try s[1].saveRolloutState(Data("5".utf8), replica: "B", term: b.term), "an expired lease writes nothing")
        let again = try s[0].claimRolloutLease(replica: "A", ttlMilliseconds: 2000)
        XCTAssertEqual(again.holder, "A")
        XCTAssertEqual(again.term, b.term + 1)
    }

    func testReplicaReportsCarryBodiesOnlyWhenChangedAndAges() throws {
        let s = try stores(1)[0]
        try s.saveReplicaReport(replica: "A", report: Data("a1".utf8))
        try s.saveReplicaReport(replica: "B", report: Data("b1".utf8))
        var rows = try s.replicaReports(known: [:])
        XCTAssertEqual(rows.map(\.replica), ["A", "B"])
        XCTAssertEqual(rows.map(\.body), [Data("a1".utf8), Data("b1".utf8)])
        try s.saveReplicaReport(replica: "A", report: Data("a2".utf8))
        rows = try s.replicaReports(known: Dictionary(uniqueKeysWithValues: rows.map { ($0.replica, $0.revision) }))
        XCTAssertEqual(rows.map(\.body), [Data("a2".utf8), nil], "B unchanged: no body")
        XCTAssertTrue(try s.touchReplicaReport(replica: "B"))
        XCTAssertFalse(try s.touchReplicaReport(replica: "C"))
        usleep(300_000)
        try s.saveReplicaReport(replica: "A", report: Data("a3".utf8))
        rows = try s.replicaReports(known: [:])
        XCTAssertGreaterThanOrEqual(rows[1].ageMilliseconds, 250)
        XCTAssertLessThan(rows[0].ageMilliseconds, 250)
        XCTAssertEqual(try s.pruneReplicaReports(olderThanMilliseconds: 250), 1)
        try s.removeReplicaReport(replica: "A")
        XCTAssertEqual(try s.replicaReports(known: [:]), [])
    }

    func testRequestsTakenByReplicasAtOnceAreEachTakenExactlyOnce() throws {
        let s = try stores(4)
        for i in 0..<200 { try s[0].submitRolloutRequest(RolloutRequest(action: "r\(i)", by: "ana", reason: nil, target: "t")) }
        let taken = ParallelTaken()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            for _ in 0..<20 {
                if let requests = try? s[i].takeRolloutRequests() { taken.add(requests.map(\.action)) }
                if i == 0, (try? s[0].pendingRolloutRequestCount()) ?? 0 < 150 {
                    try? s[0].submitRolloutRequest(RolloutRequest(action: "late\(Int.random(in: 0...1_000_000))", by: "ana", reason: nil, target: "t"))
                }
            }
        }
        taken.add((try s[1].takeRolloutRequests()).map(\.action))
        let all = taken.all
        XCTAssertEqual(all.count, Set(all).count, "no request taken twice")
        XCTAssertTrue((0..<200).allSatisfy { all.contains("r\($0)") }, "none lost")
        XCTAssertEqual(try s[0].pendingRolloutRequestCount(), 0)
    }

    func testASchemaOneStoreIsMigratedToSchemaTwo() throws {
        let (server, _) = try SharedPostgres.database()
        let name = "migrate\(getpid())"
        let url = try server.createDatabase(name)
        for statement in PostgresSnapshotStore.schemaV1 { try server.sql(statement, database: name) }
        try server.sql("INSERT INTO meshctl_schema (id, version, written_by) VALUES (1, 1, 'meshctl 1')", database: name)
        let store = try PostgresSnapshotStore(url: PostgresStoreURL(url))
        XCTAssertNil(try store.currentVersion(), "opened (and migrated) by this meshctl")
        XCTAssertEqual(try server.sql("SELECT version FROM meshctl_schema", database: name), "2")
        XCTAssertNil(try store.loadRolloutState())
        try store.saveRolloutState(Data("{}".utf8))
        XCTAssertEqual(try store.loadRolloutState(), Data("{}".utf8))
        XCTAssertEqual(try server.sql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'meshctl\\_rollout\\_%'", database: name),
                       "4", "state, requests, leader, replicas")
    }
}

final class ParallelTaken: @unchecked Sendable {
    // @unchecked Sendable: `values` is only touched under `lock`.
    private let lock = NSLock()
    private var values: [String] = []
    func add(_ more: [String]) { lock.withLock { values += more } }
    var all: [String] { lock.withLock { values } }
}
