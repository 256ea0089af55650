// Versions as operators handle them: resolving references, listing, rolling back, gc, history.
import Foundation
import MeshFixtures
import MeshTestSupport
@testable import SnapshotStorage
import XCTest

final class VersionTests: XCTestCase {
    typealias S = StoreTestSupport

    /// Publishes three versions a, b, c (c live).
    func threeVersions(_ dir: TemporaryStore) throws -> [Snapshot] {
        let store = dir.store()
        var out: [Snapshot] = []
        for (i, body) in ["1", "2", "3"].enumerated() {
            let s = try Snapshot.make(groups: [ProxyGroupResources(group: "web", resources: [S.cluster("a", body), S.cluster("shared", "same")])],
                                      sourceRevision: "rev\(i)", message: "v\(i)", compilerVersion: "t",
                                      createdAt: Date(timeIntervalSince1970: 1_700_000_000 + Double(i)))
            _ = try store.publish(s)
            out.append(s)
        }
        return out
    }

    func testReferencesResolve() throws {
        let dir = TemporaryStore("resolve")
        let v = try threeVersions(dir).map(\.metadata.version)
        let store = dir.store()
        // A prefix shared by two versions, if these hashes have one; otherwise the empty-ish case is covered by "".
        let cases: [(String, String, Result<String, SnapshotStoreError>)] = [
            ("current", "current", .success(v[2])),
            ("full id", v[0], .success(v[0])),
            ("unique prefix", String(v[1].prefix(10)), .success(v[1])),
            ("upper-case prefix", String(v[1].prefix(10)).uppercased(), .success(v[1])),
            ("unknown", "ffffffffffffffff0000", .failure(.versionNotFound(reference: "ffffffffffffffff0000"))),
            ("not hex", "release-1", .failure(.versionNotFound(reference: "release-1"))),
            ("empty", "", .failure(.versionNotFound(reference: ""))),
        ]
        for (label, reference, expected) in cases {
            let result = Result { () throws(SnapshotStoreError) in try store.resolve(reference) }
            switch (result, expected) {
            case (.success(let a), .success(let b)): XCTAssertEqual(a, b, label)
            case (.failure(let a), .failure(let b)): XCTAssertEqual(a, b, label)
            default: XCTFail("\(label): got \(result), expected \(expected)")
            }
        }
    }

    func testAmbiguousPrefixNamesTheCandidates() throws {
        let dir = TemporaryStore("ambiguous")
        let store = dir.store()
        // Publish until two versions share a first hex digit (at most 17 publishes by pigeonhole).
        var byDigit: [Character: String] = [:]
        var shared: Character?
        for i in 0..<17 where shared == nil {
            let s = S.snapshot([S.cluster("a", "body \(i)")])
            _ = try store.publish(s)
            let d = s.metadata.version.first!
            if byDigit[d] != nil { shared = d } else { byDigit[d] = s.metadata.version }
        }
        let digit = try XCTUnwrap(shared)
        XCTAssertThrowsError(try store.resolve(String(digit))) { error in
            guard case .ambiguousVersion(let prefix, let matches) = error as? SnapshotStoreError else { return XCTFail("\(error)") }
            XCTAssertEqual(prefix, String(digit))
            XCTAssertGreaterThanOrEqual(matches.count, 2)
            XCTAssertTrue((error as! SnapshotStoreError).description.contains("give more characters"))
        }
    }

    func testListIsNewestFirstAndMarksTheLiveVersion() throws {
        let dir = TemporaryStore("list")
        let v = try threeVersions(dir)
        let list = try dir.store().list()
        XCTAssertEqual(list.map(\.metadata.version), v.reversed().map(\.metadata.version))
        XCTAssertEqual(list.map(\.isCurrent), [true, false, false])
        XCTAssertEqual(list.map(\.resourceCount), [2, 2, 2])
        XCTAssertEqual(list.last?.metadata.sourceRevision, "rev0")
    }

    func testRollbackMovesCurrentAndRecordsWhoAndWhy() throws {
        let dir = TemporaryStore("rollback")
        let v = try threeVersions(dir).map(\.metadata.version)
        let store = dir.store()
        XCTAssertEqual(try store.rollback(to: String(v[0].prefix(8)), reason: "bad route in v2", author: "oncall"),
                       .rolledBack(from: v[2], to: v[0]))
        XCTAssertEqual(try store.currentVersion(), v[0])
        XCTAssertEqual(try store.current()?.groups["web"]?.resources[SyntheticSnapshot.clusterType]?["a"]?.body, Array("1".utf8))
        let last = try XCTUnwrap(try store.history().last)
        XCTAssertEqual(last.kind, .rollback)
        XCTAssertEqual(last.author, "oncall")
        XCTAssertEqual(last.reason, "bad route in v2")
        XCTAssertEqual(last.previous, v[2])
        XCTAssertEqual(try store.rollback(to: "current", reason: nil, author: nil), .alreadyCurrent(version: v[0]))
    }

    func testGCKeepsTheNewestAndTheLiveVersionAndDeletesUnreferencedObjects() throws {
        let dir = TemporaryStore("gc")
        let v = try threeVersions(dir).map(\.metadata.version)
        let store = dir.store()
        _ = try store.rollback(to: v[0], reason: "test", author: "t")
        let before = S.objectFiles(dir.path).count
        let report = try store.gc(keep: 1)
        XCTAssertEqual(Set(report.keptVersions), [v[0], v[2]])
        XCTAssertEqual(report.removedVersions, [v[1]])
        XCTAssertEqual(S.objectFiles(dir.path).count, before - report.removedObjects)
        XCTAssertGreaterThan(report.removedObjects, 0)
        XCTAssertGreaterThan(report.freedBytes, 0)
        for version in [v[0], v[2]] { XCTAssertNoThrow(try store.load(version: version, check: .hashes)) }
        XCTAssertTrue(store.verify().isHealthy)
        XCTAssertEqual(try store.history().last?.kind, .gc)
    }

    func testRollbackToACollectedVersionSaysItWasCollected() throws {
        let dir = TemporaryStore("gc-rollback")
        let v = try threeVersions(dir).map(\.metadata.version)
        let store = dir.store()
        _ = try store.gc(keep: 1)
        XCTAssertThrowsError(try store.rollback(to: v[0], reason: nil, author: nil)) { error in
            guard case .versionGarbageCollected(let version, _, let rev) = error as? SnapshotStoreError else { return XCTFail("\(error)") }
            XCTAssertEqual(version, v[0])
            XCTAssertEqual(rev, "rev0")
            XCTAssertTrue("\(error)".contains("recompile source revision rev0"))
        }
        XCTAssertEqual(try store.currentVersion(), v[2])
    }

    func testGCWithKeepZeroKeepsOnlyTheLiveVersion() throws {
        let dir = TemporaryStore("gc0")
        let v = try threeVersions(dir).map(\.metadata.version)
        let report = try dir.store().gc(keep: 0)
        XCTAssertEqual(report.keptVersions, [v[2]])
        XCTAssertEqual(try dir.store().list().map(\.metadata.version), [v[2]])
    }

    func testEmptyStoreHasNoVersions() throws {
        let dir = TemporaryStore("empty")
        let store = dir.store()
        XCTAssertNil(try store.current())
        XCTAssertEqual(try store.list(), [])
        XCTAssertThrowsError(try store.resolve("current")) { XCTAssertEqual($0 as? SnapshotStoreError, .noCurrentVersion) }
        XCTAssertTrue(store.verify().isHealthy)
    }
}
