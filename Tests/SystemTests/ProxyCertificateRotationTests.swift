// Proxy-side certificate rotation with real Envoys: the demo mesh's sidecars take their certificates from files
// through SDS secrets that watch their directory; `meshctl certs renew` moves a new certificate into place while
// requests flow frontend → users across mutual TLS. New TLS connections to the users sidecar present the new
// certificate (its serial, read with `openssl s_client`), and no request fails.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class ProxyCertificateRotationTests: XCTestCase {
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
        let certs = directory + "/certs"
        _ = try DevelopmentCertificates.write(to: certs, trustDomain: "mesh.local", proxies: ["frontend", "users"])
        let configs = try E2E.demoConfigs(in: directory, certificates: certs)
        let store = directory + "/store"
        let compile = E2E.run(E2E.meshctl, ["compile", "--configs", configs, "--templates", E2E.root.appendingPathComponent("templates").path, "--out", store], timeout: 120)
        XCTAssertEqual(compile?.status, 0, compile?.output ?? "compile did not finish")
        children.append(try startUpstream(port: 19170, body: "users-app", directory: directory))
        let serverPort = E2E.freePort()
        let server = try ChildProcess(E2E.meshctl, ["serve", "--store", store, "--listen", "127.0.0.1:\(serverPort)", "--admin", "off", "--tls-cert", certs + "/server.crt",
                                                    "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt", "--drain-seconds", "1"],
                                      log: directory + "/server.log")
        children.append(server)
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }
        var envoys: [ChildProcess] = []
        for group in ["users", "frontend"] {
            let admin = E2E.freePort()
            let bootstrap = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", "\(group)-1", "--node-cluster", group, "--server", "127.0.0.1:\(serverPort)",
                                                  "--cert", "\(certs)/\(group).crt", "--key", "\(certs)/\(group).key", "--ca", "\(certs)/ca.crt",
                                                  "--server-name", "localhost", "--admin-port", "\(admin)"], timeout: 30)
            let path = "\(directory)/\(group).yaml"
            try (bootstrap?.output ?? "").write(toFile: path, atomically: true, encoding: .utf8)
            let envoy = try ChildProcess(E2E.envoy, ["-c", path, "--base-id", "\(admin)", "--disable-hot-restart", "-l", "warning"], log: "\(directory)/envoy-\(group).log")
            children.append(envoy)
            envoys.append(envoy)
        }
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
