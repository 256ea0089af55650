// The load generator against an in-process xDS server over mutual TLS: simulated proxies
// get their configuration, a published change is matched to its snapshot version and ACKed
// by every proxy, and bad targets end with a clear error instead of a hang.
import EnvoySchema
import Foundation
import LoadGenerator
import MeshCertificates
import ControlPlane
import MeshModel
import ServerTelemetry
import XDSCache
import SnapshotStorage
import Transport
import XCTest
import XDSProtocol

final class LoadGeneratorTests: XCTestCase {
    var directory = ""
    var server: XDSServer!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("meshctl-loadgen-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["frontend", "intruder"])
        _ = try DevelopmentCertificates.write(to: directory + "/other-ca", trustDomain: "mesh.local", proxies: [])
        try Fixture.publish(connectTimeout: "1s", to: directory + "/store")
        var options = XDSServerOptions()
        options.port = 0
        options.eventLoops = 1
        options.drainGrace = .milliseconds(200)
        options.tls = TLSServerCredentials(certificateChainFile: directory + "/certs/server.crt", privateKeyFile: directory + "/certs/server.key",
                                           clientCAFile: directory + "/certs/ca.crt")
        server = try XDSServer(options: options, store: SnapshotStore(directory: directory + "/store"), log: ServerLog(minimumLevel: .error))
        try server.start()
        let deadline = Date().addingTimeInterval(10)
        while server.hub.current == nil && Date() < deadline { usleep(20_000) }
        XCTAssertNotNil(server.hub.current, "the server loaded the snapshot")
    }

    override func tearDown() {
        let stopped = DispatchSemaphore(value: 0)
        let server = self.server
        Task.detached {
            await server?.drain()
            stopped.signal()
        }
        _ = stopped.wait(timeout: .now() + 20)
        try? FileManager.default.removeItem(atPath: directory)
    }

    func options(identity: String = "frontend", ca: String? = nil, port: Int? = nil, mode: LoadMode = .adsSotw,
                 proxies: Int = 50, connections: Int = 4) -> LoadGeneratorOptions {
        var options = LoadGeneratorOptions(host: "127.0.0.1", port: port ?? server.boundPort, credentials: TLSClientCredentials(
            certificateChainFile: "\(directory)/certs/\(identity).crt", privateKeyFile: "\(directory)/certs/\(identity).key",
            trustedCAFile: ca ?? directory + "/certs/ca.crt", serverName: "localhost"))
        options.proxies = proxies
        options.connections = connections
        options.mode = mode
        options.groups = ["frontend"]
        options.duration = .seconds(60)
        options.storeDirectory = directory + "/store"
        options.eventLoops = 2
        return options
    }

    /// Runs 50 proxies over 4 connections, publishes a one-cluster change once all are configured, and
    /// returns the report after every proxy answered that change.
    func runWithOneChange(mode: LoadMode, nackRate: Double = 0) throws -> LoadReport {
        var options = self.options(mode: mode)
        options.nackRate = nackRate
        let generator = try LoadGenerator(options: options)
        generator.start()
        XCTAssertTrue(generator.wait(upTo: 60) { $0.configuredProxies == 50 }, "all proxies configured: \(generator.progress)")
        try Fixture.publish(connectTimeout: "2s", to: directory + "/store")
        let current = try XCTUnwrap(SnapshotStore(directory: directory + "/store").current())
        let expected = mode == .adsDelta ? current.metadata.version
            : ServedSnapshot(current).groups["frontend"]!.contentVersion(typeURL: TypeURL.cluster)
        let deadline = Date().addingTimeInterval(60)
        var answered = 0
        while Date() < deadline {
            answered = generator.proxiesHavingAnswered(typeURL: TypeURL.cluster, version: expected)
            if answered == 50 { break }
            usleep(50_000)
        }
        XCTAssertEqual(answered, 50, "every proxy received and answered the change")
        let report = generator.stop()
        XCTAssertNil(generator.verdict(), "no failure")
        return report
    }

    func testSotWProxiesGetTheirConfigAndAckAPublishedChange() throws {
        let report = try runWithOneChange(mode: .adsSotw)
        XCTAssertEqual(report.configuredProxies, 50)
        XCTAssertEqual(report.timeToFullConfig.count, 50)
        XCTAssertEqual(report.versions.count, 1, "one version published during the run")
        XCTAssertEqual(report.versions.first?.proxiesAffected, 50)
        XCTAssertEqual(report.versions.first?.received, 50)
        XCTAssertEqual(report.versions.first?.acked, 50)
        XCTAssertEqual(report.publishToAck.count, 50)
        XCTAssertEqual(report.nacksSent, 0)
    }

    func testDeltaProxiesGetTheirConfigAndAckAPublishedChange() throws {
        let report = try runWithOneChange(mode: .adsDelta)
        XCTAssertEqual(report.configuredProxies, 50)
        XCTAssertEqual(report.versions.first?.received, 50)
        XCTAssertEqual(report.versions.first?.acked, 50)
    }

    func testPerTypeProxiesGetTheirConfigAndAckAPublishedChange() throws {
        let report = try runWithOneChange(mode: .perType)
        XCTAssertEqual(report.configuredProxies, 50)
        XCTAssertEqual(report.versions.first?.received, 50)
        XCTAssertEqual(report.versions.first?.acked, 50)
    }

