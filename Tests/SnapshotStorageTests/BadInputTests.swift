// Bad input and bad disks: each case gives a clear error and leaves the live version untouched.
import Foundation
import MeshFixtures
import MeshTestSupport
@testable import SnapshotStorage
import XCTest

final class BadInputTests: XCTestCase {
    typealias S = StoreTestSupport

    let a = StoreTestSupport.snapshot([StoreTestSupport.cluster("a", "one"), StoreTestSupport.endpoint("a", "ep")], message: "A")
    let b = StoreTestSupport.snapshot([StoreTestSupport.cluster("a", "two"), StoreTestSupport.endpoint("a", "ep")], message: "B")

    func assertLive(_ store: SnapshotStore, _ snapshot: Snapshot, _ label: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(try store.currentVersion(), snapshot.metadata.version, label, file: file, line: line)
        XCTAssertNoThrow(try store.load(version: "current", check: .hashes), label, file: file, line: line)
    }

    func hashOf(_ snapshot: Snapshot, _ name: String = "a") -> String {
        snapshot.groups["web"]!.resources[SyntheticSnapshot.clusterType]![name]!.hash
    }

    func testMissingOrForeignStoreDirectories() throws {
        let missing = TemporaryStore("missing", create: false)
        let file = TemporaryStore("file", create: false)
        S.write("not a directory", to: file.path)
        let foreign = TemporaryStore("foreign")
        S.write("precious", to: foreign.path + "/notes.txt")
        let cases: [(String, String, (SnapshotStore) throws -> Void, (SnapshotStoreError) -> Bool)] = [
            ("list in missing directory", missing.path, { _ = try $0.list() }, { if case .storeMissing = $0 { return true }; return false }),
            ("load from missing directory", missing.path, { _ = try $0.load(version: "current") }, { if case .storeMissing = $0 { return true }; return false }),
            ("publish without creation", missing.path, { _ = try $0.publish(self.a) }, { if case .storeMissing = $0 { return true }; return false }),
            ("store path is a file", file.path, { _ = try $0.list() }, { if case .notAStore = $0 { return true }; return false }),
            ("publish into a file", file.path, { _ = try $0.publish(self.a) }, { if case .notAStore = $0 { return true }; return false }),
            ("publish into a non-empty foreign directory", foreign.path, { _ = try $0.publish(self.a) }, { if case .notAStore = $0 { return true }; return false }),
        ]
        for (label, path, operation, expected) in cases {
            let store = SnapshotStore(directory: path, createIfMissing: false)
            XCTAssertThrowsError(try operation(store), label) { error in
                guard let e = error as? SnapshotStoreError else { return XCTFail("\(label): \(error)") }
                XCTAssertTrue(expected(e), "\(label): \(e)")
                XCTAssertTrue(e.description.contains(path), "\(label): message names the path: \(e)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing.path), "nothing was created")
        XCTAssertEqual(S.files(in: foreign.path), ["notes.txt"], "a foreign directory is left alone")
        XCTAssertFalse(SnapshotStore(directory: missing.path).verify().isHealthy)
    }

    func testPublishCreatesAMissingStoreWhenAllowed() throws {
        let dir = TemporaryStore("create", create: false)
        let store = SnapshotStore(directory: dir.path + "/nested/store/", createIfMissing: true)
        _ = try store.publish(a)
        assertLive(store, a, "created store")
        try? FileManager.default.removeItem(atPath: dir.path)
    }

    func testARelativeStorePathIsCreatedUnderTheWorkingDirectory() throws {
        let dir = TemporaryStore("relative", create: false)
        try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir.path) }
        let previous = FileManager.default.currentDirectoryPath
        XCTAssertTrue(FileManager.default.changeCurrentDirectoryPath(dir.path))
        defer { _ = FileManager.default.changeCurrentDirectoryPath(previous) }
        let store = SnapshotStore(directory: "relative/store", createIfMissing: true)
        _ = try store.publish(a)
        assertLive(store, a, "relative store")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path + "/relative/store/FORMAT"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: "/relative"), "nothing was created at the file system root")
    }

    func testUnwritableStoreFailsClearlyAndKeepsTheLiveVersion() throws {
        let dir = TemporaryStore("unwritable")
        _ = try dir.store().publish(a)
        // Tests run as root, where chmod does not stop writes: a read-only file system is injected instead.
        for code in [EROFS, EACCES] {
            let store = dir.store(fileSystem: FaultInjectingFileSystem(fault: .failFrom(errno: code, step: 1)))
            XCTAssertThrowsError(try store.publish(b)) { error in
                guard case .unwritable(_, let detail)? = error as? SnapshotStoreError else { return XCTFail("\(error)") }
                XCTAssertFalse(detail.isEmpty)
            }
            assertLive(dir.store(), a, "errno \(code)")
        }
    }

    func testDiskFullAtAnyStepKeepsTheLiveVersionAndTheNextPublishWorks() throws {
        var step = 1
        var sawFailure = false
        while true {
            let dir = TemporaryStore("enospc")
            _ = try dir.store().publish(a)
            let store = dir.store(fileSystem: FaultInjectingFileSystem(fault: .fail(errno: ENOSPC, atStep: step)))
            do {
                _ = try store.publish(b)
            } catch {
                sawFailure = true
                guard case .diskFull = error else { XCTFail("step \(step): \(error)"); break }
                XCTAssertTrue(error.description.contains("disk full"), "step \(step)")
                assertLive(dir.store(), a, "ENOSPC at step \(step)")
                let report = dir.store().verify()
                XCTAssertTrue(report.isHealthy, "step \(step): \(report.problems)")
                XCTAssertEqual(S.files(in: dir.path + "/tmp"), [], "step \(step): verify cleans temporary files")
                XCTAssertEqual(try dir.store().publish(b).version, b.metadata.version, "step \(step)")
                assertLive(dir.store(), b, "publish after ENOSPC at step \(step)")
                step += 1
                XCTAssertLessThan(step, 200, "a publish of two resources should not take 200 steps")
                if step >= 200 { break }
                continue
            }
            // The fault came after the last step that can fail the publish: it is live.
            assertLive(dir.store(), b, "fault at step \(step) after commit")
            break
        }
        XCTAssertTrue(sawFailure)
        XCTAssertGreaterThan(step, 10, "ENOSPC was injected at every step up to the commit")
    }

    func testDamagedObjectsAreRefusedReportedAndRepairable() throws {
        enum Damage { case truncate, sameSizeGarbage, delete }
        let cases: [(String, Damage, (Snapshot) -> String, LoadCheck?)] = [
            // (label, damage, which object, the cheapest load check that notices; nil = only verify notices)
            ("truncated resource body", .truncate, { s in s.groups["web"]!.resources[SyntheticSnapshot.clusterType]!["a"]!.hash }, .sizes),
            ("deleted resource body", .delete, { s in s.groups["web"]!.resources[SyntheticSnapshot.clusterType]!["a"]!.hash }, .sizes),
            ("resource body altered, same size", .sameSizeGarbage, { s in s.groups["web"]!.resources[SyntheticSnapshot.clusterType]!["a"]!.hash }, .hashes),
            ("index object altered, same size", .sameSizeGarbage, { s in self.indexHash(s) }, .sizes),
        ]
        for (label, damage, object, noticedBy) in cases {
            let dir = TemporaryStore("damage")
            let store = dir.store()
            _ = try store.publish(a)
            let path = store.objectPath(object(a))
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            switch damage {
            case .truncate: try original.prefix(original.count / 2).write(to: URL(fileURLWithPath: path))
            case .sameSizeGarbage: try Data(repeating: 0x41, count: original.count).write(to: URL(fileURLWithPath: path))
            case .delete: try FileManager.default.removeItem(atPath: path)
            }
            if noticedBy == .hashes { XCTAssertNoThrow(try store.load(version: "current", check: .sizes), "\(label): sizes-only load is documented not to notice") }
            XCTAssertThrowsError(try store.load(version: "current", check: noticedBy ?? .hashes), label) { error in
                switch error as? SnapshotStoreError {
                case .objectCorrupt(let hash, _, _)?, .objectMissing(let hash, _)?: XCTAssertEqual(hash, object(a), label)
                default: XCTFail("\(label): \(error)")
                }
                XCTAssertTrue("\(error)".contains("meshctl snapshot verify"), label)
            }
            XCTAssertEqual(try store.currentVersion(), a.metadata.version, "\(label): current untouched")
            let report = store.verify()
            XCTAssertFalse(report.isHealthy, label)
            XCTAssertTrue(report.problems.contains { if case .current = $0 { return true }; return false }, "\(label): \(report.problems)")
            // Publishing the same content rewrites what verify removed.
            XCTAssertEqual(try store.publish(a).version, a.metadata.version, label)
            assertLive(store, a, "\(label) after repair")
            XCTAssertTrue(store.verify().isHealthy, label)
        }
    }

    /// The cluster type's index object (types sort Cluster before ClusterLoadAssignment).
    func indexHash(_ s: Snapshot) -> String {
        try! SnapshotStore(directory: "/nonexistent").planObjects(s).indexes[0].hash
    }

    func testBrokenPointersAndManifests() throws {
        let cases: [(String, (TemporaryStore, SnapshotStore) throws -> Void, (SnapshotStoreError) -> Bool)] = [
            ("current names a missing version", { dir, _ in S.write(String(repeating: "ab", count: 32) + "\n", to: dir.path + "/current") },
             { if case .currentVersionMissing = $0 { return true }; return false }),
            ("current holds garbage", { dir, _ in S.write("garbage", to: dir.path + "/current") },
             { if case .currentPointerCorrupt = $0 { return true }; return false }),
            ("current is empty", { dir, _ in S.write("", to: dir.path + "/current") },
             { if case .currentPointerCorrupt = $0 { return true }; return false }),
            ("manifest damaged", { dir, _ in S.write("{\"format\": 1", to: dir.path + "/versions/" + self.a.metadata.version) },
             { if case .manifestCorrupt = $0 { return true }; return false }),
        ]
        for (label, breakIt, expected) in cases {
            let dir = TemporaryStore("pointer")
            let store = dir.store()
            _ = try store.publish(a)
            try breakIt(dir, store)
            XCTAssertThrowsError(try store.current(), label) { error in
                guard let e = error as? SnapshotStoreError else { return XCTFail("\(label): \(error)") }
                XCTAssertTrue(expected(e), "\(label): \(e)")
            }
            XCTAssertFalse(store.verify().isHealthy, label)
            // A publish gives the store a good live version again.
            _ = try store.publish(b)
            assertLive(store, b, "\(label): publish repairs")
        }
    }

    func testRollbackToADamagedVersionIsRefused() throws {
        let dir = TemporaryStore("rollback-damaged")
        let store = dir.store()
        _ = try store.publish(a)
        _ = try store.publish(b)
        let path = store.objectPath(hashOf(a))
        let size = try Data(contentsOf: URL(fileURLWithPath: path)).count
        try Data(repeating: 0x42, count: size).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try store.rollback(to: a.metadata.version, reason: "test", author: "t")) { error in
            guard case .objectCorrupt? = error as? SnapshotStoreError else { return XCTFail("\(error)") }
        }
        assertLive(store, b, "rollback refused")
        XCTAssertNotEqual(try store.history().last?.kind, .rollback)
    }

    func testASecondPublisherWaitsThenFailsNamingTheHolder() throws {
        let dir = TemporaryStore("locked")
        _ = try dir.store().publish(a)
        var holder: StoreLock? = try StoreLock(path: dir.path + "/lock", timeout: 1, purpose: "test holder")
        XCTAssertNotNil(holder)
        let store = dir.store(lockTimeout: 0.2)
        XCTAssertThrowsError(try store.publish(b)) { error in
            guard case .locked(_, let who, let waited)? = error as? SnapshotStoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(who.contains("pid \(getpid())") && who.contains("test holder"), who)
            XCTAssertGreaterThanOrEqual(waited, 0.2)
            XCTAssertTrue("\(error)".contains("Wait for it to finish and retry"))
        }
        assertLive(dir.store(), a, "while locked")
        holder = nil
        XCTAssertEqual(try store.publish(b).version, b.metadata.version)
    }

    func testConcurrentPublishersAreSerialized() throws {
        let dir = TemporaryStore("concurrent")
        let snapshots = (0..<6).map { S.synthetic(services: 200, seed: UInt64($0 + 1)) }
        let errors = ErrorLog()
        let path = dir.path
        DispatchQueue.concurrentPerform(iterations: snapshots.count) { i in
            do {
                _ = try SnapshotStore(directory: path).publish(snapshots[i])
            } catch {
                errors.add("\(error)")
            }
        }
        XCTAssertEqual(errors.all, [])
        let live = try XCTUnwrap(try dir.store().currentVersion())
        XCTAssertTrue(snapshots.map(\.metadata.version).contains(live))
        XCTAssertEqual(try dir.store().list().count, snapshots.count)
        let report = dir.store().verify()
        XCTAssertTrue(report.isHealthy, "\(report.problems)")
        XCTAssertEqual(report.debrisRemoved, [])
    }

    func testHistoryCutShortByACrashStaysReadable() throws {
        let dir = TemporaryStore("history")
        let store = dir.store()
        _ = try store.publish(a)
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: dir.path + "/history.jsonl"))
        handle.seekToEndOfFile()
        handle.write(Data("\n{\"kind\":\"publ".utf8))
        try handle.close()
        _ = try store.publish(b)
        XCTAssertEqual(try store.history().map(\.version), [a.metadata.version, b.metadata.version])
    }
}

final class ErrorLog: @unchecked Sendable {
    private let lock = NSLock()
    private var errors: [String] = []
    func add(_ e: String) { lock.withLock { errors.append(e) } }
    var all: [String] { lock.withLock { errors } }
}
