// The demo mesh in Configs/ compiles cleanly and deterministically, into the proxy
// groups the issue asks for, each with its access record.
import EnvoySchema
import Foundation
import MeshCompilation
import MeshTestSupport
import MeshModel
import SnapshotStorage
import XCTest

final class DemoMeshTests: XCTestCase {
    func compileDemo() throws -> CompileReport {
        // The demo's certificates are issued on the proxies' hosts by run_demo.sh, not here: host files are not looked at.
        let inputs = CompileInputs(configs: TestSupport.root.appendingPathComponent("Configs").path, templates: TestSupport.root.appendingPathComponent("templates").path,
                                   hostFiles: .off)
        return try MeshCompiler.compile(inputs, pool: TestSupport.pool, encode: true)
    }

    func testDemoCompilesWithoutErrorsOrWarnings() throws {
        let report = try compileDemo()
        XCTAssertEqual(report.diagnostics.filter { $0.severity != .info }, [], report.summary())
        XCTAssertGreaterThanOrEqual(report.serviceCount, 6)
        XCTAssertEqual(Set(report.groups.map(\.group)), ["admin", "catalog", "frontend", "inventory", "ledger", "orders", "orders-canary", "payments", "settlement", "users", "ingress", "internal-web"])
    }

    func testTwoCompilesGiveTheSameSnapshotVersionAndBytes() throws {
        let first = try MeshCompiler.snapshot(try compileDemo(), createdAt: Date(timeIntervalSince1970: 1))
        let second = try MeshCompiler.snapshot(try compileDemo(), createdAt: Date(timeIntervalSince1970: 2))
        XCTAssertEqual(first.metadata.version, second.metadata.version)
        for name in first.groupNames {
            let a = first.groups[name]!.resources, b = second.groups[name]!.resources
            XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
            for type in a.keys { XCTAssertEqual(a[type]!.mapValues(\.body), b[type]!.mapValues(\.body), "\(name) \(type)") }
        }
    }

    func testUnchangedResourcesKeepTheirVersionWhenAnotherServiceChanges() throws {
        let fixture = try MeshFixture()
        let before = try fixture.compile(encode: true)
        try fixture.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 6s")
        let after = try fixture.compile(encode: true)
        func versions(_ report: CompileReport, _ group: String) -> [String: String] {
            var out: [String: String] = [:]
            for (type, byName) in report.groups.first(where: { $0.group == group })!.resources { for (name, r) in byName { out[type + " " + name] = r.hash } }
            return out
        }
        XCTAssertEqual(versions(before, "payments"), versions(after, "payments"), "payments does not route to catalog: nothing of it changes")
        XCTAssertNotEqual(versions(before, "frontend"), versions(after, "frontend"), "frontend routes to catalog with its timeout")
        let cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster inventory.http"
        XCTAssertNotNil(versions(before, "catalog")[cluster])
        XCTAssertEqual(versions(before, "catalog")[cluster], versions(after, "orders")[cluster], "a shared cluster has one version in every group and across compiles")
    }

    func testSidecarsReceiveOnlyTheirDependencies() throws {
        let report = try compileDemo()
        let clusters = { (group: String) in Set(report.groups.first { $0.group == group }?.resources["type.googleapis.com/envoy.config.cluster.v3.Cluster"]?.keys.map { $0 } ?? []) }
        XCTAssertEqual(clusters("catalog"), ["catalog.http.local", "inventory.http"])
        XCTAssertEqual(clusters("frontend"), ["frontend.http.local", "catalog.http", "orders.http", "users.http", "orders-canary.http"],
                       "frontend routes to orders, whose routes send some traffic to orders-canary")
        XCTAssertEqual(clusters("ingress"), ["frontend.http"])
    }

    func testEveryGroupCarriesWhoMayReceiveIt() throws {
        let report = try compileDemo()
        for group in report.groups {
            let record = try XCTUnwrap(group.resources[GroupAccess.typeURL]?[group.group], group.group)
            let access = try XCTUnwrap(GroupAccess.decode(record.body))
            XCTAssertEqual(access.group, group.group)
            XCTAssertFalse(access.identities.isEmpty)
        }
        let orders = try XCTUnwrap(report.groups.first { $0.group == "orders" }?.resources[GroupAccess.typeURL]?["orders"])
        XCTAssertEqual(GroupAccess.decode(orders.body)?.identities, ["spiffe://mesh.local/proxy/orders"])
    }

    func testDemoRunsOnLoopbackWithDistinctPorts() throws {
        let report = try compileDemo()
        let listenerType = TestSupport.pool.messageID(named: "envoy.config.listener.v3.Listener")!
        var ports: [UInt64: String] = [:]
        for group in report.groups {
            for (name, resource) in group.resources["type.googleapis.com/envoy.config.listener.v3.Listener"] ?? [:] {
                let listener = try DynamicMessage(serialized: resource.body, type: listenerType, pool: TestSupport.pool)
                let json = TextWriter(pool: TestSupport.pool).jsonText(listener, pretty: false)
                // A proxyless gRPC client's API listeners are names to dial (xds:///NAME), not sockets.
                if json.contains("\"api_listener\"") { continue }
                let port = UInt64(json.components(separatedBy: "\"port_value\":").dropFirst().first?.prefix { $0.isNumber } ?? "0") ?? 0
                XCTAssertTrue((10000...10999).contains(port), "\(name): port \(port)")
                XCTAssertTrue(json.contains("\"address\":\"127.0.0.1\""), "\(name) listens on loopback")
                if let other = ports[port] { XCTFail("\(name) and \(other) share port \(port)") }
                ports[port] = name
            }
        }
    }
}
