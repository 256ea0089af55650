// Several replicas without a network: merging their reports into one fleet view and the machine
// events that view's changes make, the lease as one replica sees it, and what a follower serves.
import MeshModel
import RolloutPlanning
import XCTest

final class ReplicaCoordinationTests: XCTestCase {
    let policy = RolloutPolicy(waves: [.proxies(1), .percent(50), .percent(100)], bakeMilliseconds: 1000, ackTimeoutMilliseconds: 5000)

    func key(_ node: String, _ group: String = "web") -> ProxyKey { ProxyKey(group: group, node: node) }

    func report(_ replica: String, _ proxies: [(String, Int, [String: TypeObservation])]) -> ReplicaReport {
        ReplicaReport(replica: replica, proxies: proxies.map { ProxyReport(proxy: key($0.0), streams: $0.1, types: $0.2) })
    }

    func acked(_ version: String, at t: Int64) -> TypeObservation { TypeObservation(sync: .synced, sentVersion: version, ackedAt: t, rejection: nil) }

    // MARK: Fleet view

    func testReportsOfLiveReplicasMergeAndASilentReplicaIsLeftOut() {
        let a = report("A", [("p1", 1, ["LDS": acked("v1", at: 5)])])
        let b = report("B", [("p2", 1, [:]), ("p1", 1, ["LDS": TypeObservation(sync: .rejected, sentVersion: "v2", ackedAt: nil, rejection: "port taken")])])
        let c = report("C", [("p3", 1, [:])])
        let view = RolloutFleetView.merge([(a, 0), (b, 100), (c, 5000)], expiryMilliseconds: 3000)
        XCTAssertEqual(view.replicas, ["A", "B"])
        XCTAssertEqual(Set(view.proxies.keys), [key("p1"), key("p2")], "C is silent for longer than the expiry")
        XCTAssertEqual(view.proxies[key("p1")]?.streamCount, 2)
        XCTAssertEqual(view.proxies[key("p1")]?.types["LDS"]?.sync, .rejected, "the worse observation of a type wins")
        XCTAssertEqual(view.connectedStreams, [key("p1"), key("p1"), key("p2")])
    }

    func testEventsSayWhatChangedAndAStreamGoneWithItsReplicaIsLostNotDisconnected() {
        let old = RolloutFleetView.merge([(report("A", [("p1", 1, [:])]), 0), (report("B", [("p2", 1, [:]), ("p3", 1, [:])]), 0)], expiryMilliseconds: 3000)
        // p1 NACKs on A, p2 closes its stream on B, B then dies (p3 with it), p4 connects to A.
        let nack = TypeObservation(sync: .rejected, sentVersion: "v2", ackedAt: nil, rejection: "bad")
        let bClosed = RolloutFleetView.merge([(report("A", [("p1", 1, ["LDS": nack])]), 0), (report("B", [("p3", 1, [:])]), 0)], expiryMilliseconds: 3000)
        let closedEvents = bClosed.events(since: old)
        XCTAssertEqual(closedEvents.count, 2, "\(closedEvents)")
        XCTAssertTrue(closedEvents.contains(.typeStatus(key("p1"), typeURL: "LDS", nack)) && closedEvents.contains(.disconnected(key("p2"))), "\(closedEvents)")
        let bDead = RolloutFleetView.merge([(report("A", [("p1", 1, ["LDS": nack]), ("p4", 1, [:])]), 0), (report("B", [("p3", 1, [:])]), 9000)], expiryMilliseconds: 3000)
        let events = bDead.events(since: bClosed)
        XCTAssertTrue(events.contains(.lost(key("p3"))), "\(events)")
        XCTAssertTrue(events.contains(.connected(key("p4"))), "\(events)")
        XCTAssertFalse(events.contains(.disconnected(key("p3"))))
        XCTAssertEqual(bDead.events(since: bDead), [], "no change, no event")
    }

