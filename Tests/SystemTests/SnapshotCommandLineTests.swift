// `meshctl snapshot …` as an operator runs it, on a store holding real Envoy resources.
import Foundation
import MeshFixtures
import MeshTestSupport
import SnapshotStorage
import XCTest

final class SnapshotCommandLineTests: XCTestCase {
    typealias S = StoreTestSupport

    var meshctl: String { S.meshctl }

    func run(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        guard FileManager.default.isExecutableFile(atPath: meshctl) else { throw TestFailure("meshctl is not built at \(meshctl)") }
        let r = try S.run(meshctl, arguments)
        return (r.status, r.stdout, r.stderr)
    }

    /// A Cluster encoded by `meshctl schema encode`.
    func cluster(_ name: String, timeout: String) throws -> Resource {
        let yaml = NSTemporaryDirectory() + "cluster-\(getpid())-\(UUID().uuidString).yaml"
        defer { try? FileManager.default.removeItem(atPath: yaml) }
        S.write("""
        name: \(name)
        type: STRICT_DNS
        connect_timeout: \(timeout)
        load_assignment:
          cluster_name: \(name)
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: {address: \(name).internal, port_value: 8080}
        """, to: yaml)
        let encoded = try ProcessRunner.run(meshctl, ["schema", "encode", "--type", "envoy.config.cluster.v3.Cluster", yaml])
        guard encoded.status == 0 else { throw TestFailure("schema encode failed for \(name)") }
        return Resource(typeURL: SyntheticSnapshot.clusterType, name: name, body: Array(encoded.stdout))
    }

    /// Two versions: v1 (api 1s, web 1s) and v2 (api 5s, web removed, cache added).
    func store() throws -> (TemporaryStore, Snapshot, Snapshot) {
        let dir = TemporaryStore("cli")
        let v1 = try Snapshot.make(groups: [ProxyGroupResources(group: "edge", resources: [try cluster("api", timeout: "1s"), try cluster("web", timeout: "1s")])],
                                   sourceRevision: "r1", author: "alice", message: "first", compilerVersion: "t")
        let v2 = try Snapshot.make(groups: [ProxyGroupResources(group: "edge", resources: [try cluster("api", timeout: "5s"), try cluster("cache", timeout: "1s")])],
                                   sourceRevision: "r2", author: "bob", message: "second", compilerVersion: "t")
        _ = try dir.store().publish(v1)
        _ = try dir.store().publish(v2)
        return (dir, v1, v2)
    }

