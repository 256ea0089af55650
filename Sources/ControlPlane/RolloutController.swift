// The server's side of a progressive rollout: decides, for each newly live snapshot, whether
// it rolls out at once or in waves (the policy records the snapshot carries); feeds the pure
// RolloutMachine with stream events (it is an XDSServerObserver), time and operators'
// requests from the store; and performs what the machine reports: hand the next wave its
// version (the hub), save the state (the store), move the live pointer back on failure (the
// store's rollback, recorded in history), count, log.
// On a store several replicas share (RolloutCoordinating), one replica leads under the store's
// lease and the others follow the state it saves: RolloutController+Replicas.swift.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Locking
import MeshModel
import MeshServer
import RolloutPlanning
import ServerTelemetry
import SnapshotStorage
import XDSCache
import XDSProtocol

/// Runs the rollouts of one server. Thread-safe: observer calls arrive from every event loop, snapshots from
/// the store watcher, ticks and store I/O on its own serial queue. Lock order: the controller never calls the hub
/// while holding its lock (the hub calls `receivesNew` outside its own).
public final class RolloutController: XDSServerObserver, @unchecked Sendable {
    // @unchecked Sendable: rule 2 — every mutable field (machine, previous, expectedRollback, local, absorbed, remote,
    // role, lease, followed, live, holding, stopped, loadedOnce, timer, groupsWithWaveGauge, …) is read and written only
    // under `lock`; hub, store, coordinator, log and metrics are thread-safe themselves.
    let hub: SnapshotHub
    let store: any SnapshotStoring
    let log: ServerLog
    let metrics: ServerMetrics
    let lock = NSLock()
    /// The authoritative rollout machine: only while this replica leads (or is the store's only server).
    var machine: RolloutMachine?
    /// The snapshot proxies are held back on while a rollout (led or followed) holds some of them back.
    var previous: ServedSnapshot?
    /// The version this controller rolled the store back to (its next load is not a new rollout).
    var expectedRollback: String?
    var stopped = false
    var loadedOnce = false
    let queue = DispatchQueue(label: "meshctl.rollout")
    var timer: DispatchSourceTimer?
    var groupsWithWaveGauge: Set<String> = []
    /// For the policies' external gates (no cache, no cookies).
    let gateSession = URLSession(configuration: .ephemeral)

    // Replicas (RolloutController+Replicas.swift).
    /// The shared store's rollout side over its own connection; nil: this server is the store's only one.
    let coordinator: (any RolloutCoordinating)?
    /// This process among the replicas (host, pid and a random tail: a restarted replica is a new one).
    public let replicaID: String
    var role: Role = .sole
    var lease: LeaderLeaseTracker
    var lastClaimAt: Int64 = .min / 2
    /// This replica's streams: their proxy and per-type status.
    var local: [ObjectIdentifier: LocalStream] = [:]
    /// What the leader's machine has been fed of the fleet.
    var absorbed = RolloutFleetView()
    /// Other replicas' latest reports.
    var remote: [String: RemoteReport] = [:]
    var reportDirty = true
    /// The report as last written (an unchanged one is only touched).
    var lastReport: ReplicaReport?
    var lastReportAt: Int64 = .min / 2
    var lastPruneAt: Int64 = 0
    var evaluateQueued = false
    /// Evaluations queued for stream events (for tests and diagnostics).
    var evaluationsQueued = 0
    /// How long stream events gather before one evaluation takes them all.
    static let streamEventBatch: DispatchTimeInterval = .milliseconds(20)
    /// The plan's membership as last saved (the leader saves when a proxy is placed, so followers serve it).
    var savedMembership: [String: [String: Int]] = [:]
    /// A follower's copy of the leader's state, and its revision in the store.
    var followed: RolloutState?
    var followedRevision: Int64 = -1
    /// The store's live snapshot as the feed last delivered it, and whether a rollback made it live.
    var live: Snapshot?
    var liveIsRollback = false
    /// A follower holds every proxy on `previous`: the live version awaits the leader's plan.
    var holding = false

    /// Whether this replica, a follower, holds the live version back until the rollout leader saves its plan.
    public var holdsLoadedVersionForPlan: Bool { lock.withLock { holding } }

    /// How often waves are judged and operators' requests taken.
    public static let tickInterval: DispatchTimeInterval = .milliseconds(100)