    func testAProxyMovingToAnotherReplicaIsNeverWithoutAStream() {
        var m = RolloutMachine(id: "r", target: "v2", previous: "v1", groups: ["web": GroupRolloutInput(policy: policy, changed: true)],
                               connected: [key("p1"), key("p2")], now: 0)
        let canary = m.state.groups["web"]!.members(ofWave: 0).first!
        let onB = RolloutFleetView.merge([(report("B", [(canary, 1, [:])]), 0)], expiryMilliseconds: 3000)
        let both = RolloutFleetView.merge([(report("B", [(canary, 1, [:])]), 4000), (report("C", [(canary, 1, [:])]), 0)], expiryMilliseconds: 3000)
        // B died (expired) while the proxy reconnected to C: its B stream is lost, the C one connected; no failure.
        for event in both.events(since: onB) { XCTAssertEqual(m.apply(event, now: 100), []) }
        XCTAssertEqual(m.state.phase, .running)
        XCTAssertEqual(m.state.groups["web"]!.proxies[canary]?.streams, 1)
    }

    func testANackReportedByAnotherReplicaFailsTheWaveTheLeaderRuns() {
        var m = RolloutMachine(id: "r", target: "v2", previous: "v1", groups: ["web": GroupRolloutInput(policy: policy, changed: true)],
                               connected: [], now: 0)
        var absorbed = RolloutFleetView()
        let nodes = ["p1", "p2", "p3", "p4"]
        let connected = RolloutFleetView.merge([(report("A", nodes.prefix(2).map { ($0, 1, [:]) }), 0), (report("B", nodes.suffix(2).map { ($0, 1, [:]) }), 0)],
                                        expiryMilliseconds: 3000)
        for event in connected.events(since: absorbed) { _ = m.apply(event, now: 10) }
        absorbed = connected
        let canary = m.state.groups["web"]!.members(ofWave: 0).first!
        XCTAssertEqual(m.state.groups["web"]!.proxies.count, 4)
        let replica = nodes.prefix(2).contains(canary) ? "A" : "B"
        var reports = [("A", nodes.prefix(2).map { ($0, 1, [String: TypeObservation]()) }), ("B", nodes.suffix(2).map { ($0, 1, [String: TypeObservation]()) })]
        let index = reports.firstIndex { $0.0 == replica }!
        reports[index].1 = reports[index].1.map { $0.0 == canary ? ($0.0, 1, ["LDS": TypeObservation(sync: .rejected, sentVersion: "v2", ackedAt: nil, rejection: "address in use")]) : $0 }
        let nacked = RolloutFleetView.merge(reports.map { (report($0.0, $0.1), 0) }, expiryMilliseconds: 3000)
        var changes: [RolloutChange] = []
        for event in nacked.events(since: absorbed) { changes += m.apply(event, now: 500) }
        XCTAssertEqual(m.state.phase, .rolledBack)
        XCTAssertEqual(m.state.failure?.proxy.node, canary)
        XCTAssertEqual(m.state.failure?.detail, "address in use")
        XCTAssertTrue(changes.contains(.finished(.rolledBack)))
    }

    func testJoinersArePlacedTheSameWayWhicheverReplicaTheyAreOnAndInWhateverOrderReportsArrive() {
        func plan(_ reports: [ReplicaReport]) -> [String: Int] {
            var m = RolloutMachine(id: "r", target: "v2", previous: "v1", groups: ["web": GroupRolloutInput(policy: policy, changed: true)],
                                   connected: [key("p0")], now: 0)
            let view = RolloutFleetView.merge(reports.map { ($0, 0) } + [(report("L", [("p0", 1, [:])]), 0)], expiryMilliseconds: 3000)
            var base = RolloutFleetView()
            base.proxies[key("p0")] = RolloutFleetProxy(streams: ["L": 1], types: [:])
            base.replicas = ["L"]
            for event in view.events(since: base) { _ = m.apply(event, now: 1) }
            return m.state.groups["web"]!.proxies.mapValues(\.wave)
        }
        let joiners = (1...6).map { "p\($0)" }
        let a = plan([report("A", joiners.prefix(3).map { ($0, 1, [:]) }), report("B", joiners.suffix(3).map { ($0, 1, [:]) })])
        let b = plan([report("B", joiners.reversed().prefix(4).map { ($0, 1, [:]) }), report("A", joiners.prefix(2).map { ($0, 1, [:]) })])
        XCTAssertEqual(a, b)
        XCTAssertEqual(a.count, 7)
    }

