// `meshctl compile` and `meshctl validate` (Configs/ mode) end to end: exit codes, the
// three output formats, publishing into the store, and a failed compile leaving the
// previous store and dump untouched.
import Foundation
import MeshModel
import MeshTestSupport
import SnapshotStorage
import XCTest

final class CompileCommandTests: XCTestCase {
    func meshctl(_ arguments: [String], in fixture: MeshFixture) throws -> (status: Int32, stdout: String, stderr: String) {
        let result = try ProcessRunner.run(TestPaths.meshctl, arguments, in: fixture.directory, timeout: 120)
        return (result.status, result.stdoutText, result.stderrText)
    }

    func testCompilePublishesAndAnUnchangedCompileWritesNothing() throws {
        let fixture = try MeshFixture()
        let first = try meshctl(["compile", "--out", "store", "--source-rev", "abc123", "--author", "ci", "--message", "first"], in: fixture)
        XCTAssertEqual(first.status, 0, first.stdout + first.stderr)
        XCTAssertTrue(first.stdout.contains("published version"), first.stdout)
        let store = SnapshotStore(directory: fixture.path("store"))
        let version = try XCTUnwrap(try store.currentVersion())
        let metadata = try XCTUnwrap(try store.current()).metadata
        XCTAssertEqual(metadata.sourceRevision, "abc123")
        XCTAssertEqual(metadata.author, "ci")
        XCTAssertEqual(metadata.message, "first")

        let second = try meshctl(["compile", "--out", "store"], in: fixture)
        XCTAssertEqual(second.status, 0, second.stdout + second.stderr)
        XCTAssertTrue(second.stdout.contains("unchanged: version \(version.prefix(12))"), second.stdout)
        XCTAssertEqual(try store.currentVersion(), version)
    }

    func testFailedCompileLeavesThePreviousStoreAndDumpUntouched() throws {
        let fixture = try MeshFixture()
        XCTAssertEqual(try meshctl(["compile", "--out", "store", "--dump", "dump"], in: fixture).status, 0)
        let version = try SnapshotStore(directory: fixture.path("store")).currentVersion()
        let dumpBefore = try snapshotOfFiles(fixture.url("dump"))
        XCTAssertTrue(dumpBefore.keys.contains("orders/Cluster/payments.grpc.yaml"), dumpBefore.keys.sorted().joined(separator: "\n"))

        try fixture.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 5x")
        let failed = try meshctl(["compile", "--out", "store", "--dump", "dump"], in: fixture)
        XCTAssertEqual(failed.status, 1)
        XCTAssertTrue(failed.stderr.contains("nothing written"), failed.stderr)
        XCTAssertEqual(try SnapshotStore(directory: fixture.path("store")).currentVersion(), version)
        XCTAssertEqual(try snapshotOfFiles(fixture.url("dump")), dumpBefore)
    }

