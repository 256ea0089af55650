// Several `meshctl serve` replicas on one shared store (RolloutCoordinating, i.e. PostgreSQL):
// - Leadership: every replica claims the store's lease every 400 ms; the holder (one at a time, by
//   the database's clock) drives rollouts. A killed leader's lease runs out within its TTL (2 s) and
//   the next claimant takes over; a leader that cannot renew stops acting before its lease could have
//   run out (LeaderLeaseTracker), and its state writes are fenced by its term, so two leaders never
//   write. A new leader continues the saved rollout at the same wave (RolloutMachine(restoring:)).
// - Reports: every replica writes its streams (per proxy: streams, per-type status) to the store on
//   change and touches it every 500 ms; the leader merges the live reports with its own streams
//   (RolloutFleetView) and feeds the difference to the machine: a NACK on a follower fails the wave the
//   leader runs. A replica silent for 3 s drops out of the view; its proxies' streams count as lost
//   with it (not failed) and they are handed the version again when they reconnect elsewhere.
// - Following: a follower serves what the saved state says (FollowerServing): the plan's members the
//   new version, everyone else the previous one; a live version with a policy and no plan yet is held
//   back entirely until the leader saves one. Rollback and completion reach it through the state
//   (polled every tick) and then the live pointer.
import Foundation
import MeshModel
import MeshServer
import RolloutPlanning
import SnapshotStorage
import XDSCache
import XDSProtocol

extension RolloutController {
    enum Role: Equatable {
        /// The store's only server (directory store): it runs every rollout.
        case sole
        /// It holds the shared store's lease of `term`.
        case leader(term: Int64)
        /// Another replica leads; this one follows the saved state.
        case follower
    }

    /// One of this replica's streams.
    struct LocalStream {
        var proxy: ProxyKey
        /// Written by the stream after every response and ACK; read when a report or the fleet view is built.
        let status: ProxyStreamStatus
    }

    /// Another replica's report as last read.
    struct RemoteReport {
        var revision: Int64
        var ageMilliseconds: Int64
        var report: ReplicaReport
    }

    /// How long a lease lasts without renewal, how early its holder stops acting on it, and how often it is claimed.
    static let leaseTTLMilliseconds: Int64 = 2000
    static let leaseMarginMilliseconds: Int64 = 600
    static let leaseClaimMilliseconds: Int64 = 400
    /// How often an unchanged report is touched, after how long a silent replica drops out of the leader's view,
    /// and after how long its report is deleted.
    static let reportHeartbeatMilliseconds: Int64 = 500
    static let reportExpiryMilliseconds: Int64 = 3000
    static let reportPruneMilliseconds: Int64 = 60_000

