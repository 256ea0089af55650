// Operability against real processes: a real Envoy connected to `meshctl serve`,
// then a snapshot it rejects. The rejection must show as NACKED with Envoy's own
// message in `meshctl status` (table, detail, JSON, exit code), in /metrics, over
// CSDS to a standard gRPC client (Python grpcio), in the JSON logs, and on the
// status page rendered by a real headless Chromium. Plus the admin endpoint's and
// `meshctl status`'s answers to bad input.
import Foundation
import MeshCertificates
import ControlPlane
import MeshAdmin
import MeshModel
import MeshServer
import ServerTelemetry
import XDSCache
import MeshTestSupport
import XCTest

final class OperabilityTests: XCTestCase {
    var directory = ""
    var certs = ""
    var store = ""
    var children: [ChildProcess] = []

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        certs = directory + "/certs"
        store = directory + "/store"
        _ = try DevelopmentCertificates.write(to: certs, trustDomain: "mesh.local", proxies: ["frontend"], operators: ["oncall"])
    }

    override func tearDown() {
        for child in children.reversed() { child.stop() }
        children = []
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    struct Server {
        let process: ChildProcess
        let port: Int
        let adminPort: Int
    }

    func startServer(extra: [String] = []) throws -> Server {
        let port = E2E.freePort()
        try FileManager.default.createDirectory(atPath: store, withIntermediateDirectories: true)
        let process = try ChildProcess(E2E.meshctl, ["serve", "--store", store, "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:0",
                                                     "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key",
                                                     "--client-ca", certs + "/ca.crt", "--threads", "2", "--drain-seconds", "1"] + extra,
                                       log: directory + "/server.log")
        children.append(process)
        return Server(process: process, port: port, adminPort: E2E.adminPort(of: process))
    }

    func startEnvoy(serverPort: Int) throws -> Int {
        let admin = E2E.freePort()
        let bootstrap = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", "frontend-\(admin)", "--node-cluster", "frontend", "--server", "127.0.0.1:\(serverPort)",
                                              "--cert", "\(certs)/frontend.crt", "--key", "\(certs)/frontend.key", "--ca", "\(certs)/ca.crt",
                                              "--server-name", "localhost", "--admin-port", "\(admin)"], timeout: 30)
        XCTAssertEqual(bootstrap?.status, 0)
        let path = directory + "/envoy.yaml"
        try (bootstrap?.output ?? "").write(toFile: path, atomically: true, encoding: .utf8)
        children.append(try ChildProcess(E2E.envoy, ["-c", path, "--base-id", "\(admin)", "--disable-hot-restart", "-l", "warning",
                                                     "--drain-time-s", "1", "--parent-shutdown-time-s", "2"], log: directory + "/envoy.log"))
        return admin
    }

    /// `meshctl status` as an operator; exit status, stdout and stderr.
    func status(_ server: Server, _ arguments: [String] = [], identity: String = "operator-oncall") -> Command.Result {
        Command.run(E2E.meshctl, ["status", "--server", "127.0.0.1:\(server.port)", "--cert", "\(certs)/\(identity).crt",
                                  "--key", "\(certs)/\(identity).key", "--ca", "\(certs)/ca.crt", "--timeout", "5"] + arguments, timeout: 30)
    }

    /// A listener on a port another socket holds passes every static check but fails on the proxy.
    func publishRejectedListener(listenerPort: Int, heldPort: Int, upstream: Int) throws {
        let broken = E2E.listenerOnAHeldPort(heldPort, cluster: "backend_a")
        try E2E.publish([E2E.group("frontend", listenerPort: listenerPort, routeTo: "backend_a", clusters: ["backend_a": upstream],
                                   identities: ["spiffe://mesh.local/proxy/frontend"], extraListener: broken)], to: store)
    }

    func testRejectedSnapshotShowsAsNackedInStatusMetricsCSDSLogsAndThePage() throws {
        guard FileManager.default.isExecutableFile(atPath: E2E.envoy) else { throw XCTSkip("Envoy is not installed at \(E2E.envoy); run through `make test`") }
        let upstream = E2E.freePort()
        children.append(try startUpstream(port: upstream, body: "backend-a", directory: directory))
        let listener = E2E.freePort()
        try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_a", clusters: ["backend_a": upstream],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: store)
        let server = try startServer(extra: ["--log-format", "json"])
        let envoyAdmin = try startEnvoy(serverPort: server.port)
        E2E.waitUntil(20, "Envoy to route through its first configuration") { E2E.get(listener) == "backend-a" }
        let node = "frontend-\(envoyAdmin)"

        // In sync: exit 0, every type SYNCED.
        var result = Command.Result(status: -1, stdout: "", stderr: "")
        E2E.waitUntil(10, "meshctl status to report SYNCED") {
            result = status(server)
            return result.status == 0 && result.stdout.contains(node)
        }
        XCTAssertTrue(result.stdout.contains("SYNCED"), result.stdout)
        XCTAssertFalse(result.stdout.contains("NACKED"), result.stdout)
        XCTAssertEqual(E2E.get(server.adminPort, "/readyz"), "ready\n")
        let metricsBefore = E2E.get(server.adminPort, "/metrics") ?? ""
        XCTAssertTrue(metricsBefore.contains(#"meshctl_connected_proxies{group="frontend",mode="ads"} 1"#), metricsBefore)

        // Envoy rejects the next snapshot.
        let holder = try HeldPort()
        try publishRejectedListener(listenerPort: listener, heldPort: holder.port, upstream: upstream)
        E2E.waitUntil(15, "meshctl status to report the NACK") {
            result = status(server)
            return result.status == 1 && result.stdout.contains("NACKED")
        }
        XCTAssertTrue(result.stdout.contains("\(node) LDS NACKED"), result.stdout)
        let envoyMessage = "127.0.0.1:\(holder.port)"
        XCTAssertTrue(result.stdout.contains(envoyMessage), "Envoy's own error names the address it could not bind: \(result.stdout)")
        XCTAssertEqual(E2E.get(listener), "backend-a", "Envoy keeps routing with the configuration it accepted")

        let detail = status(server, [node])
        XCTAssertEqual(detail.status, 1, detail.stderr)
        XCTAssertTrue(detail.stdout.contains("last NACK"), detail.stdout)
        XCTAssertTrue(detail.stdout.contains(envoyMessage), detail.stdout)

        let json = status(server, ["--format", "json"])
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let proxy = try XCTUnwrap((parsed["proxies"] as? [[String: Any]])?.first)
        XCTAssertEqual(proxy["in_sync"] as? Bool, false)
        let lds = try XCTUnwrap((proxy["types"] as? [[String: Any]])?.first { $0["type"] as? String == "LDS" })
        XCTAssertEqual(lds["status"] as? String, "NACKED")
        XCTAssertTrue(((lds["last_nack"] as? [String: String])?["message"] ?? "").contains(envoyMessage), "\(lds)")

        // Metrics.
        let metrics = E2E.get(server.adminPort, "/metrics") ?? ""
        XCTAssertTrue(metrics.contains(#"meshctl_xds_nacks_total{type="LDS",group="frontend"} 1"#), metrics)
        XCTAssertTrue(metrics.contains(#"meshctl_xds_push_latency_seconds_count{phase="send_to_ack",type="CDS"}"#), metrics)
        XCTAssertTrue(metrics.contains(#"meshctl_xds_push_latency_seconds_count{phase="publish_to_send",type="LDS"}"#), metrics)
        XCTAssertTrue(metrics.contains("meshctl_xds_sent_bytes_total"), metrics)
        XCTAssertTrue(metrics.contains("meshctl_snapshot_loads_total 2"), metrics)

        // CSDS to a standard gRPC client.
        try assertPythonCSDSClientSeesTheNack(server: server, node: node, message: envoyMessage)

        // Logs: JSON, one object per line; the NACK names proxy, group and type.
        let lines = server.process.output.split(separator: "\n").filter { $0.hasPrefix("{") }
        XCTAssertFalse(lines.isEmpty)
        for line in lines { XCTAssertNotNil(try? JSONSerialization.jsonObject(with: Data(line.utf8)), String(line)) }
        let nackLine = try XCTUnwrap(lines.first { $0.contains(#""event":"xds.nack""#) })
        let nack = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(nackLine.utf8)) as? [String: String])
        XCTAssertEqual(nack["node"], node)
        XCTAssertEqual(nack["group"], "frontend")
        XCTAssertEqual(nack["level"], "warning")

        // The status page in a real browser.
        try assertStatusPageRendersTheNack(adminPort: server.adminPort, node: node, message: envoyMessage)
    }

    func assertPythonCSDSClientSeesTheNack(server: Server, node: String, message: String) throws {
        guard let python = TestPaths.installedPython else { throw XCTSkip("no Python with xds-protos/grpcio: set MESHCTL_PYTHON (make test does)") }
        let script = """
        import sys, grpc
        from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
        d = sys.argv[2]
        creds = grpc.ssl_channel_credentials(open(d + '/ca.crt', 'rb').read(), open(d + '/operator-oncall.key', 'rb').read(),
                                             open(d + '/operator-oncall.crt', 'rb').read())
        channel = grpc.secure_channel(sys.argv[1], creds, options=[('grpc.ssl_target_name_override', 'localhost')])
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
        request = csds_pb2.ClientStatusRequest()
        request.node_matchers.add().node_id.exact = sys.argv[3]
        response = stub.FetchClientStatus(request, timeout=10)
        for c in response.config:
            for g in c.generic_xds_configs:
                print(c.node.id, g.type_url.split('.')[-1], csds_pb2.ConfigStatus.Name(g.config_status), g.error_state.details.replace('\\n', ' '))
        # The streaming variant answers each request on one stream.
        answers = list(stub.StreamClientStatus(iter([request, request]), timeout=10))
        print('stream answers', len(answers))
        """
        let result = Command.run(python, ["-c", script, "127.0.0.1:\(server.port)", certs, node], timeout: 60)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("\(node) Listener ERROR"), result.stdout)
        XCTAssertTrue(result.stdout.contains(message), result.stdout)
        XCTAssertTrue(result.stdout.contains("\(node) Cluster SYNCED"), result.stdout)
        XCTAssertTrue(result.stdout.contains("stream answers 2"), result.stdout)
    }

    func assertStatusPageRendersTheNack(adminPort: Int, node: String, message: String) throws {
        guard let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) else {
            throw XCTSkip("Chromium is not installed (make test installs Debian's chromium)")
        }
        let url = "http://127.0.0.1:\(adminPort)/"
        let flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
                     "--user-data-dir=\(directory)/chromium", "--virtual-time-budget=5000"]
        let dom = Command.run(chromium, flags + ["--dump-dom", url], timeout: 90)
        XCTAssertEqual(dom.status, 0, dom.stderr)
        XCTAssertTrue(dom.stdout.contains(node), "the proxy table lists the connected Envoy: \(dom.stdout.suffix(3000))")
        XCTAssertTrue(dom.stdout.contains(#"class="badge NACKED""#), dom.stdout.suffix(3000).description)
        XCTAssertTrue(dom.stdout.contains(message), "the NACK row shows Envoy's message")
        XCTAssertTrue(dom.stdout.contains("diff from "), "snapshot history links to diffs")

        let png = directory + "/status-page.png"
        let shot = Command.run(chromium, flags + ["--window-size=1280,900", "--screenshot=\(png)", url], timeout: 90)
        XCTAssertEqual(shot.status, 0, shot.stderr)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: png)))
        XCTAssertEqual(Array(bytes.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "a PNG")
        let width = bytes[16..<20].reduce(0) { $0 << 8 | Int($1) }, height = bytes[20..<24].reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual([width, height], [1280, 900])
        XCTAssertGreaterThan(bytes.count, 15_000, "a rendered page, not a blank one")
        if let keep = ProcessInfo.processInfo.environment["MESHCTL_KEEP_SCREENSHOT"] { try? FileManager.default.copyItem(atPath: png, toPath: keep) }
    }

    func testAdminEndpointAnswersBadRequestsAndNeverShowsKeys() throws {
        let server = try startServer()
        // Nothing published yet: alive, not ready.
        let ready = Command.run("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", "http://127.0.0.1:\(server.adminPort)/readyz"], timeout: 10)
        XCTAssertEqual(ready.stdout, "503")
        XCTAssertEqual(E2E.get(server.adminPort, "/healthz"), "ok\n")
        try E2E.publish([E2E.group("frontend", listenerPort: E2E.freePort(), routeTo: "backend_a", clusters: ["backend_a": E2E.freePort()],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: store)
        E2E.waitUntil(10, "the snapshot to load") { E2E.get(server.adminPort, "/readyz") == "ready\n" }

        let cases: [(name: String, request: String, expect: (String) -> Bool)] = [
            ("unknown path", "GET /config_dump HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", { $0.hasPrefix("HTTP/1.1 404") }),
            ("path traversal", "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", { $0.hasPrefix("HTTP/1.1 404") || $0.hasPrefix("HTTP/1.1 400") }),
            ("malformed request line", "BLAH\r\n\r\n", { $0.hasPrefix("HTTP/1.1 400") }),
            ("oversized header", "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 200_000))\r\n\r\n",
             { $0.hasPrefix("HTTP/1.1 431") || $0.hasPrefix("HTTP/1.1 400") }),
            ("a method the endpoint does not serve", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
             { $0.hasPrefix("HTTP/1.1 404") || $0.hasPrefix("HTTP/1.1 405") }),
            ("too many headers", "GET /healthz HTTP/1.1\r\nHost: x\r\n" + (0..<500).map { "X-\($0): v\r\n" }.joined() + "\r\n",
             { $0.hasPrefix("HTTP/1.1 431") || $0.hasPrefix("HTTP/1.1 400") }),
        ]
        for c in cases {
            let answer = RawHTTP.exchange(port: server.adminPort, c.request)
            XCTAssertTrue(c.expect(answer), "\(c.name): \(answer.prefix(200))")
        }
        XCTAssertEqual(E2E.get(server.adminPort, "/healthz"), "ok\n", "the endpoint still serves after bad requests")

        let secrets = try String(contentsOfFile: certs + "/server.key", encoding: .utf8)
        let keyBody = secrets.split(separator: "\n").dropFirst().first.map(String.init) ?? "unlikely"
        for path in ["/", "/metrics", "/debug/proxies", "/api/snapshots", "/readyz", "/healthz"] {
            let body = try XCTUnwrap(E2E.get(server.adminPort, path), path)
            XCTAssertFalse(body.contains("PRIVATE KEY"), path)
            XCTAssertFalse(body.contains("BEGIN CERTIFICATE"), path)
            XCTAssertFalse(body.contains(keyBody), path)
        }
    }

    func testASnapshotThatFailsToLoadIsRefusedWithALogLineAndAMetric() throws {
        try E2E.publish([E2E.group("frontend", listenerPort: E2E.freePort(), routeTo: "backend_a", clusters: ["backend_a": E2E.freePort()],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: store)
        let server = try startServer()
        E2E.waitUntil(10, "the snapshot to load") { E2E.get(server.adminPort, "/readyz") == "ready\n" }
        let served = try XCTUnwrap(String(contentsOfFile: store + "/current", encoding: .utf8).split(separator: "\n").first.map(String.init))
        // `current` moved to a version whose manifest does not exist (e.g. a damaged copy of the store).
        let ghost = String(repeating: "ab", count: 32)
        try (ghost + "\n").write(toFile: store + "/current.tmp", atomically: false, encoding: .utf8)
        XCTAssertEqual(rename(store + "/current.tmp", store + "/current"), 0)
        var metrics = ""
        E2E.waitUntil(10, "the refusal to be counted") {
            metrics = E2E.get(server.adminPort, "/metrics") ?? ""
            return metrics.contains("meshctl_snapshot_load_failures_total 1")
        }
        XCTAssertTrue(metrics.contains(#"meshctl_snapshot_served{version="\#(served.prefix(12))"} 1"#), "the previous snapshot is still served: \(metrics)")
        XCTAssertTrue(server.process.output.contains("snapshot.refused"), server.process.output)
        XCTAssertEqual(E2E.get(server.adminPort, "/readyz"), "ready\n", "still ready: it serves the previous snapshot")
    }

    func testAProxyThatNeverACKsIsStaleAndFailsTheCheckOnlyAfterTheGracePeriod() throws {
        guard let python = TestPaths.installedPython else { throw XCTSkip("no Python with xds-protos/grpcio: set MESHCTL_PYTHON (make test does)") }
        try E2E.publish([E2E.group("frontend", listenerPort: E2E.freePort(), routeTo: "backend_a", clusters: ["backend_a": E2E.freePort()],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: store)
        let server = try startServer()
        E2E.waitUntil(10, "the snapshot to load") { E2E.get(server.adminPort, "/readyz") == "ready\n" }
        // A proxy (grpcio, the frontend identity) that asks for clusters, reads the answer, and never ACKs it.
        let script = """
        import sys, time, grpc, queue
        from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
        d = sys.argv[2]
        creds = grpc.ssl_channel_credentials(open(d + '/ca.crt', 'rb').read(), open(d + '/frontend.key', 'rb').read(), open(d + '/frontend.crt', 'rb').read())
        channel = grpc.secure_channel(sys.argv[1], creds, options=[('grpc.ssl_target_name_override', 'localhost')])
        requests = queue.Queue()
        r = discovery_pb2.DiscoveryRequest(type_url='type.googleapis.com/envoy.config.cluster.v3.Cluster')
        r.node.id = 'silent-1'; r.node.cluster = 'frontend'
        requests.put(r)
        responses = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources(iter(requests.get, None))
        print('received', next(responses).version_info, flush=True)
        time.sleep(60)
        """
        let proxy = try ChildProcess(python, ["-c", script, "127.0.0.1:\(server.port)", certs], log: directory + "/silent-proxy.log")
        children.append(proxy)
        E2E.waitUntil(20, "the silent proxy to receive its clusters") { proxy.output.contains("received") }
        let lenient = status(server, ["--stale-after", "60"])
        XCTAssertEqual(lenient.status, 0, "STALE within the grace period passes: \(lenient.stdout) \(lenient.stderr)")
        XCTAssertTrue(lenient.stdout.contains("silent-1") && lenient.stdout.contains("STALE"), lenient.stdout)
        usleep(1_200_000)
        let strict = status(server, ["--stale-after", "1"])
        XCTAssertEqual(strict.status, 1, "STALE beyond --stale-after fails: \(strict.stdout)")
        XCTAssertTrue(strict.stdout.contains("STALE ("), "the table shows for how long: \(strict.stdout)")
    }

    func testStatusGivesAClearErrorForServersItCannotAsk() throws {
        let server = try startServer()
        let silent = try HeldPort(listening: true)  // accepts connections, never answers
        let cases: [(name: String, arguments: [String], identity: String, message: String)] = [
            ("server down", ["--server", "127.0.0.1:\(E2E.freePort())"], "operator-oncall", "cannot connect"),
            ("not a meshctl server (plain HTTP)", ["--server", "127.0.0.1:\(server.adminPort)"], "operator-oncall", "TLS handshake"),
            ("slow server", ["--server", "127.0.0.1:\(silent.port)", "--timeout", "1"], "operator-oncall", "did not"),
            ("not an operator", [], "frontend", "may not read proxy status"),
        ]
        for c in cases {
            var arguments = ["status", "--server", "127.0.0.1:\(server.port)", "--cert", "\(certs)/\(c.identity).crt", "--key", "\(certs)/\(c.identity).key",
                             "--ca", "\(certs)/ca.crt", "--timeout", "3"]
            arguments += c.arguments
            let result = Command.run(E2E.meshctl, arguments, timeout: 30)
            XCTAssertEqual(result.status, 2, "\(c.name): \(result.stdout) \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(c.message), "\(c.name): \(result.stderr)")
        }
        let metrics = E2E.get(server.adminPort, "/metrics") ?? ""
        XCTAssertTrue(metrics.contains(#"meshctl_authorization_denials_total{group="",service="csds"} 1"#), metrics)
    }

    func testHandshakeFailuresAreCountedByReason() throws {
        let server = try startServer()
        let strangers = directory + "/strangers"
        _ = try DevelopmentCertificates.write(to: strangers, trustDomain: "elsewhere", proxies: ["frontend"], operators: ["oncall"])
        // A client certificate from another CA, then no client certificate at all.
        let other = Command.run(E2E.meshctl, ["status", "--server", "127.0.0.1:\(server.port)", "--cert", "\(strangers)/operator-oncall.crt",
                                              "--key", "\(strangers)/operator-oncall.key", "--ca", "\(certs)/ca.crt", "--timeout", "3"], timeout: 30)
        XCTAssertEqual(other.status, 2, other.stderr)
        let anonymous = Command.run(E2E.meshctl, ["status", "--server", "127.0.0.1:\(server.port)", "--ca", "\(certs)/ca.crt", "--timeout", "3"], timeout: 30)
        XCTAssertEqual(anonymous.status, 2, anonymous.stderr)
        var metrics = ""
        E2E.waitUntil(5, "both failures to be counted") {
            metrics = E2E.get(server.adminPort, "/metrics") ?? ""
            return metrics.contains(#"meshctl_tls_handshake_failures_total{reason="untrusted_certificate"} 1"#)
                && metrics.contains(#"meshctl_tls_handshake_failures_total{reason="no_client_certificate"} 1"#)
        }
        XCTAssertTrue(server.process.output.contains("tls.handshake-failed"), server.process.output)
    }
}

/// Runs a command with stdout and stderr captured and a deadline.
enum Command {
    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ executable: String, _ arguments: [String], timeout: Double) -> Result {
        do {
            let result = try ProcessRunner.run(executable, arguments, timeout: timeout)
            return Result(status: result.status, stdout: result.stdoutText, stderr: result.stderrText)
        } catch is ProcessTimeout {
            return Result(status: -2, stdout: "", stderr: "timed out after \(timeout)s")
        } catch {
            return Result(status: -1, stdout: "", stderr: "cannot run \(executable)")
        }
    }
}

/// A loopback port held by a socket: bound only (a listener on it cannot start), or listening but never answering.
final class HeldPort {
    let fd: Int32
    let port: Int

    init(listening: Bool = false) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }) == 0 else {
            throw NSError(domain: "HeldPort", code: Int(errno))
        }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        if listening { _ = listen(fd, 16) }
    }

    deinit { close(fd) }
}

/// One raw HTTP/1.1 exchange on loopback: what the server answered ("" if it closed without answering).
enum RawHTTP {
    static func exchange(port: Int, _ request: String) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard withUnsafePointer(to: &address, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }) == 0 else {
            return "connect failed"
        }
        let bytes = Array(request.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }  // the server may close early on an oversized request
            sent += n
        }
        var answer = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            answer += buffer[0..<n]
            if answer.count > 65536 { break }
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
