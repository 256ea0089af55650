// `meshctl serve` refuses what it cannot serve with a clear message and exit 2, before listening.
import Foundation
import MeshCertificates
import Transport
import MeshTestSupport
import XCTest
import XDSProtocol
import XDSWire

final class ServeCommandTests: XCTestCase {
    func testBadStartupInputIsRefusedWithAReason() throws {
        let directory = try E2E.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["p"])
        let certs = directory + "/certs"
        try FileManager.default.createDirectory(atPath: directory + "/store", withIntermediateDirectories: true)
        let tls = ["--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt"]
        let cases: [(name: String, arguments: [String], says: String)] = [
            ("missing store", ["--store", directory + "/nope"] + tls, "no such directory"),
            ("missing certificate", ["--store", directory + "/store", "--tls-cert", certs + "/missing.crt", "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt"], "no such readable file"),
            ("key of another certificate", ["--store", directory + "/store", "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/p.key", "--client-ca", certs + "/ca.crt"], "key values mismatch"),
            ("no TLS and no opt-out", ["--store", directory + "/store"], "mutual TLS needs"),
            ("bad listen address", ["--store", directory + "/store", "--listen", "nowhere"] + tls, "HOST:PORT"),
            ("admin beyond loopback without --admin-expose", ["--store", directory + "/store", "--admin", "0.0.0.0:18001"] + tls, "not a loopback address"),
            ("admin on a name that only looks like loopback", ["--store", directory + "/store", "--admin", "127.0.0.1.example.com:18001"] + tls, "not a loopback address"),
            ("--admin-expose without a token", ["--store", directory + "/store", "--admin", "0.0.0.0:18001", "--admin-expose"] + tls, "needs --admin-token-file"),
            ("unreadable token file", ["--store", directory + "/store", "--admin-token-file", directory + "/no-token"] + tls, "cannot be read"),
            ("short token", ["--store", directory + "/store", "--admin-token-file", directory + "/short-token"] + tls, "shorter than 16 characters"),
        ]
        try "secret\n".write(toFile: directory + "/short-token", atomically: true, encoding: .utf8)
        for c in cases {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: E2E.meshctl)
            process.arguments = ["serve", "--listen", "127.0.0.1:0"] + c.arguments
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { process.terminate(); XCTFail("\(c.name): serve kept running"); continue }
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(process.terminationStatus, 2, "\(c.name): \(message)")
            XCTAssertTrue(message.contains(c.says), "\(c.name): \(message)")
        }
    }
}

final class AdminAccessTests: XCTestCase {
    /// With --admin-token-file every admin path but the probes needs the bearer token; refusals are counted.
    func testBearerTokenGuardsEverythingButTheProbes() throws {
        let directory = try E2E.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try E2E.publishFrontendMesh(in: directory)
        let certs = directory + "/certs"
        let token = "0123456789abcdef0123456789abcdef"
        try "\(token)\n".write(toFile: directory + "/admin-token", atomically: true, encoding: .utf8)
        let server = try ChildProcess(E2E.meshctl, ["serve", "--store", directory + "/store", "--listen", "127.0.0.1:\(E2E.freePort())",
                                                    "--admin", "127.0.0.1:0", "--admin-token-file", directory + "/admin-token",
                                                    "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt",
                                                    "--drain-seconds", "1"], log: directory + "/server.log")
        defer { server.stop() }
        let adminPort = E2E.adminPort(of: server)
        func get(_ path: String, _ headers: [String] = []) -> (code: String, body: String) {
            let arguments = ["-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}"] + headers.flatMap { ["-H", $0] } + ["http://127.0.0.1:\(adminPort)\(path)"]
            let output = E2E.run("/usr/bin/curl", arguments, timeout: 10)?.output ?? ""
            let code = output.split(separator: "\n").last.map(String.init) ?? ""
            return (code, String(output.dropLast(code.count)))
        }
        XCTAssertEqual(get("/healthz").code, "200", "probes stay open")
        XCTAssertEqual(get("/readyz").code, "200", "probes stay open")
        for path in ["/metrics", "/debug/proxies", "/", "/api/snapshots"] {
            let anonymous = get(path)
            XCTAssertEqual(anonymous.code, "401", "\(path) without a token")
            XCTAssertTrue(anonymous.body.contains("Authorization: Bearer"), "\(path) says what to send: \(anonymous.body)")
            XCTAssertFalse(anonymous.body.contains(token), "the refusal never echoes the token")
        }
        XCTAssertEqual(get("/metrics", ["Authorization: Bearer \(token.dropLast())x"]).code, "401", "a token wrong in its last byte")
        XCTAssertEqual(get("/metrics", ["Authorization: Bearer \(token)extra"]).code, "401", "a longer token")
        XCTAssertEqual(get("/metrics", ["Authorization: \(token)"]).code, "401", "no Bearer scheme")
        let metrics = get("/metrics", ["Authorization: Bearer \(token)"])
        XCTAssertEqual(metrics.code, "200")
        XCTAssertTrue(metrics.body.contains("meshctl_admin_unauthorized_requests_total 7"), metrics.body)
        XCTAssertEqual(get("/debug/proxies", ["Authorization: Bearer \(token)"]).code, "200")
        XCTAssertFalse(server.output.contains(token), "the token is never logged")
    }
}

final class ServeDrainTests: XCTestCase {
    /// SIGTERM: connected proxies are told to go elsewhere (UNAVAILABLE) and the process exits by itself.
    func testSIGTERMDrainsStreamsAndExits() throws {
        let directory = try E2E.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try E2E.publishFrontendMesh(in: directory)
        let port = E2E.freePort()
        let server = try ChildProcess(E2E.meshctl, ["serve", "--store", directory + "/store", "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:0",
                                                    "--tls-cert", directory + "/certs/server.crt", "--tls-key", directory + "/certs/server.key",
                                                    "--client-ca", directory + "/certs/ca.crt", "--drain-seconds", "1"], log: directory + "/server.log")
        defer { server.stop() }
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }

        let loops = EventLoopGroup(loopCount: 1)
        defer { loops.shutdown() }
        let credentials = TLSClientCredentials(certificateChainFile: directory + "/certs/frontend.crt", privateKeyFile: directory + "/certs/frontend.key",
                                               trustedCAFile: directory + "/certs/ca.crt", serverName: "localhost")
        let client = try GRPCClient(configuration: GRPCClientConfiguration(host: "127.0.0.1", port: port, security: .tls(credentials)))
        let recording = RecordingCall()
        let loop = loops.next()
        let connection = try client.connect(on: loop, delegate: recording)
        let request = DiscoveryRequest(node: Node(id: "f-1", cluster: "frontend"), typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster").serialized()
        loop.execute { _ = connection.openStream(path: ServicePath.aggregated, handler: recording)?.send(request) }
        XCTAssertNotNil(recording.firstMessage(), "the stream is served before the drain")

        kill(server.process.processIdentifier, SIGTERM)
        XCTAssertEqual(recording.status(timeout: 10)?.code, .unavailable, "the open stream ends UNAVAILABLE")
        E2E.waitUntil(10, "serve to exit after draining") { !server.process.isRunning }
        XCTAssertEqual(server.process.terminationStatus, 0)
        XCTAssertTrue(server.output.contains("server.draining"))
    }
}