    /// Milliseconds on a clock that never jumps (lease validity is judged on it).
    static func monotonic() -> Int64 { Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000) }

    // MARK: Stream events

    public func streamOpened(_ stream: ObjectIdentifier, status: ProxyStreamStatus, description: String, snapshotVersion: String) {
        let due = lock.withLock { () -> Bool in
            local[stream] = LocalStream(proxy: ProxyKey(group: status.group, node: status.nodeID), status: status)
            reportDirty = true
            return queueEvaluationIfDue()
        }
        if due { scheduleEvaluation() }
    }

    /// Runs after every response and ACK of every stream: the status itself stays with the stream (read when a report
    /// or the fleet view is built), so this only notes that there is something new.
    public func statusChanged(_ stream: ObjectIdentifier) {
        let due = lock.withLock { () -> Bool in
            reportDirty = true
            return queueEvaluationIfDue()
        }
        if due { scheduleEvaluation() }
    }

    public func streamClosed(_ stream: ObjectIdentifier, mode: SubscriptionMode) {
        let due = lock.withLock { () -> Bool in
            reportDirty = true
            return local.removeValue(forKey: stream) != nil && queueEvaluationIfDue()
        }
        if due { scheduleEvaluation() }
    }

    /// Whether a stream event must be fed to the leader's machine, or a follower's report to the store, soon: between
    /// rollouts not at all (nothing on the queue needs it), during one at most once per `streamEventBatch`, taking
    /// every event recorded until it runs. (Queued at once, each ACK of a fan-out to 10,000 proxies woke a Dispatch
    /// thread for an evaluation that found one event, or none: ~10 % of the server's CPU per change in sem_post, futex
    /// wake-ups and context switches. A rollout's decisions take seconds; 20 ms is noise.) Called under the lock, in
    /// the critical section that recorded the event: one lock per event on a path that runs for every ACK. When it
    /// returns true the caller calls `scheduleEvaluation()` after unlocking.
    private func queueEvaluationIfDue() -> Bool {
        guard !stopped, !evaluateQueued, hasWorkForStreamEvents else { return false }
        evaluateQueued = true
        evaluationsQueued += 1
        return true
    }

    private func scheduleEvaluation() {
        queue.asyncAfter(deadline: .now() + Self.streamEventBatch) { [weak self] in
            guard let self else { return }
            let (following, rolling) = lock.withLock { () -> (Bool, Bool) in
                evaluateQueued = false
                return (role == .follower, holding || followed?.phase.isActive == true)
            }
            // A follower's NACK reaches the leader now; between rollouts the next tick's report is soon enough.
            if following { if rolling { publishReport(now: Self.monotonic(), force: true) } } else { evaluate() }
        }
    }

    /// Whether the hop to the queue after a stream event would do anything: a leader feeds its rollout machine, a
    /// follower that is rolling sends its report. Between rollouts neither does. The fleet's events are computed from the streams when a machine next evaluates (every tick, and as a rollout
    /// starts), so none is lost. Under the lock.
    private var hasWorkForStreamEvents: Bool {
        role == .follower ? holding || followed?.phase.isActive == true : machine != nil
    }

    // MARK: The fleet

    /// This replica's streams as a report (per-type status only with `types`); under the lock.
    func localReport(types: Bool = true) -> ReplicaReport {
        var proxies: [ProxyKey: ProxyReport] = [:]
        for stream in local.values {
            var entry = proxies[stream.proxy] ?? ProxyReport(proxy: stream.proxy, streams: 0, types: [:])
            entry.streams += 1
            if types {
                stream.status.forEachType { status, _, ackedAt in
                    let observation = TypeObservation(status, ackedAt: ackedAt)
                    entry.types[status.typeURL] = entry.types[status.typeURL].map { TypeObservation.worse($0, observation) } ?? observation
                }
            }
            proxies[stream.proxy] = entry
        }
        return ReplicaReport(replica: replicaID, proxies: Array(proxies.values))
    }

    /// The whole fleet: this replica's streams and every live replica's report; under the lock.
    func fleetView() -> RolloutFleetView {
        let others = remote.values.map { (report: $0.report, ageMilliseconds: $0.ageMilliseconds) }
        return RolloutFleetView.merge([(report: localReport(), ageMilliseconds: 0)] + others, expiryMilliseconds: Self.reportExpiryMilliseconds)
    }

    /// Leading: feeds the machine what changed in the fleet since it was last fed.
    func evaluate() {
        lock.withLock {
            guard !stopped, machine != nil, role != .follower else { return }
            let view = fleetView()
            let events = view.events(since: absorbed)
            absorbed = view
            guard !events.isEmpty else { return }
            let now = Self.now()
            var changes: [RolloutChange] = []
            for event in events { changes += machine!.apply(event, now: now) }
            if !changes.isEmpty { schedule(changes, state: machine!.state) }
        }
    }

    /// Each group's node → wave: what followers need to serve a proxy the leader placed.
    static func membership(_ state: RolloutState) -> [String: [String: Int]] {
        state.groups.mapValues { $0.proxies.mapValues(\.wave) }
    }

    /// Leading: a proxy placed in a wave since the last save is saved now (in lock order, behind queued changes),
    /// so followers serve it its wave's version.
    func saveIfMembershipChanged() {
        lock.withLock {
            guard coordinator != nil, let machine, machine.state.phase.isActive, Self.membership(machine.state) != savedMembership else { return }
            let state = machine.state
            savedMembership = Self.membership(state)
            queue.async { [self] in save(state) }
        }
    }

    // MARK: Reports

    /// Writes this replica's report when it changed, touches it when due; on the queue. Per-type status is only
    /// reported while a rollout is planned or running (between rollouts only the streams matter, for the next plan),
    /// so a publish served at once does not make every replica rewrite its report on every ACK.
    func publishReport(now: Int64, force: Bool) {
        guard let coordinator else { return }
        // The report is compared as a value and encoded only when it changed: with 1,000 proxies, encoding it on
        // every dirty tick (each ACK marks it dirty) was a quarter of a replica's CPU during a publish.
        let work = lock.withLock { () -> (report: ReplicaReport, unchanged: Bool)? in
            let heartbeatDue = force || now - lastReportAt >= Self.reportHeartbeatMilliseconds
            guard !stopped, reportDirty || heartbeatDue else { return nil }
            reportDirty = false
            let rolling = holding || followed?.phase.isActive == true || machine?.state.phase.isActive == true
            let report = localReport(types: rolling)
            let unchanged = report == lastReport
            guard !unchanged || heartbeatDue else { return nil }   // nothing new to say yet
            lastReportAt = now
            return (report, unchanged)
        }
        guard let (report, unchanged) = work else { return }
        do {
            var touched = false
            if unchanged { touched = try coordinator.touchReplicaReport(replica: replicaID) }
            if !touched {
                try coordinator.saveReplicaReport(replica: replicaID, report: report.encoded())
                lock.withLock { lastReport = report }
            }
        } catch {
            lock.withLock {
                reportDirty = true
                lastReport = nil
            }
            log.error("rollout.report-unsaved", ["store": store.location, "error": "\(error)"], rateLimitKey: "rollout.report")
        }
    }

    /// Leading: reads the reports that changed since the last read (and every report's age).
    func refreshRemoteReports(now: Int64) {
        guard let coordinator else { return }
        let known = lock.withLock { remote.mapValues(\.revision) }
        do {
            let rows = try coordinator.replicaReports(known: known)
            lock.withLock {
                var next: [String: RemoteReport] = [:]
                for row in rows where row.replica != replicaID {
                    if let body = row.body, let report = ReplicaReport.decode(body) {
                        next[row.replica] = RemoteReport(revision: row.revision, ageMilliseconds: row.ageMilliseconds, report: report)
                    } else if var old = remote[row.replica], old.revision == row.revision {
                        old.ageMilliseconds = row.ageMilliseconds
                        next[row.replica] = old
                    }
                }
                remote = next
            }
            if now - lastPruneAt >= 10_000 {
                lastPruneAt = now
                _ = try coordinator.pruneReplicaReports(olderThanMilliseconds: Self.reportPruneMilliseconds)
            }
        } catch {
            log.error("rollout.reports-unreadable", ["store": store.location, "error": "\(error)"], rateLimitKey: "rollout.reports")
        }
    }

    /// A stopping replica gives up the lease and its report (on the queue).
    func leaveReplicas() {
        guard let coordinator else { return }
        if case .leader = lock.withLock({ role }) {
            do { try coordinator.releaseRolloutLease(replica: replicaID) } catch {
                log.warning("rollout.lease-unreleased", ["error": "\(error)", "effect": "another replica leads once the lease runs out (2s)"])
            }
        }
        try? coordinator.removeReplicaReport(replica: replicaID)
    }

    // MARK: Leadership

    /// Claims or renews the lease when due, and acts on what changed; on the queue.
    func leaseTick(now: Int64) {
        guard let coordinator, !lock.withLock({ stopped }) else { return }
        let due = lock.withLock { () -> Bool in
            guard now - lastClaimAt >= Self.leaseClaimMilliseconds else { return false }
            lastClaimAt = now
            return true
        }
        var transition = LeaderLeaseTracker.Transition.unchanged
        if due {
            do {
                let answer = try coordinator.claimRolloutLease(replica: replicaID, ttlMilliseconds: Self.leaseTTLMilliseconds)
                transition = lock.withLock {
                    lease.claimed(holder: answer.holder, term: answer.term, remainingMilliseconds: answer.remainingMilliseconds, sentAt: now)
                }
            } catch {
                log.error("rollout.lease-unreachable", ["store": store.location, "error": "\(error)"], rateLimitKey: "rollout.lease")
            }
        }
        if transition == .unchanged { transition = lock.withLock { lease.expire(now: Self.monotonic()) } }
        handle(transition)
    }

    func handle(_ transition: LeaderLeaseTracker.Transition) {
        switch transition {
        case .unchanged: return
        case .became(let term): takeOver(term: term)
        case .lost(let term): stepDown(term: term)
        }
    }

    /// This replica leads from now on: it continues the saved rollout at its wave (queueing a version published while
    /// no replica led, or ending the rollout for an override or rollback made then), finishes a rollback its predecessor
    /// could not, or plans the live version a follower was holding back.
    private func takeOver(term: Int64) {
        let saved = (try? coordinator?.loadRolloutState()).flatMap { $0 }.flatMap(RolloutState.decode)
        let (loaded, liveIsRollback, wasHolding, held) = lock.withLock { () -> (Snapshot?, Bool, Bool, ServedSnapshot?) in
            role = .leader(term: term)
            followed = nil
            followedRevision = -1
            absorbed = RolloutFleetView()
            savedMembership = [:]
            let wasHolding = holding
            holding = false
            if self.live != nil { loadedOnce = true }
            return (self.live, self.liveIsRollback, wasHolding, previous)
        }
        metrics.rolloutLeader(true)
        log.info("rollout.leader", ["replica": replicaID, "term": "\(term)",
                                    "state": saved.map { "\($0.target.prefix(12)) \($0.phase.rawValue) (\(waveText($0)))" } ?? "none"])
        guard let live = loaded else { return }
        let version = live.metadata.version
        if let saved, saved.phase.isActive {
            var restored = RolloutMachine(restoring: saved)
            if saved.target != version && saved.queued != version {
                if liveIsRollback || Self.policies(of: live).isEmpty {
                    // An override or a rollback made live while no replica led: it goes everywhere, ending the rollout.
                    _ = restored.supersede(now: Self.now())
                    let state = restored.state
                    lock.withLock {
                        machine = restored
                        previous = nil
                    }
                    queue.async { [self] in save(state) }
                    hub.accountForLive(nil)
                    _ = hub.serve(live)
                    return
                }
                // A publish made while no replica led waits behind the running rollout, like any other.
                if let replaced = restored.enqueue(version) { recordCollapse(replaced, newer: version, behind: saved.target) }
            }
            let continued = restored.state
            guard let before = servedSnapshot(continued.previous),
                  let target = continued.target == version ? live : loadSnapshot(continued.target) else {
                log.error("rollout.resume-failed", ["target": String(continued.target.prefix(12)), "previous": String(continued.previous.prefix(12)),
                                                    "effect": "proxies keep what they were served"])
                return
            }
            lock.withLock {
                machine = restored
                previous = before
            }
            if continued.queued != saved.queued { queue.async { [self] in save(continued) } }
            hub.accountForLive(continued.queued == version ? version : nil)
            log.info("rollout.resumed", ["target": String(continued.target.prefix(12)), "previous": String(continued.previous.prefix(12)),
                                         "queued": String(continued.queued?.prefix(12) ?? "none"), "waves": waveText(continued), "by": "leader \(replicaID)"])
            updateWaveGauges(continued)
            _ = hub.serve(target, rollout: serving(before))
            evaluate()
            return
        }
        if let saved, saved.target == version, saved.phase == .rolledBack || saved.phase == .aborted {
            // The previous leader failed (or aborted) the rollout and stopped before the live pointer moved back.
            lock.withLock {
                machine = RolloutMachine(restoring: saved)
                previous = servedSnapshot(saved.previous)
            }
            rollBack(saved, phase: saved.phase)
            return
        }
        if wasHolding, let held, !liveIsRollback, !Self.policies(of: live).isEmpty {
            // The live version waited for a plan no leader made: this one makes it.
            _ = start(live, policies: Self.policies(of: live), before: held, now: Self.now())
            return
        }
        if saved?.target != version, !liveIsRollback, !Self.policies(of: live).isEmpty {
            // The live version is served everywhere but no saved state says so (followers would wait for a plan).
            let state = Self.servedAtOnce(version, previous: saved?.target, now: Self.now())
            lock.withLock { machine = RolloutMachine(restoring: state) }
            queue.async { [self] in save(state) }
        } else {
            lock.withLock { machine = saved.map { RolloutMachine(restoring: $0) } }
        }
        lock.withLock { previous = nil }
        if hub.heldBack != nil || hub.current?.version != version {
            hub.accountForLive(nil)
            _ = hub.serve(live)
        }
    }

    /// Another replica leads (or this one cannot reach the store to renew): follow the saved state.
    private func stepDown(term: Int64) {
        lock.withLock {
            role = .follower
            followed = machine?.state
            machine = nil
            followedRevision = -1
            absorbed = RolloutFleetView()
            remote = [:]
            savedMembership = [:]
        }
        metrics.rolloutLeader(false)
        log.warning("rollout.leadership-lost", ["replica": replicaID, "term": "\(term)", "effect": "following the state the leader saves"])
        followTick()
    }

    // MARK: Following

    /// Reads the leader's state when it changed and serves accordingly; on the queue.
    func followTick() {
        let changed = refreshFollowedState()
        let unsettled = lock.withLock { holding || (live != nil && hub.current == nil) }
        if changed || unsettled { _ = reconcileFollower(stateChanged: changed) }
    }

    /// A new live version on a follower (the feed's `serve`); on the queue.
    func followLive() -> Int {
        _ = refreshFollowedState()
        return reconcileFollower(stateChanged: true)
    }

    private func refreshFollowedState() -> Bool {
        guard let coordinator else { return false }
        let revision = lock.withLock { followedRevision }
        do {
            guard let (saved, data) = try coordinator.loadRolloutState(newerThan: revision) else { return false }
            guard let state = RolloutState.decode(data) else {
                log.error("rollout.state-unreadable", ["store": store.location, "revision": "\(saved)"], rateLimitKey: "rollout.state-read")
                return false
            }
            lock.withLock {
                followed = state
                followedRevision = saved
            }
            updateWaveGauges(state)
            return true
        } catch {
            log.error("rollout.state-unreadable", ["store": store.location, "error": "\(error)"], rateLimitKey: "rollout.state-read")
            return false
        }
    }

    /// Serves what the followed state says for the live version (FollowerServing). Returns the streams handed a view.
    private func reconcileFollower(stateChanged: Bool) -> Int {
        let (current, rollback, state) = lock.withLock { () -> (Snapshot?, Bool, RolloutState?) in (live, liveIsRollback, followed) }
        guard let live = current else { return 0 }
        let version = live.metadata.version
        switch FollowerServing.decide(live: version, livePolicies: !Self.policies(of: live).isEmpty, operatorRollback: rollback, state: state) {
        case .everyone:
            let wasHolding = lock.withLock { () -> Bool in
                defer { holding = false; previous = nil }
                return holding || previous != nil
            }
            guard wasHolding || hub.heldBack != nil || hub.current?.version != version else { return 0 }
            hub.accountForLive(nil)
            return hub.serve(live)
        case .plan(let targetVersion, let previousVersion):
            guard let before = servedSnapshot(previousVersion),
                  let target = targetVersion == version ? live : loadSnapshot(targetVersion) else {
                log.error("rollout.follow-failed", ["target": String(targetVersion.prefix(12)), "previous": String(previousVersion.prefix(12)),
                                                    "effect": "proxies keep what they were served"], rateLimitKey: "rollout.follow")
                return 0
            }
            let unchanged = lock.withLock { () -> Bool in
                defer {
                    holding = false
                    previous = before
                }
                return !holding && previous?.version == previousVersion
            }
            hub.accountForLive(targetVersion == version ? nil : version)
            if unchanged && hub.current?.version == targetVersion && hub.heldBack?.version == previousVersion {
                return stateChanged ? hub.redeliver() : 0
            }
            if stateChanged || !unchanged {
                log.info("rollout.following", ["target": String(targetVersion.prefix(12)), "previous": String(previousVersion.prefix(12)),
                                               "phase": state?.phase.rawValue ?? "", "waves": state.map(waveText) ?? ""])
            }
            return hub.serve(target, rollout: serving(before))
        case .hold:
            if lock.withLock({ holding }) { return 0 }
            if hub.heldBack != nil {
                hub.accountForLive(version)
                return 0
            }
            // Nothing served yet: nothing to hold proxies on, and the new version may not go out before its plan.
            guard let current = hub.current, current.version != version else { return 0 }
            lock.withLock {
                holding = true
                previous = current
            }
            log.info("rollout.awaiting-plan", ["version": String(version.prefix(12)), "serving": String(current.version.prefix(12))])
            return hub.serve(live, rollout: serving(current))
        }
    }

    func loadSnapshot(_ version: String) -> Snapshot? { try? store.load(version: version) }

    /// `version` as served, from what the hub holds when it can (a load from the store otherwise).
    func servedSnapshot(_ version: String) -> ServedSnapshot? {
        if let held = lock.withLock({ previous }), held.version == version { return held }
        if let held = hub.heldBack, held.version == version { return held }
        if let current = hub.current, current.version == version { return current }
        return (try? store.load(version: version)).map { ServedSnapshot($0) }
    }
}

extension TypeObservation {
    /// What the rollout judges of one type's status (as the stream's machine gave it, and when the type was last
    /// ACKed): in sync, waiting for an ACK, or rejected.
    init(_ status: ProxyStatus, ackedAt: WallClockTime?) {
        let sync: TypeSync = switch status.verdict {
        case .synced, .notSent: .synced
        case .stale: .pending
        case .nacked: .rejected
        }
        self.init(sync: sync, sentVersion: status.snapshotVersionSent,
                  ackedAt: ackedAt.map { ($0.nanosecondsSinceEpoch + 500_000) / 1_000_000 },
                  rejection: sync == .rejected ? status.lastNack?.errorDetail.message : nil)
    }
}
