// Shared by the server's tests and the system tests: the built meshctl, temporary
// directories, loopback ports, small meshes published to a store, bounded waits, and
// child processes (upstream HTTP servers, meshctl serve, Envoy) stopped when a test ends.
import EnvoySchema
import Foundation
import MeshCertificates
import MeshFixtures
import SnapshotStorage
import XCTest

public enum E2E {
    public static var root: URL { TestPaths.root }
    public static var envoy: String { TestPaths.envoy }
    public static var meshctl: String { TestPaths.meshctl }

    public static let pool: DescriptorPool = try! DescriptorPool.envoy
    static let fixtures = EnvoyFixtures(pool: pool, file: "e2e")

    public static func temporaryDirectory() throws -> String { try TestPaths.temporaryDirectory("meshctl-e2e") }

    /// A free TCP port on 127.0.0.1 (bound and released; tests use it at once).
    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// One resource, from Envoy YAML, encoded by the schema engine.
    public static func resource(_ typeName: String, _ yaml: String) throws -> Resource { try fixtures.resource(typeName, yaml) }

    /// How resources name their RDS/EDS source: ADS, or the per-type services of the bootstrap's xDS cluster.
    public static let adsSource = EnvoyFixtures.adsSource
    public static let perTypeSource = EnvoyFixtures.perTypeSource
    public static let perTypeDeltaSource = EnvoyFixtures.perTypeDeltaSource

    /// A proxy group with one HTTP listener on `listenerPort` routing "/" to `cluster`, and EDS clusters
    /// `clusters` (name → upstream port), served by ADS, reachable only by `identities`.
    public static func group(_ name: String, listenerPort: Int, routeTo cluster: String, clusters: [String: Int], identities: [String],
                             extraListener: String? = nil, configSource: String = adsSource) throws -> ProxyGroupResources {
        try fixtures.httpGroup(name, listenerPort: listenerPort, routeTo: cluster, clusters: clusters.map { ($0.key, $0.value) },
                               identities: identities, extraListeners: extraListener.map { [$0] } ?? [], configSource: configSource)
    }

    /// Like `group`, with each cluster's `connect_timeout` from `connectTimeouts` (default 1s) and, for the clusters
    /// `serviceNames` names, the endpoints published under that EDS `service_name` instead of the cluster's name.
    public static func group(_ name: String, listenerPort: Int, routeTo cluster: String, clusters: [String: Int], identities: [String],
                             connectTimeouts: [String: String], serviceNames: [String: String]) throws -> ProxyGroupResources {
        var resources = [try fixtures.httpListener(port: listenerPort), try fixtures.routes([(prefix: "/", cluster: cluster, timeout: "2s")])]
        for (clusterName, port) in clusters.sorted(by: { $0.key < $1.key }) {
            let assignment = serviceNames[clusterName] ?? clusterName
            resources.append(try fixtures.resource("envoy.config.cluster.v3.Cluster", """
            name: \(clusterName)
            type: EDS
            connect_timeout: \(connectTimeouts[clusterName] ?? "1s")
            eds_cluster_config: {eds_config: \(adsSource), service_name: \(assignment)}
            """))
            resources.append(try fixtures.loadAssignment(assignment, endpoints: [("127.0.0.1", port)]))
        }
        resources.append(EnvoyFixtures.access(group: name, identities: identities))
        return ProxyGroupResources(group: name, resources: resources)
    }

    public static func publish(_ groups: [ProxyGroupResources], to store: String) throws {
        let snapshot = try Snapshot.make(groups: groups, compilerVersion: "e2e")
        _ = try SnapshotStore(directory: store, createIfMissing: true).publish(snapshot)
    }

    /// A listener on `heldPort` (a port another socket holds): it passes every static check, and Envoy rejects it.
    public static func listenerOnAHeldPort(_ heldPort: Int, cluster: String) -> String {
        """
        name: taken
        address: {socket_address: {address: 127.0.0.1, port_value: \(heldPort)}}
        filter_chains:
        - filters:
          - name: envoy.filters.network.tcp_proxy
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: \(cluster)}
        """
    }

