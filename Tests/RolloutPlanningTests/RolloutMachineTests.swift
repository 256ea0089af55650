// The rollout's rules without a network: wave membership, gating on ACKs and bake time,
// failure on NACK, disconnect and silence, operators' commands, restoring after a restart.
import MeshModel
import RolloutPlanning
import XCTest

final class RolloutMachineTests: XCTestCase {
    let policy = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 1000, ackTimeoutMilliseconds: 5000)

    func proxies(_ group: String, _ count: Int) -> [ProxyKey] { (0..<count).map { ProxyKey(group: group, node: "\(group)-\($0)") } }

    /// A machine with five proxies of "web" and two of "api", all connected and handed what they are due at `t`.
    func machine(policy: RolloutPolicy? = nil, t: Int64 = 0) -> (RolloutMachine, [ProxyKey]) {
        let all = proxies("web", 5) + proxies("api", 2)
        let p = policy ?? self.policy
        var m = RolloutMachine(id: "r", target: "new", previous: "old",
                               groups: ["web": GroupRolloutInput(policy: p, changed: true), "api": GroupRolloutInput(policy: p, changed: true)],
                               connected: all, now: t)
        return (m, all)
    }

    /// Every proxy now due the new version ACKs it (LDS and CDS) at `t`.
    func ackAll(_ m: inout RolloutMachine, _ all: [ProxyKey], at t: Int64) {
        for proxy in all where m.receivesTarget(proxy) {
            for type in ["LDS", "CDS"] {
                _ = m.typeStatus(proxy, typeURL: type, TypeProgress(sync: .synced, targetSent: true, ackedAt: t), rejection: nil, now: t)
            }
        }
    }

    func testCumulativeCountsPutOneProxyOfEachGroupInTheFirstWaveAndEndWithTheWholeGroup() {
        XCTAssertEqual(policy.cumulativeCounts(groupSize: 5), [1, 3, 5])
        XCTAssertEqual(policy.cumulativeCounts(groupSize: 2), [1, 1, 2])
        XCTAssertEqual(policy.cumulativeCounts(groupSize: 0), [0, 0, 0])
        let percentOnly = RolloutPolicy(waves: [.percent(10), .percent(100)], bakeMilliseconds: 0)
        XCTAssertEqual(percentOnly.cumulativeCounts(groupSize: 3), [1, 3], "10% of 3 rounds up, and a group with proxies has one in the first wave")
    }

    func testWaveProblemsAreNamed() {
        XCTAssertTrue(RolloutPolicy.problems(of: [.proxies(1), .percent(10), .percent(100)]).isEmpty)
        XCTAssertEqual(RolloutPolicy.problems(of: [.percent(10), .percent(50)]).map(\.index), [1])
        XCTAssertTrue(RolloutPolicy.problems(of: [.percent(150), .percent(100)]).first!.message.contains("more than 100%"))
        XCTAssertTrue(RolloutPolicy.problems(of: [.percent(50), .percent(10), .percent(100)]).first!.message.contains("must increase"))
        XCTAssertFalse(RolloutPolicy.problems(of: []).isEmpty)
    }

    func testMembershipIsDeterministicAndIndependentOfConnectionOrder() {
        let all = proxies("web", 5)
        let a = RolloutMachine(id: "a", target: "n", previous: "o", groups: ["web": GroupRolloutInput(policy: policy, changed: true)], connected: all, now: 0)
        let b = RolloutMachine(id: "b", target: "n", previous: "o", groups: ["web": GroupRolloutInput(policy: policy, changed: true)], connected: all.reversed(), now: 0)
        XCTAssertEqual(a.state.groups["web"]!.proxies.mapValues(\.wave), b.state.groups["web"]!.proxies.mapValues(\.wave))
        XCTAssertEqual(a.state.groups["web"]!.members(ofWave: 0), [RolloutMachine.canaryOrder(all.map(\.node)).first!])
        XCTAssertEqual(a.state.groups["web"]!.proxies.values.map(\.wave).sorted(), [0, 1, 1, 2, 2])
    }

    func testWavesAdvanceOnlyAfterEveryMemberAckedAndBaked() {
        var (m, all) = machine()
        XCTAssertEqual(all.filter { m.receivesTarget($0) }.count, 2, "one canary per group")
        XCTAssertEqual(m.tick(now: 900), [], "nothing ACKed yet")
        ackAll(&m, all, at: 300)
        XCTAssertEqual(m.tick(now: 1200), [], "ACKed at 300: the bake of 1 s ends at 1300")
        let changes = m.tick(now: 1300)
        XCTAssertEqual(changes, [.waveStarted(group: "api", wave: 1), .waveStarted(group: "web", wave: 1)])
        XCTAssertEqual(all.filter { $0.group == "web" && m.receivesTarget($0) }.count, 3)
        XCTAssertEqual(all.filter { $0.group == "api" && m.receivesTarget($0) }.count, 1, "api's second wave (50% of 2) adds nobody")
        // The new members have not ACKed yet: no advance however long it waits, until the ACK timeout fails them.
        XCTAssertEqual(m.tick(now: 3000).filter { if case .waveStarted(group: "web", _) = $0 { true } else { false } }, [])
        ackAll(&m, all, at: 3100)
        _ = m.tick(now: 4100)
        ackAll(&m, all, at: 4200)
        XCTAssertNotNil(m.state.groups["api"]!.completedAt, "api's last wave passed at 4100")
        XCTAssertEqual(m.tick(now: 5200), [.groupCompleted(group: "web"), .finished(.completed)])
        XCTAssertEqual(m.state.phase, .completed)
        XCTAssertTrue(all.allSatisfy { m.receivesTarget($0) })
    }

    func testANackOfTheNewVersionInTheCurrentWaveRollsBack() {
        var (m, all) = machine()
        let canary = all.first { $0.group == "web" && m.receivesTarget($0) }!
        let changes = m.typeStatus(canary, typeURL: "LDS", TypeProgress(sync: .rejected, targetSent: true, ackedAt: nil),
                                   rejection: "cannot bind 127.0.0.1:10000: Address already in use", now: 50)
        XCTAssertEqual(changes.count, 2)
        guard case .failed(let failure) = changes[0] else { return XCTFail("\(changes)") }
        XCTAssertEqual(failure.proxy, canary)
        XCTAssertEqual(failure.kind, .nack)
        XCTAssertTrue(failure.summary.contains("Address already in use"), failure.summary)
        XCTAssertEqual(changes[1], .finished(.rolledBack))
        XCTAssertFalse(all.contains { m.receivesTarget($0) }, "every proxy goes back to the previous version")
    }

    func testANackOfThePreviousVersionIsNotTheRolloutsFailure() {
        var (m, all) = machine()
        let canary = all.first { m.receivesTarget($0) }!
        XCTAssertEqual(m.typeStatus(canary, typeURL: "LDS", TypeProgress(sync: .rejected, targetSent: false, ackedAt: nil), rejection: "old", now: 10), [])
        XCTAssertEqual(m.state.phase, .running)
    }

    func testHaltKeepsWhatWasRolledOutAndWaitsForAPerson() throws {
        var halting = policy
        halting.onFailure = .halt
        var (m, all) = machine(policy: halting)
        let canary = all.first { $0.group == "web" && m.receivesTarget($0) }!
        _ = m.typeStatus(canary, typeURL: "CDS", TypeProgress(sync: .rejected, targetSent: true, ackedAt: nil), rejection: "bad", now: 10)
        XCTAssertEqual(m.state.phase, .halted)
        XCTAssertTrue(m.receivesTarget(canary), "halt keeps the canary on the new version")
        XCTAssertEqual(m.tick(now: 60_000), [], "nothing advances while halted")
        XCTAssertThrowsError(try m.resume(by: "ana", reason: nil, now: 70_000))
        _ = try m.abort(by: "ana", reason: "bad build", now: 70_000)
        XCTAssertEqual(m.state.phase, .aborted)
        XCTAssertEqual(m.state.actions.last, RolloutOperatorAction(action: "abort", by: "ana", reason: "bad build", at: 70_000))
    }

    func testACanaryThatDisconnectsAfterReceivingFailsTheWave() {
        var (m, all) = machine()
        let canary = all.first { $0.group == "api" && m.receivesTarget($0) }!
        let changes = m.disconnected(canary, now: 100)
        guard case .failed(let failure) = changes.first else { return XCTFail("\(changes)") }
        XCTAssertEqual(failure.kind, .disconnected)
        XCTAssertEqual(failure.proxy, canary)
    }

    func testASilentCanaryFailsAfterTheAckTimeout() {
        var (m, all) = machine()
        let canary = all.first { $0.group == "web" && m.receivesTarget($0) }!
        _ = m.typeStatus(canary, typeURL: "LDS", TypeProgress(sync: .pending, targetSent: true, ackedAt: nil), rejection: nil, now: 5)
        XCTAssertEqual(m.tick(now: 4999).count, 0)
        guard case .failed(let failure) = m.tick(now: 5000).first else { return XCTFail() }
        XCTAssertEqual(failure.kind, .silent)
    }

    func testAProxyOfALaterWaveLeavingIsNotAFailure() {
        var (m, all) = machine()
        let later = all.first { $0.group == "web" && !m.receivesTarget($0) }!
        XCTAssertEqual(m.disconnected(later, now: 100), [])
        XCTAssertNil(m.state.groups["web"]!.proxies[later.node], "it leaves the plan and rejoins when it returns")
    }

    func testNewProxiesJoinTheCurrentWaveOnlyWhileItIsShortOfItsShare() {
        let web = proxies("web", 2)
        var m = RolloutMachine(id: "r", target: "n", previous: "o", groups: ["web": GroupRolloutInput(policy: policy, changed: true)], connected: [], now: 0)
        m.admit(web[0])
        XCTAssertTrue(m.receivesTarget(web[0]), "the first proxy of an empty group is its canary")
        m.admit(web[1])
        XCTAssertFalse(m.receivesTarget(web[1]), "the first wave (1 proxy) is full")
    }

    func testAProxyOfAPassedWaveThatReconnectsKeepsTheNewVersion() {
        var (m, all) = machine()
        ackAll(&m, all, at: 10)
        _ = m.tick(now: 2000)
        let canary = all.first { $0.group == "web" && m.state.groups["web"]!.proxies[$0.node]!.wave == 0 }!
        XCTAssertEqual(m.disconnected(canary, now: 2100), [], "its wave passed")
        m.connected(canary, now: 2200)
        XCTAssertTrue(m.receivesTarget(canary))
    }

    func testPromoteSkipsTheBakeAndPauseHolds() throws {
        var (m, all) = machine()
        _ = try m.pause(by: "ana", reason: nil, now: 10)
        ackAll(&m, all, at: 20)
        XCTAssertEqual(m.tick(now: 5000), [], "paused: no advance")
        _ = try m.resume(by: "ana", reason: nil, now: 5000)
        XCTAssertEqual(m.state.groups["web"]!.wave, 1, "resuming advances the wave that had passed")
        let promoted = try m.promote(by: "bo", reason: "hotfix", now: 5001)
        XCTAssertTrue(promoted.contains(.waveStarted(group: "web", wave: 2)))
        XCTAssertEqual(m.state.actions.map(\.action), ["pause", "resume", "promote"])
        XCTAssertThrowsError(try m.resume(by: "bo", reason: nil, now: 5002), "not paused")
    }

    func testRestoringKeepsTheWaveAndRestartsItsBake() {
        var (m, all) = machine()
        ackAll(&m, all, at: 10)
        _ = m.tick(now: 2000)
        let saved = RolloutState.decode(m.state.encoded())!
        XCTAssertEqual(saved, m.state, "the state survives the store's JSON")
        var restored = RolloutMachine(restoring: saved)
        XCTAssertEqual(restored.state.groups["web"]!.wave, 1, "no wave restarted, none skipped")
        for proxy in all { restored.connected(proxy, now: 10_000) }
        ackAll(&restored, all, at: 10_000)
        XCTAssertFalse(restored.tick(now: 10_500).contains(.waveStarted(group: "web", wave: 2)), "the current wave bakes again after the restart")
        XCTAssertTrue(restored.tick(now: 11_000).contains(.waveStarted(group: "web", wave: 2)))
    }

    func testAGroupWithNothingChangedIsNotHeldBack() {
        let all = proxies("web", 3)
        let m = RolloutMachine(id: "r", target: "n", previous: "o", groups: ["web": GroupRolloutInput(policy: policy, changed: false)], connected: all, now: 0)
        XCTAssertTrue(all.allSatisfy { m.receivesTarget($0) })
        XCTAssertTrue(m.state.groups["web"]!.isComplete)
    }

    func testPublishesQueueBehindARunningRolloutAndCollapseToTheNewest() throws {
        var (m, _) = machine()
        XCTAssertNil(m.enqueue("v3"))
        XCTAssertEqual(m.enqueue("v4"), "v3")
        XCTAssertEqual(m.state.queued, "v4")
        XCTAssertEqual(m.state.collapsed, ["v3"])
        _ = try m.abort(by: "ana", reason: nil, now: 1)
        XCTAssertNil(m.enqueue("v5"), "an ended rollout queues nothing")
        XCTAssertEqual(m.state.queued, "v4")
    }

    func testTheGateHasTheLastWordOnEachWave() throws {
        var gated = policy
        gated.gate = RolloutPolicy.Gate(url: "http://127.0.0.1:9/ok", timeoutMilliseconds: 1000)
        var (m, all) = machine(policy: gated)
        ackAll(&m, all, at: 10)
        let asked = m.tick(now: 1010)
        XCTAssertEqual(asked, [.gateRequested(group: "api", wave: 0, gate: gated.gate!), .gateRequested(group: "web", wave: 0, gate: gated.gate!)])
        XCTAssertEqual(m.tick(now: 1500), [], "asked once; no advance before the answer")
        XCTAssertEqual(m.gateAnswered(group: "web", wave: 0, passed: true, detail: "HTTP 200", now: 1600), [.waveStarted(group: "web", wave: 1)])
        XCTAssertEqual(m.gateAnswered(group: "web", wave: 0, passed: false, detail: "late", now: 1700), [], "an answer for a passed wave is ignored")
        let restored = RolloutMachine(restoring: m.state)
        XCTAssertNil(restored.state.groups["api"]!.gateAskedWave, "a question lost with the old server is asked again")
        let failed = m.gateAnswered(group: "api", wave: 0, passed: false, detail: "the gate answered HTTP 500: error rate 7%", now: 1800)
        guard case .failed(let failure) = failed.first else { return XCTFail("\(failed)") }
        XCTAssertEqual(failure.kind, .gate)
        XCTAssertTrue(failure.summary.contains("error rate 7%"), failure.summary)
        XCTAssertEqual(m.state.phase, .rolledBack)
    }
}
