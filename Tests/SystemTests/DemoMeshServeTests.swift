// The demo mesh in Configs/, compiled by `meshctl compile`, served by `meshctl serve`,
// and run by real Envoys: a request from the frontend application's side goes through
// the frontend sidecar, across mutual TLS to the users sidecar, to the users application.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class DemoMeshServeTests: XCTestCase {
    var directory = ""
    var children: [ChildProcess] = []

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: E2E.envoy) else { throw XCTSkip("Envoy is not installed; run through `make test`") }
        directory = try E2E.temporaryDirectory()
    }

    override func tearDown() {
        for child in children.reversed() { child.stop() }
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    func testDemoMeshRoutesAcrossMutualTLSInEveryADSMode() throws {
        let certs = directory + "/certs"
        _ = try DevelopmentCertificates.write(to: certs, trustDomain: "mesh.local", proxies: ["frontend", "users", "ingress", "internal-web"],
                                               operators: ["oncall"])
        let configs = try E2E.demoConfigs(in: directory, certificates: certs)
        let store = directory + "/store"
        let compile = E2E.run(E2E.meshctl, ["compile", "--configs", configs, "--templates", E2E.root.appendingPathComponent("templates").path, "--out", store], timeout: 120)
        XCTAssertEqual(compile?.status, 0, compile?.output ?? "compile did not finish")

        // The users application (the demo's endpoint for users is 127.0.0.1:19170).
        children.append(try startUpstream(port: 19170, body: "users-app", directory: directory))

        let serverPort = E2E.freePort()
        let server = try ChildProcess(E2E.meshctl, ["serve", "--store", store, "--listen", "127.0.0.1:\(serverPort)", "--admin", "127.0.0.1:0", "--tls-cert", certs + "/server.crt",
                                                    "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt", "--drain-seconds", "1"],
                                      log: directory + "/server.log")
        children.append(server)
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }

        for flags in [[], ["--delta"]] {
            var proxies: [ChildProcess] = []
            for group in ["users", "frontend"] {
                let admin = E2E.freePort()
                let bootstrap = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", "\(group)-1", "--node-cluster", group, "--server", "127.0.0.1:\(serverPort)",
                                                      "--cert", "\(certs)/\(group).crt", "--key", "\(certs)/\(group).key", "--ca", "\(certs)/ca.crt",
                                                      "--server-name", "localhost", "--admin-port", "\(admin)"] + flags, timeout: 30)
                let path = "\(directory)/\(group)-\(admin).yaml"
                try (bootstrap?.output ?? "").write(toFile: path, atomically: true, encoding: .utf8)
                let envoy = try ChildProcess(E2E.envoy, ["-c", path, "--base-id", "\(admin)", "--disable-hot-restart", "-l", "warning"],
                                             log: "\(directory)/envoy-\(group)-\(admin).log")
                children.append(envoy)
                proxies.append(envoy)
            }
            // frontend's application calls users through its sidecar's outbound listener (10111).
            let deadline = Date().addingTimeInterval(30)
            var answer: String?
            while Date() < deadline {
                answer = E2E.run("/usr/bin/curl", ["-s", "-f", "-m", "2", "-H", "Host: users", "http://127.0.0.1:10111/users/42"], timeout: 5)
                    .flatMap { $0.status == 0 ? $0.output : nil }
                if answer == "users-app" { break }
                usleep(100_000)
            }
            XCTAssertEqual(answer, "users-app", "frontend → users over the mesh (\(flags)); envoy logs: \(proxies.map(\.output).joined(separator: "\n").suffix(2000))")

            // The operator's view: both proxies SYNCED on every type they asked for.
            var status = Command.Result(status: -1, stdout: "", stderr: "")
            E2E.waitUntil(10, "meshctl status to show both proxies in sync (\(flags))") {
                status = Command.run(E2E.meshctl, ["status", "--server", "127.0.0.1:\(serverPort)", "--cert", "\(certs)/operator-oncall.crt",
                                                   "--key", "\(certs)/operator-oncall.key", "--ca", "\(certs)/ca.crt"], timeout: 30)
                return status.status == 0 && status.stdout.contains("frontend-1") && status.stdout.contains("users-1")
            }
            let mode = flags.isEmpty ? "ads" : "ads-delta"
            // users calls no other service, so its sidecar has no EDS cluster and asks for no endpoints.
            for (node, types) in [("frontend-1", 5), ("users-1", 4)] {
                let row = status.stdout.split(separator: "\n").first { $0.hasPrefix(node + " ") }.map(String.init) ?? ""
                XCTAssertTrue(row.contains(" \(mode) "), "\(node): \(status.stdout)")
                XCTAssertFalse(row.contains("STALE") || row.contains("NACKED") || row.contains("NOT_SENT"), "\(node): \(status.stdout)")
                XCTAssertEqual(row.components(separatedBy: "SYNCED").count - 1, types, "every type it asked for is SYNCED: \(status.stdout)")
            }
            for proxy in proxies { proxy.stop() }
        }
    }
}
