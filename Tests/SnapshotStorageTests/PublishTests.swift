// Publishing and loading: round trips, content-addressed versions, no-op and incremental publishes.
import Foundation
import MeshFixtures
import MeshTestSupport
@testable import SnapshotStorage
import XCTest

final class PublishTests: XCTestCase {
    typealias S = StoreTestSupport

    func testPublishedSnapshotLoadsBackIdentically() throws {
        let dir = TemporaryStore("roundtrip")
        let store = dir.store()
        let snapshot = try Snapshot.make(groups: [
            ProxyGroupResources(group: "web", resources: [S.cluster("a", "alpha"), S.cluster("b", "beta"), S.endpoint("a", "ep")]),
            ProxyGroupResources(group: "db", resources: [S.cluster("pg", "postgres")]),
            ProxyGroupResources(group: "empty", resources: [Resource]()),
        ], sourceRevision: "abc123", author: "alice", message: "first", compilerVersion: "1.0")
        let outcome = try store.publish(snapshot)
        guard case .published(let version, let bytes) = outcome else { return XCTFail("expected a publish, got \(outcome)") }
        XCTAssertEqual(version, snapshot.metadata.version)
        XCTAssertGreaterThan(bytes, 0)

        for check in [LoadCheck.sizes, .hashes] {
            let loaded = try store.load(version: "current", check: check)
            XCTAssertEqual(loaded.metadata, snapshot.metadata)
            XCTAssertEqual(Set(loaded.groups.keys), ["web", "db", "empty"])
            for (name, group) in snapshot.groups {
                XCTAssertEqual(loaded.groups[name]?.resources, group.resources, "group \(name)")
                for (type, byName) in group.resources {
                    for (n, r) in byName { XCTAssertEqual(loaded.groups[name]?.resources[type]?[n]?.body, r.body) }
                }
            }
        }
        XCTAssertEqual(try store.current()?.metadata.version, version)
        XCTAssertEqual(try store.currentVersion(), version)
    }

    func testNamesWithAwkwardCharactersSurviveTheIndex() throws {
        let dir = TemporaryStore("names")
        let names = ["plain", "with space", "percent%20sign", "new\nline", "tab\tand\r", "ünïcødé", "", "a/b:c@d"]
        let snapshot = S.snapshot(names.map { S.cluster($0, "body of \($0)") })
        _ = try dir.store().publish(snapshot)
        let loaded = try dir.store().load(version: snapshot.metadata.version)
        XCTAssertEqual(Set(loaded.groups["web"]!.resources[SyntheticSnapshot.clusterType]!.keys), Set(names))
    }

    func testLargeTypesAreShardedAndLoadBack() throws {
        let dir = TemporaryStore("sharded")
        let snapshot = S.synthetic(services: 1500)
        _ = try dir.store().publish(snapshot)
        let loaded = try dir.store().load(version: "current", check: .hashes)
        XCTAssertEqual(loaded.resourceCount, snapshot.resourceCount)
        XCTAssertEqual(Snapshot.contentVersion(loaded.groups), snapshot.metadata.version)
    }

    func testIdenticalContentIsTheSameVersionAndANoOpPublish() throws {
        let dir = TemporaryStore("noop")
        let store = dir.store()
        let first = S.snapshot([S.cluster("a", "1")], message: "one")
        let again = S.snapshot([S.cluster("a", "1")], message: "different message, same content")
        XCTAssertEqual(first.metadata.version, again.metadata.version)
        _ = try store.publish(first)
        let history = try store.history().count
        XCTAssertEqual(try store.publish(again), .unchanged(version: first.metadata.version))
        XCTAssertEqual(try store.history().count, history, "a no-op publish records nothing")
        XCTAssertEqual(try store.current()?.metadata.message, "one")
    }

    func testVersionDependsOnEveryPartOfTheContent() throws {
        let base = S.snapshot([S.cluster("a", "1")]).metadata.version
        let cases: [(String, Snapshot)] = [
            ("different body", S.snapshot([S.cluster("a", "2")])),
            ("different name", S.snapshot([S.cluster("b", "1")])),
            ("different type", S.snapshot([S.endpoint("a", "1")])),
            ("different group", S.snapshot([S.cluster("a", "1")], group: "api")),
            ("extra resource", S.snapshot([S.cluster("a", "1"), S.cluster("b", "1")])),
            ("extra empty group", try Snapshot.make(groups: [ProxyGroupResources(group: "web", resources: [S.cluster("a", "1")]),
                                                             ProxyGroupResources(group: "x", resources: [Resource]())], compilerVersion: "t")),
        ]
        var seen: Set<String> = [base]
        for (label, snapshot) in cases {
            XCTAssertFalse(seen.contains(snapshot.metadata.version), label)
            seen.insert(snapshot.metadata.version)
        }
    }

