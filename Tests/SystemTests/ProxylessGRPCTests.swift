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

    /// A grpcio server standing in for `name`'s sidecar on `port`, with `name`'s mesh certificate; answers name itself.
    func startBackend(_ mesh: DemoMeshRun, python: String, name: String, port: Int) throws -> ChildProcess {
        let certs = mesh.certificates
        let backend = mesh.adopt(try ChildProcess(python, [Self.script, "serve", "--port", "\(port)", "--cert", "\(certs)/\(name).crt",
                                                           "--key", "\(certs)/\(name).key", "--ca", "\(certs)/ca.crt", "--name", name],
                                                  log: "\(mesh.directory)/\(name).log"))
        E2E.waitUntil(20, "the grpcio \(name) server to listen") { backend.output.contains("listening") }
        return backend
    }

    func compile(_ mesh: DemoMeshRun) {
        let result = Command.run(E2E.meshctl, ["compile", "--configs", mesh.configs, "--templates", TestPaths.root.appendingPathComponent("templates").path,
                                               "--out", mesh.store], timeout: 120)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
    }

    /// The backends that answered, in the order of the client's JSON lines from `line` on.
    func backends(_ output: String, from line: Int = 0) -> [String] {
        output.split(separator: "\n").dropFirst(line).compactMap { text -> String? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], object["ok"] as? Bool == true else { return nil }
            return object["backend"] as? String
        }
    }

    func testARouteChangeReachesTheRunningClientWithoutARestartAndARemovedDependencyFailsClearly() throws {
        let python = try python()
        let mesh = try DemoMeshRun(proxies: ["settlement", "payments", "payments-canary"])
        self.mesh = mesh
        // A canary of payments that nothing routes to yet (its sidecar would be on 10155).
        try """
            name: payments-canary
            owners: [team-payments]
            ports: [{name: grpc, protocol: grpc, port: 10155}]
            endpoints: {static: ["127.0.0.1:19155"]}
            security: {allowed_callers: [orders, orders-canary, settlement]}

            """.write(toFile: mesh.configs + "/services/payments-canary.yaml", atomically: true, encoding: .utf8)
        let paymentsFile = mesh.configs + "/services/payments.yaml"
        let payments = try String(contentsOfFile: paymentsFile, encoding: .utf8)
        XCTAssertTrue(payments.contains("    local_port: 10152\n"))
        try payments.replacingOccurrences(of: "    local_port: 10152\n", with: "    local_port: 10152\n  - payments-canary\n")
            .write(toFile: paymentsFile, atomically: true, encoding: .utf8)
        compile(mesh)
        _ = try startBackend(mesh, python: python, name: "payments", port: 10150)
        _ = try startBackend(mesh, python: python, name: "payments-canary", port: 10155)
        let (server, serverPort) = try mesh.startServe()
        let bootstrap = try grpcBootstrap(mesh, node: "settlement-1", group: "settlement", identity: "settlement", serverPort: serverPort)
        let client = mesh.adopt(try ChildProcess(python, [Self.script, "call", "--bootstrap", bootstrap, "--target", "xds:///payments",
                                                          "--deadline", "90", "--repeat"],
                                                 log: "\(mesh.directory)/settlement.log"))
        E2E.waitUntil(40, "ten answers before the change") { backends(client.output).count >= 10 }
        XCTAssertEqual(Set(backends(client.output)), ["payments"], "before the change only payments answers: \(client.output.suffix(2000))")

        // Payments' owners split its health checks half and half with the canary; the running client follows.
        let linesBefore = client.output.split(separator: "\n").count
        try (try String(contentsOfFile: paymentsFile, encoding: .utf8) + """
              - name: health
                match: {prefix: /grpc.health.v1.Health/}
                split:
                  targets:
                    - {service: payments, weight: 50}
                    - {service: payments-canary, weight: 50}

            """).write(toFile: paymentsFile, atomically: true, encoding: .utf8)
        let published = Date()
        compile(mesh)
        E2E.waitUntil(40, "the canary to answer the running client") { backends(client.output, from: linesBefore).contains("payments-canary") }
        let applied = Date().timeIntervalSince(published)
        E2E.waitUntil(20, "forty answers after the change") { backends(client.output, from: linesBefore).count >= 40 }
        let after = backends(client.output, from: linesBefore)
        XCTAssertTrue(after.contains("payments") && after.contains("payments-canary"), "both halves of the split answer: \(after)")
        XCTAssertTrue(client.process.isRunning, "the same client process, never restarted")
        XCTAssertTrue(server.output.contains("snapshot.loaded"), server.output.suffix(2000).description)
        print("proxyless: route change applied by grpcio \(Int(applied * 1000)) ms after compile started")

        // settlement stops depending on payments: its listener leaves the group, and the running client's calls fail clearly.
        let settlementFile = mesh.configs + "/services/settlement.yaml"
        let settlement = try String(contentsOfFile: settlementFile, encoding: .utf8)
        XCTAssertTrue(settlement.contains("dependencies: [payments]\n"))
        try settlement.replacingOccurrences(of: "dependencies: [payments]\n", with: "dependencies: []\n").write(toFile: settlementFile, atomically: true, encoding: .utf8)
        let linesBeforeRemoval = client.output.split(separator: "\n").count
        compile(mesh)
        var failure: [String: Any]?
        E2E.waitUntil(30, "the client's calls to fail after payments left its group") {
            failure = client.output.split(separator: "\n").dropFirst(linesBeforeRemoval).lazy
                .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .first { $0["ok"] as? Bool == false }
            return failure != nil
        }
        print("proxyless: after removal the client gets \(failure?["code"] ?? "-"): \(failure?["details"] ?? "-")")
        XCTAssertEqual(failure?["code"] as? String, "UNAVAILABLE", "\(failure ?? [:])")
        XCTAssertTrue((failure?["details"] as? String ?? "").contains("payments"), "the error names the target: \(failure ?? [:])")
    }

    func testGrpcioCallsAnApplicationBehindARealEnvoySidecarOverMeshMutualTLS() throws {
        let python = try python()
        let mesh = try DemoMeshRun(proxies: ["settlement", "payments"])
        self.mesh = mesh
        // payments' application where Configs/services/payments.yaml puts it (19150), behind payments' real Envoy sidecar (10150).
        let application = mesh.adopt(try ChildProcess(python, [Self.script, "serve", "--port", "19150", "--plaintext", "--name", "payments-app"],
                                                      log: "\(mesh.directory)/payments-app.log"))
        E2E.waitUntil(20, "the payments application to listen") { application.output.contains("listening") }
        let (server, serverPort) = try mesh.startServe()
        let sidecar = try mesh.startEnvoy(group: "payments", serverPort: serverPort)
        let bootstrap = try grpcBootstrap(mesh, node: "settlement-1", group: "settlement", identity: "settlement", serverPort: serverPort)
        let client = mesh.adopt(try ChildProcess(python, [Self.script, "call", "--bootstrap", bootstrap, "--target", "xds:///payments", "--deadline", "40"],
                                                 log: "\(mesh.directory)/settlement.log"))
        E2E.waitUntil(50, "grpcio to call payments through its sidecar") { client.output.contains("\"ok\"") }
        XCTAssertTrue(client.output.contains(#"{"ok": true, "status": "SERVING", "backend": "payments-app"}"#),
                      "client: \(client.output)\nsidecar: \(sidecar.process.output.suffix(2000))\nserve: \(server.output.suffix(2000))")
        // The sidecar verified the client's mesh certificate and told the application who called.
        XCTAssertTrue(application.output.contains("URI=spiffe://mesh.local/proxy/settlement"), application.output)
    }

    func testAGRPCClientOfAPerTypeGroupIsRefusedWithAClearStatus() throws {
        let python = try python()
        let mesh = try DemoMeshRun(proxies: ["ingress"], gatewayModes: ["ingress": "per-type"])
        self.mesh = mesh
        let certs = mesh.certificates
        let (server, serverPort) = try mesh.startServe()
        // meshctl refuses to write the bootstrap…
        let refusedBootstrap = Command.run(E2E.meshctl, ["bootstrap", "--grpc", "--node-id", "ingress-1", "--node-cluster", "ingress",
                                                         "--server", "127.0.0.1:\(serverPort)", "--cert", "\(certs)/ingress.crt", "--key", "\(certs)/ingress.key",
                                                         "--ca", "\(certs)/ca.crt", "--store", mesh.store], timeout: 30)
        XCTAssertEqual(refusedBootstrap.status, 2)
        XCTAssertTrue(refusedBootstrap.stderr.contains("xds: per-type"), refusedBootstrap.stderr)
        // gRPC speaks ADS only, and checks the server's certificate against --server's host.
        for flags in [["--mode", "per-type"], ["--server-name", "localhost"]] {
            let usage = Command.run(E2E.meshctl, ["bootstrap", "--grpc", "--node-id", "x-1", "--node-cluster", "settlement", "--server", "127.0.0.1:18000",
                                                  "--insecure-plaintext"] + flags, timeout: 30)
            XCTAssertEqual(usage.status, 2, "\(flags): \(usage.stderr)")
            XCTAssertTrue(usage.stderr.contains("--grpc"), "\(flags): \(usage.stderr)")
        }
        // …and the server refuses the ADS stream of a client bootstrapped without the store.
        let written = Command.run(E2E.meshctl, ["bootstrap", "--grpc", "--node-id", "ingress-1", "--node-cluster", "ingress",
                                                "--server", "127.0.0.1:\(serverPort)", "--cert", "\(certs)/ingress.crt", "--key", "\(certs)/ingress.key",
                                                "--ca", "\(certs)/ca.crt"], timeout: 30)
        XCTAssertEqual(written.status, 0, written.stderr)
        let bootstrap = "\(mesh.directory)/ingress-grpc.json"
        try written.stdout.write(toFile: bootstrap, atomically: true, encoding: .utf8)
        let refused = Command.run(python, [Self.script, "call", "--bootstrap", bootstrap, "--target", "xds:///ingress", "--deadline", "8"], timeout: 60)
        XCTAssertNotEqual(refused.status, 0, refused.stdout)
        XCTAssertTrue(refused.stdout.contains("FAILED_PRECONDITION"), "the client's error names the refusal: \(refused.stdout)")
        XCTAssertTrue(server.output.contains("xds.mode-mismatch group=ingress"), server.output.suffix(2000).description)
    }

    func testGrpcioCallsAMeshServiceThroughMeshctlsGeneratedConfigOverMutualTLS() throws {
        let python = try python()
        let mesh = try DemoMeshRun(proxies: ["settlement", "payments", "orders"], operators: ["oncall"])
        self.mesh = mesh
        let certs = mesh.certificates
        // payments' sidecar port (10150 in Configs/services/payments.yaml), served by grpcio with payments' identity.
        let payments = try startBackend(mesh, python: python, name: "payments", port: 10150)
        let (server, serverPort) = try mesh.startServe()

        let bootstrap = try grpcBootstrap(mesh, node: "settlement-1", group: "settlement", identity: "settlement", serverPort: serverPort)
        let client = mesh.adopt(try ChildProcess(python, [Self.script, "call", "--bootstrap", bootstrap, "--target", "xds:///payments",
                                                          "--deadline", "30", "--hold", "30"],
                                                 log: "\(mesh.directory)/settlement.log"))
        E2E.waitUntil(40, "grpcio to call xds:///payments") { client.output.contains("\"ok\"") }
        XCTAssertTrue(client.output.contains(#"{"ok": true, "status": "SERVING", "backend": "payments"}"#),
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
