// Progressive rollout with three `meshctl serve` replicas on one real PostgreSQL store and real
// Envoys of one group spread over them: one replica leads (the store's lease), the others follow
// the state it saves and report their proxies to it. A canary on a follower that NACKs fails the
// rollout the leader runs, the live version goes back and no proxy on another replica ever receives
// the bad version; a good version goes wave by wave across replicas; the leader killed -9 mid-rollout
// is replaced by another replica that continues the same wave.
import Foundation
import MeshModel
import MeshTestSupport
import PostgresStorage
import RolloutPlanning
import SnapshotStorage
import XCTest

final class RolloutReplicaTests: XCTestCase {
    var run: DemoMeshRun!
    var url = ""
    var store: PostgresSnapshotStore!
    var upstreamA = 0, upstreamB = 0

    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    override func setUpWithError() throws {
        run = try DemoMeshRun(proxies: ["web"], operators: ["oncall"], compileDemo: false)
        url = try SharedPostgres.database().url
        store = try XCTUnwrap(try openPublishTarget(url) as? PostgresSnapshotStore)
        upstreamA = E2E.freePort()
        upstreamB = E2E.freePort()
    }

    override func tearDown() { run?.stop() }

    struct Replica {
        let process: ChildProcess
        let port: Int
        let admin: Int
    }

    struct Proxy {
        let process: ChildProcess
        let adminPort: Int
        let node: String
        let replica: Int
    }

    func startReplica(_ name: String) throws -> Replica {
        let port = E2E.freePort(), admin = E2E.freePort()
        let process = run.adopt(try ChildProcess(E2E.meshctl, [
            "serve", "--store", url, "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:\(admin)",
            "--tls-cert", run.certificates + "/server.crt", "--tls-key", run.certificates + "/server.key",
            "--client-ca", run.certificates + "/ca.crt", "--threads", "1", "--drain-seconds", "1", "--store-poll-interval", "1",
        ], log: "\(run.directory)/\(name).log"))
        E2E.waitUntil(15, "\(name) to listen") { process.output.contains("server.listening") }
        return Replica(process: process, port: port, admin: admin)
    }

    func group(routeTo cluster: String, policy: RolloutPolicy, extraListener: String? = nil) throws -> [ProxyGroupResources] {
        let base = try E2E.group("web", listenerPort: 0, routeTo: cluster, clusters: ["backend_a": upstreamA, "backend_b": upstreamB],
                                 identities: ["spiffe://mesh.local/proxy/web"], extraListener: extraListener)
        return [ProxyGroupResources(group: "web", resources: base.resources.values.flatMap(\.values)
                    + [Resource(typeURL: RolloutPolicy.typeURL, name: "web", body: policy.encoded())])]
    }

    @discardableResult
    func publish(_ groups: [ProxyGroupResources]) throws -> String {
        try store.publish(try Snapshot.make(groups: groups, compilerVersion: "e2e")).version
    }

    func state() -> RolloutState? { (try? store.loadRolloutState()).flatMap { $0 }.flatMap(RolloutState.decode) }

    /// The cluster the Envoy's `local_route` sends "/" to, and when Envoy took that route configuration.
    func route(_ proxy: Proxy) -> (cluster: String, updated: Date)? { E2E.dynamicRoute(adminPort: proxy.adminPort) }

