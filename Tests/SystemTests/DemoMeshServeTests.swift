// The demo mesh in Configs/, compiled by `meshctl compile`, served by `meshctl serve`,
// and run by real Envoys: a request from the frontend application's side goes through
// the frontend sidecar, across mutual TLS to the users sidecar, to the users application.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class DemoMeshServeTests: XCTestCase {
    var mesh: DemoMeshRun?

    override func tearDown() { mesh?.stop() }

    func testDemoMeshRoutesAcrossMutualTLSInEveryADSMode() throws {
        let mesh = try DemoMeshRun(proxies: ["frontend", "users", "ingress", "internal-web"], operators: ["oncall"])
        self.mesh = mesh
        let certs = mesh.certificates
        // The users application (the demo's endpoint for users is 127.0.0.1:19170).
        try mesh.startApplication(port: 19170, body: "users-app")
        let (_, serverPort) = try mesh.startServe(admin: "127.0.0.1:0")

        for flags in [[], ["--delta"]] {
            var proxies: [ChildProcess] = []
            for group in ["users", "frontend"] {
                proxies.append(try mesh.startEnvoy(group: group, serverPort: serverPort, bootstrapFlags: flags).process)
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
