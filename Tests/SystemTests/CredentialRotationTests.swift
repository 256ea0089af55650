// Server-side certificate rotation with real processes and real certificates: `meshctl serve` loads a new
// certificate, key and client CA bundle on SIGHUP or when the files change, for new connections only — an open ADS
// stream keeps being served — and refuses files it cannot use while the current ones stay in use.
import Foundation
import MeshCertificates
import Transport
import MeshTestSupport
import XCTest
import XDSProtocol
import XDSWire
import GRPCStatusCodes

/// An ADS stream kept open: records responses and can ACK the latest one (so the server may push again).
final class OpenADSStream: GRPCClientConnectionDelegate, GRPCClientStreamHandler, @unchecked Sendable {
    // @unchecked Sendable: `stream` is used on `loop` only; recorded values are guarded by `lock`.
    private let lock = NSLock()
    private var responses: [DiscoveryResponse] = []
    private var finalStatus: GRPCStatus?
    private var stream: ClientStream?
    let loop: EventLoop
    let node = Node(id: "rotation-1", cluster: "frontend")

    init(loop: EventLoop) { self.loop = loop }

    func onMessage(_ message: [UInt8]) {
        if let response = try? DiscoveryResponse(serialized: message) { lock.withLock { responses.append(response) } }
    }
    func onFinish(_ status: GRPCStatus, trailers: [HeaderField]) { lock.withLock { finalStatus = status } }
    func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason) {
        lock.withLock { if finalStatus == nil { finalStatus = GRPCStatus(.unavailable, "connection closed: \(reason)") } }
    }

    var responseCount: Int { lock.withLock { responses.count } }
    var status: GRPCStatus? { lock.withLock { finalStatus } }

    /// Connects with `identity`'s certificate, trusting `trustedCA` for the server, and subscribes to clusters.
    static func open(port: Int, certificate: String, key: String, trustedCA: String, on loop: EventLoop) throws -> OpenADSStream {
        let credentials = TLSClientCredentials(certificateChainFile: certificate, privateKeyFile: key, trustedCAFile: trustedCA, serverName: "localhost")
        let client = try GRPCClient(configuration: GRPCClientConfiguration(host: "127.0.0.1", port: port, security: .tls(credentials)))
        let call = OpenADSStream(loop: loop)
        let connection = try client.connect(on: loop, delegate: call)
        let request = DiscoveryRequest(node: call.node, typeURL: TypeURL.cluster).serialized()
        loop.execute {
            call.stream = connection.openStream(path: ServicePath.aggregated, handler: call)
            _ = call.stream?.send(request)
        }
        return call
    }

    func waitForResponses(_ count: Int, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if responseCount >= count { return true }
            if status != nil { return false }
            usleep(20_000)
        }
        return responseCount >= count
    }

    func acknowledgeLatest() {
        guard let latest = lock.withLock({ responses.last }) else { return }
        let ack = DiscoveryRequest(versionInfo: latest.versionInfo, node: node, typeURL: latest.typeURL, responseNonce: latest.nonce).serialized()
        loop.execute { _ = self.stream?.send(ack) }
    }
}

