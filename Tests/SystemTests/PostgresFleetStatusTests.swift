// The fleet on a PostgreSQL store with real replicas and real Envoys: every replica writes its proxies' status
// to the fleet table; `meshctl status --store URL` shows the proxies of all replicas and a NACK with Envoy's
// error from one query and exits 1; any replica's /api/fleet (the status page's fleet section) shows the same;
// a replica killed with -9 has its rows shown stale, then deleted by the maintenance leader; the maintenance
// jobs run on one replica at a time and move to another when that one dies. The password in the store URL
// appears in no log, no status output and no admin response.
import Foundation
import MeshCertificates
import MeshTestSupport
import PostgresStorage
import SnapshotStorage
import XCTest

final class PostgresFleetStatusTests: XCTestCase {
    var directory = ""
    var certs = ""
    var children: [ChildProcess] = []
    static let password = "fleet-Secret-pw-7731"

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
        let name: String
        let process: ChildProcess
        let port: Int
        let admin: Int
    }

    func startReplica(_ name: String, store url: String) throws -> Replica {
        let port = E2E.freePort(), admin = E2E.freePort()
        let process = try ChildProcess(E2E.meshctl, ["serve", "--store", url, "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:\(admin)",
                                                     "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key",
                                                     "--client-ca", certs + "/ca.crt", "--threads", "1", "--drain-seconds", "1",
                                                     "--store-poll-interval", "1", "--replica-id", name,
                                                     "--replica-stale-after", "3", "--replica-expire-after", "8",
                                                     "--gc-keep", "1", "--gc-interval", "1", "--history-keep", "3"],
                                       log: "\(directory)/replica-\(name).log")
        children.append(process)
        E2E.waitUntil(15, "replica \(name) to listen") { process.output.contains("server.listening") }
        return Replica(name: name, process: process, port: port, admin: admin)
    }

    func startEnvoy(group: String, server: Int) throws -> String {
        let admin = E2E.freePort()
        let node = "\(group)-\(admin)"
        let bootstrap = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", node, "--node-cluster", group, "--server", "127.0.0.1:\(server)",
                                              "--cert", "\(certs)/\(group).crt", "--key", "\(certs)/\(group).key", "--ca", "\(certs)/ca.crt",
                                              "--server-name", "localhost", "--admin-port", "\(admin)"], timeout: 30)
        XCTAssertEqual(bootstrap?.status, 0)
        let path = "\(directory)/envoy-\(admin).yaml"
        try (bootstrap?.output ?? "").write(toFile: path, atomically: true, encoding: .utf8)
        children.append(try ChildProcess(E2E.envoy, ["-c", path, "--base-id", "\(admin)", "--disable-hot-restart", "-l", "warning",
                                                     "--drain-time-s", "1", "--parent-shutdown-time-s", "2"], log: "\(directory)/envoy-\(admin).log"))
        return node
    }

    func fleetStatus(_ url: String, _ extra: [String] = []) -> Command.Result {
        Command.run(E2E.meshctl, ["status", "--store", url, "--replica-stale-after", "3"] + extra, timeout: 30)
    }

    func testStatusFromTheStoreShowsEveryReplicasProxiesAndANackAndExpiresAKilledReplica() throws {
        guard FileManager.default.isExecutableFile(atPath: E2E.envoy) else {
            throw XCTSkip("Envoy is not installed at \(E2E.envoy); run through `make test`")
        }
        directory = try E2E.temporaryDirectory()
        certs = directory + "/certs"
        _ = try DevelopmentCertificates.write(to: certs, trustDomain: "mesh.local", proxies: ["frontend", "edge"])
        let upstream = E2E.freePort()
        children.append(try startUpstream(port: upstream, body: "backend-0", directory: directory))

        // A role with a password, over TCP: the password must never be shown.
        let (server, socketURL) = try SharedPostgres.database()
        let database = String(socketURL.split(separator: "/").last!)
        try server.sql("CREATE ROLE fleet LOGIN PASSWORD '\(Self.password)'")
        try server.sql("GRANT ALL ON DATABASE \(database) TO fleet")
        try server.sql("GRANT ALL ON SCHEMA public TO fleet", database: database)
        let url = server.tcpURL(database: database, user: "fleet", password: Self.password)
        let store = try openPublishTarget(url)
        let listener = E2E.freePort(), edgeListener = E2E.freePort()
        // The edge group also gets a listener on a port this test holds: its Envoy rejects LDS (a NACK with Envoy's error).
        let holder = try HeldPort()
        for n in 0..<5 {
            // Five publishes: history for the trimming job, old versions for gc.
            _ = try store.publish(try Snapshot.make(groups: [
                E2E.group("frontend", listenerPort: listener, routeTo: "backend_0", clusters: ["backend_0": upstream, "spare_\(n)": upstream],
                          identities: ["spiffe://mesh.local/proxy/frontend"]),
                E2E.group("edge", listenerPort: edgeListener, routeTo: "backend_0", clusters: ["backend_0": upstream],
                          identities: ["spiffe://mesh.local/proxy/edge"], extraListener: E2E.listenerOnAHeldPort(holder.port, cluster: "backend_0")),
            ], compilerVersion: "e2e"))
        }

        // Replica a takes the maintenance lock first; b waits.
        let a = try startReplica("replica-a", store: url)
        E2E.waitUntil(15, "replica a becomes the maintenance leader") { a.process.output.contains("maintenance.leader") }
        let b = try startReplica("replica-b", store: url)
        // One Envoy on each replica; the edge one cannot bind its second listener: it NACKs LDS.
        let good = try startEnvoy(group: "frontend", server: a.port)
        E2E.waitUntil(30, "traffic through the first Envoy") { E2E.get(listener) == "backend-0" }
        let nacking = try startEnvoy(group: "edge", server: b.port)

        var result = Command.Result(status: -1, stdout: "", stderr: "")
        E2E.waitUntil(30, "meshctl status --store lists both replicas' proxies and the NACK") {
            result = fleetStatus(url)
            return result.stdout.contains(good) && result.stdout.contains(nacking) && result.stdout.contains("NACKED")
        }
        XCTAssertEqual(result.status, 1, "a NACK fails the check: \(result.stdout)\(result.stderr)")
        XCTAssertTrue(result.stdout.contains("replica replica-a"), result.stdout)
        XCTAssertTrue(result.stdout.contains("replica replica-b"), result.stdout)
        XCTAssertTrue(result.stdout.contains("\(nacking) LDS NACKED"), result.stdout)
        XCTAssertTrue(result.stdout.contains("(replica replica-b)"), result.stdout)
        XCTAssertTrue(result.stdout.contains("127.0.0.1:\(holder.port)"), "Envoy's own error names the address it could not bind: \(result.stdout)")
        XCTAssertTrue(result.stdout.contains("(maintenance leader)"), result.stdout)
        let goodLine = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.hasPrefix(good) })
        XCTAssertTrue(goodLine.contains("SYNCED") && goodLine.contains("replica-a"), String(goodLine))

        // JSON: the same rows.
        let json = fleetStatus(url, ["--format", "json"])
        XCTAssertEqual(json.status, 1, json.stderr)
        let parsed = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let proxies = try XCTUnwrap(parsed["proxies"] as? [[String: Any]])
        XCTAssertEqual(Set(proxies.compactMap { $0["replica"] as? String }), ["replica-a", "replica-b"])
        let nacked = try XCTUnwrap(proxies.first { $0["node_id"] as? String == nacking })
        XCTAssertEqual(nacked["in_sync"] as? Bool, false)

        // Any replica's admin endpoint shows the whole fleet (the status page's fleet section reads /api/fleet).
        let page = try XCTUnwrap(E2E.get(a.admin, "/api/fleet"))
        XCTAssertTrue(page.contains(good) && page.contains(nacking) && page.contains("replica-b"), page)
        XCTAssertTrue(page.contains("127.0.0.1:\(holder.port)"), "the NACK's message: \(page)")
        XCTAssertTrue((E2E.get(b.admin, "/") ?? "").contains("id=\"fleet\""), "the page has the fleet section")
        if let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) {
            // The page as a browser renders it: replica b's page lists a's proxy, its own NACKing one and Envoy's error.
            let dom = Command.run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                                             "--user-data-dir=\(directory)/chromium", "--virtual-time-budget=5000", "--dump-dom",
                                             "http://127.0.0.1:\(b.admin)/"], timeout: 90)
            XCTAssertEqual(dom.status, 0, dom.stderr)
            let fleetSection = dom.stdout.components(separatedBy: "id=\"fleet\"").dropFirst().first ?? ""
            XCTAssertTrue(fleetSection.contains(good) && fleetSection.contains("replica-a"), String(fleetSection.prefix(3000)))
            XCTAssertTrue(fleetSection.contains(nacking) && fleetSection.contains("127.0.0.1:\(holder.port)"), String(fleetSection.prefix(3000)))
            XCTAssertTrue(fleetSection.contains("maintenance leader"), String(fleetSection.prefix(3000)))
            XCTAssertFalse(dom.stdout.contains(Self.password))
        }

        // Singleton jobs: only a collected and trimmed while it held the lock.
        E2E.waitUntil(15, "the leader collects and trims") {
            a.process.output.contains("store.gc") && a.process.output.contains("store.history-trimmed")
        }
        XCTAssertFalse(b.process.output.contains("maintenance.leader"), b.process.output)
        XCTAssertFalse(b.process.output.contains("store.gc"), "b does not run gc while a holds the lock: \(b.process.output)")
        XCTAssertLessThanOrEqual(Int(try server.sql("SELECT count(*) FROM meshctl_history", database: database)) ?? 99, 3)
        XCTAssertEqual(try server.sql("SELECT count(*) FROM meshctl_versions", database: database), "1")

        // kill -9 of replica a: its rows are shown stale (and do not fail the check), b takes over maintenance,
        // and b deletes a's rows once its heartbeat is older than --replica-expire-after.
        a.process.kill9()
        E2E.waitUntil(15, "a's rows show as stale") {
            result = fleetStatus(url)
            return result.stdout.contains("replica replica-a") && result.stdout.contains("STALE: no heartbeat")
        }
        XCTAssertTrue(result.stdout.contains("replica-a (stale)"), result.stdout)
        XCTAssertEqual(result.status, 1, "b's proxy still NACKs: \(result.stdout)")
        E2E.waitUntil(15, "b becomes the maintenance leader") { b.process.output.contains("maintenance.leader") }
        E2E.waitUntil(15, "b runs the jobs") { b.process.output.contains("store.gc") }
        E2E.waitUntil(30, "b expires a's rows") {
            result = fleetStatus(url)
            return !result.stdout.contains("replica-a") && result.stdout.contains(nacking)
        }
        XCTAssertTrue(b.process.output.contains("fleet.expired"), b.process.output)
        XCTAssertEqual(try server.sql("SELECT count(*) FROM meshctl_proxy_status WHERE replica_id = 'replica-a'", database: database), "0")

        // A replica that stops cleanly removes its rows at once.
        b.process.stop()
        XCTAssertEqual(try server.sql("SELECT count(*) FROM meshctl_replicas", database: database), "0")
        let empty = fleetStatus(url)
        XCTAssertEqual(empty.status, 0, empty.stdout + empty.stderr)
        XCTAssertTrue(empty.stdout.contains("0 replicas"), empty.stdout)

        // The password is in no output anywhere.
        let outputs = [a.process.output, b.process.output, result.stdout, result.stderr, json.stdout, json.stderr, page, empty.stdout]
        for text in outputs { XCTAssertFalse(text.contains(Self.password), "the password leaked: \(text.prefix(2000))") }
        XCTAssertTrue(result.stdout.contains("fleet of postgres://fleet@127.0.0.1"), result.stdout)
    }
}