    func testALostStreamIsNotAFailureAndTheMemberIsHandedTheVersionAgain() {
        var m = RolloutMachine(id: "r", target: "v2", previous: "v1", groups: ["web": GroupRolloutInput(policy: policy, changed: true)],
                               connected: [key("p1"), key("p2")], now: 0)
        let canary = key(m.state.groups["web"]!.members(ofWave: 0).first!)
        m.lost(canary, now: 500)
        XCTAssertEqual(m.state.phase, .running)
        XCTAssertNil(m.state.groups["web"]!.proxies[canary.node]?.receivedAt)
        m.connected(canary, now: 700)
        XCTAssertEqual(m.state.groups["web"]!.proxies[canary.node]?.receivedAt, 700, "its bake starts again when it reconnects")
        XCTAssertEqual(m.disconnected(canary, now: 800).first.map { if case .failed = $0 { true } else { false } }, true,
                       "a proxy closing its own stream after receiving the version still fails the wave")
    }

    func testAMemberLostWithItsReplicaThatNeverReturnsIsReplacedAfterTheACKTimeout() throws {
        var m = RolloutMachine(id: "r", target: "v2", previous: "v1", groups: ["web": GroupRolloutInput(policy: policy, changed: true)],
                               connected: [key("p1"), key("p2"), key("p3")], now: 0)
        let group = m.state.groups["web"]!
        let canary = key(group.members(ofWave: 0).first!)
        m.lost(canary, now: 100)
        let timeout = policy.ackTimeoutMilliseconds
        _ = m.tick(now: 100 + timeout - 1)
        XCTAssertNotNil(m.state.groups["web"]!.proxies[canary.node], "within the ACK timeout it may still reconnect elsewhere")
        XCTAssertEqual(m.state.groups["web"]!.wave, 0)
        let changes = m.tick(now: 100 + timeout)
        XCTAssertNil(m.state.groups["web"]!.proxies[canary.node], "gone longer than the ACK timeout: out of the plan")
        XCTAssertFalse(changes.contains { if case .failed = $0 { true } else { false } }, "not a failure: its replica went away, not the proxy")
        XCTAssertEqual(m.state.phase, .running)
        // The canary wave is not left empty (it would pass on no evidence): the next proxy in canary order takes the place.
        let substitute = try XCTUnwrap(m.state.groups["web"]!.members(ofWave: 0).first)
        XCTAssertEqual(substitute, RolloutMachine.canaryOrder(group.proxies.keys.filter { $0 != canary.node }).first)
        XCTAssertEqual(m.state.groups["web"]!.proxies[substitute]?.receivedAt, 100 + timeout, "handed the new version now")
        XCTAssertTrue(changes.contains(.waveStarted(group: "web", wave: 0)), "the server hands it the version")
        XCTAssertEqual(m.state.groups["web"]!.wave, 0, "the wave bakes again with its new member")
        // Returning later, it rejoins the plan like any new proxy.
        m.connected(canary, now: 100 + timeout + 50)
        XCTAssertNotNil(m.state.groups["web"]!.proxies[canary.node])
        XCTAssertNil(m.state.groups["web"]!.proxies[canary.node]?.lostAt)
    }

    // MARK: Lease

