// One set of store assertions, run against both backends: the directory store and the PostgreSQL store
// (a real server initdb'd for the test class). Each test class declares thin forwarders (XCTest on Linux
// discovers only methods a class declares itself).
import Foundation
import MeshFixtures
import MeshTestSupport
import PostgresStorage
import SnapshotStorage
import XCTest

/// A store under test and the argument that names it on the command line.
struct StoreUnderTest {
    let store: any SnapshotStoring
    let argument: String
}

struct StoreConformance {
    typealias S = StoreTestSupport
    let make: () throws -> StoreUnderTest

    /// Version n, made n seconds after a fixed time, so "newest" is well defined for list and gc.
    func v(_ n: Int, group: String = "web") -> Snapshot {
        try! Snapshot.make(groups: [ProxyGroupResources(group: group, resources: [S.cluster("api", "api-\(n)"), S.cluster("db", "db-1"), S.endpoint("api", "ep-\(n)")])],
                           sourceRevision: "r\(n)", author: "tester", message: "change \(n)", compilerVersion: "test",
                           createdAt: Date(timeIntervalSince1970: 1_800_000_000 + Double(n)))
    }

    func publishAndUnchanged() throws {
        let store = try make().store
        XCTAssertNil(try store.currentVersion())
        XCTAssertNil(try store.current())
        XCTAssertEqual(try store.list(), [])
        let s1 = v(1)
        guard case .published(let version, let bytes) = try store.publish(s1) else { return XCTFail("first publish must publish") }
        XCTAssertEqual(version, s1.metadata.version)
        XCTAssertGreaterThan(bytes, 0)
        XCTAssertEqual(try store.currentVersion(), version)
        XCTAssertEqual(try store.publish(s1), .unchanged(version: version))
        let loaded = try XCTUnwrap(try store.current())
        XCTAssertEqual(loaded.metadata, s1.metadata)
        XCTAssertEqual(loaded.groups["web"]?.resources, s1.groups["web"]?.resources)
        XCTAssertEqual(Snapshot.contentVersion(loaded.groups), version)
        XCTAssertEqual(try store.load(version: String(version.prefix(8)), check: .hashes).metadata.version, version)
        XCTAssertEqual(try store.resolve("current"), version)
        XCTAssertThrowsError(try store.load(version: "ffff")) { error in
            XCTAssertEqual(error as? SnapshotStoreError, .versionNotFound(reference: "ffff"))
        }
        // A second version shares the unchanged objects: it writes less than the first.
        guard case .published(_, let second) = try store.publish(v(2)) else { return XCTFail("second publish must publish") }
        XCTAssertLessThan(second, bytes + 4096)
    }

    func historyAndList() throws {
        let store = try make().store
        let s1 = v(1), s2 = v(2)
        _ = try store.publish(s1)
        _ = try store.publish(s2)
        let list = try store.list()
        XCTAssertEqual(list.map(\.metadata.version).sorted(), [s1.metadata.version, s2.metadata.version].sorted())
        XCTAssertEqual(list.first(where: \.isCurrent)?.metadata.version, s2.metadata.version)
        XCTAssertEqual(list.first { $0.metadata.version == s1.metadata.version }?.resourceCount, 3)
        let history = try store.history()
        XCTAssertEqual(history.map(\.kind), [.publish, .publish])
        XCTAssertEqual(history.map(\.version), [s1.metadata.version, s2.metadata.version])
        XCTAssertEqual(history[1].previous, s1.metadata.version)
        XCTAssertEqual(history[1].sourceRevision, "r2")
        XCTAssertEqual(history[1].author, "tester")
    }