    func testListShowsVersionsNewestFirstWithTheLiveOneMarked() throws {
        let (dir, v1, v2) = try store()
        let r = try run(["snapshot", "list", "--store", dir.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        guard lines.count == 3 else { return XCTFail("expected a header and two versions:\n\(r.stdout)") }
        XCTAssertTrue(lines[1].hasPrefix("*") && lines[1].contains(String(v2.metadata.version.prefix(12))) && lines[1].contains("bob"), r.stdout)
        XCTAssertTrue(lines[2].contains(String(v1.metadata.version.prefix(12))) && lines[2].contains("r1"), r.stdout)
    }

    func testShowPrintsResourcesAsYAMLAndJSON() throws {
        let (dir, v1, _) = try store()
        let yaml = try run(["snapshot", "show", "--store", dir.path, String(v1.metadata.version.prefix(8)), "--group", "edge", "--type", "cluster"])
        XCTAssertEqual(yaml.status, 0, yaml.stderr)
        for expected in ["group: edge", "name: api", "resource:\n  name: api", "  connect_timeout: 1s", "socket_address:"] {
            XCTAssertTrue(yaml.stdout.contains(expected), "missing \"\(expected)\" in:\n\(yaml.stdout)")
        }
        let json = try run(["snapshot", "show", "--store", dir.path, "current", "--format", "json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let resources = try XCTUnwrap(object["resources"] as? [[String: Any]])
        XCTAssertEqual(resources.compactMap { $0["name"] as? String }, ["api", "cache"])
        XCTAssertEqual((resources[0]["resource"] as? [String: Any])?["connect_timeout"] as? String, "5s")
        XCTAssertEqual(object["source_revision"] as? String, "r2")
    }

    func testDiffShowsAddedRemovedAndAFieldLevelYAMLDiff() throws {
        let (dir, v1, v2) = try store()
        let r = try run(["snapshot", "diff", "--store", dir.path, String(v1.metadata.version.prefix(10)), String(v2.metadata.version.prefix(10))])
        XCTAssertEqual(r.status, 0, r.stderr)
        for expected in ["group edge: 1 added, 1 removed, 1 changed", "    + cache", "    - web", "    ~ api", "-connect_timeout: 1s", "+connect_timeout: 5s"] {
            XCTAssertTrue(r.stdout.contains(expected), "missing \"\(expected)\" in:\n\(r.stdout)")
        }
        XCTAssertFalse(r.stdout.contains("address: api.internal"), "unchanged lines far from a change are not printed:\n\(r.stdout)")
    }

    func testRollbackGCAndVerifyFromTheCommandLine() throws {
        let (dir, v1, v2) = try store()
        let rollback = try run(["snapshot", "rollback", "--store", dir.path, String(v1.metadata.version.prefix(12)), "--reason", "timeouts", "--author", "carol"])
        XCTAssertEqual(rollback.status, 0, rollback.stderr)
        XCTAssertTrue(rollback.stdout.contains("live version is now \(v1.metadata.version.prefix(12))"), rollback.stdout)
        let history = try run(["snapshot", "history", "--store", dir.path])
        XCTAssertTrue(history.stdout.contains("rollback") && history.stdout.contains("by carol") && history.stdout.contains("timeouts"), history.stdout)

        let gc = try run(["snapshot", "gc", "--store", dir.path, "--keep", "0"])
        XCTAssertEqual(gc.status, 0, gc.stderr)
        XCTAssertTrue(gc.stdout.contains("removed \(v2.metadata.version.prefix(12))"), gc.stdout)
        let gone = try run(["snapshot", "rollback", "--store", dir.path, v2.metadata.version])
        XCTAssertEqual(gone.status, 2)
        XCTAssertTrue(gone.stderr.contains("deleted by `snapshot gc`") && gone.stderr.contains("r2"), gone.stderr)

        let verify = try run(["snapshot", "verify", "--store", dir.path])
        XCTAssertEqual(verify.status, 0, verify.stderr)
        XCTAssertTrue(verify.stdout.hasPrefix("ok:"), verify.stdout)

        let object = S.objectFiles(dir.path).first { (try? Data(contentsOf: URL(fileURLWithPath: $0)))?.first != UInt8(ascii: "m") }!
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: object))
        let damaged = try run(["snapshot", "verify", "--store", dir.path])
        XCTAssertEqual(damaged.status, 1)
        XCTAssertTrue(damaged.stdout.contains("DAMAGED") && damaged.stdout.contains("cleaned: objects/"), damaged.stdout)
    }

    func testUsageErrorsExitWithTwoAndSayWhatIsWrong() throws {
        let (dir, _, _) = try store()
        let cases: [(String, [String], String)] = [
            ("missing store", ["snapshot", "list", "--store", dir.path + "/nope"], "does not exist"),
            ("unknown version", ["snapshot", "show", "--store", dir.path, "0000000000"], "no version \"0000000000\""),
            ("unknown group", ["snapshot", "show", "--store", dir.path, "--group", "nope"], "has no proxy group \"nope\""),
            ("unknown type", ["snapshot", "show", "--store", dir.path, "--type", "secret"], "no resources of type \"secret\""),
            ("negative keep", ["snapshot", "gc", "--store", dir.path, "--keep", "-1"], "--keep"),
        ]
        for (label, arguments, message) in cases {
            let r = try run(arguments)
            XCTAssertEqual(r.status, 2, "\(label): \(r.stdout) \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(message), "\(label): \(r.stderr)")
        }
    }
}
