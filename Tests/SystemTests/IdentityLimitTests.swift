// A stolen proxy key cannot take the server's connection slots: `serve --max-connections-per-identity` admits that
// many connections per certificate identity and refuses the rest with a log line and a metric.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class IdentityLimitTests: XCTestCase {
    func testConnectionsBeyondTheIdentityLimitAreRefusedAndCounted() throws {
        let directory = try E2E.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let certs = directory + "/certs"
        try E2E.publishFrontendMesh(in: directory)
        let port = E2E.freePort(), admin = E2E.freePort()
        let server = try ChildProcess(E2E.meshctl, ["serve", "--store", directory + "/store", "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:\(admin)",
                                                    "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt",
                                                    "--max-connections-per-identity", "2", "--drain-seconds", "1"], log: directory + "/serve.log")
        defer { server.stop() }
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }
        let loadgen = E2E.run(E2E.meshctl, ["loadgen", "--server", "127.0.0.1:\(port)", "--ca", certs + "/ca.crt", "--cert", certs + "/frontend.crt",
                                            "--key", certs + "/frontend.key", "--proxies", "5", "--groups", "frontend", "--duration", "3"], timeout: 60)
        XCTAssertNotNil(loadgen, "loadgen finished")
        E2E.waitUntil(10, "three refusals logged") { server.output.components(separatedBy: "limits.identity-connections").count - 1 >= 3 }
        XCTAssertTrue(server.output.contains("identity=spiffe://mesh.local/proxy/frontend"), server.output)
        let metrics = try XCTUnwrap(E2E.get(admin, "/metrics"))
        XCTAssertTrue(metrics.contains("meshctl_identity_limit_refusals_total{kind=\"connections\"} 3"), metrics)
    }
}
