// Real processes for end-to-end tests: upstream HTTP servers, meshctl serve,
// Envoy 1.40 — all on loopback, every wait bounded, everything stopped after.
import EnvoySchema
import Foundation
import MeshCertificates
import ControlPlane
import MeshAdmin
import MeshModel
import MeshServer
import ServerTelemetry
import XDSCache
import SnapshotStorage
import XCTest

enum E2E {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var envoy: String {
        ProcessInfo.processInfo.environment["MESHCTL_ENVOY"].flatMap { $0.isEmpty ? nil : $0 } ?? root.appendingPathComponent(".venv-envoy/bin/envoy").path
    }

    static var meshctl: String {
        // The binary built next to the test bundle (whatever the scratch path), else the default build.
        let executable = Bundle.main.executableURL ?? Bundle.main.bundleURL
        for directory in [executable.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("meshctl")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
        }
        return root.appendingPathComponent(".build/debug/meshctl").path
    }

    static let pool: DescriptorPool = try! DescriptorPool.envoy

    static func temporaryDirectory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("meshctl-e2e-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A free TCP port on 127.0.0.1 (bound and released; tests use it at once).
    static func freePort() -> Int {
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
    static func resource(_ typeName: String, _ yaml: String) throws -> Resource {
        let type = pool.messageID(named: typeName)!
        let (message, diagnostics) = ConfigDocument.decode(text: yaml, file: "e2e", syntax: .yaml, type: type, pool: pool)
        let errors = diagnostics.filter { $0.severity == .error }
        guard let message, errors.isEmpty else { throw NSError(domain: "E2E", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(errors)"]) }
        let name = message.value(named: "name", in: pool)?.stringValue ?? message.value(named: "cluster_name", in: pool)?.stringValue ?? ""
        return Resource(typeURL: "type.googleapis.com/" + typeName, name: name, body: message.serialized(pool: pool))
    }

    /// A proxy group with one HTTP listener on `listenerPort` routing "/" to `cluster`, and EDS clusters
    /// `clusters` (name → upstream port), served by ADS, reachable only by `identities`.
    /// How resources name their RDS/EDS source: ADS, or the per-type services of the bootstrap's xDS cluster.
    static let adsSource = "{ads: {}, resource_api_version: V3}"
    static let perTypeSource = "{resource_api_version: V3, api_config_source: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: meshctl_xds}}]}}"
    static let perTypeDeltaSource = "{resource_api_version: V3, api_config_source: {api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: meshctl_xds}}]}}"

    static func group(_ name: String, listenerPort: Int, routeTo cluster: String, clusters: [String: Int], identities: [String],
                      extraListener: String? = nil, configSource: String = adsSource) throws -> ProxyGroupResources {
        var resources: [Resource] = [
            try resource("envoy.config.listener.v3.Listener", """
            name: ingress_http
            address: {socket_address: {address: 127.0.0.1, port_value: \(listenerPort)}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: ingress
                  rds: {route_config_name: local_route, config_source: \(configSource)}
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
            """),
            try resource("envoy.config.route.v3.RouteConfiguration", """
            name: local_route
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: \(cluster), timeout: 2s}
            """),
        ]
        if let extraListener { resources.append(try resource("envoy.config.listener.v3.Listener", extraListener)) }
        for (clusterName, port) in clusters {
            resources.append(try resource("envoy.config.cluster.v3.Cluster", """
            name: \(clusterName)
            type: EDS
            connect_timeout: 1s
            eds_cluster_config: {eds_config: \(configSource)}
            """))
            resources.append(try resource("envoy.config.endpoint.v3.ClusterLoadAssignment", """
            cluster_name: \(clusterName)
            endpoints:
            - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}}
            """))
        }
        resources.append(Resource(typeURL: GroupAccess.typeURL, name: name, body: GroupAccess(group: name, identities: identities).encoded()))
        return ProxyGroupResources(group: name, resources: resources)
    }

    static func publish(_ groups: [ProxyGroupResources], to store: String) throws {
        let snapshot = try Snapshot.make(groups: groups, compilerVersion: "e2e")
        _ = try SnapshotStore(directory: store, createIfMissing: true).publish(snapshot)
    }

    /// A listener on `heldPort` (a port another socket holds): it passes every static check, and Envoy rejects it.
    static func listenerOnAHeldPort(_ heldPort: Int, cluster: String) -> String {
        """
        name: taken
        address: {socket_address: {address: 127.0.0.1, port_value: \(heldPort)}}
        filter_chains:
        - filters:
          - name: envoy.filters.network.tcp_proxy
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: \(cluster)}
        """
    }

    /// The repository's Configs/ copied into `directory`, with the certificate paths pointed at `certificates`
    /// and each named gateway's `xds` mode set.
    static func demoConfigs(in directory: String, certificates: String, gatewayModes: [String: String] = [:]) throws -> String {
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

    /// Polls `condition` every 50 ms until it holds or `seconds` pass.
    static func waitUntil(_ seconds: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line, _ condition: () -> Bool) {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return }
            usleep(50_000)
        }
        XCTFail("timed out after \(seconds)s waiting for \(what)", file: file, line: line)
    }

    /// GET http://127.0.0.1:port/path; the body, or nil on any failure.
    static func get(_ port: Int, _ path: String = "/") -> String? {
        let result = run("/usr/bin/curl", ["-s", "-f", "-m", "2", "http://127.0.0.1:\(port)\(path)"], timeout: 5)
        return result?.status == 0 ? result?.output : nil
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: Double) -> (status: Int32, output: String)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        // Read while the child runs: a full pipe would block it.
        let output = OutputCollector()
        let reader = Thread { output.set(pipe.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate(); process.waitUntilExit(); return nil }
        return (process.terminationStatus, String(decoding: output.wait(), as: UTF8.self))
    }
}

final class OutputCollector: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()
    func set(_ value: Data) { data = value; done.signal() }
    func wait() -> Data { done.wait(); return data }
}

/// A child process stopped (SIGTERM, then SIGKILL) when the test ends.
final class ChildProcess {
    let process = Process()
    let logPath: String

    init(_ executable: String, _ arguments: [String], log: String) throws {
        logPath = log
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = FileHandle(forWritingAtPath: log)!
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func stop() {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// An HTTP server on 127.0.0.1 that answers every GET with `body`.
func startUpstream(port: Int, body: String, directory: String) throws -> ChildProcess {
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