    func testNackRateOneRejectsEveryChangeAfterTheFirstConfig() throws {
        let report = try runWithOneChange(mode: .adsSotw, nackRate: 1)
        XCTAssertEqual(report.configuredProxies, 50, "the first configuration is always accepted")
        XCTAssertEqual(report.versions.first?.nacked, 50)
        XCTAssertEqual(report.versions.first?.acked, 0)
        XCTAssertGreaterThanOrEqual(report.nacksSent, 50)
    }

    func testJSONReportCarriesTheSummaries() throws {
        let report = try runWithOneChange(mode: .adsSotw)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        let summary = try XCTUnwrap(object["publishToAck"] as? [String: Any])
        XCTAssertEqual(summary["count"] as? Int, 50)
        XCTAssertNotNil(summary["p99"])
        XCTAssertEqual((object["versions"] as? [Any])?.count, 1)
    }

    // MARK: Bad input: a clear error, no hang (every wait has a deadline)

    struct BadTarget {
        let name: String
        let options: (LoadGeneratorTests) -> LoadGeneratorOptions
        let kind: LoadGeneratorError.Kind
        let message: String
    }

    func testBadTargetsEndWithAClearError() throws {
        let cases = [
            BadTarget(name: "nothing listens", options: { $0.options(port: $0.closedPort()) }, kind: .unreachable, message: "cannot reach the xDS server"),
            BadTarget(name: "wrong CA", options: { $0.options(ca: $0.directory + "/other-ca/ca.crt") }, kind: .handshake, message: "TLS handshake with"),
            BadTarget(name: "identity not allowed for the group", options: { $0.options(identity: "intruder") }, kind: .refused, message: "permissionDenied"),
        ]
        for badCase in cases {
            var options = badCase.options(self)
            options.proxies = 8
            options.connections = 2
            let generator = try LoadGenerator(options: options)
            generator.start()
            XCTAssertTrue(generator.waitForEnd(deadline: Date().timeIntervalSince1970 + 30), "\(badCase.name): the run ends early")
            _ = generator.stop()
            let verdict = generator.verdict()
            XCTAssertEqual(verdict?.kind, badCase.kind, "\(badCase.name): \(String(describing: verdict))")
            XCTAssertTrue(verdict?.description.contains(badCase.message) == true, "\(badCase.name): \(String(describing: verdict))")
        }
    }

    func testUnreadableCredentialsAreRefusedAtStart() {
        var options = self.options()
        options.credentials.privateKeyFile = directory + "/certs/missing.key"
        XCTAssertThrowsError(try LoadGenerator(options: options)) { error in
            XCTAssertEqual((error as? LoadGeneratorError)?.kind, .credentials)
        }
    }

    func testTooManyStreamsPerConnectionIsAUsageProblem() {
        var options = self.options(mode: .perType, proxies: 200, connections: 2)
        options.connections = 2
        XCTAssertTrue(options.problem()?.contains("use --connections 8 or more") == true, String(describing: options.problem()))
    }

    func testOnlyLoopbackAddressesCountAsLoopback() {
        for (host, loopback) in [("127.0.0.1", true), ("127.1.2.3", true), ("::1", true), ("10.0.0.1", false), ("192.168.1.1", false), ("127.0.0", false)] {
            XCTAssertEqual(LoadGeneratorOptions.isLoopback(host), loopback, host)
        }
    }

    /// A loopback port nothing listens on (bound, then released).
    func closedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A one-group snapshot like the end-to-end tests': a listener routing to an EDS cluster.
enum Fixture {
    static let pool: DescriptorPool = try! DescriptorPool.envoy

    static func resource(_ typeName: String, _ yaml: String) throws -> Resource {
        let type = pool.messageID(named: typeName)!
        let (message, diagnostics) = ConfigDocument.decode(text: yaml, file: "loadgen-test", syntax: .yaml, type: type, pool: pool)
        guard let message, !diagnostics.contains(where: { $0.severity == .error }) else {
            throw NSError(domain: "Fixture", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(diagnostics)"])
        }
        let name = message.value(named: "name", in: pool)?.stringValue ?? message.value(named: "cluster_name", in: pool)?.stringValue ?? ""
        return Resource(typeURL: "type.googleapis.com/" + typeName, name: name, body: message.serialized(pool: pool))
    }

    /// Publishes group "frontend" (identity spiffe://mesh.local/proxy/frontend) with cluster "backend" of `connectTimeout`.
    static func publish(connectTimeout: String, to store: String) throws {
        let ads = "{ads: {}, resource_api_version: V3}"
        let resources = [
            try resource("envoy.config.listener.v3.Listener", """
            name: ingress_http
            address: {socket_address: {address: 127.0.0.1, port_value: 10001}}
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: ingress
                  rds: {route_config_name: local_route, config_source: \(ads)}
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
                route: {cluster: backend}
            """),
            try resource("envoy.config.cluster.v3.Cluster", """
            name: backend
            type: EDS
            connect_timeout: \(connectTimeout)
            eds_cluster_config: {eds_config: \(ads)}
            """),
            try resource("envoy.config.endpoint.v3.ClusterLoadAssignment", """
            cluster_name: backend
            endpoints:
            - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 19001}}}
            """),
            Resource(typeURL: GroupAccess.typeURL, name: "frontend",
                     body: GroupAccess(group: "frontend", identities: ["spiffe://mesh.local/proxy/frontend"]).encoded()),
        ]
        let snapshot = try Snapshot.make(groups: [ProxyGroupResources(group: "frontend", resources: resources)], compilerVersion: "loadgen-test")
        _ = try SnapshotStore(directory: store, createIfMissing: true).publish(snapshot)
    }
}
