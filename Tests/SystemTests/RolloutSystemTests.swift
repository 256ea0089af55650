// Progressive rollout against real Envoy 1.40 processes: five Envoys of one group and two of
// another follow `meshctl serve`. A snapshot the canary rejects (a listener on a port another
// socket holds) is rolled back before any other proxy receives it; a canary killed after
// receiving a version fails it too; a good snapshot goes wave by wave, each wave's Envoys
// receiving it at least the bake time after the previous wave's; operators pause, resume,
// promote and abort through the store; a proxy joining mid-rollout gets its wave's version and
// a proxy of a passed wave that reconnects does not go back.
import Foundation
import MeshModel
import MeshTestSupport
import RolloutPlanning
import SnapshotStorage
import XCTest

final class RolloutSystemTests: XCTestCase {
    var run: DemoMeshRun!
    var certs: String { run.certificates }
    var store: String { run.store }
    var upstreamA = 0, upstreamB = 0

    override func setUpWithError() throws {
        // Certificates and processes only: each test publishes its own snapshots to the store.
        run = try DemoMeshRun(proxies: ["web", "api"], operators: ["oncall"], compileDemo: false)
        // Clusters need endpoints only to exist; no traffic is sent (each Envoy's listener binds port 0).
        upstreamA = E2E.freePort()
        upstreamB = E2E.freePort()
    }

    override func tearDown() { run?.stop() }

    // MARK: Helpers

    struct Server {
        let process: ChildProcess
        let port: Int
        let adminPort: Int
    }

    struct Proxy {
        let process: ChildProcess
        let adminPort: Int
        let node: String
        let group: String
    }

    /// `meshctl serve` with its admin endpoint on a free port.
    func startServer(port: Int? = nil) throws -> Server {
        let (process, port) = try run.startServe(admin: "127.0.0.1:0", name: "server-\(UUID().uuidString.prefix(4))", port: port)
        return Server(process: process, port: port, adminPort: E2E.adminPort(of: process))
    }

    private var envoys = 0

    func startEnvoy(group: String, serverPort: Int, node: String? = nil, bootstrapFlags: [String] = []) throws -> Proxy {
        envoys += 1
        let node = node ?? "\(group)-\(envoys)"
        let envoy = try run.startEnvoy(group: group, nodeID: node, serverPort: serverPort, bootstrapFlags: bootstrapFlags,
                                       envoyArguments: ["--drain-time-s", "1", "--parent-shutdown-time-s", "2"])
        return Proxy(process: envoy.process, adminPort: envoy.adminPort, node: node, group: group)
    }

    /// A group routing "/" to `cluster`, with an optional extra listener and rollout policy record.
    func group(_ name: String, routeTo cluster: String, policy: RolloutPolicy?, extraListener: String? = nil) throws -> ProxyGroupResources {
        var clusters = ["backend_a": upstreamA, "backend_b": upstreamB]
        clusters[cluster] = clusters[cluster] ?? upstreamA
        let base = try E2E.group(name, listenerPort: 0, routeTo: cluster, clusters: clusters,
                                 identities: ["spiffe://mesh.local/proxy/\(name)"], extraListener: extraListener)
        var list = base.resources.values.flatMap(\.values)
        if let policy { list.append(Resource(typeURL: RolloutPolicy.typeURL, name: name, body: policy.encoded())) }
        return ProxyGroupResources(group: name, resources: list)
    }

    @discardableResult
    func publish(_ groups: [ProxyGroupResources]) throws -> String {
        let snapshot = try Snapshot.make(groups: groups, compilerVersion: "e2e")
        return try SnapshotStore(directory: store, createIfMissing: true).publish(snapshot).version
    }

    /// The cluster the Envoy's `local_route` sends "/" to, and when Envoy took that route configuration.
    func route(_ proxy: Proxy) -> (cluster: String, updated: Date)? { E2E.dynamicRoute(adminPort: proxy.adminPort) }

    func rolloutState() -> RolloutState? {
        (try? SnapshotStore(directory: store).loadRolloutState()).flatMap { $0 }.flatMap(RolloutState.decode)
    }

    func meshctl(_ arguments: [String], timeout: Double = 60) -> Command.Result { Command.run(E2E.meshctl, arguments, timeout: timeout) }