    func testALeaderLeadsUntilItsLeaseCouldHaveRunOutAndATermChangeIsANewLeadership() {
        var lease = LeaderLeaseTracker(replica: "A", marginMilliseconds: 600)
        XCTAssertFalse(lease.leads(now: 0))
        XCTAssertEqual(lease.claimed(holder: "B", term: 3, remainingMilliseconds: 2000, sentAt: 0), .unchanged)
        XCTAssertEqual(lease.claimed(holder: "A", term: 4, remainingMilliseconds: 2000, sentAt: 1000), .became(term: 4))
        XCTAssertTrue(lease.leads(now: 2000))
        XCTAssertEqual(lease.claimed(holder: "A", term: 4, remainingMilliseconds: 2000, sentAt: 1400), .unchanged, "a renewal")
        XCTAssertTrue(lease.leads(now: 2700))
        XCTAssertFalse(lease.leads(now: 2800), "1400 + 2000 - 600: it stops before the store could give the lease away")
        XCTAssertEqual(lease.expire(now: 2500), .unchanged)
        XCTAssertEqual(lease.expire(now: 2800), .lost(term: 4))
        XCTAssertEqual(lease.claimed(holder: "A", term: 6, remainingMilliseconds: 2000, sentAt: 5000), .became(term: 6), "it led again, under a new term")
        XCTAssertEqual(lease.claimed(holder: "A", term: 7, remainingMilliseconds: 2000, sentAt: 5400), .became(term: 7),
                       "another replica led in between: the state must be read again")
        XCTAssertEqual(lease.fenced(), .lost(term: 7))
        XCTAssertEqual(lease.claimed(holder: "A", term: 8, remainingMilliseconds: 300, sentAt: 6000), .unchanged,
                       "a lease about to run out is not worth acting on")
        XCTAssertFalse(lease.leads(now: 6000))
    }

    // MARK: Following

    func testAFollowerServesThePlanHoldsAnUnplannedVersionAndLetsRollbacksAndUnpolicedVersionsThrough() {
        var state = RolloutState(id: "r", target: "v2", previous: "v1", startedAt: 0, groups: [:])
        XCTAssertEqual(FollowerServing.decide(live: "v2", livePolicies: true, operatorRollback: false, state: state), .plan(target: "v2", previous: "v1"))
        XCTAssertEqual(FollowerServing.decide(live: "v3", livePolicies: true, operatorRollback: false, state: state), .hold,
                       "a new version with a policy waits for the leader's plan")
        XCTAssertEqual(FollowerServing.decide(live: "v3", livePolicies: false, operatorRollback: false, state: state), .everyone)
        XCTAssertEqual(FollowerServing.decide(live: "v1", livePolicies: true, operatorRollback: true, state: state), .everyone)
        XCTAssertEqual(FollowerServing.decide(live: "v3", livePolicies: true, operatorRollback: false, state: nil), .hold)
        state.queued = "v4"
        state.collapsed = ["v3"]
        XCTAssertEqual(FollowerServing.decide(live: "v4", livePolicies: true, operatorRollback: false, state: state), .plan(target: "v2", previous: "v1"))
        XCTAssertEqual(FollowerServing.decide(live: "v3", livePolicies: true, operatorRollback: false, state: state), .plan(target: "v2", previous: "v1"))
        state.phase = .rolledBack
        XCTAssertEqual(FollowerServing.decide(live: "v2", livePolicies: true, operatorRollback: false, state: state), .plan(target: "v2", previous: "v1"))
        XCTAssertFalse(state.servesTarget(key("anyone")), "a rolled-back plan serves everyone the previous version")
        state.phase = .completed
        XCTAssertEqual(FollowerServing.decide(live: "v2", livePolicies: true, operatorRollback: false, state: state), .everyone)
    }

    func testAProxyThePlanDoesNotKnowGetsThePreviousVersionUntilTheLeaderPlacesIt() {
        let m = RolloutMachine(id: "r", target: "v2", previous: "v1", groups: ["web": GroupRolloutInput(policy: policy, changed: true)],
                               connected: [key("p1")], now: 0)
        XCTAssertTrue(m.state.servesTarget(key("p1")))
        XCTAssertFalse(m.state.servesTarget(key("new")))
        XCTAssertTrue(m.state.servesTarget(key("x", "other-group")), "a group without a plan is not held back")
    }
}
