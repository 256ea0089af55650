// `rollout:` in mesh.yaml, a gateway and a service: read, validated at the user's position,
// and carried in the snapshot as one policy record per group; `immediate` (the default)
// leaves every group's resources as they were, byte for byte. (`meshctl compile --rollout
// immediate --reason` is in SystemTests/CompileCommandTests.)
import EnvoySchema
import Foundation
import MeshCompilation
import MeshTestSupport
import MeshModel
import SnapshotStorage
import XCTest

final class RolloutPolicyTests: XCTestCase {
    func policy(_ report: CompileReport, _ group: String) throws -> RolloutPolicy? {
        let resources = try XCTUnwrap(report.groups.first { $0.group == group }, group).resources
        return try resources[RolloutPolicy.typeURL]?[group].map { try XCTUnwrap(RolloutPolicy.decode($0.body)) }
    }

    func testMeshWidePolicyWithPerGroupOverridesTravelsInTheSnapshot() throws {
        let baseline = try MeshFixture().compile(encode: true)
        XCTAssertEqual(baseline.errorCount, 0, baseline.summary())
        XCTAssertTrue(baseline.groups.allSatisfy { $0.resources[RolloutPolicy.typeURL] == nil }, "no policy: immediate, no records")

        let fixture = try MeshFixture()
        try fixture.replace("Configs/mesh.yaml", "\nrollout: immediate\n", with: "\nrollout: {waves: [1, 10%, 50%, 100%], bake: 30s, on_failure: rollback}\n")
        try fixture.replace("Configs/mesh.yaml", "    kind: ingress\n", with: "    kind: ingress\n    rollout: {waves: [50%, 100%], bake: 2s, on_failure: halt, ack_timeout: 5s, gate: {url: \"http://127.0.0.1:9090/ok\", timeout: 3s}}\n")
        try fixture.append("Configs/services/orders.yaml", "\nrollout: immediate\n")
        let report = try fixture.compile(encode: true)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        let mesh = try XCTUnwrap(try policy(report, "frontend"))
        XCTAssertEqual(mesh, RolloutPolicy(waves: [.proxies(1), .percent(10), .percent(50), .percent(100)], bakeMilliseconds: 30_000, onFailure: .rollback))
        XCTAssertEqual(try policy(report, "ingress"),
                       RolloutPolicy(waves: [.percent(50), .percent(100)], bakeMilliseconds: 2000, ackTimeoutMilliseconds: 5000, onFailure: .halt,
                                     gate: RolloutPolicy.Gate(url: "http://127.0.0.1:9090/ok", timeoutMilliseconds: 3000)))
        XCTAssertNil(try policy(report, "orders"), "a service's `rollout: immediate` overrides the mesh")
        for group in baseline.groups {
            var resources = try XCTUnwrap(report.groups.first { $0.group == group.group }).resources
            resources[RolloutPolicy.typeURL] = nil
            XCTAssertEqual(resources, group.resources, "the policy adds a record and changes nothing else in \(group.group)")
        }
    }

    func testBadPoliciesAreRefusedAtTheirPosition() throws {
        let cases: [(yaml: String, needle: String, path: String, message: String)] = [
            ("rollout: {waves: [1, 10%, 50%], bake: 30s}", "50%]", "rollout.waves[2]", "not 100%"),
            ("rollout: {waves: [1, 150%, 100%], bake: 30s}", "150%", "rollout.waves[1]", "more than 100%"),
            ("rollout: {waves: [50%, 10%, 100%], bake: 30s}", "10%, 100%", "rollout.waves[1]", "must increase"),
            ("rollout: {waves: [1, ten, 100%], bake: 30s}", "ten", "rollout.waves[1]", "neither a number"),
            ("rollout: {waves: [1, 100%], bake: soon}", "soon", "rollout.bake", "not a duration"),
            ("rollout: {waves: [1, 100%], bake: -1s}", "-1s", "rollout.bake", "not a duration"),
            ("rollout: {waves: [1, 100%], bake: 1s, on_failure: retry}", "retry", "rollout.on_failure", "rollback, halt"),
            ("rollout: {waves: [1, 100%]}", "rollout:", "rollout.bake", "needs 'bake'"),
            ("rollout: gradually", "gradually", "rollout", "immediate"),
            ("rollout: {waves: [1, 100%], bake: 0s, gate: {url: \"http://127.0.0.1:9090/ok\"}}", "bake: 0s", "rollout.bake", "a gate needs a bake time"),
            ("rollout: {waves: [1, 100%], bake: 5s, gate: {url: \"prometheus:9090\"}}", "prometheus", "rollout.gate.url", "not an http:// or https:// URL"),
        ]
        for c in cases {
            let fixture = try MeshFixture()
            try fixture.replace("Configs/mesh.yaml", "\nrollout: immediate\n", with: "\n" + c.yaml + "\n")
            let report = try fixture.compile()
            let error = try XCTUnwrap(report.errors.first { $0.path == c.path }, "\(c.yaml): \(report.summary())")
            XCTAssertTrue(error.message.contains(c.message), "\(c.yaml): \(error.message)")
            XCTAssertEqual(error.file, fixture.path("Configs/mesh.yaml"))
            XCTAssertEqual(error.location.map { Int($0.line) }, try fixture.line(of: c.needle, in: "Configs/mesh.yaml", after: "See docs/CONFIG.md"), c.yaml)
            XCTAssertGreaterThan(error.location?.column ?? 0, 1, "\(c.yaml): a column, not just a line")
        }
    }
}
