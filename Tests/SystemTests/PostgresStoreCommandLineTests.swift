// The PostgreSQL store as an operator meets it through meshctl: bad input (one clear line, non-zero exit,
// nothing written), credentials that never appear in output, `snapshot copy` both ways, and `serve`
// replicas following the database through an outage.
import Foundation
import MeshFixtures
import MeshTestSupport
import PostgresStorage
import SnapshotStorage
import XCTest

final class PostgresStoreCommandLineTests: XCTestCase {
    typealias S = StoreTestSupport

    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    func meshctl(_ arguments: [String], in directory: String? = nil) throws -> ProcessOutput {
        guard FileManager.default.isExecutableFile(atPath: S.meshctl) else { throw TestFailure("meshctl is not built at \(S.meshctl)") }
        return try ProcessRunner.run(S.meshctl, arguments, in: directory.map { URL(fileURLWithPath: $0) }, timeout: 60, kill: SIGKILL)
    }

    /// One line on stderr, exit status 2, and the line says `expected`.
    func assertRefused(_ r: ProcessOutput, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(r.status, 2, r.stderrText, file: file, line: line)
        let lines = r.stderrText.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "one line: \(r.stderrText)", file: file, line: line)
        XCTAssertTrue(r.stderrText.contains(expected), "expected \"\(expected)\" in: \(r.stderrText)", file: file, line: line)
    }

    func testBadInputIsOneClearLineAndWritesNothing() throws {
        let (server, url) = try SharedPostgres.database()
        // Unreachable database.
        let closed = E2E.freePort()
        assertRefused(try meshctl(["snapshot", "publish-fixture", "--store", "postgres://meshctl@127.0.0.1:\(closed)/db?sslmode=disable"]), "cannot reach")
        // A URL typo: an unknown scheme is refused, and no directory appears in the working directory.
        let work = try TestPaths.temporaryDirectory("pg-cli")
        defer { try? FileManager.default.removeItem(atPath: work) }
        for bad in ["postgress://meshctl@127.0.0.1/db", "s3://bucket/store", "postgres:/db"] {
            let r = try meshctl(["snapshot", "publish-fixture", "--store", bad], in: work)
            XCTAssertEqual(r.status, 2, "\(bad): \(r.stderrText)")
            XCTAssertTrue(r.stderrText.contains("store \""), r.stderrText)
        }
        let compile = try meshctl(["compile", "--configs", S.root.appendingPathComponent("Configs").path,
                                   "--templates", S.root.appendingPathComponent("templates").path, "--out", "postgress://u@h:5432/db"], in: work)
        XCTAssertEqual(compile.status, 2, compile.stderrText)
        XCTAssertTrue(compile.stderrText.contains("unknown scheme \"postgress\""), compile.stderrText)
        XCTAssertEqual(S.files(in: work), [], "a refused store argument writes nothing")
        // A database that holds other tables is not taken for a store.
        let other = "other_\(getpid())"
        try server.sql("CREATE DATABASE \(other)")
        try server.sql("CREATE TABLE customers (id int)", database: other)
        assertRefused(try meshctl(["snapshot", "publish-fixture", "--store", server.url(database: other)]), "is not a snapshot store")
        XCTAssertEqual(try server.sql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'meshctl%'", database: other), "0")
        // A store written by a newer meshctl.
        XCTAssertEqual(try meshctl(["snapshot", "publish-fixture", "--store", url]).status, 0)
        let database = String(url.split(separator: "/").last!)
        try server.sql("UPDATE meshctl_schema SET version = 99", database: database)
        assertRefused(try meshctl(["snapshot", "list", "--store", url]), "newer meshctl")
        assertRefused(try meshctl(["snapshot", "publish-fixture", "--store", url, "--seed", "7"]), "newer meshctl")
        XCTAssertEqual(try server.sql("SELECT count(*) FROM meshctl_versions", database: database), "1", "nothing was written")
    }

    func testCredentialsFromURLOrFileAreCheckedAndNeverPrinted() throws {
        let (server, url) = try SharedPostgres.database()
        let database = String(url.split(separator: "/").last!)
        try server.sql("CREATE ROLE publisher LOGIN PASSWORD 'correct-horse'")
        try server.sql("GRANT ALL ON DATABASE \(database) TO publisher")
        try server.sql("GRANT ALL ON SCHEMA public TO publisher", database: database)
        let wrong = try meshctl(["snapshot", "publish-fixture", "--store", server.tcpURL(database: database, user: "publisher", password: "battery-staple")])
        assertRefused(wrong, "refused access")
        XCTAssertFalse(wrong.stderrText.contains("battery-staple") || wrong.stdoutText.contains("battery-staple"))
        let right = try meshctl(["snapshot", "publish-fixture", "--store", server.tcpURL(database: database, user: "publisher", password: "correct-horse")])
        XCTAssertEqual(right.status, 0, right.stderrText)
        // The password from a file (password_file=) and from a pgpass file (passfile=); the URL shown carries neither.
        let dir = try TestPaths.temporaryDirectory("pg-pass")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        S.write("correct-horse\n", to: dir + "/password")
        let viaFile = try meshctl(["snapshot", "list", "--store", server.tcpURL(database: database, user: "publisher") + "&password_file=\(dir)/password"])
        XCTAssertEqual(viaFile.status, 0, viaFile.stderrText)
        S.write("127.0.0.1:\(server.port):\(database):publisher:correct-horse\n", to: dir + "/pgpass")
        let viaPgpass = try meshctl(["snapshot", "history", "--store", server.tcpURL(database: database, user: "publisher") + "&passfile=\(dir)/pgpass"])
        XCTAssertEqual(viaPgpass.status, 0, viaPgpass.stderrText)
        XCTAssertEqual(viaPgpass.stdoutText.split(separator: "\n").count, 1, viaPgpass.stdoutText)
        // A URL password never shows in messages, even when the command fails.
        let shown = try meshctl(["snapshot", "list", "--store", "postgres://publisher:correct-horse@127.0.0.1:\(E2E.freePort())/x?sslmode=disable"])
        XCTAssertEqual(shown.status, 2)
        XCTAssertFalse(shown.stderrText.contains("correct-horse"), shown.stderrText)
        let typo = try meshctl(["snapshot", "list", "--store", "postgress://publisher:correct-horse@127.0.0.1/x"])
        XCTAssertFalse(typo.stderrText.contains("correct-horse"), typo.stderrText)
        let asParameter = try meshctl(["snapshot", "list", "--store", "postgres://publisher@127.0.0.1/x?password=correct-horse"])
        assertRefused(asParameter, "unknown parameter \"password\"")
        XCTAssertFalse(asParameter.stderrText.contains("correct-horse"), asParameter.stderrText)
    }

    func testCopyKeepsVersionIdsMetadataAndHistoryBothWays() throws {
        let (_, url) = try SharedPostgres.database()
        let source = TemporaryStore("copy-src")
        let store = source.store()
        for n in 1...3 {
            _ = try store.publish(try Snapshot.make(groups: SyntheticSnapshot.groups(services: 5 + n, seed: UInt64(n)), sourceRevision: "r\(n)",
                                                    author: "dev\(n)", message: "change \(n)", compilerVersion: "test",
                                                    createdAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(n))))
        }
        let first = try store.list().last!.metadata.version
        _ = try store.rollback(to: first, reason: "revert", author: "oncall")
        let toDatabase = try meshctl(["snapshot", "copy", "--from", source.path, "--to", url])
        XCTAssertEqual(toDatabase.status, 0, toDatabase.stderrText)
        let database = try openSnapshotStore(url)
        XCTAssertEqual(try database.list(), try store.list())
        XCTAssertEqual(try database.history(), try store.history())
        XCTAssertEqual(try database.currentVersion(), first)
        for summary in try store.list() {
            XCTAssertEqual(try database.load(version: summary.metadata.version, check: .hashes).groups.mapValues(\.resources),
                           try store.load(version: summary.metadata.version).groups.mapValues(\.resources))
        }
        // And back into a new directory.
        let back = TemporaryStore("copy-back", create: false)
        let toDirectory = try meshctl(["snapshot", "copy", "--from", url, "--to", back.path])
        XCTAssertEqual(toDirectory.status, 0, toDirectory.stderrText)
        XCTAssertEqual(try back.store().list(), try store.list())
        XCTAssertEqual(try back.store().history(), try store.history())
        XCTAssertTrue(back.store().verify().isHealthy)
        // A copy never merges into a store that already has a history.
        let again = try meshctl(["snapshot", "copy", "--from", source.path, "--to", url])
        XCTAssertEqual(again.status, 2)
        XCTAssertTrue(again.stderrText.contains("already has a history"), again.stderrText)
    }

    /// Two `serve` replicas follow one database: a publish reaches both; with the database stopped they keep
    /// serving (and say so); a publish after it returns reaches both without a restart; a replica started while
    /// the database is down serves its --cache copy.
    func testReplicasFollowTheDatabaseThroughAnOutage() throws {
        let (server, url) = try SharedPostgres.database()
        let work = try TestPaths.temporaryDirectory("pg-serve")
        defer { try? FileManager.default.removeItem(atPath: work) }
        XCTAssertEqual(try meshctl(["snapshot", "publish-fixture", "--store", url, "--services", "4", "--seed", "1"]).status, 0)
        var replicas: [(process: ChildProcess, admin: Int)] = []
        defer { for r in replicas { r.process.stop() } }
        func startReplica(_ name: String) throws -> (process: ChildProcess, admin: Int) {
            let admin = E2E.freePort()
            let child = try ChildProcess(S.meshctl, ["serve", "--store", url, "--insecure-plaintext", "--listen", "127.0.0.1:\(E2E.freePort())",
                                                     "--admin", "127.0.0.1:\(admin)", "--store-poll-interval", "0.5", "--cache", "\(work)/cache-\(name)"],
                                         log: "\(work)/\(name).log")
            return (child, admin)
        }
        func served(_ admin: Int) -> String? {
            guard let body = E2E.get(admin, "/debug/proxies"), let data = body.data(using: .utf8),
                  let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return json["served_version"] as? String
        }
        replicas = [try startReplica("a"), try startReplica("b")]
        let store = try openSnapshotStore(url)
        let v1 = try XCTUnwrap(try store.currentVersion())
        for r in replicas { E2E.waitUntil(30, "replica serves v1") { served(r.admin) == v1 } }
        // A publish reaches every replica (NOTIFY; the poll is the backstop).
        XCTAssertEqual(try meshctl(["snapshot", "publish-fixture", "--store", url, "--services", "4", "--seed", "2"]).status, 0)
        let v2 = try XCTUnwrap(try store.currentVersion())
        for r in replicas { E2E.waitUntil(15, "replica serves v2") { served(r.admin) == v2 } }
        // The database goes away: replicas keep serving v2 and say the store is unavailable.
        server.stop()
        for r in replicas {
            E2E.waitUntil(15, "replica reports the outage", detail: { String(r.process.output.suffix(4000)) }) { (E2E.get(r.admin, "/readyz") ?? "").contains("store unavailable") }
            XCTAssertEqual(served(r.admin), v2)
            XCTAssertTrue((E2E.get(r.admin, "/metrics") ?? "").contains("meshctl_store_reachable 0"))
        }
        // A replica started now serves the cache another replica's copy would give it: here its own, from a first run.
        // The cache is written in the background after a version is served: copy it once it holds v2.
        E2E.waitUntil(15, "replica a's cache holds v2") { (try? SnapshotStore(directory: "\(work)/cache-a").currentVersion()) == v2 }
        try FileManager.default.copyItem(atPath: "\(work)/cache-a", toPath: "\(work)/cache-c")
        let late = try startReplica("c")
        replicas.append(late)
        E2E.waitUntil(15, "late replica serves its cache") { served(late.admin) == v2 }
        XCTAssertTrue(late.process.output.contains("store.starting-from-cache"), late.process.output)
        // Down for some seconds: every replica still serves.
        Thread.sleep(forTimeInterval: 3)
        for r in replicas { XCTAssertEqual(served(r.admin), v2) }
        // The database returns; a publish made after reaches every replica, none restarted.
        try server.start()
        XCTAssertEqual(try meshctl(["snapshot", "publish-fixture", "--store", url, "--services", "4", "--seed", "3"]).status, 0)
        let v3 = try XCTUnwrap(try store.currentVersion())
        for r in replicas {
            E2E.waitUntil(30, "replica serves v3 after the outage", detail: { String(r.process.output.suffix(4000)) }) { served(r.admin) == v3 }
            XCTAssertTrue(r.process.process.isRunning)
        }
        XCTAssertTrue(replicas[0].process.output.contains("store.reachable"), replicas[0].process.output)
        XCTAssertFalse(replicas.map(\.process.output).joined().contains("correct-horse"))
    }
}