    func rollback() throws {
        let store = try make().store
        let s1 = v(1), s2 = v(2)
        _ = try store.publish(s1)
        _ = try store.publish(s2)
        XCTAssertEqual(try store.rollback(to: String(s1.metadata.version.prefix(10)), reason: "bad change", author: "oncall"),
                       .rolledBack(from: s2.metadata.version, to: s1.metadata.version))
        XCTAssertEqual(try store.currentVersion(), s1.metadata.version)
        XCTAssertEqual(try store.rollback(to: s1.metadata.version, reason: nil, author: nil), .alreadyCurrent(version: s1.metadata.version))
        let last = try XCTUnwrap(try store.history().last)
        XCTAssertEqual(last.kind, .rollback)
        XCTAssertEqual(last.author, "oncall")
        XCTAssertEqual(last.reason, "bad change")
        XCTAssertThrowsError(try store.rollback(to: "abcdef", reason: nil, author: nil))
        XCTAssertEqual(try store.currentVersion(), s1.metadata.version, "a failed rollback leaves the live version")
        // Publishing content identical to a stored version makes it live again.
        guard case .published(let again, _) = try store.publish(s2) else { return XCTFail("republish must publish") }
        XCTAssertEqual(again, s2.metadata.version)
    }

    func diff() throws {
        let store = try make().store
        let s1 = v(1), s2 = v(2, group: "web")
        _ = try store.publish(s1)
        _ = try store.publish(s2)
        let d = SnapshotDiff(from: try store.load(version: s1.metadata.version), to: try store.load(version: "current"))
        let text = d.render(fieldDiffs: false) { String(decoding: $0.body, as: UTF8.self) }
        XCTAssertTrue(text.contains("api"), text)
        XCTAssertFalse(text.contains("db"), "unchanged resources are not listed:\n\(text)")
    }

    func gc() throws {
        let store = try make().store
        let versions = (1...4).map { v($0) }
        for s in versions { _ = try store.publish(s) }
        _ = try store.rollback(to: versions[0].metadata.version, reason: nil, author: nil)
        let report = try store.gc(keep: 1)
        // Kept: the newest (v4) and the live one (v1).
        XCTAssertEqual(Set(report.keptVersions), [versions[0].metadata.version, versions[3].metadata.version])
        XCTAssertEqual(Set(report.removedVersions), [versions[1].metadata.version, versions[2].metadata.version])
        XCTAssertGreaterThan(report.removedObjects, 0)
        XCTAssertThrowsError(try store.load(version: versions[1].metadata.version)) { error in
            guard case .versionGarbageCollected? = error as? SnapshotStoreError else { return XCTFail("\(error)") }
        }
        XCTAssertEqual(try store.load(version: versions[3].metadata.version, check: .hashes).metadata.version, versions[3].metadata.version)
        XCTAssertEqual(try store.currentVersion(), versions[0].metadata.version)
        XCTAssertTrue(store.verify().isHealthy)
        XCTAssertEqual(try store.history().filter { $0.kind == .gc }.count, 2)
    }

    func verify() throws {
        let store = try make().store
        _ = try store.publish(v(1))
        _ = try store.publish(S.synthetic(services: 30))
        let report = store.verify()
        XCTAssertTrue(report.isHealthy, "\(report.problems)")
        XCTAssertEqual(report.versionsChecked, 2)
        XCTAssertGreaterThan(report.objectsChecked, 60)
        XCTAssertEqual(report.currentVersion, S.synthetic(services: 30).metadata.version)
    }