    /// The smallest served mesh: development certificates for `frontend` in DIRECTORY/certs and one published
    /// `frontend` group (listener 10001 → cluster `backend` on 127.0.0.1:19001) in the directory store DIRECTORY/store.
    public static func publishFrontendMesh(in directory: String) throws {
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["frontend"])
        try publish([group("frontend", listenerPort: 10001, routeTo: "backend", clusters: ["backend": 19001],
                           identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
    }

    /// The repository's Configs/ copied into `directory`, with the certificate paths pointed at `certificates`
    /// and each named gateway's `xds` mode set.
    public static func demoConfigs(in directory: String, certificates: String, gatewayModes: [String: String] = [:]) throws -> String {
        let configs = directory + "/Configs"
        try FileManager.default.copyItem(atPath: root.appendingPathComponent("Configs").path, toPath: configs)
        let mesh = configs + "/mesh.yaml"
        var text = try String(contentsOfFile: mesh, encoding: .utf8).replacingOccurrences(of: "/tmp/meshctl-demo/certs", with: certificates)
        for (gateway, mode) in gatewayModes {
            let kind = "  - name: \(gateway)\n    kind: \(gateway)\n"
            XCTAssertTrue(text.contains(kind), "mesh.yaml declares gateway \(gateway)")
            text = text.replacingOccurrences(of: kind, with: kind + "    xds: \(mode)\n")
        }
        try text.write(toFile: mesh, atomically: true, encoding: .utf8)
        return configs
    }

    /// The admin endpoint's port of a `meshctl serve --admin 127.0.0.1:0`, read from its `admin.listening` log line
    /// (0, and a test failure, when it does not log one within `seconds`).
    public static func adminPort(of server: ChildProcess, within seconds: Double = 15, file: StaticString = #filePath, line: UInt = #line) -> Int {
        var port = 0
        waitUntil(seconds, "meshctl serve's admin endpoint to listen", file: file, line: line) {
            guard let logged = server.output.split(separator: "\n").first(where: { $0.contains("admin.listening") }),
                  let range = logged.range(of: #"127\.0\.0\.1:\d+"#, options: .regularExpression) else { return false }
            port = Int(logged[range].split(separator: ":").last!) ?? 0
            return port > 0
        }
        return port
    }

    /// Polls `condition` every 50 ms until it holds or `seconds` pass.
    /// `detail` (e.g. the tail of a process's log) is added to the failure, for a diagnosis from CI's output alone.
    public static func waitUntil(_ seconds: Double, _ what: String, detail: (() -> String)? = nil, file: StaticString = #filePath, line: UInt = #line,
                                 _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return }
            usleep(50_000)
        }
        XCTFail("timed out after \(seconds)s waiting for \(what)" + (detail.map { "\n" + $0() } ?? ""), file: file, line: line)
    }

    /// GET http://127.0.0.1:port/path; the body, or nil on any failure.
    public static func get(_ port: Int, _ path: String = "/") -> String? {
        let result = run("/usr/bin/curl", ["-s", "-f", "-m", "2", "http://127.0.0.1:\(port)\(path)"], timeout: 5)
        return result?.status == 0 ? result?.output : nil
    }

    /// Runs a program, stderr discarded; (status, stdout), or nil when it cannot start or does not finish in time.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], timeout: Double) -> (status: Int32, output: String)? {
        guard let result = try? ProcessRunner.run(executable, arguments, timeout: timeout) else { return nil }
        return (result.status, result.stdoutText)
    }
}

/// A child process stopped (SIGTERM, then SIGKILL) when the test ends.
public final class ChildProcess {
    public let process = Process()
    public let logPath: String

    public init(_ executable: String, _ arguments: [String], log: String) throws {
        logPath = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    public func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// An HTTP server on 127.0.0.1 that answers every GET with `body`.
public func startUpstream(port: Int, body: String, directory: String) throws -> ChildProcess {
    let script = """
    import http.server, sys
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = sys.argv[2].encode()
            self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
        def log_message(self, *args): pass
    http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
    """
    let path = (directory as NSString).appendingPathComponent("upstream.py")
    try script.write(toFile: path, atomically: true, encoding: .utf8)
    let child = try ChildProcess("/usr/bin/env", ["python3", path, "\(port)", body], log: (directory as NSString).appendingPathComponent("upstream-\(port).log"))
    E2E.waitUntil(10, "upstream on \(port)") { E2E.get(port) == body }
    return child
}

extension E2E {
    /// The cluster the Envoy (admin port `adminPort`) routes "/" to in its dynamic route configuration `routeName`,
    /// and when Envoy took that configuration (`last_updated`); nil until it has one.
    public static func dynamicRoute(adminPort: Int, routeName: String = "local_route") -> (cluster: String, updated: Date)? {
        guard let dump = get(adminPort, "/config_dump?resource=dynamic_route_configs"),
              let json = try? JSONSerialization.jsonObject(with: Data(dump.utf8)) as? [String: Any],
              let configs = json["configs"] as? [[String: Any]] else { return nil }
        for entry in configs {
            guard let config = entry["route_config"] as? [String: Any], config["name"] as? String == routeName,
                  let hosts = config["virtual_hosts"] as? [[String: Any]], let routes = hosts.first?["routes"] as? [[String: Any]],
                  let cluster = (routes.first?["route"] as? [String: Any])?["cluster"] as? String,
                  let updated = entry["last_updated"] as? String, let date = envoyTime(updated) else { continue }
            return (cluster, date)
        }
        return nil
    }

    /// A timestamp as Envoy's admin endpoint writes it: ISO 8601, with fractional seconds unless they are zero
    /// (protobuf's JSON form of an update at .000 s is "…:53Z"; reading only the fractional form made one route
    /// update in a thousand unreadable, and the rollout system tests then waited for a route they already had).
    public static func envoyTime(_ text: String) -> Date? {
        let format = ISO8601DateFormatter()
        format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = format.date(from: text) { return date }
        format.formatOptions = [.withInternetDateTime]
        return format.date(from: text)
    }
}