    func testOneResourceChangeAddsOneResourceObjectAndFewBytes() throws {
        let dir = TemporaryStore("incremental")
        let store = dir.store()
        _ = try store.publish(S.synthetic(services: 2000))
        let before = Set(S.objectFiles(dir.path))
        let changed = S.synthetic(services: 2000, revisions: [17: 1])
        guard case .published(_, let bytes) = try store.publish(changed) else { return XCTFail("expected a publish") }
        let added = Set(S.objectFiles(dir.path)).subtracting(before)
        let newBody = changed.groups["mesh"]!.resources[SyntheticSnapshot.clusterType]!["svc-17"]!.hash
        // The new cluster body, the one shard that lists it, and the cluster type's index.
        XCTAssertEqual(added.count, 3, "new objects: \(added.sorted())")
        XCTAssertTrue(added.contains { $0.hasSuffix(newBody) })
        XCTAssertLessThan(bytes, 64 * 1024)
    }

    func testPublishingOlderContentAgainMakesThatVersionLive() throws {
        let dir = TemporaryStore("republish")
        let store = dir.store()
        let a = S.snapshot([S.cluster("a", "1")], message: "a")
        let b = S.snapshot([S.cluster("a", "2")], message: "b")
        _ = try store.publish(a)
        _ = try store.publish(b)
        let outcome = try store.publish(S.snapshot([S.cluster("a", "1")], message: "a again"))
        XCTAssertEqual(outcome.version, a.metadata.version)
        guard case .published = outcome else { return XCTFail("expected the pointer to move, got \(outcome)") }
        XCTAssertEqual(try store.currentVersion(), a.metadata.version)
        XCTAssertEqual(try store.list().count, 2)
        XCTAssertEqual(try store.history().last?.kind, .publish)
    }

    func testInconsistentSnapshotsAreRefused() throws {
        let good = S.snapshot([S.cluster("a", "1")])
        let tampered = Resource(typeURL: SyntheticSnapshot.clusterType, name: "a", body: Array("1".utf8), hash: String(repeating: "0", count: 64))
        let cases: [(String, () throws -> Snapshot)] = [
            ("duplicate group", { try Snapshot.make(groups: [ProxyGroupResources(group: "g", resources: [Resource]()),
                                                             ProxyGroupResources(group: "g", resources: [Resource]())], compilerVersion: "t") }),
            ("resource filed under another name", { try Snapshot.make(groups: [ProxyGroupResources(group: "g", resources: [SyntheticSnapshot.clusterType: ["b": S.cluster("a", "1")]])], compilerVersion: "t") }),
            ("resource filed under another type", { try Snapshot.make(groups: [ProxyGroupResources(group: "g", resources: [SyntheticSnapshot.endpointType: ["a": S.cluster("a", "1")]])], compilerVersion: "t") }),
            ("metadata version does not match content", {
                var m = good.metadata
                m.version = String(repeating: "a", count: 64)
                return Snapshot(metadata: m, groups: good.groups)
            }),
            ("body does not match its hash", {
                let groups = ["web": ProxyGroupResources(group: "web", resources: [tampered])]
                return Snapshot(metadata: SnapshotMetadata(version: Snapshot.contentVersion(groups), createdAt: Date(), compilerVersion: "t"), groups: groups)
            }),
        ]
        for (label, build) in cases {
            let dir = TemporaryStore("refused")
            let store = dir.store()
            _ = try store.publish(good)
            do {
                let snapshot = try build()
                _ = try store.publish(snapshot)
                XCTFail("\(label): published")
            } catch let error as SnapshotStoreError {
                guard case .invalidSnapshot(let reason) = error else { XCTFail("\(label): \(error)"); continue }
                XCTAssertFalse(reason.isEmpty, label)
            }
            XCTAssertEqual(try store.currentVersion(), good.metadata.version, label)
            XCTAssertTrue(store.verify().isHealthy, label)
        }
    }

    func testCreatedAtAndMetadataRoundTripExactly() throws {
        let dir = TemporaryStore("metadata")
        let snapshot = try Snapshot.make(groups: [ProxyGroupResources(group: "g", resources: [S.cluster("a", "1")])],
                                         sourceRevision: "deadbeef", author: "Zoë \"z\" <z@example.com>", message: "line 1\nline 2",
                                         compilerVersion: "meshctl 0.1", createdAt: Date(timeIntervalSince1970: 1_700_000_000.123_456))
        _ = try dir.store().publish(snapshot)
        XCTAssertEqual(try dir.store().load(version: "current").metadata, snapshot.metadata)
        XCTAssertEqual(snapshot.metadata.createdAt, Date(timeIntervalSince1970: 1_700_000_000.123))
    }
}