    func status(_ server: Server) -> Command.Result {
        meshctl(["status", "--server", "127.0.0.1:\(server.port)", "--cert", "\(certs)/operator-oncall.crt", "--key", "\(certs)/operator-oncall.key",
                 "--ca", "\(certs)/ca.crt", "--timeout", "5", "--store", store], timeout: 30)
    }

    /// Five web and two api Envoys on the first version (routing to backend_a).
    func startFleet(policy: RolloutPolicy) throws -> (Server, [Proxy]) {
        try publish([group("web", routeTo: "backend_a", policy: policy), group("api", routeTo: "backend_a", policy: policy)])
        let server = try startServer()
        var proxies: [Proxy] = []
        for _ in 0..<5 { proxies.append(try startEnvoy(group: "web", serverPort: server.port)) }
        for _ in 0..<2 { proxies.append(try startEnvoy(group: "api", serverPort: server.port)) }
        E2E.waitUntil(60, "seven Envoys on the first version") { proxies.allSatisfy { route($0)?.cluster == "backend_a" } }
        return (server, proxies)
    }

    // MARK: Tests

    func testACanaryNackRollsBackBeforeAnyOtherProxyReceivesTheVersion() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 1000)
        let (server, proxies) = try startFleet(policy: policy)
        let good = try SnapshotStore(directory: store).currentVersion()!
        let web = proxies.filter { $0.group == "web" }
        let canary = RolloutMachine.canaryOrder(web.map(\.node)).first!

        let held = try HeldPort()
        let broken = E2E.listenerOnAHeldPort(held.port, cluster: "backend_a")
        let bad = try publish([group("web", routeTo: "backend_a", policy: policy, extraListener: broken), group("api", routeTo: "backend_a", policy: policy)])
        XCTAssertNotEqual(bad, good)
        E2E.waitUntil(20, "the rollout to roll back") { server.process.output.contains("rollout.rolled-back") }

        XCTAssertEqual(try SnapshotStore(directory: store).currentVersion(), good, "the live pointer is back on the previous version")
        let rollback = try XCTUnwrap(SnapshotStore(directory: store).history().last)
        XCTAssertEqual(rollback.kind, .rollback)
        XCTAssertEqual(rollback.version, good)
        XCTAssertTrue(rollback.reason?.contains(canary) ?? false, rollback.reason ?? "")
        XCTAssertTrue(rollback.reason?.contains("Listener") ?? false, "the history names the type: \(rollback.reason ?? "")")
        XCTAssertTrue(rollback.reason?.contains("\(held.port)") ?? false, "and Envoy's error detail: \(rollback.reason ?? "")")

        // Only the canary ever received the bad version: Envoy's own count of rejected LDS updates.
        for proxy in proxies {
            let stats = E2E.get(proxy.adminPort, "/stats?filter=listener_manager.lds.update_rejected") ?? ""
            let rejected = stats.split(separator: "\n").first { $0.hasPrefix("listener_manager.lds.update_rejected:") }
                .flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) }
            XCTAssertEqual(rejected.map { $0 > 0 }, proxy.node == canary, "\(proxy.node): \(stats)")
        }

        let state = try XCTUnwrap(rolloutState())
        XCTAssertEqual(state.phase, .rolledBack)
        XCTAssertEqual(state.failure?.proxy.node, canary)
        XCTAssertEqual(state.failure?.kind, .nack)

        let result = status(server)
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rollout FAILED") && result.stdout.contains(canary) && result.stdout.contains("\(held.port)"), result.stdout)
        let rolloutStatus = meshctl(["rollout", "status", "--store", store])
        XCTAssertEqual(rolloutStatus.status, 1, rolloutStatus.stdout + rolloutStatus.stderr)
        XCTAssertTrue(rolloutStatus.stdout.contains("FAILED") && rolloutStatus.stdout.contains(canary), rolloutStatus.stdout)

        let metrics = E2E.get(server.adminPort, "/metrics") ?? ""
        XCTAssertTrue(metrics.contains(#"meshctl_rollouts_total{result="rolled_back"} 1"#), metrics)
        let page = E2E.get(server.adminPort, "/api/rollout") ?? ""
        XCTAssertTrue(page.contains(canary), page)
        E2E.waitUntil(10, "every proxy back on (still on) the good version") { proxies.allSatisfy { route($0)?.cluster == "backend_a" } }
        withExtendedLifetime(held) {}
    }

    func testAGoodSnapshotGoesWaveByWaveAndOperatorsSteerIt() throws {
        let bake = 1.5
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: Int64(bake * 1000))
        let (server, proxies) = try startFleet(policy: policy)

        // 1. A good version, waves 1 / 3 / 5 (web) and 1 / 1 / 2 (api), each gated on ACKs and 1.5 s of bake.
        let second = try publish([group("web", routeTo: "backend_b", policy: policy), group("api", routeTo: "backend_b", policy: policy)])
        let waited = meshctl(["rollout", "status", "--store", store, "--wait", "--timeout", "60"], timeout: 90)
        XCTAssertEqual(waited.status, 0, waited.stdout + waited.stderr)
        let state = try XCTUnwrap(rolloutState())
        XCTAssertEqual(state.target, second)
        XCTAssertEqual(state.phase, .completed)
        for group in ["web", "api"] {
            let plan = try XCTUnwrap(state.groups[group])
            var receipts: [[Date]] = []
            for wave in plan.policy.waves.indices {
                receipts.append(try plan.members(ofWave: wave).map { node in
                    let proxy = try XCTUnwrap(proxies.first { $0.node == node })
                    let route = try XCTUnwrap(self.route(proxy))
                    XCTAssertEqual(route.cluster, "backend_b")
                    return route.updated
                })
            }
            XCTAssertEqual(receipts.map(\.count), group == "web" ? [1, 2, 2] : [1, 0, 1])
            let nonEmpty = receipts.filter { !$0.isEmpty }
            for (earlier, later) in zip(nonEmpty, nonEmpty.dropFirst()) {
                let gap = later.min()!.timeIntervalSince(earlier.max()!)
                print("rollout: group \(group) next wave received \(String(format: "%.3f", gap)) s after the previous one (bake \(bake) s)")
                XCTAssertGreaterThanOrEqual(gap, bake - 0.01, "group \(group): a wave receives the version only after the previous one baked")
            }
        }

        // 2. A third version with a long bake: pause holds, resume continues, promote skips the bake.
        let slow = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 120_000)
        let third = try publish([group("web", routeTo: "backend_a", policy: slow), group("api", routeTo: "backend_a", policy: slow)])
        E2E.waitUntil(10, "the third rollout to start") { rolloutState()?.target == third }
        let operatorArguments = ["--store", store, "--operator", "ana", "--reason", "system test"]
        var result = meshctl(["rollout", "pause"] + operatorArguments)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertEqual(rolloutState()?.phase, .paused)
        result = meshctl(["rollout", "pause"] + operatorArguments)
        XCTAssertEqual(result.status, 1, "pausing a paused rollout is refused: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("not running"), result.stderr)

        // A proxy joining now is put in a later wave (the first is full) and keeps the previous version.
        let web = proxies.filter { $0.group == "web" }
        let joiner = try startEnvoy(group: "web", serverPort: server.port)
        E2E.waitUntil(30, "the new Envoy to be configured") { route(joiner) != nil }
        XCTAssertEqual(route(joiner)?.cluster, "backend_b", "a proxy of a later wave gets the previous version")

        result = meshctl(["rollout", "resume"] + operatorArguments)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        let canary = try XCTUnwrap(rolloutState()?.groups["web"]?.members(ofWave: 0).first)
        E2E.waitUntil(10, "the canary on the third version") { route(web.first { $0.node == canary }!)?.cluster == "backend_a" }
        result = meshctl(["rollout", "promote"] + operatorArguments)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        E2E.waitUntil(10, "promote to start the second wave without waiting for the bake") { rolloutState()?.groups["web"]?.wave == 1 }
        let secondWave = rolloutState()!.groups["web"]!.members(ofWave: 1)
        E2E.waitUntil(10, "the second wave on the third version") {
            secondWave.allSatisfy { node in proxies.first { $0.node == node }.map { route($0)?.cluster == "backend_a" } ?? false }
        }

        // The canary's wave has passed: restarted with the same node id it gets the third version again, not the second.
        let canaryProxy = web.first { $0.node == canary }!
        canaryProxy.process.stop()
        let returned = try startEnvoy(group: "web", serverPort: server.port, node: canary)
        E2E.waitUntil(30, "the returning canary to be configured") { route(returned) != nil }
        XCTAssertEqual(route(returned)?.cluster, "backend_a", "a proxy of a passed wave does not go back")
        XCTAssertEqual(rolloutState()?.phase, .running, "a proxy of a passed wave leaving is not a failure")

        // 3. Abort: the live pointer goes back to the second version and every proxy follows.
        result = meshctl(["rollout", "abort"] + operatorArguments)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        E2E.waitUntil(10, "the store to roll back") { (try? SnapshotStore(directory: store).currentVersion()) == second }
        let history = try XCTUnwrap(SnapshotStore(directory: store).history().last)
        XCTAssertEqual(history.kind, .rollback)
        XCTAssertEqual(history.author, "ana")
        XCTAssertTrue(history.reason?.contains("aborted by ana") ?? false, history.reason ?? "")
        let everyone = proxies.filter { $0.node != canary } + [returned, joiner]
        E2E.waitUntil(15, "every proxy back on the second version") { everyone.allSatisfy { route($0)?.cluster == "backend_b" } }
        XCTAssertEqual(rolloutState()?.actions.map(\.action), ["pause", "resume", "promote", "abort"])
        XCTAssertEqual(rolloutState()?.actions.map(\.by), ["ana", "ana", "ana", "ana"])
        let statusAfterAbort = meshctl(["rollout", "status", "--store", store, "--version", third])
        XCTAssertEqual(statusAfterAbort.status, 4, statusAfterAbort.stdout + statusAfterAbort.stderr)
        result = meshctl(["rollout", "abort"] + operatorArguments)
        XCTAssertEqual(result.status, 1, "nothing to abort any more: \(result.stderr)")
    }

    func testACanaryKilledAfterReceivingTheVersionFailsTheRollout() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 5000)
        try publish([group("web", routeTo: "backend_a", policy: policy)])
        let server = try startServer()
        let web = try (0..<3).map { _ in try startEnvoy(group: "web", serverPort: server.port) }
        E2E.waitUntil(60, "three Envoys on the first version") { web.allSatisfy { route($0)?.cluster == "backend_a" } }
        let first = try SnapshotStore(directory: store).currentVersion()!
        let canary = RolloutMachine.canaryOrder(web.map(\.node)).first!
        let canaryProxy = web.first { $0.node == canary }!

        try publish([group("web", routeTo: "backend_b", policy: policy)])
        E2E.waitUntil(10, "the canary to take the new version") { route(canaryProxy)?.cluster == "backend_b" }
        canaryProxy.process.kill9()
        E2E.waitUntil(10, "the rollout to roll back") { server.process.output.contains("rollout.rolled-back") }
        XCTAssertEqual(try SnapshotStore(directory: store).currentVersion(), first)
        XCTAssertEqual(rolloutState()?.failure?.kind, .disconnected)
        XCTAssertEqual(rolloutState()?.failure?.proxy.node, canary)
        for proxy in web where proxy.node != canary { XCTAssertEqual(route(proxy)?.cluster, "backend_a", "\(proxy.node) never received it") }
    }

    func testARestartedServerContinuesTheSameWave() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 120_000)
        try publish([group("web", routeTo: "backend_a", policy: policy)])
        let port = E2E.freePort()
        let server = try startServer(port: port)
        let web = try (0..<4).map { _ in try startEnvoy(group: "web", serverPort: port) }
        E2E.waitUntil(60, "four Envoys on the first version") { web.allSatisfy { route($0)?.cluster == "backend_a" } }
        let second = try publish([group("web", routeTo: "backend_b", policy: policy)])
        E2E.waitUntil(10, "the rollout to start") { rolloutState()?.target == second }
        XCTAssertEqual(meshctl(["rollout", "promote", "--store", store, "--operator", "ana"]).status, 0)
        E2E.waitUntil(10, "the second wave") { rolloutState()?.groups["web"]?.wave == 1 }
        let plan = try XCTUnwrap(rolloutState()?.groups["web"])
        let onNew = Set(plan.members(ofWave: 0) + plan.members(ofWave: 1))
        XCTAssertEqual(onNew.count, 2, "waves of 1 and 2 of 4 proxies")
        func onExpectedVersions() -> Bool {
            web.allSatisfy { route($0)?.cluster == (onNew.contains($0.node) ? "backend_b" : "backend_a") }
        }
        E2E.waitUntil(10, "the first two waves on the new version, the rest on the previous one") { onExpectedVersions() }

        server.process.stop()
        XCTAssertEqual(rolloutState()?.phase, .running, "a draining server's closing streams are not proxies failing")
        let restarted = try startServer(port: port)
        E2E.waitUntil(15, "the restarted server to continue the rollout") { restarted.process.output.contains("rollout.resumed") }
        E2E.waitUntil(30, "every Envoy back on the restarted server") {
            let table = E2E.get(restarted.adminPort, "/debug/proxies").flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            return table?["proxy_count"] as? Int == web.count
        }
        usleep(1_000_000)
        XCTAssertTrue(onExpectedVersions(), "no proxy went forward or back across the restart")
        XCTAssertEqual(rolloutState()?.groups["web"]?.wave, 1, "the same wave: not restarted, not skipped")
        XCTAssertEqual(rolloutState()?.phase, .running)
        XCTAssertEqual(meshctl(["rollout", "promote", "--store", store, "--operator", "ana"]).status, 0)
        E2E.waitUntil(10, "the last wave after the restart") { web.allSatisfy { route($0)?.cluster == "backend_b" } }
    }

    func testPublishesDuringARolloutQueueBehindItAndCollapseToTheNewest() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 120_000)
        try publish([group("web", routeTo: "backend_a", policy: policy)])
        let server = try startServer()
        let web = try (0..<3).map { _ in try startEnvoy(group: "web", serverPort: server.port) }
        E2E.waitUntil(60, "three Envoys on the first version") { web.allSatisfy { route($0)?.cluster == "backend_a" } }
        let second = try publish([group("web", routeTo: "backend_b", policy: policy)])
        E2E.waitUntil(10, "the rollout of the second version") { rolloutState()?.target == second }
        let third = try publish([group("web", routeTo: "backend_c", policy: policy)])
        E2E.waitUntil(10, "the third version to queue") { rolloutState()?.queued == third }
        let fourth = try publish([group("web", routeTo: "backend_d", policy: policy)])
        E2E.waitUntil(10, "the fourth version to replace it in the queue") { rolloutState()?.queued == fourth }
        XCTAssertEqual(rolloutState()?.collapsed, [third])
        XCTAssertEqual(rolloutState()?.target, second, "the running rollout goes on")
        var result = meshctl(["rollout", "status", "--store", store])
        XCTAssertEqual(result.status, 3, "the latest publish is queued: \(result.stdout)")
        XCTAssertTrue(result.stdout.contains("queued behind the rollout of \(second.prefix(12))"), result.stdout)
        result = meshctl(["rollout", "status", "--store", store, "--version", third])
        XCTAssertEqual(result.status, 4, result.stdout)
        usleep(500_000)
        XCTAssertTrue(web.allSatisfy { ["backend_a", "backend_b"].contains(route($0)?.cluster ?? "") }, "no proxy received a queued version")

        // The second version completes (two promotes: its last wave, then done); the newest queued one starts over
        // it with its own first wave.
        XCTAssertEqual(meshctl(["rollout", "promote", "--store", store, "--operator", "ana"]).status, 0)
        XCTAssertEqual(meshctl(["rollout", "promote", "--store", store, "--operator", "ana"]).status, 0)
        E2E.waitUntil(10, "the fourth version's rollout to start") { rolloutState()?.target == fourth }
        XCTAssertEqual(rolloutState()?.previous, second)
        let canary = try XCTUnwrap(rolloutState()?.groups["web"]?.members(ofWave: 0).first)
        E2E.waitUntil(10, "the canary on the fourth version, the others on the second") {
            web.allSatisfy { route($0)?.cluster == ($0.node == canary ? "backend_d" : "backend_b") }
        }
        XCTAssertFalse(web.contains { route($0)?.cluster == "backend_c" }, "the collapsed version never went out")
        XCTAssertEqual(meshctl(["rollout", "promote", "--store", store, "--operator", "ana"]).status, 0)
        XCTAssertEqual(meshctl(["rollout", "promote", "--store", store, "--operator", "ana"]).status, 0)
        let done = meshctl(["rollout", "status", "--store", store, "--wait", "--timeout", "20"], timeout: 40)
        XCTAssertEqual(done.status, 0, done.stdout + done.stderr)
        E2E.waitUntil(10, "every proxy on the fourth version") { web.allSatisfy { route($0)?.cluster == "backend_d" } }
    }

    func testAGateThatPassesLetsWavesAdvanceAndOneThatDoesNotAnswerRollsBack() throws {
        let gateServer = E2E.freePort()
        try run.startApplication(port: gateServer, body: "error rate ok")
        let passing = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 500,
                                    gate: RolloutPolicy.Gate(url: "http://127.0.0.1:\(gateServer)/check", timeoutMilliseconds: 2000))
        try publish([group("web", routeTo: "backend_a", policy: passing)])
        let server = try startServer()
        let web = try (0..<3).map { _ in try startEnvoy(group: "web", serverPort: server.port) }
        E2E.waitUntil(60, "three Envoys on the first version") { web.allSatisfy { route($0)?.cluster == "backend_a" } }
        let second = try publish([group("web", routeTo: "backend_b", policy: passing)])
        let done = meshctl(["rollout", "status", "--store", store, "--wait", "--timeout", "30"], timeout: 60)
        XCTAssertEqual(done.status, 0, done.stdout + done.stderr)
        XCTAssertEqual(server.process.output.components(separatedBy: "rollout.gate-answered").count - 1, 2, "asked once per wave")
        XCTAssertTrue(web.allSatisfy { route($0)?.cluster == "backend_b" })

        // A gate that accepts the connection and never answers: the wave fails after the gate's timeout, saying so.
        let silent = try HeldPort(listening: true)
        let hanging = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 500,
                                    gate: RolloutPolicy.Gate(url: "http://127.0.0.1:\(silent.port)/check", timeoutMilliseconds: 1000))
        try publish([group("web", routeTo: "backend_a", policy: hanging)])
        let failed = meshctl(["rollout", "status", "--store", store, "--wait", "--timeout", "30"], timeout: 60)
        XCTAssertEqual(failed.status, 1, failed.stdout + failed.stderr)
        XCTAssertTrue(failed.stdout.contains("did not answer within 1s"), failed.stdout)
        XCTAssertEqual(rolloutState()?.failure?.kind, .gate)
        E2E.waitUntil(10, "the store back on the second version") { (try? SnapshotStore(directory: store).currentVersion()) == second }
        E2E.waitUntil(10, "every proxy back on the second version") { web.allSatisfy { route($0)?.cluster == "backend_b" } }
        withExtendedLifetime(silent) {}
    }

    /// The gate reads per-type status, not one protocol's version strings: incremental (delta) ADS Envoys roll out
    /// wave by wave too.
    func testDeltaEnvoysRollOutWaveByWave() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 1000)
        try publish([group("web", routeTo: "backend_a", policy: policy)])
        let server = try startServer()
        let web = try (0..<3).map { _ in try startEnvoy(group: "web", serverPort: server.port, bootstrapFlags: ["--mode", "ads-delta"]) }
        E2E.waitUntil(60, "three delta Envoys on the first version") { web.allSatisfy { route($0)?.cluster == "backend_a" } }
        try publish([group("web", routeTo: "backend_b", policy: policy)])
        let done = meshctl(["rollout", "status", "--store", store, "--wait", "--timeout", "30"], timeout: 60)
        XCTAssertEqual(done.status, 0, done.stdout + done.stderr)
        let plan = try XCTUnwrap(rolloutState()?.groups["web"])
        let receipts = try plan.policy.waves.indices.map { wave in
            try plan.members(ofWave: wave).map { node in try XCTUnwrap(route(try XCTUnwrap(web.first { $0.node == node }))).updated }
        }
        XCTAssertEqual(receipts.map(\.count), [1, 2])
        XCTAssertGreaterThanOrEqual(receipts[1].min()!.timeIntervalSince(receipts[0].max()!), 0.99, "the second wave after the first one's bake")
        XCTAssertTrue(web.allSatisfy { route($0)?.cluster == "backend_b" })
    }

    /// `on_failure: halt`: the canary's NACK stops the rollout where it is and waits for a person; the live version
    /// stays, nobody else receives it, status fails, and `abort` is what rolls it back.
    func testHaltKeepsTheRolloutWhereItFailedUntilAPersonAborts() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 1000, onFailure: .halt)
        try publish([group("web", routeTo: "backend_a", policy: policy)])
        let server = try startServer()
        let web = try (0..<3).map { _ in try startEnvoy(group: "web", serverPort: server.port) }
        E2E.waitUntil(60, "three Envoys on the first version") { web.allSatisfy { route($0)?.cluster == "backend_a" } }
        let good = try SnapshotStore(directory: store).currentVersion()!
        let canary = RolloutMachine.canaryOrder(web.map(\.node)).first!
        let held = try HeldPort()
        let bad = try publish([group("web", routeTo: "backend_a", policy: policy, extraListener: E2E.listenerOnAHeldPort(held.port, cluster: "backend_a"))])
        E2E.waitUntil(20, "the rollout to halt") { rolloutState()?.phase == .halted }
        XCTAssertEqual(rolloutState()?.failure?.proxy.node, canary)
        XCTAssertEqual(try SnapshotStore(directory: store).currentVersion(), bad, "halt leaves the live pointer where it is")
        usleep(1_500_000)
        XCTAssertEqual(rolloutState()?.phase, .halted, "and nothing advances")
        let metrics = E2E.get(server.adminPort, "/metrics") ?? ""
        XCTAssertTrue(metrics.contains(#"meshctl_rollouts_total{result="halted"} 1"#), metrics)
        XCTAssertTrue(metrics.contains(#"meshctl_rollout_wave{group="web"} 1"#), "the group is held in its first wave: \(metrics)")
        let result = status(server)
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("rollout FAILED") && result.stdout.contains(canary), result.stdout)
        // The status page's rollout panel, rendered by a real browser: the phase, the waves and the failure.
        if let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first(where: FileManager.default.isExecutableFile) {
            let dom = Command.run(chromium, [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--user-data-dir=\(run.directory)/chromium", "--virtual-time-budget=5000", "--dump-dom", "http://127.0.0.1:\(server.adminPort)/"], timeout: 90)
            XCTAssertEqual(dom.status, 0, dom.stderr)
            XCTAssertTrue(dom.stdout.contains(#"class="badge halted""#), dom.stdout.suffix(3000).description)
            XCTAssertTrue(dom.stdout.contains("Failed: nack by \(canary)") && dom.stdout.contains("\(held.port)"), dom.stdout.suffix(3000).description)
            XCTAssertTrue(dom.stdout.contains("1 of 2"), "the group's current wave: \(dom.stdout.suffix(3000))")
        }
        let resume = meshctl(["rollout", "resume", "--store", store, "--operator", "ana"])
        XCTAssertEqual(resume.status, 1)
        XCTAssertTrue(resume.stderr.contains("promote it") && resume.stderr.contains("abort it"), resume.stderr)

        let abort = meshctl(["rollout", "abort", "--store", store, "--operator", "ana", "--reason", "port clash on the canary"])
        XCTAssertEqual(abort.status, 0, abort.stdout + abort.stderr)
        E2E.waitUntil(10, "the store back on the good version") { (try? SnapshotStore(directory: store).currentVersion()) == good }
        let history = try XCTUnwrap(SnapshotStore(directory: store).history().last)
        XCTAssertEqual(history.kind, .rollback)
        XCTAssertEqual(history.author, "ana")
        XCTAssertTrue(history.reason?.contains("port clash on the canary") ?? false, history.reason ?? "")
        for proxy in web where proxy.node != canary {
            let stats = E2E.get(proxy.adminPort, "/stats?filter=listener_manager.lds.update_rejected") ?? ""
            XCTAssertTrue(stats.contains("listener_manager.lds.update_rejected: 0"), "\(proxy.node) never received the bad version: \(stats)")
        }
        withExtendedLifetime(held) {}
    }
}

/// The rollout tests read when Envoy took a route from its admin endpoint; protobuf writes a timestamp with zero
/// fractional seconds without them, and such a route once read as "no route" until its next update.
final class EnvoyTimestampTests: XCTestCase {
    func testTimestampsWithAndWithoutFractionalSecondsAreRead() throws {
        let whole = try XCTUnwrap(E2E.envoyTime("2026-12-05T14:59:13Z"))
        let fraction = try XCTUnwrap(E2E.envoyTime("2026-12-05T14:59:13.250Z"))
        XCTAssertEqual(fraction.timeIntervalSince(whole), 0.25, accuracy: 0.001)
        XCTAssertNil(E2E.envoyTime("not a time"))
    }
}
