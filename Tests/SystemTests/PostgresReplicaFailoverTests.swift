// Three `meshctl serve` replicas on one PostgreSQL store with real Envoys and real traffic: the proxy fails
// over to another replica when its replica is killed (-9), the next publish reaches it there, and with the
// database stopped the replicas keep serving (a new proxy still gets configuration); after the database
// returns a publish reaches the proxies with no replica restarted.
import Foundation
import MeshCertificates
import MeshTestSupport
import PostgresStorage
import SnapshotStorage
import XCTest

final class PostgresReplicaFailoverTests: XCTestCase {
    var directory = ""
    var certs = ""
    var children: [ChildProcess] = []

    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    override func tearDown() {
        for child in children.reversed() { child.stop() }
        children = []
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    struct Replica {
        let process: ChildProcess
        let port: Int
        let admin: Int
    }

    func startReplica(store url: String) throws -> Replica {
        let port = E2E.freePort(), admin = E2E.freePort()
        let process = try ChildProcess(E2E.meshctl, ["serve", "--store", url, "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:\(admin)",
                                                     "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key",
                                                     "--client-ca", certs + "/ca.crt", "--threads", "1", "--drain-seconds", "1",
                                                     "--store-poll-interval", "1", "--cache", "\(directory)/cache-\(port)"],
                                       log: "\(directory)/replica-\(port).log")
        children.append(process)
        E2E.waitUntil(15, "replica \(port) to listen") { process.output.contains("server.listening") }
        return Replica(process: process, port: port, admin: admin)
    }

    func startEnvoy(servers: [Int]) throws -> Int {
        let admin = E2E.freePort()
        let bootstrap = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", "frontend-\(admin)", "--node-cluster", "frontend"]
                                    + servers.flatMap { ["--server", "127.0.0.1:\($0)"] }
                                    + ["--cert", "\(certs)/frontend.crt", "--key", "\(certs)/frontend.key", "--ca", "\(certs)/ca.crt",
                                       "--server-name", "localhost", "--admin-port", "\(admin)"], timeout: 30)
        XCTAssertEqual(bootstrap?.status, 0)
        let path = "\(directory)/envoy-\(admin).yaml"
        try (bootstrap?.output ?? "").write(toFile: path, atomically: true, encoding: .utf8)
        children.append(try ChildProcess(E2E.envoy, ["-c", path, "--base-id", "\(admin)", "--disable-hot-restart", "-l", "warning",
                                                     "--drain-time-s", "1", "--parent-shutdown-time-s", "2"], log: "\(directory)/envoy-\(admin).log"))
        return admin
    }

    /// How many proxies a replica has connected (its admin endpoint's proxy table).
    func proxies(_ replica: Replica) -> Int {
        guard let body = E2E.get(replica.admin, "/debug/proxies"), let data = body.data(using: .utf8),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return -1 }
        return json["proxy_count"] as? Int ?? -1
    }

    func testProxyFailsOverBetweenReplicasAndReplicasRideOutADatabaseOutage() throws {
        guard FileManager.default.isExecutableFile(atPath: E2E.envoy) else {
            throw XCTSkip("Envoy is not installed at \(E2E.envoy); run through `make test`")
        }
        directory = try E2E.temporaryDirectory()
        certs = directory + "/certs"
        _ = try DevelopmentCertificates.write(to: certs, trustDomain: "mesh.local", proxies: ["frontend"])
        let upstreams = (0..<3).map { _ in E2E.freePort() }
        for (i, port) in upstreams.enumerated() { children.append(try startUpstream(port: port, body: "backend-\(i)", directory: directory)) }
        let (database, url) = try SharedPostgres.database()
        let store = try openPublishTarget(url)
        let listener = E2E.freePort()
        func publish(routeTo backend: Int) throws {
            let clusters = Dictionary(uniqueKeysWithValues: upstreams.enumerated().map { ("backend_\($0.offset)", $0.element) })
            _ = try store.publish(try Snapshot.make(groups: [E2E.group("frontend", listenerPort: listener, routeTo: "backend_\(backend)", clusters: clusters,
                                                                       identities: ["spiffe://mesh.local/proxy/frontend"])], compilerVersion: "e2e"))
        }
        try publish(routeTo: 0)
        let replicas = [try startReplica(store: url), try startReplica(store: url), try startReplica(store: url)]
        _ = try startEnvoy(servers: replicas.map(\.port))
        E2E.waitUntil(30, "first configuration and traffic") { E2E.get(listener) == "backend-0" }
        E2E.waitUntil(10, "one replica has the proxy") { replicas.map(proxies).reduce(0, +) == 1 }
        let serving = try XCTUnwrap(replicas.first { proxies($0) == 1 })
        let others = replicas.filter { $0.port != serving.port }

        // kill -9 the proxy's replica: traffic keeps flowing, the proxy reconnects to the other one.
        serving.process.kill9()
        for _ in 0..<5 {
            XCTAssertEqual(E2E.get(listener), "backend-0", "traffic keeps flowing while the proxy's replica is gone")
            usleep(100_000)
        }
        E2E.waitUntil(30, "the proxy reconnects to another replica") { others.map(self.proxies).reduce(0, +) == 1 }
        let other = try XCTUnwrap(others.first { proxies($0) == 1 })
        try publish(routeTo: 1)
        E2E.waitUntil(30, "the next publish reaches the proxy through the other replica") { E2E.get(listener) == "backend-1" }

        // The database goes away for some seconds: the replica keeps serving; a new proxy still gets configuration.
        database.stop()
        E2E.waitUntil(15, "the replica notices the outage") { (E2E.get(other.admin, "/readyz") ?? "").contains("store unavailable") }
        // (Its listener cannot bind the port the first proxy holds, so it is checked by its clusters.)
        let late = try startEnvoy(servers: [other.port])
        E2E.waitUntil(30, "a proxy started during the outage gets configuration") {
            let dump = E2E.get(late, "/config_dump?resource=dynamic_active_clusters") ?? ""
            return dump.contains("backend_0") && dump.contains("backend_2")
        }
        Thread.sleep(forTimeInterval: 2)
        XCTAssertEqual(E2E.get(listener), "backend-1", "traffic flows during the outage")

        // The database returns: a publish made after reaches the proxies, no replica restarted.
        try database.start()
        try publish(routeTo: 2)
        E2E.waitUntil(30, "the publish after the outage reaches the proxy") { E2E.get(listener) == "backend-2" }
        XCTAssertTrue(other.process.process.isRunning)
        XCTAssertTrue(other.process.output.contains("store.reachable"), other.process.output)
    }
}