    public init(hub: SnapshotHub, store: any SnapshotStoring, log: ServerLog, metrics: ServerMetrics) {
        self.hub = hub
        self.store = store
        self.log = log
        self.metrics = metrics
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"
        let replica = "\(host)-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        replicaID = replica
        lease = LeaderLeaseTracker(replica: replica, marginMilliseconds: Self.leaseMarginMilliseconds)
        var coordinator: (any RolloutCoordinating)?
        if let shared = store as? any RolloutCoordinating {
            do { coordinator = try shared.rolloutCoordinator() } catch {
                log.error("rollout.coordination-unavailable", ["store": store.location, "error": "\(error)",
                                                               "effect": "rollouts are not coordinated with other replicas"])
            }
        }
        self.coordinator = coordinator
        if coordinator != nil { role = .follower }
        metrics.rolloutLeader(coordinator == nil)
    }

    static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    /// The current (or last) rollout's state, for the admin endpoint: the led one, or the one followed.
    public var state: RolloutState? { lock.withLock { machine?.state ?? followed } }

    /// Starts judging waves and taking requests.
    public func start() {
        if coordinator != nil {
            // One claim before the first snapshot arrives: a replica alone on the store serves it as the leader.
            log.info("rollout.replica", ["replica": replicaID, "store": store.location])
            queue.sync { leaseTick(now: Self.monotonic()) }
        }
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + Self.tickInterval, repeating: Self.tickInterval)
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
        lock.withLock { self.timer = timer }
    }

    /// Stops before the server drains: streams closing during a drain are not proxies failing. On a shared store
    /// the lease is given up and this replica's report removed, so another replica leads at once and counts this
    /// one's streams as gone with their replica, not as proxies failing.
    public func stop() {
        let timer = lock.withLock { () -> DispatchSourceTimer? in
            stopped = true
            return self.timer
        }
        timer?.cancel()
        queue.sync { leaveReplicas() }
    }

    // MARK: Snapshots

    /// Serves a newly live snapshot: at once, as the start (or, after a restart, the continuation) of a rollout,
    /// or — while another rollout runs — queued behind it. Returns the number of streams handed a new view.
    public func serve(_ snapshot: Snapshot) -> Int {
        // Whether a rollback made it live only matters for a version with a policy (one without goes everywhere anyway),
        // and reading history is not free on a store with a long one.
        let rollback = !Self.policies(of: snapshot).isEmpty && isOperatorRollback(to: snapshot.metadata.version)
        return queue.sync {
            let following = lock.withLock { () -> Bool in
                live = snapshot
                liveIsRollback = rollback
                return role == .follower
            }
            return following ? followLive() : lead(snapshot)
        }
    }

    /// `serve` on the leader (or the store's only server); runs on the queue.
    func lead(_ snapshot: Snapshot) -> Int {
        let version = snapshot.metadata.version
        let policies = Self.policies(of: snapshot)
        let now = Self.now()
        enum Decision {
            case immediate
            case keep(ServedSnapshot)
            case restore(RolloutMachine, target: Snapshot, before: ServedSnapshot)
            case queued(RolloutState, replaced: String?)
            case start
        }
        let decision: Decision = lock.withLock {
            let first = !loadedOnce
            loadedOnce = true
            if expectedRollback == version {
                expectedRollback = nil
                return .immediate
            }
            if first {
                // A restarted server continues a rollout of the version that is still live, or of the version a
                // publish is queued behind.
                if let saved = savedState(), saved.phase.isActive, let before = try? store.load(version: saved.previous) {
                    if saved.target == version { return .restore(RolloutMachine(restoring: saved), target: snapshot, before: ServedSnapshot(before)) }
                    if saved.queued == version, let target = try? store.load(version: saved.target) {
                        return .restore(RolloutMachine(restoring: saved), target: target, before: ServedSnapshot(before))
                    }
                }
                if coordinator != nil, !policies.isEmpty, savedState()?.target != version {
                    // Followers wait for a plan for a version with a policy: this one is served at once.
                    let state = Self.servedAtOnce(version, previous: savedState()?.target, now: now)
                    machine = RolloutMachine(restoring: state)
                    queue.async { [self] in save(state) }
                }
                return .immediate
            }
            if let machine, machine.state.phase.isActive {
                if machine.state.target == version, let previous { return .keep(previous) }
                // An emergency override (no policy) or a person's rollback goes everywhere now, ending the rollout.
                if policies.isEmpty || liveIsRollback {
                    schedule(self.machine!.supersede(now: now), state: self.machine!.state)
                    return .immediate
                }
                // Anything else waits for the running rollout; a newer publish replaces one already waiting.
                let replaced = self.machine!.enqueue(version)
                let state = self.machine!.state
                queue.async { [self] in
                    save(state)
                    if let replaced { recordCollapse(replaced, newer: version, behind: state.target) }
                }
                return .queued(state, replaced: replaced)
            }
            guard !policies.isEmpty, let current = hub.current, current.version != version else { return .immediate }
            if liveIsRollback { return .immediate }
            return .start
        }
        switch decision {
        case .immediate:
            hub.accountForLive(nil)
            lock.withLock { previous = nil }
            clearWaveGauges()
            return hub.serve(snapshot)
        case .keep(let before):
            return hub.serve(snapshot, rollout: serving(before))
        case .restore(let restored, let target, let before):
            hub.accountForLive(restored.state.queued)
            lock.withLock {
                machine = restored
                previous = before
                // Every connected proxy is fed to the restored machine again.
                absorbed = RolloutFleetView()
            }
            log.info("rollout.resumed", ["target": String(restored.state.target.prefix(12)), "previous": String(restored.state.previous.prefix(12)),
                                         "queued": String(restored.state.queued?.prefix(12) ?? "none"), "waves": waveText(restored.state)])
            updateWaveGauges(restored.state)
            return hub.serve(target, rollout: serving(before))
        case .queued(let state, let replaced):
            // The store names a version this replica knowingly does not serve yet: it is still up to date.
            hub.accountForLive(version)
            log.info("rollout.queued", ["version": String(version.prefix(12)), "behind": String(state.target.prefix(12)),
                                        "replaced": String(replaced?.prefix(12) ?? "none")])
            return 0
        case .start:
            guard let before = hub.current else { return hub.serve(snapshot) }
            return start(snapshot, policies: policies, before: before, now: now)
        }
    }

    /// The record of a version with a policy that is served to every proxy at once (no earlier version to hold
    /// proxies on), saved so followers serve it too instead of waiting for a plan.
    static func servedAtOnce(_ version: String, previous: String?, now: Int64) -> RolloutState {
        var state = RolloutState(id: UUID().uuidString.lowercased(), target: version, previous: previous ?? version, startedAt: now, groups: [:])
        state.phase = .completed
        state.finishedAt = now
        return state
    }

    /// Starts rolling `snapshot` out over `before` (what every proxy has now).
    func start(_ snapshot: Snapshot, policies: [String: RolloutPolicy], before: ServedSnapshot, now: Int64) -> Int {
        let version = snapshot.metadata.version
        let next = ServedSnapshot(snapshot)
        var inputs: [String: GroupRolloutInput] = [:]
        for (group, policy) in policies {
            // A group the previous version did not have cannot be held back on it.
            guard let old = before.groups[group], let new = next.groups[group] else { continue }
            inputs[group] = GroupRolloutInput(policy: policy, changed: old.contentHash != new.contentHash)
        }
        let started: RolloutState = lock.withLock {
            // The plan counts the whole fleet: this replica's streams and every live replica's report.
            let view = fleetView()
            let fresh = RolloutMachine(id: UUID().uuidString.lowercased(), target: version, previous: before.version,
                                       groups: inputs, connected: view.connectedStreams, now: now)
            machine = fresh
            previous = before
            holding = false
            absorbed = view.withoutTypes
            let state = fresh.state
            queue.async { [self] in save(state) }
            return state
        }
        log.info("rollout.started", ["target": String(version.prefix(12)), "previous": String(before.version.prefix(12)),
                                     "groups": "\(inputs.count)", "waves": waveText(started)])
        updateWaveGauges(started)
        let notified = hub.serve(snapshot, rollout: serving(before))
        queue.async { [weak self] in
            self?.evaluate()
            self?.tick()
        }
        return notified
    }

    /// The rollout completed with a publish waiting behind it: that one starts now, over the version just rolled out.
    private func startQueued(_ version: String) {
        guard let before = hub.current else { return }
        hub.accountForLive(nil)
        do {
            let snapshot = try store.load(version: version)
            log.info("rollout.dequeued", ["version": String(version.prefix(12)), "previous": String(before.version.prefix(12))])
            _ = start(snapshot, policies: Self.policies(of: snapshot), before: before, now: Self.now())
        } catch {
            log.error("rollout.queued-unloadable", ["version": String(version.prefix(12)), "error": "\(error)",
                                                    "serving": String(before.version.prefix(12))])
        }
    }

    /// Each group's policy record (groups without one roll out at once).
    static func policies(of snapshot: Snapshot) -> [String: RolloutPolicy] {
        var policies: [String: RolloutPolicy] = [:]
        for (name, group) in snapshot.groups {
            if let record = group.resources[RolloutPolicy.typeURL]?.values.first, let policy = RolloutPolicy.decode(record.body) {
                policies[name] = policy
            }
        }
        return policies
    }

    /// A person (or a failed rollout) moved the live pointer back: that goes everywhere at once.
    func isOperatorRollback(to version: String) -> Bool {
        guard let last = try? store.history().last else { return false }
        return last.kind == .rollback && last.version == version
    }

    private func savedState() -> RolloutState? {
        guard let store = store as? any RolloutStateStoring, let data = try? store.loadRolloutState() else { return nil }
        return RolloutState.decode(data)
    }

    func serving(_ before: ServedSnapshot) -> RolloutServing {
        RolloutServing(previous: before) { [weak self] group, node in self?.receivesNew(ProxyKey(group: group, node: node)) ?? true }
    }

    private func receivesNew(_ proxy: ProxyKey) -> Bool {
        lock.withLock {
            if role == .follower {
                // Only the leader places proxies in waves: until the saved plan names this one, it keeps the previous version.
                if holding { return false }
                return followed?.servesTarget(proxy) ?? false
            }
            guard machine != nil else { return true }
            machine!.admit(proxy)
            return machine!.receivesTarget(proxy)
        }
    }

    // MARK: Time and operators

    /// Every tick: the lease and this replica's report (shared store); then, leading, the fleet's events, operators'
    /// requests and the machine's clock; following, the leader's latest state.
    func tick() {
        let clock = Self.monotonic()
        if coordinator != nil {
            leaseTick(now: clock)
            publishReport(now: clock, force: false)
        }
        if lock.withLock({ role == .follower }) {
            followTick()
            return
        }
        if coordinator != nil { refreshRemoteReports(now: clock) }
        evaluate()
        for request in takeRequests() { apply(request) }
        step { machine in machine.tick(now: Self.now()) }
        saveIfMembershipChanged()
    }

    private func takeRequests() -> [RolloutRequest] {
        if let coordinator {
            do { return try coordinator.takeRolloutRequests() } catch {
                log.error("rollout.requests-unreadable", ["store": self.store.location, "error": "\(error)"], rateLimitKey: "rollout.requests")
                return []
            }
        }
        guard let store = store as? any RolloutStateStoring else { return [] }
        do { return try store.takeRolloutRequests() } catch {
            log.error("rollout.requests-unreadable", ["store": self.store.location, "error": "\(error)"], rateLimitKey: "rollout.requests")
            return []
        }
    }

    private func apply(_ request: RolloutRequest) {
        var refusal: String?
        step { machine in
            guard request.target == machine.state.target || request.target.isEmpty else {
                refusal = "it names version \(request.target.prefix(12)) but the rollout is of \(machine.state.target.prefix(12))"
                return []
            }
            do {
                let now = Self.now()
                switch request.action {
                case "pause": return try machine.pause(by: request.by, reason: request.reason, now: now)
                case "resume": return try machine.resume(by: request.by, reason: request.reason, now: now)
                case "promote": return try machine.promote(by: request.by, reason: request.reason, now: now)
                case "abort": return try machine.abort(by: request.by, reason: request.reason, now: now)
                default:
                    refusal = "unknown action '\(request.action)'"
                    return []
                }
            } catch {
                refusal = "\(error)"
                return []
            }
        }
        if lock.withLock({ machine == nil }) { refusal = "no rollout has run on this server" }
        if let refusal {
            log.warning("rollout.request-refused", ["action": request.action, "by": request.by, "reason": refusal])
        }
    }

    /// Runs one machine step under the lock; its changes are performed on the controller's queue, in the order the
    /// steps took the lock (so saved states never go back), and never on an event loop (a rollback writes to disk).
    func step(_ body: (inout RolloutMachine) -> [RolloutChange]) {
        lock.withLock {
            guard !stopped, machine != nil, role != .follower else { return }
            let changes = body(&machine!)
            guard !changes.isEmpty else { return }
            schedule(changes, state: machine!.state)
        }
    }

    /// Queues `perform`; called with the lock held.
    func schedule(_ changes: [RolloutChange], state: RolloutState) {
        queue.async { [self] in perform(changes, state: state) }
    }

    // MARK: Performing changes

    private func perform(_ changes: [RolloutChange], state: RolloutState) {
        save(state)
        // A replica that just found another holding the lease performs nothing (the new leader does, from the state).
        if coordinator != nil, lock.withLock({ role == .follower }) { return }
        updateWaveGauges(state)
        var redeliver = false
        for change in changes {
            switch change {
            case .waveStarted(let group, let wave):
                redeliver = true
                log.info("rollout.wave-started", ["target": String(state.target.prefix(12)), "group": group, "wave": "\(wave + 1)",
                                                  "proxies": state.groups[group]?.members(ofWave: wave).joined(separator: ",") ?? ""])
            case .groupCompleted(let group):
                redeliver = true
                log.info("rollout.group-completed", ["target": String(state.target.prefix(12)), "group": group])
            case .failed(let failure):
                redeliver = true
                log.error("rollout.failed", ["target": String(state.target.prefix(12)), "node": failure.proxy.node, "group": failure.proxy.group,
                                             "kind": failure.kind.rawValue, "type": failure.typeURL ?? "", "error": failure.detail,
                                             "action": state.phase == .halted ? "halt" : "rollback"])
            case .gateRequested(let group, let wave, let gate):
                log.info("rollout.gate-asked", ["target": String(state.target.prefix(12)), "group": group, "wave": "\(wave + 1)", "url": gate.url])
                askGate(gate, group: group, wave: wave, rolloutID: state.id)
            case .operatorAction(let action):
                redeliver = true
                log.info("rollout.operator", ["target": String(state.target.prefix(12)), "action": action.action, "by": action.by, "reason": action.reason ?? ""])
            case .finished(let phase):
                metrics.rolloutFinished(result: phase.result)
                log.info("rollout.finished", ["target": String(state.target.prefix(12)), "result": phase.result])
                switch phase {
                case .completed:
                    lock.withLock { previous = nil }
                    hub.updateRollout(nil)
                    if let queued = state.queued { startQueued(queued) }
                case .rolledBack, .aborted:
                    rollBack(state, phase: phase)
                default: break
                }
            }
        }
        if redeliver { hub.redeliver() }
    }

    /// Every proxy goes back to the previous version now (the machine admits none to the target any more), then
    /// the live pointer moves back through the store, recording why.
    func rollBack(_ state: RolloutState, phase: RolloutPhase) {
        hub.redeliver()
        var reason: String
        let author: String
        if phase == .aborted, let action = state.actions.last(where: { $0.action == "abort" }) {
            reason = "rollout of \(state.target.prefix(12)) aborted by \(action.by)" + (action.reason.map { ": \($0)" } ?? "")
            author = action.by
        } else {
            reason = "automatic rollback: " + (state.failure?.summary ?? "the rollout failed")
            author = "meshctl serve (rollout)"
        }
        // A publish waiting behind the rollout is dropped with it (it was written on top of the rolled-back version).
        if let queued = state.queued { reason += "; the publish of \(queued.prefix(12)) that waited behind it is dropped (publish it again)" }
        lock.withLock { expectedRollback = state.previous }
        do {
            _ = try store.rollback(to: state.previous, reason: reason, author: author)
            log.warning("rollout.rolled-back", ["to": String(state.previous.prefix(12)), "from": String(state.target.prefix(12)), "reason": reason])
        } catch {
            lock.withLock { expectedRollback = nil }
            log.error("rollout.rollback-failed", ["to": String(state.previous.prefix(12)), "error": "\(error)",
                                                  "fix": "proxies are served the previous version; run meshctl snapshot rollback \(state.previous.prefix(12))"])
        }
    }

    /// GETs the gate's URL off the lock; a 2xx answer passes the wave, anything else (another status, an error,
    /// no answer within the gate's timeout) fails it with what happened.
    private func askGate(_ gate: RolloutPolicy.Gate, group: String, wave: Int, rolloutID: String) {
        guard let url = URL(string: gate.url) else {
            answerGate(group: group, wave: wave, rolloutID: rolloutID, passed: false, detail: "the gate URL \(gate.url) cannot be parsed")
            return
        }
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: Double(gate.timeoutMilliseconds) / 1000)
        request.httpMethod = "GET"
        let started = Date()
        // Answered once: by the response, or by our own deadline (URLSession's timeout does not bound a server that
        // accepts the connection and never answers).
        let answered = Locked(false)
        let claim: @Sendable () -> Bool = { answered.withLock { done in defer { done = true }; return !done } }
        let task = gateSession.dataTask(with: request) { [weak self] data, response, error in
            guard claim() else { return }
            let elapsed = String(format: "%.1fs", Date().timeIntervalSince(started))
            let passed: Bool
            let detail: String
            if let error {
                passed = false
                detail = "the gate \(gate.url) could not be asked (\(elapsed)): \(error.localizedDescription)"
            } else if let http = response as? HTTPURLResponse {
                let body = String(decoding: (data ?? Data()).prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                passed = (200..<300).contains(http.statusCode)
                detail = "the gate \(gate.url) answered HTTP \(http.statusCode)" + (body.isEmpty ? "" : ": \(body)")
            } else {
                passed = false
                detail = "the gate \(gate.url) gave no HTTP answer"
            }
            self?.answerGate(group: group, wave: wave, rolloutID: rolloutID, passed: passed, detail: detail)
        }
        task.resume()
        queue.asyncAfter(deadline: .now() + .milliseconds(Int(gate.timeoutMilliseconds))) { [weak self] in
            guard claim() else { return }
            task.cancel()
            self?.answerGate(group: group, wave: wave, rolloutID: rolloutID, passed: false,
                             detail: "the gate \(gate.url) did not answer within \(RolloutPolicy.seconds(gate.timeoutMilliseconds))")
        }
    }

    private func answerGate(group: String, wave: Int, rolloutID: String, passed: Bool, detail: String) {
        log.info("rollout.gate-answered", ["group": group, "wave": "\(wave + 1)", "passed": "\(passed)", "detail": detail])
        step { machine in
            guard machine.state.id == rolloutID else { return [] }
            return machine.gateAnswered(group: group, wave: wave, passed: passed, detail: detail, now: Self.now())
        }
    }

    /// Saves the state: on a shared store only while this replica holds the lease of its term (a replica that finds
    /// another holding it stops leading at once).
    func save(_ state: RolloutState) {
        lock.withLock { savedMembership = Self.membership(state) }
        if let coordinator {
            guard let term = lock.withLock({ () -> Int64? in if case .leader(let term) = role { return term } else { return nil } }) else { return }
            do {
                if try !coordinator.saveRolloutState(state.encoded(), replica: replicaID, term: term) {
                    handle(lock.withLock { lease.fenced() })
                }
            } catch {
                log.error("rollout.state-unsaved", ["store": self.store.location, "error": "\(error)"], rateLimitKey: "rollout.state")
            }
            return
        }
        guard let store = store as? any RolloutStateStoring else { return }
        do { try store.saveRolloutState(state.encoded()) } catch {
            log.error("rollout.state-unsaved", ["store": self.store.location, "error": "\(error)"], rateLimitKey: "rollout.state")
        }
    }

    /// A publish that waited behind the rollout was replaced by a newer one: history says it will not roll out.
    func recordCollapse(_ replaced: String, newer: String, behind target: String) {
        guard let store = store as? any RolloutStateStoring else { return }
        let event = HistoryEvent(kind: .collapsed, time: Date(), version: replaced, previous: nil, author: "meshctl serve (rollout)",
                                 reason: "queued behind the rollout of \(target.prefix(12)) and replaced there by the newer publish \(newer.prefix(12)); it will not roll out")
        do { try store.recordRolloutHistory(event) } catch {
            log.error("rollout.history-unwritten", ["store": self.store.location, "error": "\(error)", "event": "collapsed \(replaced.prefix(12))"])
        }
        log.info("rollout.collapsed", ["version": String(replaced.prefix(12)), "newer": String(newer.prefix(12)), "behind": String(target.prefix(12))])
    }

    func updateWaveGauges(_ state: RolloutState) {
        lock.withLock {
            for (group, plan) in state.groups {
                let wave = state.phase.isActive && !plan.isComplete ? plan.wave + 1 : 0
                metrics.rolloutWave(group: group, wave: wave)
                groupsWithWaveGauge.insert(group)
            }
        }
    }

    func clearWaveGauges() {
        lock.withLock { for group in groupsWithWaveGauge { metrics.rolloutWave(group: group, wave: 0) } }
    }

    func waveText(_ state: RolloutState) -> String {
        state.groups.keys.sorted().map { group in
            let plan = state.groups[group]!
            return "\(group):" + plan.policy.waves.indices.map { "\(plan.members(ofWave: $0).count)" }.joined(separator: "/")
        }.joined(separator: " ")
    }
}
