// A proxyless gRPC client of the demo mesh, with Python grpcio's own xDS client (nobody here
// wrote it): `settlement` (proxyless: grpc) depends on payments. The demo is compiled by
// `meshctl compile`, served by `meshctl serve` over mutual TLS, and the client, bootstrapped by
// `meshctl bootstrap --grpc`, dials xds:///payments. No Envoy stands in for payments: a grpcio
// server holding payments' mesh certificate listens where payments' sidecar would (10150) and
// requires a client certificate, so the call proves the whole generated path — listener, routes,
// cluster with certificate providers and the callee's SAN, weighted endpoints — and mTLS both ways.
import Foundation
import MeshTestSupport
import XCTest

final class ProxylessGRPCTests: XCTestCase {
    var mesh: DemoMeshRun?

    override func tearDown() { mesh?.stop() }

    static let script = TestPaths.root.appendingPathComponent("Tests/Proxyless/grpc_proxyless.py").path

    func python() throws -> String {
        guard let python = TestPaths.installedPython,
              Command.run(python, ["-c", "import grpc; grpc.xds_channel_credentials"], timeout: 30).status == 0 else {
            throw XCTSkip("no Python with grpcio: set MESHCTL_PYTHON (make test does)")
        }
        return python
    }

    /// `meshctl bootstrap --grpc` for node `node` of group `group`, holding `identity`'s certificate; the file's path.
    func grpcBootstrap(_ mesh: DemoMeshRun, node: String, group: String, identity: String, serverPort: Int) throws -> String {
        let certs = mesh.certificates
        let result = Command.run(E2E.meshctl, ["bootstrap", "--grpc", "--node-id", node, "--node-cluster", group, "--server", "127.0.0.1:\(serverPort)",
                                               "--cert", "\(certs)/\(identity).crt", "--key", "\(certs)/\(identity).key", "--ca", "\(certs)/ca.crt",
                                               "--store", mesh.store], timeout: 30)
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
        let servers = try XCTUnwrap(json["xds_servers"] as? [[String: Any]])
        XCTAssertEqual(servers.first?["server_features"] as? [String], ["xds_v3"])
        XCTAssertEqual((servers.first?["channel_creds"] as? [[String: Any]])?.first?["type"] as? String, "tls")
        XCTAssertEqual(Set((json["certificate_providers"] as? [String: Any])?.keys.map { $0 } ?? []), ["mesh-identity", "mesh-ca"])
        let path = "\(mesh.directory)/\(node)-grpc-bootstrap.json"
        try result.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func testGrpcioCallsAMeshServiceThroughMeshctlsGeneratedConfigOverMutualTLS() throws {
        let python = try python()
        let mesh = try DemoMeshRun(proxies: ["settlement", "payments", "orders"], operators: ["oncall"])
        self.mesh = mesh
        let certs = mesh.certificates
        // payments' sidecar port (10150 in Configs/services/payments.yaml), served by grpcio with payments' identity.
        let payments = mesh.adopt(try ChildProcess(python, [Self.script, "serve", "--port", "10150", "--cert", "\(certs)/payments.crt",
                                                            "--key", "\(certs)/payments.key", "--ca", "\(certs)/ca.crt"],
                                                   log: "\(mesh.directory)/payments.log"))
        E2E.waitUntil(20, "the grpcio payments server to listen") { payments.output.contains("listening") }
        let (server, serverPort) = try mesh.startServe()

        let bootstrap = try grpcBootstrap(mesh, node: "settlement-1", group: "settlement", identity: "settlement", serverPort: serverPort)
        let client = mesh.adopt(try ChildProcess(python, [Self.script, "call", "--bootstrap", bootstrap, "--target", "xds:///payments",
                                                          "--deadline", "30", "--hold", "30"],
                                                 log: "\(mesh.directory)/settlement.log"))
        E2E.waitUntil(40, "grpcio to call xds:///payments") { client.output.contains("\"ok\"") }
        XCTAssertTrue(client.output.contains(#"{"ok": true, "status": "SERVING"}"#),
                      "client: \(client.output)\nserve: \(server.output.suffix(3000))\npayments: \(payments.output)")
        // payments saw the caller's mesh identity: the cluster's certificate provider presented settlement's certificate.
        XCTAssertTrue(payments.output.contains("peer spiffe://mesh.local/proxy/settlement"), payments.output)

        // The operator's view: the gRPC client beside Envoys, SYNCED on the four types it asked for.
        var status = Command.Result(status: -1, stdout: "", stderr: "")
        E2E.waitUntil(15, "meshctl status to show settlement-1 in sync") {
            status = Command.run(E2E.meshctl, ["status", "--server", "127.0.0.1:\(serverPort)", "--cert", "\(certs)/operator-oncall.crt",
                                               "--key", "\(certs)/operator-oncall.key", "--ca", "\(certs)/ca.crt"], timeout: 30)
            let row = status.stdout.split(separator: "\n").first { $0.hasPrefix("settlement-1 ") } ?? ""
            return status.status == 0 && row.components(separatedBy: "SYNCED").count - 1 == 4
        }
        let row = status.stdout.split(separator: "\n").first { $0.hasPrefix("settlement-1 ") }.map(String.init) ?? ""
        XCTAssertFalse(row.contains("NACKED") || row.contains("STALE"), status.stdout)
        XCTAssertTrue(row.contains(" ads "), status.stdout)
        client.stop()

        // orders' identity may not receive settlement's group: the server refuses the stream and the call fails.
        let stranger = try grpcBootstrap(mesh, node: "settlement-2", group: "settlement", identity: "orders", serverPort: serverPort)
        let refused = Command.run(python, [Self.script, "call", "--bootstrap", stranger, "--target", "xds:///payments", "--deadline", "8"], timeout: 60)
        XCTAssertNotEqual(refused.status, 0, refused.stdout)
        XCTAssertFalse(refused.stdout.contains("\"ok\": true"), refused.stdout)
        XCTAssertTrue(refused.stdout.contains("PERMISSION_DENIED"), "the client's error names the refusal: \(refused.stdout)")
        XCTAssertTrue(server.output.contains("xds.permission-denied group=settlement identity=\"spiffe://mesh.local/proxy/orders"), server.output.suffix(3000).description)
        XCTAssertFalse(payments.output.contains("peer spiffe://mesh.local/proxy/orders"), "the refused client never reached payments")
    }
}