    /// Two processes publish 50 different snapshots each at the same time. Every publish either landed
    /// (it is in the history) or failed with a clear message; the live pointer names a stored version.
    func concurrentPublishers() throws {
        let target = try make()
        guard FileManager.default.isExecutableFile(atPath: S.meshctl) else { throw TestFailure("meshctl is not built at \(S.meshctl)") }
        let outputs = ParallelOutputs()
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let result = Result { try ProcessRunner.run(S.meshctl, ["snapshot", "publish-fixture", "--store", target.argument, "--services", "3",
                                                                     "--seed", String(1000 * (i + 1)), "--repeat", "50"], timeout: 300) }
            outputs.set(i, result)
        }
        var landed: [String] = []
        var failed: [String] = []
        for i in 0..<2 {
            let output = try outputs.get(i).get()
            for line in output.stdoutText.split(separator: "\n").map(String.init) {
                if line.hasPrefix("published ") { landed.append(String(line.dropFirst("published ".count))) }
                else if line.hasPrefix("failed: ") { failed.append(line) }
                else { XCTFail("unexpected output line: \(line)") }
            }
        }
        XCTAssertEqual(landed.count + failed.count, 100)
        for line in failed { XCTAssertTrue(line.contains("publish again") || line.contains("locked"), "a failure must say what to do: \(line)") }
        let history = try target.store.history().filter { $0.kind == .publish }.map(\.version)
        XCTAssertEqual(Set(landed), Set(history), "every landed publish is in the history, and nothing else")
        let current = try XCTUnwrap(try target.store.currentVersion())
        XCTAssertTrue(landed.contains(current))
        XCTAssertEqual(try target.store.load(version: "current", check: .hashes).metadata.version, current)
        XCTAssertTrue(target.store.verify().isHealthy)
        // The history is one chain: each publish's `previous` is the version live just before it.
        let events = try target.store.history()
        for (a, b) in zip(events, events.dropFirst()) { XCTAssertEqual(b.previous, a.version) }
    }
}

final class ParallelOutputs: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: Result<ProcessOutput, any Error>] = [:]
    func set(_ i: Int, _ value: Result<ProcessOutput, any Error>) { lock.withLock { values[i] = value } }
    func get(_ i: Int) -> Result<ProcessOutput, any Error> { lock.withLock { values[i]! } }
}

final class DirectoryStoreConformanceTests: XCTestCase {
    var stores: [TemporaryStore] = []

    var conformance: StoreConformance {
        StoreConformance { [unowned self] in
            let dir = TemporaryStore("conformance")
            stores.append(dir)
            return StoreUnderTest(store: dir.store(), argument: dir.path)
        }
    }

    func testPublishAndUnchanged() throws { try conformance.publishAndUnchanged() }
    func testHistoryAndList() throws { try conformance.historyAndList() }
    func testRollback() throws { try conformance.rollback() }
    func testDiff() throws { try conformance.diff() }
    func testGC() throws { try conformance.gc() }
    func testVerify() throws { try conformance.verify() }
    func testConcurrentPublishers() throws { try conformance.concurrentPublishers() }
    func testRolloutState() throws { try conformance.rolloutState() }
}

/// The server every PostgreSQL test class shares; each test gets its own database.
enum SharedPostgres {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var server: TestPostgres?
    nonisolated(unsafe) private static var counter = 0

    static func database() throws -> (server: TestPostgres, url: String) {
        try lock.withLock {
            if server == nil { server = try TestPostgres() }
            counter += 1
            let name = "t\(getpid())_\(counter)"
            return (server!, try server!.createDatabase(name))
        }
    }

    static var current: TestPostgres? { lock.withLock { server } }

    /// Stops and removes the server (each test class that used it calls this from `class tearDown`).
    static func shutdown() {
        let stopping = lock.withLock { () -> TestPostgres? in defer { server = nil }; return server }
        stopping?.stop()
    }
}

final class PostgresStoreConformanceTests: XCTestCase {
    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    var conformance: StoreConformance {
        StoreConformance {
            let (_, url) = try SharedPostgres.database()
            return StoreUnderTest(store: try openPublishTarget(url), argument: url)
        }
    }

    func testPublishAndUnchanged() throws { try conformance.publishAndUnchanged() }
    func testHistoryAndList() throws { try conformance.historyAndList() }
    func testRollback() throws { try conformance.rollback() }
    func testDiff() throws { try conformance.diff() }
    func testGC() throws { try conformance.gc() }
    func testVerify() throws { try conformance.verify() }
    func testConcurrentPublishers() throws { try conformance.concurrentPublishers() }
    func testRolloutState() throws { try conformance.rolloutState() }
}