    /// Three replicas (the first leads) and six Envoys of group web on the first version: the canary (by the plan's
    /// hash order) on `canaryOn`, the others two per replica as far as they go.
    func startFleet(policy: RolloutPolicy, canaryOn: Int, proxiesOn: [Int] = [0, 1, 2]) throws -> ([Replica], [Proxy]) {
        try publish(try group(routeTo: "backend_a", policy: policy))
        let leader = try startReplica("replica-0")
        E2E.waitUntil(10, "the first replica to lead") { leader.process.output.contains("rollout.leader ") }
        let replicas = [leader, try startReplica("replica-1"), try startReplica("replica-2")]
        let nodes = (1...6).map { "web-\($0)" }
        let canary = RolloutMachine.canaryOrder(nodes).first!
        var placement = [canary: canaryOn]
        var next = 0
        for node in nodes where node != canary {
            placement[node] = proxiesOn[next % proxiesOn.count]
            next += 1
        }
        let proxies = try nodes.map { node in
            let replica = placement[node]!
            let envoy = try run.startEnvoy(group: "web", nodeID: node, serverPort: replicas[replica].port,
                                           envoyArguments: ["--drain-time-s", "1", "--parent-shutdown-time-s", "2"])
            return Proxy(process: envoy.process, adminPort: envoy.adminPort, node: node, replica: replica)
        }
        E2E.waitUntil(60, "six Envoys on the first version") { proxies.allSatisfy { route($0)?.cluster == "backend_a" } }
        // The leader plans a rollout over the proxies it knows: its own streams and the followers' reports. A publish
        // before a follower's report names its proxies plans without them, and another proxy than the one placed here
        // becomes the canary (seen on a fast machine: a follower's non-canary proxy took the new version at once).
        let onFollowers = Set(proxies.filter { $0.replica != 0 }.map(\.node))
        E2E.waitUntil(10, "the followers' reports to name all their proxies") {
            let rows = (try? store.replicaReports(known: [:])) ?? []
            let reported = Set(rows.compactMap { $0.body.flatMap(ReplicaReport.decode) }.flatMap { $0.proxies.map(\.proxy.node) })
            return onFollowers.isSubset(of: reported)
        }
        // The leader reads the reports on its next tick (every 100 ms).
        usleep(300_000)
        return (replicas, proxies)
    }

    /// When a replica's log line `name` (containing `text`) first — or last — appeared (its own timestamp).
    func logTime(_ replica: Replica, _ name: String, containing text: String = "", last: Bool = false) -> Date? {
        let lines = replica.process.output.split(separator: "\n").filter { ($0.contains(" \(name) ") || $0.hasSuffix(" \(name)")) && (text.isEmpty || $0.contains(text)) }
        guard let line = last ? lines.last : lines.first, let stamp = line.split(separator: " ").first else { return nil }
        return E2E.envoyTime(String(stamp))
    }

    // MARK: Tests

