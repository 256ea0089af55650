// Proxy-side certificate rotation with real Envoys: the demo mesh's sidecars take their certificates from files
// through SDS secrets that watch their directory; `meshctl certs renew` moves a new certificate into place while
// requests flow frontend → users across mutual TLS. New TLS connections to the users sidecar present the new
// certificate (its serial, read with `openssl s_client`), and no request fails.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class ProxyCertificateRotationTests: XCTestCase {
    var mesh: DemoMeshRun?

    override func tearDown() { mesh?.stop() }

    /// The serial of the certificate a new TLS connection to 127.0.0.1:`port` is shown (as a mesh client would see it).
    private func presentedSerial(port: Int, certs: String) -> String? {
        let script = "openssl s_client -connect 127.0.0.1:\(port) -cert '\(certs)/frontend.crt' -key '\(certs)/frontend.key' -CAfile '\(certs)/ca.crt' </dev/null 2>/dev/null | openssl x509 -noout -serial"
        guard let result = E2E.run("/bin/bash", ["-c", script], timeout: 10), result.status == 0 else { return nil }
        return result.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func fileSerial(_ path: String) -> String? {
        E2E.run("/usr/bin/openssl", ["x509", "-in", path, "-noout", "-serial"], timeout: 10)?.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func testRenewedSidecarCertificateIsServedWithoutRestartOrFailedRequests() throws {
        let mesh = try DemoMeshRun(proxies: ["frontend", "users"])
        self.mesh = mesh
        let certs = mesh.certificates
        try mesh.startApplication(port: 19170, body: "users-app")
        let (_, serverPort) = try mesh.startServe()
        let envoys = try ["users", "frontend"].map { try mesh.startEnvoy(group: $0, serverPort: serverPort).process }
        let request = ["-s", "-f", "-m", "2", "-H", "Host: users", "http://127.0.0.1:10111/users/42"]
        E2E.waitUntil(30, "frontend → users over the mesh") { E2E.run("/usr/bin/curl", request, timeout: 5)?.output == "users-app" }

        // The users sidecar's inbound listener (port 10170 in Configs/services/users.yaml) presents users.crt.
        let before = try XCTUnwrap(fileSerial(certs + "/users.crt"))
        XCTAssertEqual(presentedSerial(port: 10170, certs: certs), before)

        // Requests keep flowing through both sidecars while the certificate is renewed.
        let traffic = RequestLoop(arguments: request, expected: "users-app")
        traffic.start()
        usleep(500_000)
        let renew = E2E.run(E2E.meshctl, ["certs", "renew", "--dir", certs, "--proxy", "users"], timeout: 30)
        XCTAssertEqual(renew?.status, 0, renew?.output ?? "renew did not finish")
        let after = try XCTUnwrap(fileSerial(certs + "/users.crt"))
        XCTAssertNotEqual(after, before, "renew issued a new certificate")
        E2E.waitUntil(20, "new connections to the users sidecar to present the renewed certificate") {
            self.presentedSerial(port: 10170, certs: certs) == after
        }
        usleep(500_000)
        let (succeeded, failed) = traffic.stop()
        print("rotation: \(succeeded) requests succeeded, \(failed) failed while the users certificate was renewed")
        XCTAssertEqual(failed, 0, "no request failed during the rotation (\(succeeded) succeeded); envoy logs: \(envoys.map(\.output).joined(separator: "\n").suffix(3000))")
        XCTAssertGreaterThan(succeeded, 5, "requests flowed during the rotation")
        XCTAssertEqual(E2E.run("/usr/bin/curl", request, timeout: 5)?.output, "users-app", "the mesh still routes after the rotation")
    }
}

/// Sends the same curl request back to back on a thread until stopped; counts answers that match and those that don't.
final class RequestLoop: @unchecked Sendable {
    // @unchecked Sendable: the counters and flag are guarded by `lock`.
    private let lock = NSLock()
    private var running = true
    private var succeeded = 0
    private var failed = 0
    private let finished = DispatchSemaphore(value: 0)
    private let arguments: [String]
    private let expected: String

    init(arguments: [String], expected: String) {
        self.arguments = arguments
        self.expected = expected
    }

    func start() {
        Thread {
            while self.lock.withLock({ self.running }) {
                let ok = E2E.run("/usr/bin/curl", self.arguments, timeout: 5)?.output == self.expected
                self.lock.withLock { if ok { self.succeeded += 1 } else { self.failed += 1 } }
            }
            self.finished.signal()
        }.start()
    }

    func stop() -> (succeeded: Int, failed: Int) {
        lock.withLock { running = false }
        finished.wait()
        return lock.withLock { (succeeded, failed) }
    }
}