final class PostgresMaintenanceTests: XCTestCase {
    typealias S = StoreTestSupport

    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    /// The maintenance lock (gc, history trimming, expiring fleet rows): one session holds it at a time and keeps it
    /// across rounds; while another session holds it — another replica — a replica is not the leader; once that
    /// session ends, as a killed replica's does, the next try takes it.
    func testMaintenanceLockIsHeldByOneSessionAtATimeAndFreedWhenItsHolderDies() throws {
        let (server, url) = try SharedPostgres.database()
        guard case .postgres(let parsed) = try StoreArgument(url) else { return XCTFail("not a PostgreSQL URL") }
        let database = String(url.split(separator: "/").last!)
        let first = try PostgresMaintenanceLock(url: parsed), second = try PostgresMaintenanceLock(url: parsed)
        XCTAssertTrue(try first.acquireOrKeep())
        XCTAssertFalse(try second.acquireOrKeep(), "another replica leads")
        XCTAssertTrue(try first.acquireOrKeep(), "the leader keeps the lock across rounds")
        XCTAssertFalse(try second.acquireOrKeep())
        first.release()
        E2E.waitUntil(10, "the second replica takes the released lock") { (try? second.acquireOrKeep()) == true }
        second.release()

        // A holder in another process that dies (its session ends) frees the lock for a waiting replica.
        let other = try server.sqlSession("SELECT pg_advisory_lock(\(PostgresMaintenanceLock.key)); SELECT pg_sleep(30)", database: database)
        defer { other.stop() }
        E2E.waitUntil(10, "the other session holds the lock") {
            (try? server.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted", database: database)) == "1"
        }
        let waiting = try PostgresMaintenanceLock(url: parsed)
        XCTAssertFalse(try waiting.acquireOrKeep())
        _ = try server.sql("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted", database: database)
        E2E.waitUntil(10, "the lock is free once its holder's session is gone") { (try? waiting.acquireOrKeep()) == true }
        XCTAssertTrue(waiting.held)
    }

    /// History trimming keeps the newest N lines.
    func testHistoryTrimmingKeepsTheNewestLines() throws {
        let (_, url) = try SharedPostgres.database()
        guard case .postgres(let parsed) = try StoreArgument(url) else { return XCTFail("not a PostgreSQL URL") }
        let store = try PostgresSnapshotStore(url: parsed, createIfMissing: true)
        for n in 1...5 { _ = try store.publish(S.synthetic(services: 2, seed: UInt64(n))) }
        let newest = try store.history().suffix(2).map(\.version)
        XCTAssertEqual(try store.trimHistory(keep: 2), 3)
        XCTAssertEqual(try store.history().map(\.version), newest)
        XCTAssertEqual(try store.trimHistory(keep: 2), 0)
        XCTAssertThrowsError(try store.trimHistory(keep: 0))
    }

    /// A store of schema version 1 (as session 4's meshctl wrote it) is migrated to version 2 on first use: the
    /// fleet tables appear, its versions and history stay, and the fleet can be written.
    func testSchemaVersion1StoreIsMigratedToVersion2() throws {
        let (server, url) = try SharedPostgres.database()
        guard case .postgres(let parsed) = try StoreArgument(url) else { return XCTFail("not a PostgreSQL URL") }
        let database = String(url.split(separator: "/").last!)
        _ = try PostgresSnapshotStore(url: parsed, createIfMissing: true).publish(S.synthetic(services: 2, seed: 1))
        // Back to exactly what schema 1 created: its tables only (every table a later schema added is dropped, whoever
        // added it), version 1.
        try server.sql("""
            DO $$ DECLARE t text; BEGIN
              FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'meshctl\\_%'
                         AND tablename NOT IN ('meshctl_schema', 'meshctl_objects', 'meshctl_versions', 'meshctl_live', 'meshctl_history')
              LOOP EXECUTE 'DROP TABLE ' || quote_ident(t) || ' CASCADE'; END LOOP;
            END $$;
            UPDATE meshctl_schema SET version = 1
            """, database: database)
        XCTAssertEqual(try server.sql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'meshctl\\_%'", database: database), "5", "schema 1's five tables")
        let store = try PostgresSnapshotStore(url: parsed)
        XCTAssertEqual(try store.list().count, 1, "the version-1 store reads after migration")
        XCTAssertEqual(try server.sql("SELECT version FROM meshctl_schema", database: database), "\(PostgresSnapshotStore.schemaVersion)")
        XCTAssertEqual(try server.sql("SELECT count(*) FROM pg_tables WHERE tablename IN ('meshctl_replicas', 'meshctl_proxy_status')", database: database), "2")
        let beat = FleetReplicaBeat(replicaID: "r1", xdsAddress: "127.0.0.1:1", adminAddress: nil, startedAt: Date(), servingVersion: nil, maintenanceLeader: false)
        let written = try store.writeFleet(FleetBatch(replica: beat, upserts: [FleetProxyWrite(group: "g", nodeID: "n", nacked: false, recordJSON: "{}")],
                                                      removed: [], replaceAll: true))
        XCTAssertEqual(written.upserted, 1)
        let fleet = try store.readFleet()
        XCTAssertEqual(fleet.replicas.map(\.replicaID), ["r1"])
        XCTAssertEqual(fleet.proxies.map(\.nodeID), ["n"])
        // The next batch removes the proxy; replaceAll with nothing kept empties the replica's rows.
        XCTAssertEqual(try store.writeFleet(FleetBatch(replica: beat, upserts: [], removed: [("g", "n")], replaceAll: false)).deleted, 1)
        XCTAssertEqual(try store.readFleet().proxies.count, 0)
        XCTAssertEqual(try store.expireFleet(olderThanSeconds: 3600).replicas, 0, "a fresh heartbeat is not expired")
        Thread.sleep(forTimeInterval: 1.2)
        XCTAssertEqual(try store.expireFleet(olderThanSeconds: 1).replicas, 1)
    }
}

final class PostgresPublishKillTests: XCTestCase {
    typealias S = StoreTestSupport

    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    /// kill -9 of a publishing meshctl at random moments: the live version is the old or the new one, the store
    /// verifies clean, and a publish afterwards works.
    func testKillDuringPublishLeavesTheOldOrTheNewVersion() throws {
        guard FileManager.default.isExecutableFile(atPath: S.meshctl) else { throw TestFailure("meshctl is not built at \(S.meshctl)") }
        let (_, url) = try SharedPostgres.database()
        // The kills land inside the measured duration of a whole publish (process start included), so they interrupt
        // publishes on a fast idle machine as on a loaded one: a fixed window missed every publish on an idle machine.
        let started = Date()
        XCTAssertEqual(try ProcessRunner.run(S.meshctl, ["snapshot", "publish-fixture", "--store", url, "--services", "1500", "--seed", "1"], timeout: 120).status, 0)
        let publishMicroseconds = max(20_000, Date().timeIntervalSince(started) * 1_000_000)
        let store = try openSnapshotStore(url)
        var generator = SystemRandomNumberGenerator()
        var killed = 0
        for round in 0..<8 {
            let old = try XCTUnwrap(try store.currentVersion())
            let seed = 100 + round
            let new = S.synthetic(services: 1500, seed: UInt64(seed)).metadata.version
            let process = Process()
            process.executableURL = URL(fileURLWithPath: S.meshctl)
            process.arguments = ["snapshot", "publish-fixture", "--store", url, "--services", "1500", "--seed", String(seed)]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            usleep(UInt32(Double.random(in: 0.05...0.85, using: &generator) * publishMicroseconds))
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killed += 1
            }
            process.waitUntilExit()
            let live = try XCTUnwrap(try store.currentVersion())
            XCTAssertTrue(live == old || live == new, "round \(round): live \(live) is neither the old nor the new version")
            XCTAssertEqual(try store.load(version: "current", check: .hashes).metadata.version, live)
            let report = store.verify()
            XCTAssertTrue(report.isHealthy, "round \(round): \(report.problems)")
        }
        XCTAssertGreaterThan(killed, 0, "no publish was interrupted; the timings need a larger snapshot")
        let after = try ProcessRunner.run(S.meshctl, ["snapshot", "publish-fixture", "--store", url, "--services", "1500", "--seed", "999"], timeout: 120)
        XCTAssertEqual(after.status, 0, after.stderrText)
    }
}