    func testACanaryNackOnAFollowerRollsBackTheRolloutTheLeaderRuns() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 1000)
        let (replicas, proxies) = try startFleet(policy: policy, canaryOn: 1)
        let good = try XCTUnwrap(try store.currentVersion())
        let canary = try XCTUnwrap(proxies.first { $0.node == RolloutMachine.canaryOrder(proxies.map(\.node)).first! })
        XCTAssertEqual(canary.replica, 1, "the canary is on a follower")
        XCTAssertTrue(replicas[0].process.output.contains("rollout.leader "))

        let held = try HeldPort()
        let bad = try publish(try group(routeTo: "backend_a", policy: policy, extraListener: E2E.listenerOnAHeldPort(held.port, cluster: "backend_a")))
        XCTAssertNotEqual(bad, good)
        E2E.waitUntil(20, "the live version to go back") { (try? store.currentVersion()) == good }
        // Every replica serves the previous version to everyone once the pointer is back (each logs the load).
        E2E.waitUntil(10, "every replica on the previous version") {
            replicas.allSatisfy { replica in
                replica.process.output.split(separator: "\n").last { $0.contains("snapshot.loaded") }?.contains("version=\(good.prefix(12))") ?? false
            }
        }

        let rollback = try XCTUnwrap(try store.history().last)
        XCTAssertEqual(rollback.kind, .rollback)
        XCTAssertEqual(rollback.version, good)
        XCTAssertTrue(rollback.reason?.contains("automatic rollback") ?? false, rollback.reason ?? "")
        XCTAssertTrue(rollback.reason?.contains(canary.node) ?? false, rollback.reason ?? "")
        XCTAssertTrue(rollback.reason?.contains("\(held.port)") ?? false, "Envoy's error detail: \(rollback.reason ?? "")")
        let failedState = try XCTUnwrap(state())
        XCTAssertEqual(failedState.phase, .rolledBack)
        XCTAssertEqual(failedState.failure?.kind, .nack)
        XCTAssertEqual(failedState.failure?.proxy.node, canary.node)
        XCTAssertTrue(replicas[0].process.output.contains("rollout.rolled-back"), "the leader rolled it back")
        XCTAssertFalse(replicas[1].process.output.contains("rollout.rolled-back"), "not the canary's replica")

        // No other proxy, on any replica, ever received the bad version: Envoy's own count of rejected LDS updates, and
        // its listeners' dump has no trace of the listener only the bad version had.
        for proxy in proxies {
            let stats = E2E.get(proxy.adminPort, "/stats?filter=listener_manager.lds.update_rejected") ?? ""
            let rejected = stats.split(separator: "\n").first { $0.hasPrefix("listener_manager.lds.update_rejected:") }
                .flatMap { Int($0.split(separator: ":").last!.trimmingCharacters(in: .whitespaces)) }
            XCTAssertEqual(rejected.map { $0 > 0 }, proxy.node == canary.node, "\(proxy.node) on replica \(proxy.replica): \(stats)")
            let listeners = E2E.get(proxy.adminPort, "/config_dump?resource=dynamic_listeners") ?? ""
            XCTAssertFalse(listeners.contains("\"taken\""), "\(proxy.node) on replica \(proxy.replica) never had the bad listener")
            XCTAssertEqual(route(proxy)?.cluster, "backend_a")
        }

        // Time from the NACK (the canary's replica logs it) to the rollback, and to every replica serving the previous version.
        // (Each replica's own log timestamps: the NACK on the canary's replica, the leader's rollback, the last replica
        // to load the previous version back from the store.)
        E2E.waitUntil(5, "the canary's replica to log the NACK") { logTime(replicas[1], "xds.nack") != nil }
        let nack = try XCTUnwrap(logTime(replicas[1], "xds.nack"), String(replicas[1].process.output.suffix(3000)))
        let failed = try XCTUnwrap(logTime(replicas[0], "rollout.failed"))
        let rolledBack = try XCTUnwrap(logTime(replicas[0], "rollout.rolled-back"))
        let reloaded = try replicas.map { try XCTUnwrap(logTime($0, "snapshot.loaded", containing: "version=\(good.prefix(12))", last: true)) }.max()!
        print(String(format: "rollout replicas: canary NACK on a follower → leader failed the rollout %.0f ms → live pointer back %.0f ms → every replica serving the previous version from the store %.0f ms",
                     failed.timeIntervalSince(nack) * 1000, rolledBack.timeIntervalSince(nack) * 1000, reloaded.timeIntervalSince(nack) * 1000))
        let status = Command.run(E2E.meshctl, ["rollout", "status", "--store", url], timeout: 30)
        XCTAssertEqual(status.status, 1, status.stdout + status.stderr)
        XCTAssertTrue(status.stdout.contains("FAILED") && status.stdout.contains(canary.node), status.stdout)
        // The operator sees which replica drives rollouts (the one whose log says it took the lease).
        let leaderLine = try XCTUnwrap(replicas[0].process.output.split(separator: "\n").first { $0.contains("rollout.leader ") })
        let leaderID = try XCTUnwrap(leaderLine.split(separator: " ").first { $0.hasPrefix("replica=") }?.dropFirst("replica=".count))
        XCTAssertTrue(status.stdout.contains("leader: \(leaderID.replacingOccurrences(of: "\"", with: "")) (lease term"), status.stdout)
        withExtendedLifetime(held) {}
    }

    func testAGoodVersionGoesWaveByWaveAcrossReplicasAndANewLeaderContinuesTheSameWave() throws {
        let bake = 1.5
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: Int64(bake * 1000))
        // The leader (replica 0) has no proxies: killing it later leaves every Envoy connected.
        let (replicas, proxies) = try startFleet(policy: policy, canaryOn: 2, proxiesOn: [1, 2])

        // 1. Waves 1 / 3 / 6 across the two followers, each after the previous one baked.
        let second = try publish(try group(routeTo: "backend_b", policy: policy))
        let waited = Command.run(E2E.meshctl, ["rollout", "status", "--store", url, "--wait", "--timeout", "60"], timeout: 90)
        XCTAssertEqual(waited.status, 0, waited.stdout + waited.stderr)
        let done = try XCTUnwrap(state())
        XCTAssertEqual(done.target, second)
        XCTAssertEqual(done.phase, .completed)
        let plan = try XCTUnwrap(done.groups["web"])
        var receipts: [[Date]] = []
        for wave in plan.policy.waves.indices {
            receipts.append(try plan.members(ofWave: wave).map { node in
                let proxy = try XCTUnwrap(proxies.first { $0.node == node })
                let route = try XCTUnwrap(self.route(proxy))
                XCTAssertEqual(route.cluster, "backend_b", node)
                return route.updated
            })
        }
        XCTAssertEqual(receipts.map(\.count), [1, 2, 3])
        XCTAssertEqual(Set((plan.members(ofWave: 1) + plan.members(ofWave: 2)).compactMap { node in proxies.first { $0.node == node }?.replica }), [1, 2],
                       "the later waves span both followers")
        for (earlier, later) in zip(receipts, receipts.dropFirst()) {
            let gap = later.min()!.timeIntervalSince(earlier.max()!)
            print("rollout replicas: next wave received \(String(format: "%.3f", gap)) s after the previous one (bake \(bake) s)")
            XCTAssertGreaterThanOrEqual(gap, bake - 0.01, "a wave receives the version only after the previous one baked")
        }

        // 2. A third version with a long bake, promoted to its second wave; then the leader is killed.
        let slow = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 120_000)
        let third = try publish(try group(routeTo: "backend_a", policy: slow))
        E2E.waitUntil(10, "the third rollout to start") { state()?.target == third }
        let promote = ["rollout", "promote", "--store", url, "--operator", "ana", "--reason", "replica test"]
        var result = Command.run(E2E.meshctl, promote, timeout: 30)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        E2E.waitUntil(10, "the second wave") { state()?.groups["web"]?.wave == 1 }
        let current = try XCTUnwrap(state()?.groups["web"])
        let onNew = Set(current.members(ofWave: 0) + current.members(ofWave: 1))
        XCTAssertEqual(onNew.count, 3)
        func onExpectedVersions() -> Bool { proxies.allSatisfy { route($0)?.cluster == (onNew.contains($0.node) ? "backend_a" : "backend_b") } }
        E2E.waitUntil(10, "waves 1 and 2 on the third version, wave 3 on the second") { onExpectedVersions() }

        let killed = Date()
        replicas[0].process.kill9()
        var successor: Replica?
        E2E.waitUntil(15, "another replica to take the lead") {
            successor = replicas.dropFirst().first { $0.process.output.contains("rollout.leader ") }
            return successor != nil
        }
        let took = Date()
        let leader = try XCTUnwrap(successor)
        print(String(format: "rollout replicas: leader killed -9 → another replica leads after %.0f ms (observed by polling; lease TTL 2 s)",
                     took.timeIntervalSince(killed) * 1000))
        E2E.waitUntil(10, "the new leader to continue the rollout") { leader.process.output.contains("rollout.resumed") }
        usleep(1_500_000)
        XCTAssertTrue(onExpectedVersions(), "no proxy went forward or back across the change of leader")
        XCTAssertEqual(state()?.groups["web"]?.wave, 1, "the same wave: not restarted, not skipped")
        XCTAssertEqual(state()?.phase, .running)
        XCTAssertEqual(state()?.target, third)

        // 3. The new leader takes the operator's next promote; the last wave gets the version.
        result = Command.run(E2E.meshctl, promote, timeout: 30)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        E2E.waitUntil(15, "every Envoy on the third version") { proxies.allSatisfy { route($0)?.cluster == "backend_a" } }
        result = Command.run(E2E.meshctl, promote, timeout: 30)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        E2E.waitUntil(10, "the rollout to complete") { state()?.phase == .completed }
        XCTAssertTrue(leader.process.output.contains("rollout.operator"), "the successor applied the operator's commands")
        let metrics = replicas.dropFirst().map { E2E.get($0.admin, "/metrics") ?? "" }
        XCTAssertEqual(metrics.filter { $0.contains("meshctl_rollout_leader 1") }.count, 1, "exactly one replica leads: \(metrics)")
        XCTAssertEqual(metrics.filter { $0.contains("meshctl_rollout_leader 0") }.count, 1)
    }

    /// A follower killed -9 mid-rollout takes its proxies' streams with it: that is the control plane failing, not the
    /// proxies, so the wave does not fail; its members wait to be handed the version again when they reconnect.
    func testAFollowerKilledMidRolloutIsNotAFailureOfItsProxies() throws {
        let slow = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 120_000)
        let (replicas, proxies) = try startFleet(policy: slow, canaryOn: 2, proxiesOn: [1, 2])
        let second = try publish(try group(routeTo: "backend_b", policy: slow))
        let canary = try XCTUnwrap(proxies.first { $0.node == RolloutMachine.canaryOrder(proxies.map(\.node)).first! })
        E2E.waitUntil(10, "the canary on the new version") { route(canary)?.cluster == "backend_b" }
        // The leader's live view of the rollout (its admin endpoint; the store has the state as last saved).
        func led() -> RolloutState? { E2E.get(replicas[0].admin, "/api/rollout").flatMap { RolloutState.decode(Data($0.utf8)) } }
        E2E.waitUntil(10, "the leader to see the canary's ACK") { led()?.groups["web"]?.proxies[canary.node]?.settledAt != nil }

        replicas[2].process.kill9()
        // Its report goes stale after 3 s; the leader then counts the streams as lost with their replica.
        E2E.waitUntil(10, "the leader to drop the dead replica's streams") { led()?.groups["web"]?.proxies[canary.node]?.streams == 0 }
        usleep(500_000)
        let held = try XCTUnwrap(led())
        XCTAssertEqual(held.target, second)
        XCTAssertEqual(held.phase, .running, "the replica died, not the proxies: \(held.failure?.summary ?? "")")
        XCTAssertNil(held.failure)
        XCTAssertNil(held.groups["web"]?.proxies[canary.node]?.receivedAt, "it is handed the version again when it reconnects")
        XCTAssertFalse(replicas[0].process.output.contains("rollout.failed"))
        for proxy in proxies where proxy.replica == 1 { XCTAssertEqual(route(proxy)?.cluster, "backend_a", "\(proxy.node) waits for its wave") }

        // An operator promotes past the wave whose canary is gone: the next wave on the surviving follower gets it.
        let promote = Command.run(E2E.meshctl, ["rollout", "promote", "--store", url, "--operator", "ana"], timeout: 30)
        XCTAssertEqual(promote.status, 0, promote.stdout + promote.stderr)
        let plan = try XCTUnwrap(state()?.groups["web"])
        let secondWave = proxies.filter { plan.members(ofWave: 1).contains($0.node) && $0.replica == 1 }
        E2E.waitUntil(10, "the second wave's proxies on the surviving follower on the new version") {
            secondWave.allSatisfy { route($0)?.cluster == "backend_b" }
        }
    }

    /// A wave member whose replica died and that never reconnects (its Envoy knows only that replica) does not hold the
    /// rollout: after the wave's ACK timeout the next proxy in canary order takes its place, is handed the version and
    /// bakes, and the rollout completes without an operator.
    func testACanaryThatNeverReturnsIsReplacedAfterTheACKTimeout() throws {
        let policy = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 1_000, ackTimeoutMilliseconds: 3_000)
        let (replicas, proxies) = try startFleet(policy: policy, canaryOn: 2, proxiesOn: [1, 2])
        let second = try publish(try group(routeTo: "backend_b", policy: policy))
        let canary = try XCTUnwrap(proxies.first { $0.node == RolloutMachine.canaryOrder(proxies.map(\.node)).first! })
        E2E.waitUntil(10, "the canary on the new version") { route(canary)?.cluster == "backend_b" }
        let survivors = proxies.filter { $0.replica == 1 }
        for proxy in survivors { XCTAssertEqual(route(proxy)?.cluster, "backend_a", "\(proxy.node) waits for its wave") }
        replicas[2].process.kill9()
        // Its report goes stale after 3 s (lost, not failed), the ACK timeout (3 s) replaces the canary, the substitute
        // bakes 1 s, then the last wave: every proxy that is still connected ends on the new version.
        E2E.waitUntil(40, "the surviving follower's proxies on the new version, with no operator") {
            survivors.allSatisfy { route($0)?.cluster == "backend_b" }
        }
        E2E.waitUntil(15, "the rollout completes") { state()?.phase == .completed }
        XCTAssertEqual(state()?.target, second)
        XCTAssertNil(state()?.failure)
        XCTAssertFalse(replicas[0].process.output.contains("rollout.failed"), replicas[0].process.output)
    }

    /// A version published while no replica leads (the leader was just killed) is held back by the followers and
    /// queued behind the running rollout by the next leader, not sent to anyone.
    func testAPublishWhileNoReplicaLeadsWaitsBehindTheRunningRollout() throws {
        let slow = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 120_000)
        let (replicas, proxies) = try startFleet(policy: slow, canaryOn: 1, proxiesOn: [1, 2])
        let second = try publish(try group(routeTo: "backend_b", policy: slow))
        let canary = try XCTUnwrap(proxies.first { $0.node == RolloutMachine.canaryOrder(proxies.map(\.node)).first! })
        E2E.waitUntil(10, "the canary on the second version") { route(canary)?.cluster == "backend_b" }
        replicas[0].process.kill9()
        let third = try publish(try group(routeTo: "backend_a", policy: RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 1)))
        E2E.waitUntil(15, "the next leader to queue the third version") { state()?.queued == third }
        XCTAssertEqual(state()?.target, second, "the running rollout goes on")
        XCTAssertEqual(state()?.phase, .running)
        usleep(1_000_000)
        for proxy in proxies {
            XCTAssertEqual(route(proxy)?.cluster, proxy.node == canary.node ? "backend_b" : "backend_a",
                           "\(proxy.node): the canary keeps the second version, the others the first; nobody has the third")
        }
    }

    /// Publishes queued behind a rollout collapse to the newest, and history says so (the leader records it once).
    func testQueuedPublishesCollapseToTheNewestAndHistorySaysSo() throws {
        let slow = RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 120_000)
        try publish(try group(routeTo: "backend_a", policy: slow))
        let leader = try startReplica("replica-0")
        E2E.waitUntil(10, "the first replica to lead") { leader.process.output.contains("rollout.leader ") }
        let follower = try startReplica("replica-1")
        let envoys = try (1...2).map { i in
            try run.startEnvoy(group: "web", nodeID: "web-\(i)", serverPort: (i == 1 ? leader : follower).port)
        }
        E2E.waitUntil(60, "two Envoys configured") { envoys.allSatisfy { E2E.get($0.adminPort, "/config_dump?resource=dynamic_route_configs")?.contains("backend_a") ?? false } }
        let second = try publish(try group(routeTo: "backend_b", policy: slow))
        E2E.waitUntil(10, "the rollout of the second version") { state()?.target == second }
        let third = try publish(try group(routeTo: "backend_a", policy: RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 1)))
        E2E.waitUntil(10, "the third version to queue") { state()?.queued == third }
        let fourth = try publish(try group(routeTo: "backend_b", policy: RolloutPolicy(waves: [.proxies(1), .percent(100)], bakeMilliseconds: 2)))
        E2E.waitUntil(10, "the fourth to replace it") { state()?.queued == fourth }
        XCTAssertEqual(state()?.collapsed, [third])
        E2E.waitUntil(10, "history to record the collapse") { ((try? store.history()) ?? []).contains { $0.kind == .collapsed } }
        let collapsed = try store.history().filter { $0.kind == .collapsed }
        XCTAssertEqual(collapsed.map(\.version), [third], "recorded once, by the leader")
        XCTAssertTrue(collapsed.first?.reason?.contains(String(fourth.prefix(12))) ?? false, collapsed.first?.reason ?? "")
        let history = Command.run(E2E.meshctl, ["snapshot", "history", "--store", url], timeout: 30)
        XCTAssertTrue(history.stdout.contains("collapsed"), history.stdout + history.stderr)
        XCTAssertFalse(follower.process.output.contains("rollout.collapsed"))
    }
}
