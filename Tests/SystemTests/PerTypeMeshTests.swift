// The demo mesh with its two gateways subscribing by per-type streams (mesh.yaml `xds`):
// the ingress by per-type state of the world, internal-web by per-type delta, the sidecars
// by ADS. Real Envoys get their bootstraps from `meshctl bootstrap --store` (no mode
// flags), fetch listeners, routes, clusters, endpoints and secrets over per-type streams,
// and real HTTPS requests reach the applications through the gateways and the sidecars.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class PerTypeMeshTests: XCTestCase {
    var mesh: DemoMeshRun?

    override func tearDown() { mesh?.stop() }

    /// GET over TLS through a gateway (its development certificate is not for this host name: -k).
    func httpsGet(_ port: Int, _ path: String) -> String? {
        let result = E2E.run("/usr/bin/curl", ["-s", "-k", "-f", "-m", "2", "https://127.0.0.1:\(port)\(path)"], timeout: 5)
        return result?.status == 0 ? result?.output : nil
    }

    /// The `mode` of every `xds.stream-open` the server logged for `group`.
    func streamModes(_ log: String, group: String) -> Set<String> {
        var modes = Set<String>()
        for line in log.split(separator: "\n") where line.contains(" xds.stream-open ") && line.contains(" group=\(group) ") {
            guard let start = line.range(of: " mode=") else { continue }
            let rest = line[start.upperBound...]
            if rest.hasPrefix("\"") {
                modes.insert(String(rest.dropFirst().prefix { $0 != "\"" }))
            } else {
                modes.insert(String(rest.prefix { $0 != " " }))
            }
        }
        return modes
    }

    func testGatewaysOnPerTypeStreamsGetEveryResourceTypeAndRouteTraffic() throws {
        let groups = ["frontend", "admin", "ingress", "internal-web"]
        let mesh = try DemoMeshRun(proxies: groups, gatewayModes: ["ingress": "per-type", "internal-web": "per-type-delta"])
        self.mesh = mesh

        // The applications behind the frontend and admin sidecars (the demo's endpoints).
        try mesh.startApplication(port: 19110, body: "frontend-app")
        try mesh.startApplication(port: 19190, body: "admin-app")
        let (server, serverPort) = try mesh.startServe(admin: "127.0.0.1:0")

        var proxies: [ChildProcess] = []
        for group in groups {
            // No mode flags: the group's mode comes from the store.
            let envoy = try mesh.startEnvoy(group: group, serverPort: serverPort, bootstrapFlags: ["--store", mesh.store],
                                            envoyArguments: ["--drain-time-s", "1", "--parent-shutdown-time-s", "2"])
            let yaml = envoy.bootstrap
            switch group {
            case "ingress": XCTAssertTrue(yaml.contains("api_type: GRPC,") && !yaml.contains("ads_config"), "ingress bootstrap is per-type SotW:\n\(yaml)")
            case "internal-web": XCTAssertTrue(yaml.contains("api_type: DELTA_GRPC,") && !yaml.contains("ads_config"), "internal-web bootstrap is per-type delta:\n\(yaml)")
            default: XCTAssertTrue(yaml.contains("ads_config"), "\(group) bootstrap is ADS")
            }
            proxies.append(envoy.process)
        }
        func logs() -> String { proxies.map(\.output).joined(separator: "\n").suffix(3000).description }

        // ingress (per-type SotW) → frontend sidecar (ADS) → frontend application.
        var answer: String?
        E2E.waitUntil(30, "traffic through the ingress gateway") { answer = httpsGet(10443, "/api/orders"); return answer == "frontend-app" }
        XCTAssertEqual(answer, "frontend-app", "ingress → frontend; envoy logs: \(logs())")
        // internal-web (per-type delta) → admin sidecar (ADS) → admin application.
        E2E.waitUntil(30, "traffic through the internal-web gateway") { answer = httpsGet(10444, "/"); return answer == "admin-app" }
        XCTAssertEqual(answer, "admin-app", "internal-web → admin; envoy logs: \(logs())")

        // The server saw one kind of stream per resource type from each gateway, and ADS from the sidecars.
        let types = ["Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment", "Secret"]
        let log = server.output
        XCTAssertEqual(streamModes(log, group: "ingress"), Set(types.map { "per-type \($0)" }), log.suffix(3000).description)
        XCTAssertEqual(streamModes(log, group: "internal-web"), Set(types.map { "per-type-delta \($0)" }), log.suffix(3000).description)
        XCTAssertEqual(streamModes(log, group: "frontend"), ["ads"])
        XCTAssertEqual(streamModes(log, group: "admin"), ["ads"])
    }

    func testBootstrapFromTheStoreRefusesModeFlagsThatContradictTheGroup() throws {
        let mesh = try DemoMeshRun(proxies: [], gatewayModes: ["ingress": "per-type-delta"])
        self.mesh = mesh
        let store = mesh.store
        let cases: [(name: String, group: String, flags: [String], status: Int32, mode: String?)] = [
            ("no flags follow the group", "ingress", [], 0, "DELTA_GRPC"),
            ("agreeing flags", "ingress", ["--per-type", "--delta"], 0, "DELTA_GRPC"),
            ("contradicting flags", "ingress", ["--delta"], 2, nil),
            ("agreeing --mode", "ingress", ["--mode", "per-type-delta"], 0, "DELTA_GRPC"),
            ("contradicting --mode", "ingress", ["--mode", "ads-delta"], 2, nil),
            ("--mode with a deprecated flag", "ingress", ["--mode", "per-type-delta", "--delta"], 2, nil),
            ("a default group is ADS", "frontend", [], 0, "ads_config"),
            ("a group the store does not have", "nope", [], 2, nil),
        ]
        for c in cases {
            let result = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", "x-1", "--node-cluster", c.group, "--server", "127.0.0.1:18000",
                                               "--insecure-plaintext", "--store", store] + c.flags, timeout: 30)
            XCTAssertEqual(result?.status, c.status, c.name)
            if let mode = c.mode { XCTAssertTrue(result?.output.contains(mode) ?? false, "\(c.name): \(result?.output ?? "")") }
        }
    }
}