    func snapshotOfFiles(_ directory: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let base = directory.resolvingSymlinksInPath().path
        for case let url as URL in FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)! where !url.hasDirectoryPath {
            out[String(url.resolvingSymlinksInPath().path.dropFirst(base.count + 1))] = try Data(contentsOf: url)
        }
        return out
    }

    func testValidateExitCodes() throws {
        let fixture = try MeshFixture()
        XCTAssertEqual(try meshctl(["validate"], in: fixture).status, 0, "the demo is clean")
        XCTAssertEqual(try meshctl(["validate", "--configs", "nowhere"], in: fixture).status, 2, "a missing directory is a usage error")
        XCTAssertEqual(try meshctl(["validate", "Configs/mesh.yaml"], in: fixture).status, 2, "files belong to --envoy")
        XCTAssertEqual(try meshctl(["validate", "--format", "xml"], in: fixture).status, 2)
        try fixture.replace("Configs/services/catalog.yaml", "routes:\n  - name: search\n", with: "routes:\n  - name: everything\n    match: {prefix: /}\n  - name: search\n")
        XCTAssertEqual(try meshctl(["validate"], in: fixture).status, 0, "warnings do not fail")
        XCTAssertEqual(try meshctl(["validate", "--strict"], in: fixture).status, 1, "unless --strict")
        try fixture.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 5x")
        XCTAssertEqual(try meshctl(["validate"], in: fixture).status, 1)
    }

    func testTextOutputShowsTheLineAndACaret() throws {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 5x")
        let result = try meshctl(["validate"], in: fixture)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let head = try XCTUnwrap(lines.firstIndex { $0.hasPrefix("Configs/services/catalog.yaml:") && $0.contains("[config.value]") }, result.stdout)
        XCTAssertEqual(lines[head + 1], "    timeout: 5x")
        XCTAssertEqual(lines[head + 2], "             ^")
        XCTAssertTrue(result.stderr.contains("1 error"), result.stderr)
    }

    /// What gRPC's xDS client would ACK and then drop (a locality without weight) fails `meshctl validate` first, at the user's line.
    func testValidateRefusesWhatAGRPCClientWouldDrop() throws {
        let fixture = try MeshFixture()
        try fixture.append("Configs/services/settlement.yaml", "envoy:\n  patch:\n    cluster_load_assignments:\n      payments.grpc:\n"
            + "        endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 10150}}}}]}]\n")
        let result = try meshctl(["validate", "--format", "json"], in: fixture)
        XCTAssertEqual(result.status, 1, result.stdout)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        // Errors only: the fixture's certificate files live on the proxies' hosts (host-file warnings here).
        let diagnostics = try XCTUnwrap(object["diagnostics"] as? [[String: Any]]).filter { $0["severity"] as? String == "error" }
        XCTAssertEqual(diagnostics.map { $0["rule"] as? String }, ["grpc.locality-weight"], result.stdout)
        XCTAssertEqual(diagnostics.first?["file"] as? String, "Configs/services/settlement.yaml")
        XCTAssertEqual(diagnostics.first?["line"] as? Int, try fixture.line(of: "endpoints: [{lb_endpoints", in: "Configs/services/settlement.yaml"))
    }

    func testJSONOutputFollowsTheDocumentedSchema() throws {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 5x")
        let result = try meshctl(["validate", "--format", "json"], in: fixture)
        XCTAssertEqual(result.status, 1)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["schema"] as? String, "meshctl.report/v1")
        XCTAssertEqual(object["ok"] as? Bool, false)
        let summary = try XCTUnwrap(object["summary"] as? [String: Any])
        XCTAssertEqual(summary["errors"] as? Int, 1)
        XCTAssertEqual(summary["services"] as? Int, 10)
        let diagnostic = try XCTUnwrap((object["diagnostics"] as? [[String: Any]])?.first)
        XCTAssertEqual(diagnostic["rule"] as? String, "config.value")
        XCTAssertEqual(diagnostic["file"] as? String, "Configs/services/catalog.yaml")
        XCTAssertEqual(diagnostic["line"] as? Int, try fixture.line(of: "timeout: 5x", in: "Configs/services/catalog.yaml"))
        XCTAssertEqual(diagnostic["column"] as? Int, 10)
        XCTAssertEqual(diagnostic["severity"] as? String, "error")
    }

    func testGitHubOutputIsWorkflowAnnotations() throws {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 5x")
        let result = try meshctl(["validate", "--format", "github"], in: fixture)
        XCTAssertEqual(result.status, 1)
        let line = try fixture.line(of: "timeout: 5x", in: "Configs/services/catalog.yaml")
        XCTAssertTrue(result.stdout.hasPrefix("::error file=Configs/services/catalog.yaml,line=\(line),col=10,title=config.value::timeout: '5x' is not a duration"), result.stdout)
    }

    /// The emergency override: `--rollout immediate` needs `--reason`; the version carries no policy and history says why.
    func testCompileRolloutImmediateNeedsAReasonAndIsRecorded() throws {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/mesh.yaml", "\nrollout: immediate\n", with: "\nrollout: {waves: [1, 100%], bake: 30s}\n")
        let store = fixture.path("store")
        let arguments = ["compile", "--configs", fixture.path("Configs"), "--templates", fixture.path("templates"), "--out", store]
        let refused = try meshctl(arguments + ["--rollout", "immediate"], in: fixture)
        XCTAssertEqual(refused.status, 2, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("--reason"), refused.stderr)
        let waves = try meshctl(arguments, in: fixture)
        XCTAssertEqual(waves.status, 0, waves.stderr)
        let override = try meshctl(arguments + ["--rollout", "immediate", "--reason", "CVE fix", "--author", "ana"], in: fixture)
        XCTAssertEqual(override.status, 0, override.stderr)
        let snapshots = SnapshotStore(directory: store)
        let live = try XCTUnwrap(try snapshots.current())
        XCTAssertTrue(live.groups.values.allSatisfy { $0.resources[RolloutPolicy.typeURL] == nil }, "the override carries no policy records")
        let event = try XCTUnwrap(try snapshots.history().last)
        XCTAssertEqual(event.kind, .publish)
        XCTAssertTrue(event.reason?.contains("rollout override: immediate, by ana: CVE fix") ?? false, event.reason ?? "")
    }
}
