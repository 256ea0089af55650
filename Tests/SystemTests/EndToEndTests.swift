// meshctl serve against real Envoy 1.40 processes: every xDS mode delivers the
// configuration and traffic flows; changes are applied; a configuration Envoy
// rejects is NACKed while Envoy keeps routing; wrong identities get nothing; a
// restarted server is rejoined. All on loopback, with real mTLS certificates.
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

final class EndToEndTests: XCTestCase {
    var directory = ""
    var certs = ""
    var store = ""
    var children: [ChildProcess] = []
    var upstreamA = 0, upstreamB = 0

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: E2E.envoy) else {
            throw XCTSkip("Envoy is not installed at \(E2E.envoy); run through `make test`")
        }
        directory = try E2E.temporaryDirectory()
        certs = directory + "/certs"
        store = directory + "/store"
        _ = try DevelopmentCertificates.write(to: certs, trustDomain: "mesh.local", proxies: ["frontend", "intruder"])
        upstreamA = E2E.freePort()
        children.append(try startUpstream(port: upstreamA, body: "backend-a", directory: directory))
        upstreamB = E2E.freePort()
        children.append(try startUpstream(port: upstreamB, body: "backend-b", directory: directory))
    }

    override func tearDown() {
        for child in children.reversed() { child.stop() }
        children = []
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    func identities(_ name: String) -> [String] { ["spiffe://mesh.local/proxy/\(name)"] }

    func startServer(port: Int) throws -> ChildProcess {
        let server = try ChildProcess(E2E.meshctl, ["serve", "--store", store, "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:0",
                                                    "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key",
                                                    "--client-ca", certs + "/ca.crt", "--threads", "2", "--drain-seconds", "1"],
                                      log: directory + "/server-\(UUID().uuidString.prefix(4)).log")
        children.append(server)
        E2E.waitUntil(15, "meshctl serve to listen") { server.output.contains("server.listening") }
        return server
    }

    struct Proxy {
        let process: ChildProcess
        let adminPort: Int
    }

    func startEnvoy(group: String, identity: String, serverPort: Int, flags: [String] = []) throws -> Proxy {
        let admin = E2E.freePort()
        let bootstrap = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", "\(group)-\(admin)", "--node-cluster", group, "--server", "127.0.0.1:\(serverPort)",
                                              "--cert", "\(certs)/\(identity).crt", "--key", "\(certs)/\(identity).key", "--ca", "\(certs)/ca.crt",
                                              "--server-name", "localhost", "--admin-port", "\(admin)"] + flags, timeout: 30)
        XCTAssertEqual(bootstrap?.status, 0)
        let path = directory + "/envoy-\(admin).yaml"
        try (bootstrap?.output ?? "").write(toFile: path, atomically: true, encoding: .utf8)
        let envoy = try ChildProcess(E2E.envoy, ["-c", path, "--base-id", "\(admin)", "--disable-hot-restart", "-l", "warning",
                                                 "--drain-time-s", "1", "--parent-shutdown-time-s", "2"],
                                     log: directory + "/envoy-\(admin).log")
        children.append(envoy)
        E2E.waitUntil(20, "Envoy admin on \(admin)") { E2E.get(admin, "/ready") != nil || E2E.get(admin, "/server_info") != nil }
        return Proxy(process: envoy, adminPort: admin)
    }

    func configDump(_ proxy: Proxy) -> String { E2E.get(proxy.adminPort, "/config_dump") ?? "" }

    // MARK: Tests

    func testEveryXDSModeDeliversTheConfigurationAndRoutesTraffic() throws {
        let serverPort = E2E.freePort()
        let listener = E2E.freePort()
        // Per-type proxies need resources that name the per-type services as their RDS/EDS source:
        // one group per mode, as a mesh would compile them.
        let modes: [(group: String, flags: [String], source: String)] = [
            ("ads", [], E2E.adsSource), ("ads-delta", ["--delta"], E2E.adsSource),
            ("per-type", ["--per-type"], E2E.perTypeSource), ("per-type-delta", ["--per-type", "--delta"], E2E.perTypeDeltaSource),
        ]
        try E2E.publish(modes.map { mode in
            try E2E.group(mode.group, listenerPort: listener, routeTo: "backend_a", clusters: ["backend_a": upstreamA],
                          identities: identities("frontend"), configSource: mode.source)
        }, to: store)
        _ = try startServer(port: serverPort)
        for (group, flags, _) in modes {
            let proxy = try startEnvoy(group: group, identity: "frontend", serverPort: serverPort, flags: flags)
            E2E.waitUntil(20, "traffic through Envoy (\(flags))") { E2E.get(listener) == "backend-a" }
            XCTAssertTrue(configDump(proxy).contains("local_route"), "RDS delivered (\(flags))")
            proxy.process.stop()
        }
    }

    func testPublishedChangesAreAppliedAndTrafficFollows() throws {
        for flags in [[], ["--delta"]] {
            let serverPort = E2E.freePort()
            let listener = E2E.freePort()
            try? FileManager.default.removeItem(atPath: store)
            try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_a", clusters: ["backend_a": upstreamA, "backend_b": upstreamB],
                                       identities: identities("frontend"))], to: store)
            let server = try startServer(port: serverPort)
            let proxy = try startEnvoy(group: "frontend", identity: "frontend", serverPort: serverPort, flags: flags)
            E2E.waitUntil(20, "first configuration") { E2E.get(listener) == "backend-a" }
            let listenerBefore = lastUpdated(of: "ingress_http", in: configDump(proxy))

            // Move the route to the other cluster: only the RouteConfiguration changes.
            let published = Date()
            try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_b", clusters: ["backend_a": upstreamA, "backend_b": upstreamB],
                                       identities: identities("frontend"))], to: store)
            E2E.waitUntil(10, "traffic to follow the new route (\(flags))") { E2E.get(listener) == "backend-b" }
            print("e2e: route change applied by Envoy \(Int(Date().timeIntervalSince(published) * 1000)) ms after publish (\(flags.isEmpty ? "ads sotw" : "ads delta"))")
            if flags == ["--delta"] {
                XCTAssertNotNil(listenerBefore)
                XCTAssertEqual(lastUpdated(of: "ingress_http", in: configDump(proxy)), listenerBefore, "an unchanged listener is not re-sent under delta")
            }

            // Add an endpoint to a cluster: traffic reaches it.
            let upstreamC = E2E.freePort()
            children.append(try startUpstream(port: upstreamC, body: "backend-c", directory: directory))
            try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_b", clusters: ["backend_a": upstreamA, "backend_b": upstreamC],
                                       identities: identities("frontend"))], to: store)
            E2E.waitUntil(10, "traffic to reach the new endpoint") { E2E.get(listener) == "backend-c" }
            proxy.process.stop()
            server.stop()
        }
    }

    func testAChangedClusterFinishesWarmingWhenOnlyItsAssignmentIsSentAgain() throws {
        // backend_b takes its endpoints from the assignment "svc-b" (eds_cluster_config.service_name). Changing only its
        // connect_timeout makes Envoy build a new cluster that warms until "svc-b" arrives again: the server sends that
        // one assignment (state of the world included, where the response then carries one of two), not both.
        for flags in [[], ["--delta"]] {
            let serverPort = E2E.freePort()
            let listener = E2E.freePort()
            try? FileManager.default.removeItem(atPath: store)
            func publish(backendBTimeout: String) throws {
                try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_b", clusters: ["backend_a": upstreamA, "backend_b": upstreamB],
                                           identities: identities("frontend"), connectTimeouts: ["backend_b": backendBTimeout],
                                           serviceNames: ["backend_b": "svc-b"])], to: store)
            }
            try publish(backendBTimeout: "1s")
            let server = try startServer(port: serverPort)
            let proxy = try startEnvoy(group: "frontend", identity: "frontend", serverPort: serverPort, flags: flags)
            E2E.waitUntil(20, "first configuration (\(flags))") { E2E.get(listener) == "backend-b" }
            let backendABefore = clusters(in: configDump(proxy), "dynamic_active_clusters")["backend_a"]

            try publish(backendBTimeout: "3s")
            E2E.waitUntil(10, "the changed cluster to finish warming (\(flags))") {
                let dump = configDump(proxy)
                return clusters(in: dump, "dynamic_active_clusters")["backend_b"]?.connectTimeout == "3s"
                    && clusters(in: dump, "dynamic_warming_clusters").isEmpty
            }
            let dump = configDump(proxy)
            XCTAssertEqual(clusters(in: dump, "dynamic_active_clusters")["backend_b"]?.connectTimeout, "3s", "\(flags)")
            XCTAssertEqual(clusters(in: dump, "dynamic_warming_clusters").count, 0, "no cluster left warming (\(flags))")
            XCTAssertEqual(clusters(in: dump, "dynamic_active_clusters")["backend_a"]?.lastUpdated, backendABefore?.lastUpdated,
                           "the unchanged cluster is not rebuilt (\(flags))")
            XCTAssertEqual(E2E.get(listener), "backend-b", "traffic still reaches the changed cluster's endpoint (\(flags))")
            proxy.process.stop()
            server.stop()
        }
    }

    func testRejectedSnapshotIsNackedAndEnvoyKeepsRouting() throws {
        let serverPort = E2E.freePort()
        let listener = E2E.freePort()
        try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_a", clusters: ["backend_a": upstreamA],
                                   identities: identities("frontend"))], to: store)
        let server = try startServer(port: serverPort)
        _ = try startEnvoy(group: "frontend", identity: "frontend", serverPort: serverPort)
        E2E.waitUntil(20, "first configuration") { E2E.get(listener) == "backend-a" }

        // A listener on a port another process holds passes every static check but fails on the proxy.
        let blocker = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(blocker) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let heldPort = E2E.freePort()
        address.sin_port = UInt16(heldPort).bigEndian
        var one: Int32 = 1
        setsockopt(blocker, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        XCTAssertEqual(withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(blocker, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }, 0)
        XCTAssertEqual(listen(blocker, 1), 0)
        let broken = E2E.listenerOnAHeldPort(heldPort, cluster: "backend_a")
        try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_a", clusters: ["backend_a": upstreamA],
                                   identities: identities("frontend"), extraListener: broken)], to: store)
        E2E.waitUntil(10, "the server to record Envoy's NACK") { server.output.contains("xds.nack") }
        XCTAssertTrue(server.output.contains("type.googleapis.com/envoy.config.listener.v3.Listener"), server.output)
        XCTAssertEqual(E2E.get(listener), "backend-a", "Envoy keeps routing with the last good configuration")

        // The next different snapshot is delivered.
        try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_b", clusters: ["backend_a": upstreamA, "backend_b": upstreamB],
                                   identities: identities("frontend"))], to: store)
        E2E.waitUntil(10, "the next good snapshot") { E2E.get(listener) == "backend-b" }
    }

    func testProxyWithoutTheRightIdentityGetsNothing() throws {
        let serverPort = E2E.freePort()
        let listener = E2E.freePort()
        try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_a", clusters: ["backend_a": upstreamA],
                                   identities: identities("frontend"))], to: store)
        let server = try startServer(port: serverPort)
        // A valid mesh certificate, but for another identity, claiming the frontend group.
        let intruder = try startEnvoy(group: "frontend", identity: "intruder", serverPort: serverPort)
        E2E.waitUntil(10, "the server to deny the intruder") { server.output.contains("xds.permission-denied") }
        // A certificate from a CA the server does not trust.
        let foreign = directory + "/foreign"
        _ = try DevelopmentCertificates.write(to: foreign, trustDomain: "mesh.local", proxies: ["frontend"])
        try FileManager.default.copyItem(atPath: foreign + "/frontend.crt", toPath: certs + "/foreign.crt")
        try FileManager.default.copyItem(atPath: foreign + "/frontend.key", toPath: certs + "/foreign.key")
        let stranger = try startEnvoy(group: "frontend", identity: "foreign", serverPort: serverPort)
        sleep(2)
        for proxy in [intruder, stranger] {
            XCTAssertFalse(configDump(proxy).contains("local_route"), "no configuration reached the proxy")
        }
        XCTAssertNil(E2E.get(listener), "no listener was configured")
    }

    func testRestartedServerIsRejoinedWithoutTrafficLoss() throws {
        let serverPort = E2E.freePort()
        let listener = E2E.freePort()
        try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_a", clusters: ["backend_a": upstreamA],
                                   identities: identities("frontend"))], to: store)
        let server = try startServer(port: serverPort)
        _ = try startEnvoy(group: "frontend", identity: "frontend", serverPort: serverPort)
        E2E.waitUntil(20, "first configuration") { E2E.get(listener) == "backend-a" }
        server.kill9()
        for _ in 0..<5 {
            XCTAssertEqual(E2E.get(listener), "backend-a", "routable requests keep flowing while the server is down")
            usleep(100_000)
        }
        try E2E.publish([E2E.group("frontend", listenerPort: listener, routeTo: "backend_b", clusters: ["backend_a": upstreamA, "backend_b": upstreamB],
                                   identities: identities("frontend"))], to: store)
        _ = try startServer(port: serverPort)
        E2E.waitUntil(30, "Envoy to reconnect and receive the new snapshot") { E2E.get(listener) == "backend-b" }
    }

    /// The `last_updated` of a named dynamic listener in a config dump.
    /// The clusters of one section of Envoy's config dump ("dynamic_active_clusters", "dynamic_warming_clusters").
    func clusters(in dump: String, _ section: String) -> [String: (connectTimeout: String?, lastUpdated: String?)] {
        guard let data = dump.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let configs = json["configs"] as? [[String: Any]] else { return [:] }
        var found: [String: (connectTimeout: String?, lastUpdated: String?)] = [:]
        for config in configs {
            for entry in (config[section] as? [[String: Any]]) ?? [] {
                guard let cluster = entry["cluster"] as? [String: Any], let name = cluster["name"] as? String else { continue }
                found[name] = (cluster["connect_timeout"] as? String, entry["last_updated"] as? String)
            }
        }
        return found
    }

    func lastUpdated(of listener: String, in dump: String) -> String? {
        guard let data = dump.data(using: .utf8), let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let configs = json["configs"] as? [[String: Any]] else { return nil }
        for config in configs {
            for entry in (config["dynamic_listeners"] as? [[String: Any]]) ?? [] where entry["name"] as? String == listener {
                return (entry["active_state"] as? [String: Any])?["last_updated"] as? String
            }
        }
        return nil
    }
}
