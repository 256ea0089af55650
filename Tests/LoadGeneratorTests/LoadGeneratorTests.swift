// The load generator against an in-process xDS server over mutual TLS: simulated proxies
// get their configuration, a published change is matched to its snapshot version and ACKed
// by every proxy, and bad targets end with a clear error instead of a hang.
import Foundation
import LoadGenerator
import ControlPlane
import MeshModel
import XDSCache
import SnapshotStorage
import Transport
import MeshTestSupport
import XCTest
import XDSProtocol

final class LoadGeneratorTests: XCTestCase {
    var directory = ""
    var server: XDSServer!

    override func setUpWithError() throws {
        (directory, server) = try FrontendMesh.serve()
    }

    override func tearDown() {
        FrontendMesh.stop(server, directory: directory)
    }

    func options(identity: String = "frontend", ca: String? = nil, port: Int? = nil, mode: SubscriptionMode = .adsStateOfTheWorld,
                 proxies: Int = 50, connections: Int = 4) -> LoadGeneratorOptions {
        var options = LoadGeneratorOptions(host: "127.0.0.1", port: port ?? server.boundPort, credentials: TLSClientCredentials(
            certificateChainFile: "\(directory)/certs/\(identity).crt", privateKeyFile: "\(directory)/certs/\(identity).key",
            trustedCAFile: ca ?? directory + "/certs/ca.crt", serverName: "localhost"))
        options.proxies = proxies
        options.connections = connections
        options.mode = mode
        options.groups = ["frontend"]
        options.duration = .seconds(60)
        options.store = SnapshotStore(directory: directory + "/store")
        options.eventLoops = 2
        return options
    }

    /// Runs 50 proxies over 4 connections, publishes a one-cluster change once all are configured, and
    /// returns the report after every proxy answered that change.
    func runWithOneChange(mode: SubscriptionMode, nackRate: Double = 0) throws -> LoadReport {
        var options = self.options(mode: mode)
        options.nackRate = nackRate
        let generator = try LoadGenerator(options: options)
        generator.start()
        XCTAssertTrue(generator.wait(upTo: 60) { $0.configuredProxies == 50 }, "all proxies configured: \(generator.progress)")
        try FrontendMesh.publish(connectTimeout: "2s", to: directory + "/store")
        let current = try XCTUnwrap(SnapshotStore(directory: directory + "/store").current())
        let expected = mode.isDelta ? current.metadata.version
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
        let report = try runWithOneChange(mode: .adsStateOfTheWorld)
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

    func testPerTypeDeltaProxiesGetTheirConfigAndAckAPublishedChange() throws {
        let report = try runWithOneChange(mode: .perTypeDelta)
        XCTAssertEqual(report.configuredProxies, 50)
        XCTAssertEqual(report.versions.first?.received, 50)
        XCTAssertEqual(report.versions.first?.acked, 50)
        XCTAssertEqual(report.mode, "per-type-delta")
    }

    /// A server restart (drain, then a new server on the same port): with --reconnect every proxy loses its
    /// configuration's connection, comes back with backoff, and is configured again; none counts as failed.
    func testReconnectingProxiesAreConfiguredAgainAfterTheServerRestarts() throws {
        var options = self.options(proxies: 40, connections: 8)
        options.reconnect = true
        let generator = try LoadGenerator(options: options)
        generator.start()
        XCTAssertTrue(generator.wait(upTo: 30) { $0.configuredNow == 40 }, "all configured: \(generator.progress)")
        let port = server.boundPort
        InProcessServer.stop(server)
        server = nil
        XCTAssertTrue(generator.wait(upTo: 15) { $0.configuredNow == 0 && $0.connectionsLost == 8 }, "every connection lost: \(generator.progress)")
        usleep(300_000)  // a few refused reconnects while the server is away
        server = try InProcessServer.start(store: directory + "/store", certificates: directory + "/certs", port: port)
        XCTAssertTrue(generator.wait(upTo: 30) { $0.configuredNow == 40 }, "all configured again: \(generator.progress)")
        let report = generator.stop()
        XCTAssertNil(generator.verdict())
        XCTAssertEqual(report.failedProxies, 0, "\(report.failures)")
        XCTAssertEqual(report.configuredAtEnd, 40)
        XCTAssertEqual(report.connectionsLost, 8)
        XCTAssertGreaterThanOrEqual(report.reconnects, 8)
        XCTAssertTrue(report.table().contains("8 connections lost"), report.table())
    }

    /// Churn: connections closed at random by the proxies reconnect; at the end every proxy is configured, none failed.
    func testChurnReconnectsAndEveryProxyEndsConfigured() throws {
        var options = self.options(proxies: 40, connections: 8)
        options.churnPerSecond = 10
        options.duration = .seconds(3)
        options.progressFile = directory + "/progress.jsonl"
        let generator = try LoadGenerator(options: options)
        generator.start()
        XCTAssertTrue(generator.wait(upTo: 30) { $0.configuredNow == 40 && $0.connectionsLost >= 15 }, "churned: \(generator.progress)")
        options.churnPerSecond = 0
        generator.waitForEnd()
        // The churn thread stops with the run; connections closed in its last tick come back within a second.
        let report = generator.stop()
        XCTAssertNil(generator.verdict())
        XCTAssertEqual(report.failedProxies, 0, "\(report.failures)")
        XCTAssertGreaterThanOrEqual(report.connectionsLost, 15)
        let lines = try String(contentsOfFile: directory + "/progress.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertGreaterThan(lines.count, 10, "a progress line every 100 ms")
        let last = try XCTUnwrap(lines.last.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        XCTAssertNotNil(last["configured_now"] as? Int)
        XCTAssertGreaterThanOrEqual(last["connections_lost"] as? Int ?? 0, 15)
    }

    func testNackRateOneRejectsEveryChangeAfterTheFirstConfig() throws {
        let report = try runWithOneChange(mode: .adsStateOfTheWorld, nackRate: 1)
        XCTAssertEqual(report.configuredProxies, 50, "the first configuration is always accepted")
        XCTAssertEqual(report.versions.first?.nacked, 50)
        XCTAssertEqual(report.versions.first?.acked, 0)
        XCTAssertGreaterThanOrEqual(report.nacksSent, 50)
    }

    func testJSONReportCarriesTheSummaries() throws {
        let report = try runWithOneChange(mode: .adsStateOfTheWorld)
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
    func closedPort() -> Int { E2E.freePort() }
}