final class CredentialRotationTests: XCTestCase {
    private var directory = ""
    private let loops = EventLoopGroup(loopCount: 1)

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        // Two independent development CAs of one trust domain: the old material and the new.
        _ = try DevelopmentCertificates.write(to: directory + "/old", trustDomain: "mesh.local", proxies: ["frontend"])
        _ = try DevelopmentCertificates.write(to: directory + "/new", trustDomain: "mesh.local", proxies: ["frontend"])
        try FileManager.default.createDirectory(atPath: directory + "/live", withIntermediateDirectories: true)
        try install(certificate: directory + "/old/server.crt", key: directory + "/old/server.key", clientCAs: [directory + "/old/ca.crt"])
        try publish(clusters: ["backend": 19001])
    }

    override func tearDown() {
        loops.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func publish(clusters: [String: Int]) throws {
        try E2E.publish([E2E.group("frontend", listenerPort: 10001, routeTo: "backend", clusters: clusters,
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
    }

    /// Writes the live files as rotation tools do: a temporary file renamed over the old one.
    private func install(certificate: String, key: String, clientCAs: [String]) throws {
        let bundle = try clientCAs.map { try String(contentsOfFile: $0, encoding: .utf8) }.joined()
        for (name, contents) in [("server.crt", try String(contentsOfFile: certificate, encoding: .utf8)),
                                 ("server.key", try String(contentsOfFile: key, encoding: .utf8)), ("client-ca.pem", bundle)] {
            try contents.write(toFile: directory + "/live/.\(name).tmp", atomically: false, encoding: .utf8)
            XCTAssertEqual(rename(directory + "/live/.\(name).tmp", directory + "/live/\(name)"), 0)
        }
    }

    private func startServe(pollSeconds: String) throws -> (SignalFreeChild, port: Int, admin: Int) {
        let port = E2E.freePort(), admin = E2E.freePort()
        let server = try SignalFreeChild(E2E.meshctl, ["serve", "--store", directory + "/store", "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:\(admin)",
                                                       "--tls-cert", directory + "/live/server.crt", "--tls-key", directory + "/live/server.key",
                                                       "--client-ca", directory + "/live/client-ca.pem", "--credential-poll-seconds", pollSeconds,
                                                       "--drain-seconds", "1"], log: directory + "/serve.log")
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }
        return (server, port, admin)
    }

    /// Whether a new connection with `proxy`'s certificate from `authority`, trusting `trusting`'s CA for the
    /// server, is served an ADS response.
    private func served(proxyOf authority: String, trusting: String, port: Int) throws -> Bool {
        let call = try OpenADSStream.open(port: port, certificate: "\(directory)/\(authority)/frontend.crt", key: "\(directory)/\(authority)/frontend.key",
                                          trustedCA: "\(directory)/\(trusting)/ca.crt", on: loops.next())
        return call.waitForResponses(1, seconds: 5)
    }

    private func count(_ event: String, in server: SignalFreeChild) -> Int {
        server.output.components(separatedBy: event).count - 1
    }

    func testSIGHUPRotatesServerCertificateAndClientCAsWithoutDroppingStreams() throws {
        let (server, port, admin) = try startServe(pollSeconds: "0")
        defer { server.kill9() }
        let established = try OpenADSStream.open(port: port, certificate: directory + "/old/frontend.crt", key: directory + "/old/frontend.key",
                                                 trustedCA: directory + "/old/ca.crt", on: loops.next())
        XCTAssertTrue(established.waitForResponses(1), "the stream is served before the rotation")
        XCTAssertFalse(try served(proxyOf: "new", trusting: "new", port: port), "before the rotation the new CA is trusted nowhere")

        // The new server certificate (from the new CA) and a client CA bundle holding both CAs during the rotation.
        try install(certificate: directory + "/new/server.crt", key: directory + "/new/server.key",
                    clientCAs: [directory + "/old/ca.crt", directory + "/new/ca.crt"])
        XCTAssertEqual(kill(server.pid, SIGHUP), 0)
        E2E.waitUntil(10, "the reload") { server.output.contains("tls.reloaded") }
        XCTAssertTrue(server.output.contains("trigger=SIGHUP"), server.output)

        XCTAssertTrue(try served(proxyOf: "new", trusting: "new", port: port), "a proxy of the new CA, checking the new server certificate")
        XCTAssertTrue(try served(proxyOf: "old", trusting: "new", port: port), "a proxy of the old CA is still admitted (both CAs in the bundle)")
        XCTAssertFalse(try served(proxyOf: "old", trusting: "old", port: port), "new handshakes present the new certificate, which the old CA did not sign")

        // The stream opened before the rotation is still served: ACK, publish a change, and it is pushed.
        XCTAssertNil(established.status, "the established stream is still open")
        established.acknowledgeLatest()
        try publish(clusters: ["backend": 19001, "audit": 19002])
        XCTAssertTrue(established.waitForResponses(2), "the established stream receives the next snapshot: \(established.status.map { "\($0)" } ?? "open")")

        // A file that cannot be used is refused; the current material stays in use.
        try "not a certificate\n".write(toFile: directory + "/live/server.crt", atomically: true, encoding: .utf8)
        XCTAssertEqual(kill(server.pid, SIGHUP), 0)
        E2E.waitUntil(10, "the refusal") { server.output.contains("tls.reload-refused") }
        XCTAssertTrue(try served(proxyOf: "new", trusting: "new", port: port), "the previous (new) certificate is still presented")
        XCTAssertFalse(server.output.contains("BEGIN"), "no PEM content in the log")

        let metrics = try XCTUnwrap(E2E.get(admin, "/metrics"))
        XCTAssertTrue(metrics.contains("meshctl_tls_credential_reloads_total{result=\"reloaded\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("meshctl_tls_credential_reloads_total{result=\"refused\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("meshctl_tls_certificate_expiry_timestamp_seconds "), metrics)
    }

    func testChangedFilesAreLoadedWithoutASignal() throws {
        let (server, port, _) = try startServe(pollSeconds: "0.2")
        defer { server.kill9() }
        XCTAssertTrue(try served(proxyOf: "old", trusting: "old", port: port))
        try install(certificate: directory + "/new/server.crt", key: directory + "/new/server.key", clientCAs: [directory + "/new/ca.crt"])
        E2E.waitUntil(10, "the reload") { server.output.contains("tls.reloaded") }
        XCTAssertTrue(server.output.contains("trigger=\"files changed\""), server.output)
        XCTAssertEqual(count("tls.reloaded", in: server), 1, "three files renamed in a row are one reload")
        XCTAssertTrue(try served(proxyOf: "new", trusting: "new", port: port))
        XCTAssertFalse(try served(proxyOf: "old", trusting: "new", port: port), "the old CA left the bundle: its proxies are refused")

        // A key that does not match the certificate (a half-finished rotation) is refused, the old pair stays.
        try (try String(contentsOfFile: directory + "/old/server.key", encoding: .utf8)).write(toFile: directory + "/live/server.key", atomically: true, encoding: .utf8)
        E2E.waitUntil(10, "the refusal") { server.output.contains("tls.reload-refused") }
        XCTAssertTrue(server.output.contains("private key does not match certificate") || server.output.contains("key values mismatch"), server.output)
        XCTAssertTrue(try served(proxyOf: "new", trusting: "new", port: port), "still serving with the last good pair")
    }

    /// A proxy certificate outside its validity period is refused at the handshake, with the reason in the log
    /// and in the handshake-failure metric.
    func testExpiredAndNotYetValidProxyCertificatesAreRefusedClearly() throws {
        let old = directory + "/old"
        let script = """
        set -eu
        cd '\(old)'
        mkdir -p cadb && : > cadb/index.txt && echo 01 > cadb/serial
        printf '%s\\n' '[ ca ]' 'default_ca = dev' '[ dev ]' 'dir = .' 'database = cadb/index.txt' 'serial = cadb/serial' \\
          'new_certs_dir = cadb' 'default_md = sha256' 'policy = anything' 'x509_extensions = proxy' '[ anything ]' \\
          'commonName = supplied' '[ proxy ]' 'subjectAltName = URI:spiffe://mesh.local/proxy/frontend' 'extendedKeyUsage = clientAuth' > ca.cnf
        for kind in expired future; do
          openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out $kind.key 2>/dev/null
          openssl req -new -key $kind.key -out $kind.csr -subj "/CN=frontend-$kind"
        done
        openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr -out expired.crt -startdate 20200101000000Z -enddate 20200201000000Z -notext 2>/dev/null
        openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in future.csr -out future.crt -startdate 20990101000000Z -enddate 20991231000000Z -notext 2>/dev/null
        """
        let made = E2E.run("/bin/bash", ["-c", script], timeout: 60)
        XCTAssertEqual(made?.status, 0, made?.output ?? "openssl did not finish")
        let (server, port, admin) = try startServe(pollSeconds: "0")
        defer { server.kill9() }
        for kind in ["expired", "future"] {
            let call = try OpenADSStream.open(port: port, certificate: "\(old)/\(kind).crt", key: "\(old)/\(kind).key", trustedCA: old + "/ca.crt", on: loops.next())
            XCTAssertFalse(call.waitForResponses(1, seconds: 5), "\(kind): refused")
        }
        E2E.waitUntil(10, "both refusals logged") { self.count("tls.handshake-failed", in: server) >= 2 }
        XCTAssertTrue(server.output.contains("reason=certificate_expired"), server.output)
        XCTAssertTrue(server.output.contains("reason=certificate_not_yet_valid"), server.output)
        let metrics = try XCTUnwrap(E2E.get(admin, "/metrics"))
        XCTAssertTrue(metrics.contains("meshctl_tls_handshake_failures_total{reason=\"certificate_expired\"} 1"), metrics)
        XCTAssertTrue(metrics.contains("meshctl_tls_handshake_failures_total{reason=\"certificate_not_yet_valid\"} 1"), metrics)
        XCTAssertTrue(try served(proxyOf: "old", trusting: "old", port: port), "a valid proxy certificate is still served")
    }
}
