// Agreement with real Envoy: every proxy group of the demo mesh, assembled into one
// static bootstrap (EDS assignments inlined, RDS route configurations inlined, SDS
// secrets made static), passes `envoy --mode validate` — what meshctl accepted, Envoy
// accepts too, including the TLS files the secrets name.
import EnvoySchema
import Foundation
import MeshCompilation
import MeshTestSupport
import SnapshotStorage
import XCTest

final class EnvoyAgreementTests: XCTestCase {
    func testEveryDemoProxyGroupPassesEnvoyValidate() throws {
        let envoy = TestPaths.envoy
        guard FileManager.default.isExecutableFile(atPath: envoy) else { throw XCTSkip("no Envoy at \(envoy) (set MESHCTL_ENVOY)") }
        let fixture = try MeshFixture()
        let certificates = fixture.url("certs")
        let groups = ["admin", "catalog", "frontend", "inventory", "ledger", "orders", "orders-canary", "payments", "users", "ingress", "internal-web"]
        let issued = try ProcessRunner.run(TestPaths.meshctl, ["certs", "init", "--out", certificates.path] + groups.flatMap { ["--proxy", $0] }, timeout: 120)
        XCTAssertEqual(issued.status, 0, issued.stderrText)
        try fixture.replace("Configs/mesh.yaml", "directory: /tmp/meshctl-demo/certs", with: "directory: \(certificates.path)")
        let report = try fixture.compile(encode: true)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        // settlement is a proxyless gRPC client: its resources are for gRPC's xDS client (certificate providers its
        // bootstrap declares, API listeners), not for Envoy — ProxylessGRPCTests runs them through grpcio instead.
        XCTAssertEqual(Set(report.groups.map(\.group)), Set(groups + ["settlement"]))
        for group in report.groups where group.group != "settlement" {
            let bootstrap = try Self.bootstrap(group)
            let path = fixture.url("\(group.group)-bootstrap.json")
            try Data(bootstrap.utf8).write(to: path)
            let result = try ProcessRunner.run(envoy, ["--mode", "validate", "-c", path.path, "-l", "critical", "--disable-hot-restart"], timeout: 120)
            XCTAssertEqual(result.status, 0, "envoy --mode validate refused proxy group \(group.group):\n\(result.stdoutText)\(result.stderrText)")
        }
    }

    /// One proxy group's resources as a static bootstrap Envoy can validate offline.
    static func bootstrap(_ group: ProxyGroupResources) throws -> String {
        let pool = E2E.pool
        let writer = TextWriter(pool: pool)
        func decoded(_ kind: String) throws -> [String: JSONValue] {
            let typeURL = "type.googleapis.com/" + kind
            var out: [String: JSONValue] = [:]
            for (name, resource) in group.resources[typeURL] ?? [:] {
                out[name] = writer.json(try DynamicMessage(serialized: resource.body, type: pool.messageID(typeURL: typeURL)!, pool: pool))
            }
            return out
        }
        let assignments = try decoded("envoy.config.endpoint.v3.ClusterLoadAssignment")
        let routes = try decoded("envoy.config.route.v3.RouteConfiguration")
        var clusters: [JSONValue] = []
        for (name, cluster) in try decoded("envoy.config.cluster.v3.Cluster").sorted(by: { $0.key < $1.key }) {
            guard case .object(var fields) = cluster else { continue }
            if fields.contains(where: { $0.0 == "type" && $0.1 == .string("EDS") }) {
                fields.removeAll { $0.0 == "eds_cluster_config" || $0.0 == "type" }
                fields += [("type", .string("STATIC")), ("load_assignment", assignments[name] ?? .null)]
            }
            clusters.append(.object(fields))
        }
        let listeners = try decoded("envoy.config.listener.v3.Listener").sorted { $0.key < $1.key }.map { inlineRoutes($0.value, routes) }
        let secrets = try decoded("envoy.extensions.transport_sockets.tls.v3.Secret").sorted { $0.key < $1.key }.map(\.value)
        let root = JSONValue.object([
            ("node", .object([("id", .string(group.group)), ("cluster", .string(group.group))])),
            ("static_resources", .object([("listeners", .array(listeners)), ("clusters", .array(clusters)), ("secrets", .array(secrets))])),
        ])
        return render(staticSecrets(root))
    }

    /// HCM `rds` → the route configuration inline.
    static func inlineRoutes(_ value: JSONValue, _ routes: [String: JSONValue]) -> JSONValue {
        switch value {
        case .object(let fields):
            if let rds = fields.first(where: { $0.0 == "rds" })?.1, case .object(let r) = rds,
               case .string(let name)? = r.first(where: { $0.0 == "route_config_name" })?.1, let route = routes[name] {
                return .object(fields.filter { $0.0 != "rds" } + [("route_config", route)])
            }
            return .object(fields.map { ($0.0, inlineRoutes($0.1, routes)) })
        case .array(let items): return .array(items.map { inlineRoutes($0, routes) })
        default: return value
        }
    }

    /// `{name, sds_config}` → `{name}`: the secret comes from static_resources.secrets.
    static func staticSecrets(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let fields):
            if fields.count == 2, fields.contains(where: { $0.0 == "name" }), fields.contains(where: { $0.0 == "sds_config" }) {
                return .object(fields.filter { $0.0 == "name" })
            }
            return .object(fields.map { ($0.0, staticSecrets($0.1)) })
        case .array(let items): return .array(items.map(staticSecrets))
        default: return value
        }
    }

    static func render(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return quote(s)
        case .array(let items): return "[" + items.map(render).joined(separator: ",") + "]"
        case .object(let fields): return "{" + fields.map { quote($0.0) + ":" + render($0.1) }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }
}
