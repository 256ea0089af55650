// `meshctl import` against real Envoy, on the Envoy project's own example bootstraps (../shared/corpus/envoy-examples,
// never copied into the project). For each example that can run on loopback: a temp copy with every listener and the
// admin interface moved to free loopback ports and every cluster's endpoints pointed at a local HTTP server that names
// the cluster (and the path and host it was asked for); a real Envoy started from that flat file; then the same file
// imported into a copy of the demo Configs/, compiled, served by `meshctl serve`, and a real Envoy bootstrapped by
// `meshctl bootstrap` for the imported group. Both must report the same effective configuration in /config_dump —
// listeners (with the routes their connection managers use, inline or by RDS), clusters, endpoints and secrets, with
// the static/dynamic wrapping, versions, timestamps and the import's own mapping (STATIC+load_assignment ↔
// EDS+assignment, ADS config sources on SDS/RDS references, names given to unnamed listeners) taken out — and answer
// the same requests (every route's prefix or path on every listener) with the same status and upstream.
import EnvoySchema
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class EnvoyImportTests: XCTestCase {
    static var corpus: URL { EnvoyExamplesTests.corpus.appendingPathComponent("cases") }

    /// Examples that run on loopback with plain HTTP/1.1 stand-ins for their upstreams.
    static let runnable = [
        "front-proxy_envoy.yaml",          // the front proxy: two listeners (one TLS, inline key), STRICT_DNS clusters
        "tls_envoy-https-http.yaml",       // TLS termination
        "front-proxy_service-envoy.yaml",  // a service's sidecar-like flat file
        "gzip_envoy.yaml",                 // STATIC clusters (→ EDS), compressor filters, two listeners
        "brotli_envoy.yaml",               // STATIC clusters, TLS listener, compressor
        "zstd_envoy.yaml",
        "local_ratelimit_envoy.yaml",      // STATIC cluster, per-route filter config
        "cors_frontend_envoy.yaml",
        "csrf_samesite_envoy.yaml",
        "route-mirror_envoy.yaml",         // request mirroring to a second cluster
        "rbac_envoy.yaml",
        "cache_envoy.yaml",
        "websocket_envoy-ws-route.yaml",
        "double-proxy_envoy.yaml",
        "zipkin_envoy-front-proxy.yaml",   // tracing in the connection manager, a collector cluster
        "zipkin_envoy-1.yaml", "zipkin_envoy-2.yaml",
        "jaeger-tracing_envoy.yaml", "jaeger-tracing_service1-envoy-jaeger.yaml", "jaeger-tracing_service2-envoy-jaeger.yaml",
        "opentelemetry_envoy-front-proxy.yaml", "opentelemetry_envoy-1.yaml", "opentelemetry_envoy-2.yaml",
        "skywalking_envoy-front-proxy.yaml", "skywalking_envoy-1.yaml", "skywalking_envoy-2.yaml",
        "datadog-tracing_envoy.yaml",
        "cors_backend_envoy.yaml", "csrf_crosssite_envoy.yaml", "front-proxy_service-envoy-2.yaml",
        "locality-load-balancing_envoy.yaml",
        "websocket_envoy-ws.yaml",
        "tls_envoy-http-https.yaml",       // upstream TLS (a TLS stand-in upstream with the test's certificate)
        "tls_envoy-https-https.yaml",      // TLS both sides
        "websocket_envoy-wss.yaml",
        "tls-sni_envoy-client.yaml",       // upstream TLS with SNI per cluster
        "tls_envoy-https-passthrough.yaml", // TCP proxy passing TLS through to a TLS upstream
        "websocket_envoy-wss-passthrough.yaml",
        "tls-inspector_envoy.yaml",        // filter chains chosen by the TLS inspector (TLS + ALPN, or plain)
    ]

    /// The project's own flat file, for what no example has: static secrets (a listener's certificate and a cluster's
    /// CA, both files) served by SDS, an upstream TLS cluster verifying its upstream against the CA secret, a STATIC
    /// cluster with two localities next to a STRICT_DNS one, a route with retries and a timeout. __CERTS__ is the
    /// test's certificate directory.
    static let ownExamples: [String: String] = ["own_static-secrets.yaml": """
        admin: {address: {socket_address: {address: 0.0.0.0, port_value: 9901}}}
        static_resources:
          secrets:
          - name: edge-cert
            tls_certificate:
              certificate_chain: {filename: __CERTS__/server.crt}
              private_key: {filename: __CERTS__/server.key}
          - name: edge-ca
            validation_context:
              trusted_ca: {filename: __CERTS__/ca.crt}
          listeners:
          - name: https
            address: {socket_address: {address: 0.0.0.0, port_value: 8443}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: https
                  route_config:
                    name: routes
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                      - match: {prefix: /api}
                        route: {cluster: api, timeout: 3s, retry_policy: {retry_on: 5xx, num_retries: 2}}
                      - match: {prefix: /}
                        route: {cluster: web}
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
              transport_socket:
                name: envoy.transport_sockets.tls
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
                  common_tls_context:
                    tls_certificate_sds_secret_configs: [{name: edge-cert}]
          - name: http
            address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: http
                  route_config:
                    name: routes
                    virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes:
                      - match: {prefix: /}
                        redirect: {https_redirect: true}
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          clusters:
          - name: web
            connect_timeout: 1s
            load_assignment:
              cluster_name: web
              endpoints:
              - locality: {zone: a}
                lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 8080}}}}]
              - locality: {zone: b}
                lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 8080}}}}]
            transport_socket:
              name: envoy.transport_sockets.tls
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
                sni: localhost
                common_tls_context:
                  validation_context_sds_secret_config: {name: edge-ca}
          - name: api
            type: STRICT_DNS
            connect_timeout: 1s
            load_assignment:
              cluster_name: api
              endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: api.internal, port_value: 80}}}}]}]
        """]

    /// Clusters whose upstream is itself a TLS server although the proxy does not originate TLS (passthrough).
    static let passthroughUpstreams: [String: Set<String>] = [
        "tls_envoy-https-passthrough.yaml": ["service-https"],
        "websocket_envoy-wss-passthrough.yaml": ["service_wss_passthrough"],
        "tls-inspector_envoy.yaml": ["service-https0", "service-https1"],
    ]

    /// Why the others are not run here (each was looked at; the import itself covers them in EnvoyImportUnitTests).
    static let skipped: [String: String] = [
        "dynamic-config-cp_envoy.yaml": "takes its resources from another xDS server (nothing static to import)",
        "dynamic-config-fs_envoy.yaml": "takes its resources from files (path config sources)",
        "golang-http_envoy.yaml": "needs a Go plugin .so", "golang-network_envoy.yaml": "needs a Go plugin .so",
        "kafka_envoy.yaml": "needs a Kafka broker", "kafka-mesh_envoy.yaml": "needs Kafka brokers",
        "mysql_envoy.yaml": "needs MySQL", "postgres_envoy.yaml": "needs PostgreSQL speaking its protocol upstream", "redis_envoy.yaml": "needs Redis",
        "wasm-cc_envoy.yaml": "needs a Wasm module file", "lua_envoy.yaml": "needs a Lua module on the host",
        "lua-cluster-specifier_envoy.yaml": "Lua cluster specifier; its target is computed by a script (not a stand-in question)",
        "udp_envoy.yaml": "a UDP proxy (the test's request is HTTP)",
        "grpc-bridge_client_envoy-proxy.yaml": "needs an HTTP/2 gRPC upstream", "grpc-bridge_server_envoy-proxy.yaml": "needs an HTTP/2 gRPC upstream",
        "load-reporting-service_envoy.yaml": "needs an LRS server",
        "fault-injection_envoy.yaml": "Envoy 1.40 rejects it here: its runtime layer's directory does not exist on this host",
        "single-page-app_envoy.yml": "OAuth2 filter with SDS secrets from files and an external identity provider",
        "tls-sni_envoy.yaml": "SNI routing needs certificate files from the example's repository",
        "double-proxy_envoy-backend.yaml": "needs the example's certificate files",
        "double-proxy_envoy-frontend.yaml": "needs the example's certificate files",
    ]

    var run: DemoMeshRun?
    var children: [ChildProcess] = []

    override func tearDown() {
        for child in children.reversed() { child.stop() }
        children = []
        run?.stop()
        run = nil
    }

    func testImportedExamplesMatchTheirFlatOriginals() throws {
        guard FileManager.default.fileExists(atPath: Self.corpus.path) else {
            throw XCTSkip("the Envoy examples corpus is not at \(Self.corpus.path) (CI keeps shared/ beside the clone)")
        }
        let only = ProcessInfo.processInfo.environment["MESHCTL_IMPORT_EXAMPLES"].map { Set($0.split(separator: ",").map(String.init)) }
        var table: [String] = []
        for (i, example) in (Self.runnable + Self.ownExamples.keys.sorted()).enumerated() where only == nil || only!.contains(example) {
            let group = "imported-\(i)"
            let outcome = try compareExample(example, group: group)
            table.append("| \(example) | \(outcome) |")
            tearDown()
        }
        let all = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path)
        for file in all.sorted() where !Self.runnable.contains(file) {
            XCTAssertNotNil(Self.skipped[file], "\(file): neither run nor skipped with a reason")
            if only == nil { table.append("| \(file) | skipped: \(Self.skipped[file] ?? "?") |") }
        }
        print("meshctl import vs flat Envoy:\n| example | result |\n|---|---|\n" + table.joined(separator: "\n"))
    }

    /// The command's contract: exit 0 imported (warnings allowed), 1 an invalid bootstrap (at file:line:column, nothing
    /// written), 2 usage errors (no such file, a group that exists) — with a message that says what to do.
    func testCommandLineExitStatusAndMessages() throws {
        let directory = try E2E.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let configs = try E2E.demoConfigs(in: directory, certificates: directory + "/certs")
        func meshctl(_ arguments: [String]) throws -> ProcessOutput { try ProcessRunner.run(E2E.meshctl, ["import", "--configs", configs] + arguments, timeout: 60) }

        let missing = try meshctl(["--group", "edge", directory + "/nope.yaml"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderrText.contains("nope.yaml: no such file"), missing.stderrText)

        let bad = directory + "/bad.yaml"
        try "static_resources:\n  clusters:\n  - name: web\n    conect_timeout: 1s\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let invalid = try meshctl(["--group", "edge", bad])
        XCTAssertEqual(invalid.status, 1)
        XCTAssertTrue(invalid.stdoutText.contains("\(bad):4:5: error: static_resources.clusters[0].conect_timeout: unknown field"), invalid.stdoutText)
        XCTAssertTrue(invalid.stderrText.contains("nothing written"), invalid.stderrText)
        XCTAssertFalse(FileManager.default.fileExists(atPath: configs + "/groups"))

        let good = directory + "/good.yaml"
        try "admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9999}}}\nstatic_resources:\n  clusters:\n  - name: web\n    connect_timeout: 1s\n".write(toFile: good, atomically: true, encoding: .utf8)
        let imported = try meshctl(["--group", "edge", good])
        XCTAssertEqual(imported.status, 0, imported.stderrText)
        XCTAssertTrue(imported.stdoutText.contains("\(good):1:1: warning: admin: not imported:"), imported.stdoutText)
        XCTAssertTrue(imported.stdoutText.contains("meshctl bootstrap --node-id edge-1 --node-cluster edge --server 127.0.0.1:18000"), imported.stdoutText)
        XCTAssertTrue(imported.stdoutText.contains("--admin-port 9999"), imported.stdoutText)

        let again = try meshctl(["--group", "edge", good])
        XCTAssertEqual(again.status, 2)
        XCTAssertTrue(again.stderrText.contains("proxy group 'edge' already exists: raw group 'edge'") && again.stderrText.contains("--force"), again.stderrText)
        let service = try meshctl(["--group", "frontend", good])
        XCTAssertEqual(service.status, 2)
        XCTAssertTrue(service.stderrText.contains("already exists: service 'frontend'"), service.stderrText)
        let json = try meshctl(["--group", "edge-json", "--format", "json", good])
        XCTAssertEqual(json.status, 0)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any], json.stdoutText)
        XCTAssertEqual(report["schema"] as? String, "meshctl.import/v1")
        XCTAssertEqual(report["ok"] as? Bool, true)
        XCTAssertEqual(report["group_file"] as? String, configs + "/groups/edge-json.yaml")
        XCTAssertEqual((report["resources"] as? [String: Int])?["clusters"], 1)
        XCTAssertTrue((report["bootstrap_command"] as? String)?.hasPrefix("meshctl bootstrap --node-id edge-json-1") == true)
        XCTAssertEqual((report["diagnostics"] as? [[String: Any]])?.first?["rule"] as? String, "import.not-imported")
        let strict = try meshctl(["--group", "edge", "--force", "--strict", good])
        XCTAssertEqual(strict.status, 1, "--strict fails on what is not imported")
    }

    // MARK: one example

    /// Runs the flat and the imported Envoy for `example`; a one-line result for the table.
    func compareExample(_ example: String, group: String) throws -> String {
        let run = try DemoMeshRun(proxies: [group], compileDemo: false)
        self.run = run
        // Imported into the demo mesh, as a team adopting meshctl would: the demo's services and gateways stay.
        let configs = try E2E.demoConfigs(in: run.directory, certificates: run.certificates)
        let pool = E2E.pool
        let text = try Self.ownExamples[example]?.replacingOccurrences(of: "__CERTS__", with: run.certificates)
            ?? String(contentsOf: Self.corpus.appendingPathComponent(example), encoding: .utf8)
        var bootstrap = try Self.json(text, file: example, pool: pool)
        // Every listener and the admin interface on free loopback ports; every cluster's endpoints on a local upstream.
        var upstreams: [String: (port: Int, tls: Bool)] = [:]
        var staticResources = bootstrap["static_resources"] as? [String: Any] ?? [:]
        var listeners = staticResources["listeners"] as? [[String: Any]] ?? []
        for i in listeners.indices {
            listeners[i]["address"] = ["socket_address": ["address": "127.0.0.1", "port_value": E2E.freePort()]]
        }
        var clusters = staticResources["clusters"] as? [[String: Any]] ?? []
        for i in clusters.indices {
            let name = clusters[i]["name"] as? String ?? "cluster\(i)"
            guard var assignment = clusters[i]["load_assignment"] as? [String: Any] else { continue }
            // A cluster with a transport socket (UpstreamTlsContext) talks TLS to its upstream.
            let tls = clusters[i]["transport_socket"] != nil || Self.passthroughUpstreams[example]?.contains(name) == true
            var localities = assignment["endpoints"] as? [[String: Any]] ?? []
            for l in localities.indices {
                var endpoints = localities[l]["lb_endpoints"] as? [[String: Any]] ?? []
                for e in endpoints.indices {
                    // Each endpoint its own upstream, as each had its own address.
                    let port = E2E.freePort()
                    upstreams["\(name)#\(l).\(e)"] = (port, tls)
                    var endpoint = endpoints[e]["endpoint"] as? [String: Any] ?? [:]
                    endpoint["address"] = ["socket_address": ["address": "127.0.0.1", "port_value": port]]
                    endpoint["hostname"] = nil
                    endpoints[e]["endpoint"] = endpoint
                }
                localities[l]["lb_endpoints"] = endpoints
            }
            assignment["endpoints"] = localities
            clusters[i]["load_assignment"] = assignment
        }
        staticResources["listeners"] = listeners
        staticResources["clusters"] = clusters
        bootstrap["static_resources"] = staticResources
        let flatAdmin = E2E.freePort()
        bootstrap["admin"] = ["address": ["socket_address": ["address": "127.0.0.1", "port_value": flatAdmin]]]
        let flatFile = run.directory + "/flat.json"
        try JSONSerialization.data(withJSONObject: bootstrap, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: flatFile))
        for (cluster, upstream) in upstreams.sorted(by: { $0.key < $1.key }) {
            let certificate = upstream.tls ? (run.certificates + "/server.crt", run.certificates + "/server.key") : nil
            children.append(try Self.startEchoUpstream(port: upstream.port, name: String(cluster.split(separator: "#")[0]), certificate: certificate, directory: run.directory))
        }
        let requests = Self.requests(listeners, headers: Self.headers[example] ?? [])
        XCTAssertFalse(requests.isEmpty, "\(example): no request to send")

        // The flat file, as the team runs it today.
        let flat = try ChildProcess(E2E.envoy, ["-c", flatFile, "--base-id", "\(flatAdmin)", "--disable-hot-restart", "-l", "warning"],
                                    log: run.directory + "/envoy-flat.log")
        children.append(flat)
        E2E.waitUntil(20, "\(example): the flat Envoy to be ready") { Self.admin(flatAdmin, "/ready")?.hasPrefix("LIVE") == true }
        guard flat.process.isRunning else { XCTFail("\(example): flat Envoy exited: \(flat.output.suffix(2000))"); return "flat Envoy failed" }
        let flatAnswers = requests.map { Self.send($0) }
        let flatDump = try Self.effectiveConfig(Self.admin(flatAdmin, "/config_dump?include_eds") ?? "")
        flat.stop()

        // The import, compiled and served.
        let imported = try ProcessRunner.run(E2E.meshctl, ["import", "--group", group, "--configs", configs, flatFile], timeout: 60)
        XCTAssertEqual(imported.status, 0, "\(example): import failed: \(imported.stdoutText) \(imported.stderrText)")
        guard imported.status == 0 else { return "import failed" }
        XCTAssertTrue(imported.stdoutText.contains("meshctl bootstrap --node-id"), "\(example): the import prints the bootstrap command")
        let compile = try ProcessRunner.run(E2E.meshctl, ["compile", "--configs", configs, "--templates", E2E.root.appendingPathComponent("templates").path,
                                                          "--out", run.store], timeout: 180)
        XCTAssertEqual(compile.status, 0, "\(example): compile of the imported group failed: \(compile.stdoutText) \(compile.stderrText)")
        guard compile.status == 0 else { return "compile failed" }
        let (_, serverPort) = try run.startServe()
        let envoy = try run.startEnvoy(group: group, serverPort: serverPort, bootstrapFlags: ["--store", run.store])
        var importedDump: EffectiveConfig?
        E2E.waitUntil(30, "\(example): the imported Envoy to take every listener, cluster and route") {
            guard Self.admin(envoy.adminPort, "/ready")?.hasPrefix("LIVE") == true,
                  let dump = try? Self.effectiveConfig(Self.admin(envoy.adminPort, "/config_dump?include_eds") ?? "") else { return false }
            importedDump = dump
            return dump.listeners.count == flatDump.listeners.count && dump.clusters.count >= flatDump.clusters.count
                && dump.endpoints.count >= flatDump.endpoints.count && dump.secrets.count >= flatDump.secrets.count && !dump.listeners.values.contains { $0.contains("\"missing\"") }
        }
        guard let importedDump else { return "imported Envoy not ready: \(envoy.process.output.suffix(1500))" }
        let importedAnswers = requests.map { Self.send($0) }

        var differences: [String] = []
        for (key, value) in flatDump.listeners where importedDump.listeners[key] != value {
            differences.append("listener \(key):\n  flat:     \(value)\n  imported: \(importedDump.listeners[key] ?? "missing")")
        }
        // The imported group also holds meshctl's own cluster (the xDS server); the flat file's clusters must all be there, equal.
        for (key, value) in flatDump.clusters where importedDump.clusters[key] != value {
            differences.append("cluster \(key):\n  flat:     \(value)\n  imported: \(importedDump.clusters[key] ?? "missing")")
        }
        for (key, value) in flatDump.endpoints where importedDump.endpoints[key] != value {
            differences.append("endpoints \(key):\n  flat:     \(value)\n  imported: \(importedDump.endpoints[key] ?? "missing")")
        }
        for (key, value) in flatDump.secrets where importedDump.secrets[key] != value {
            differences.append("secret \(key):\n  flat:     \(value)\n  imported: \(importedDump.secrets[key] ?? "missing")")
        }
        XCTAssertTrue(differences.isEmpty, "\(example): effective configuration differs:\n" + differences.joined(separator: "\n"))
        var answered = 0
        for (request, (flatAnswer, importedAnswer)) in zip(requests, zip(flatAnswers, importedAnswers)) {
            XCTAssertEqual(flatAnswer, importedAnswer, "\(example): \(request) is answered differently")
            if flatAnswer.contains("upstream ") { answered += 1 }
        }
        XCTAssertGreaterThan(answered, 0, "\(example): no request reached an upstream, so routing was not compared: \(flatAnswers)")
        let summary = "\(flatDump.listeners.count) listeners, \(flatDump.clusters.count) clusters, \(flatDump.endpoints.count) assignments, \(flatDump.secrets.count) secrets"
        return differences.isEmpty && flatAnswers == importedAnswers
            ? "equal (\(summary)); \(requests.count) requests routed alike, \(answered) reached an upstream"
            : "DIFFERENT (\(differences.count) resources, \(zip(flatAnswers, importedAnswers).filter { $0 != $1 }.count) requests)"
    }

    // MARK: helpers

    /// An Envoy bootstrap (YAML or JSON) as JSON objects, through the schema engine (canonical field names).
    static func json(_ text: String, file: String, pool: DescriptorPool) throws -> [String: Any] {
        let type = try XCTUnwrap(pool.messageID(named: TypeNames.bootstrap))
        let (message, diagnostics) = ConfigDocument.read(text: text, file: file, syntax: InputSyntax(fileName: file), type: type, pool: pool)
        let parsed = try XCTUnwrap(message, "\(file): \(diagnostics)")
        let data = Data(TextWriter(pool: pool).jsonText(parsed).utf8)
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// An HTTP/1.1 server on 127.0.0.1:`port` answering every request with `upstream NAME METHOD PATH host=HOST`;
    /// over TLS with `certificate` (certificate and key files).
    static func startEchoUpstream(port: Int, name: String, certificate: (String, String)?, directory: String) throws -> ChildProcess {
        let script = """
        import http.server, ssl, sys
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length: self.rfile.read(length)
                data = ("upstream %s %s %s host=%s" % (sys.argv[2], self.command, self.path, self.headers.get("Host"))).encode()
                self.send_response(200); self.send_header("Content-Type", "text/plain"); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
            do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = answer
            def log_message(self, *args): pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
        if len(sys.argv) > 3:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[3], sys.argv[4])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        server.serve_forever()
        """
        let path = directory + "/echo.py"
        if !FileManager.default.fileExists(atPath: path) { try script.write(toFile: path, atomically: true, encoding: .utf8) }
        let tlsArguments = certificate.map { [$0.0, $0.1] } ?? []
        let child = try ChildProcess("/usr/bin/env", ["python3", path, "\(port)", name] + tlsArguments, log: "\(directory)/upstream-\(port).log")
        let scheme = certificate == nil ? "http" : "https"
        E2E.waitUntil(10, "upstream \(name) on \(port)") {
            E2E.run("/usr/bin/curl", ["-s", "-k", "-m", "2", "\(scheme)://127.0.0.1:\(port)/"], timeout: 5)?.output.hasPrefix("upstream ") == true
        }
        return child
    }

    struct Request: CustomStringConvertible {
        let port: Int
        let tls: Bool
        let host: String
        let path: String
        var headers: [String] = []
        var description: String { "GET \(tls ? "https" : "http")://127.0.0.1:\(port)\(path) (Host: \(host)\(headers.map { "; " + $0 }.joined()))" }
    }

    /// Extra requests, with these headers, for examples whose filters decide by them (each path is also sent without).
    static let headers: [String: [String]] = [
        "rbac_envoy.yaml": ["Referer: https://www.envoyproxy.io/docs/envoy/latest/"],
    ]

    /// For each listener: every route's prefix or path in its inline route configuration (first virtual host's first
    /// non-wildcard domain as Host), and "/" on listeners without one (TCP proxies).
    static func requests(_ listeners: [[String: Any]], headers: [String]) -> [Request] {
        var out: [Request] = []
        for listener in listeners {
            guard let address = listener["address"] as? [String: Any], let socket = address["socket_address"] as? [String: Any],
                  let port = socket["port_value"] as? Int else { continue }
            let chains = listener["filter_chains"] as? [[String: Any]] ?? []
            let tls = chains.contains { $0["transport_socket"] != nil }
            var paths: [(String, String)] = []
            for chain in chains {
                for filter in chain["filters"] as? [[String: Any]] ?? [] {
                    guard let config = filter["typed_config"] as? [String: Any], let routes = config["route_config"] as? [String: Any] else { continue }
                    for host in routes["virtual_hosts"] as? [[String: Any]] ?? [] {
                        let domains = host["domains"] as? [String] ?? []
                        let domain = domains.first { !$0.contains("*") } ?? "example.com"
                        for route in host["routes"] as? [[String: Any]] ?? [] {
                            let match = route["match"] as? [String: Any] ?? [:]
                            if let prefix = match["prefix"] as? String { paths.append((domain, prefix.isEmpty ? "/" : prefix)) }
                            if let path = match["path"] as? String { paths.append((domain, path)) }
                        }
                    }
                }
            }
            if paths.isEmpty {
                // A TCP proxy: plain HTTP and TLS, so filter chains chosen by the TLS inspector are all exercised.
                if !tls { out.append(Request(port: port, tls: true, host: "example.com", path: "/")) }
                paths = [("example.com", "/")]
            }
            for (host, path) in paths {
                out.append(Request(port: port, tls: tls, host: host, path: path))
                if !headers.isEmpty { out.append(Request(port: port, tls: tls, host: host, path: path, headers: headers)) }
            }
        }
        return out
    }

    /// `STATUS BODY` of the request (curl; TLS without verification: the examples' certificates are self-signed).
    static func send(_ request: Request) -> String {
        let url = "\(request.tls ? "https" : "http")://127.0.0.1:\(request.port)\(request.path)"
        let result = E2E.run("/usr/bin/curl", ["-s", "-k", "-m", "5", "-H", "Host: \(request.host)"] + request.headers.flatMap { ["-H", $0] } + ["-w", " [%{http_code}]", url], timeout: 10)
        return result.map { "\($0.output)" } ?? "no answer"
    }

    static func admin(_ port: Int, _ path: String) -> String? {
        let result = E2E.run("/usr/bin/curl", ["-s", "-f", "-m", "5", "http://127.0.0.1:\(port)\(path)"], timeout: 10)
        return result?.status == 0 ? result?.output : nil
    }

    // MARK: effective configuration

    /// /config_dump reduced to what the proxy runs, keyed by what identifies it: listeners by address (with each
    /// connection manager's routes in place of `route_config`/`rds`), clusters by name, endpoints by cluster, secrets by name.
    struct EffectiveConfig {
        var listeners: [String: String] = [:]
        var clusters: [String: String] = [:]
        var endpoints: [String: String] = [:]
        var secrets: [String: String] = [:]
    }

    static let hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

    static func effectiveConfig(_ text: String) throws -> EffectiveConfig {
        let root = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        let configs = root["configs"] as? [[String: Any]] ?? []
        func section(_ suffix: String) -> [String: Any] { configs.first { ($0["@type"] as? String)?.hasSuffix(".v3." + suffix) == true } ?? [:] }
        var routes: [String: Any] = [:]
        let routeSection = section("RoutesConfigDump")
        for entry in (routeSection["dynamic_route_configs"] as? [[String: Any]] ?? []) + (routeSection["static_route_configs"] as? [[String: Any]] ?? []) {
            if let config = entry["route_config"] as? [String: Any], let name = config["name"] as? String { routes[name] = config }
        }
        var out = EffectiveConfig()
        let listenerSection = section("ListenersConfigDump")
        var listeners = (listenerSection["static_listeners"] as? [[String: Any]] ?? []).compactMap { $0["listener"] as? [String: Any] }
        listeners += (listenerSection["dynamic_listeners"] as? [[String: Any]] ?? []).compactMap { ($0["active_state"] as? [String: Any])?["listener"] as? [String: Any] }
        for listener in listeners {
            var listener = listener
            listener["name"] = nil
            let address = canonical(listener["address"] ?? "")
            out.listeners[address] = canonical(normalize(listener, routes: routes))
        }
        let clusterSection = section("ClustersConfigDump")
        var clusters = (clusterSection["static_clusters"] as? [[String: Any]] ?? []).compactMap { $0["cluster"] as? [String: Any] }
        clusters += (clusterSection["dynamic_active_clusters"] as? [[String: Any]] ?? []).compactMap { $0["cluster"] as? [String: Any] }
        for cluster in clusters {
            guard let name = cluster["name"] as? String, name != "meshctl_xds" else { continue }
            var cluster = normalize(cluster, routes: routes) as! [String: Any]
            let type = cluster["type"] as? String
            if type == nil || type == "STATIC" || type == "EDS" {
                // The import's mapping: a STATIC cluster's load_assignment is served by EDS (compared with the endpoints).
                cluster["type"] = nil
                cluster["eds_cluster_config"] = nil
                cluster["load_assignment"] = nil
            }
            out.clusters[name] = canonical(cluster)
        }
        let endpointSection = section("EndpointsConfigDump")
        for entry in (endpointSection["static_endpoint_configs"] as? [[String: Any]] ?? []) + (endpointSection["dynamic_endpoint_configs"] as? [[String: Any]] ?? []) {
            guard let config = entry["endpoint_config"] as? [String: Any], let name = config["cluster_name"] as? String, name != "meshctl_xds" else { continue }
            out.endpoints[name] = canonical(config)
        }
        let secretSection = section("SecretsConfigDump")
        for entry in (secretSection["static_secrets"] as? [[String: Any]] ?? []) + (secretSection["dynamic_active_secrets"] as? [[String: Any]] ?? []) {
            guard let secret = entry["secret"] as? [String: Any], let name = secret["name"] as? String else { continue }
            out.secrets[name] = canonical(dataSourcesRead(secret))
        }
        return out
    }

    /// Connection managers' routes inlined (by RDS name, or as written), ADS config sources of SDS references removed.
    static func normalize(_ value: Any, routes: [String: Any]) -> Any {
        if var object = value as? [String: Any] {
            if object["@type"] as? String == hcmType {
                if let rds = object["rds"] as? [String: Any], let name = rds["route_config_name"] as? String {
                    object["rds"] = nil
                    object["route_config"] = routes[name] ?? ["missing": name]
                }
                if var inline = object["route_config"] as? [String: Any] {
                    // The RDS resource's own wrapping and name: not part of what the manager routes by.
                    inline["name"] = nil
                    inline["@type"] = nil
                    object["route_config"] = inline
                }
            }
            if let source = object["sds_config"] as? [String: Any], source["ads"] != nil { object["sds_config"] = nil }
            return object.mapValues { normalize($0, routes: routes) }
        }
        if let list = value as? [Any] { return list.map { normalize($0, routes: routes) } }
        return value
    }

    /// Envoy dumps a secret it received by SDS with its files read (`inline_bytes`), a static one with the file names:
    /// both become the files' bytes (this host is the proxy's host), and redacted values stay redacted.
    static func dataSourcesRead(_ value: Any) -> Any {
        if let object = value as? [String: Any] {
            if object.count == 1, let (key, item) = object.first, ["filename", "inline_bytes", "inline_string"].contains(key), let text = item as? String {
                // Redaction of a bytes field is "[redacted]" as bytes (base64 in JSON).
                if text == "[redacted]" || (key == "inline_bytes" && Data(base64Encoded: text) == Data("[redacted]".utf8)) { return ["redacted": true] }
                switch key {
                case "filename": return ["bytes": (FileManager.default.contents(atPath: text) ?? Data()).base64EncodedString()]
                case "inline_string": return ["bytes": Data(text.utf8).base64EncodedString()]
                default: return ["bytes": text]
                }
            }
            return object.mapValues(dataSourcesRead)
        }
        if let list = value as? [Any] { return list.map(dataSourcesRead) }
        return value
    }

    static func canonical(_ value: Any) -> String {
        guard JSONSerialization.isValidJSONObject(value) || value is String || value is NSNumber else { return "\(value)" }
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .fragmentsAllowed])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
