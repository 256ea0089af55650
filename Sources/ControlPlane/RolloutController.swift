// The server's side of a progressive rollout: decides, for each newly live snapshot, whether
// it rolls out at once or in waves (the policy records the snapshot carries); feeds the pure
// RolloutMachine with stream events (it is an XDSServerObserver), time and operators'
// requests from the store; and performs what the machine reports: hand the next wave its
// version (the hub), save the state (the store), move the live pointer back on failure (the
// store's rollback, recorded in history), count, log.
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
/// the store watcher, ticks from its own queue. Lock order: the controller never calls the hub while holding
/// its lock (the hub calls `receivesNew` outside its own).
public final class RolloutController: XDSServerObserver, @unchecked Sendable {
    // @unchecked Sendable: rule 2 — every mutable field (machine, previous, expectedRollback, streams, stopped,
    // loadedOnce, timer, groupsWithWaveGauge) is read and written only under `lock`; hub, store, log and metrics are
    // thread-safe themselves.
    private let hub: SnapshotHub
    private let store: any SnapshotStoring
    private let log: ServerLog
    private let metrics: ServerMetrics
    private let lock = NSLock()
    private var machine: RolloutMachine?
    /// The snapshot proxies are held back on while `machine` is active.
    private var previous: ServedSnapshot?
    /// The version this controller rolled the store back to (its next load is not a new rollout).
    private var expectedRollback: String?
    private var streams: [ObjectIdentifier: ProxyKey] = [:]
    private var stopped = false
    private var loadedOnce = false
    private let queue = DispatchQueue(label: "meshctl.rollout")
    private var timer: DispatchSourceTimer?
    private var groupsWithWaveGauge: Set<String> = []
    /// For the policies' external gates (no cache, no cookies).
    private let gateSession = URLSession(configuration: .ephemeral)

    /// How often waves are judged and operators' requests taken.
    public static let tickInterval: DispatchTimeInterval = .milliseconds(100)

    public init(hub: SnapshotHub, store: any SnapshotStoring, log: ServerLog, metrics: ServerMetrics) {
        self.hub = hub
        self.store = store
        self.log = log
        self.metrics = metrics
    }

    static func now() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

    /// The current (or last) rollout's state, for the admin endpoint.
    public var state: RolloutState? { lock.withLock { machine?.state } }

    /// Starts judging waves and taking requests.
    public func start() {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + Self.tickInterval, repeating: Self.tickInterval)
        timer.setEventHandler { [weak self] in self?.tick() }
        timer.resume()
        lock.withLock { self.timer = timer }
    }

    /// Stops before the server drains: streams closing during a drain are not proxies failing.
    public func stop() {
        let timer = lock.withLock { () -> DispatchSourceTimer? in
            stopped = true
            return self.timer
        }
        timer?.cancel()
        queue.sync {}
    }

    // MARK: Snapshots

    /// Serves a newly live snapshot: at once, as the start (or, after a restart, the continuation) of a rollout,
    /// or — while another rollout runs — queued behind it. Returns the number of streams handed a new view.
    public func serve(_ snapshot: Snapshot) -> Int {
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
                return .immediate
            }
            if let machine, machine.state.phase.isActive {
                if machine.state.target == version, let previous { return .keep(previous) }
                // An emergency override (no policy) or a person's rollback goes everywhere now, ending the rollout.
                if policies.isEmpty || isOperatorRollback(to: version) {
                    schedule(self.machine!.supersede(now: now), state: self.machine!.state)
                    return .immediate
                }
                // Anything else waits for the running rollout; a newer publish replaces one already waiting.
                let replaced = self.machine!.enqueue(version)
                let state = self.machine!.state
                queue.async { [self] in save(state) }
                return .queued(state, replaced: replaced)
            }
            guard !policies.isEmpty, let current = hub.current, current.version != version else { return .immediate }
            if isOperatorRollback(to: version) { return .immediate }
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

    /// Starts rolling `snapshot` out over `before` (what every proxy has now).
    private func start(_ snapshot: Snapshot, policies: [String: RolloutPolicy], before: ServedSnapshot, now: Int64) -> Int {
        let version = snapshot.metadata.version
        let next = ServedSnapshot(snapshot)
        var inputs: [String: GroupRolloutInput] = [:]
        for (group, policy) in policies {
            // A group the previous version did not have cannot be held back on it.
            guard let old = before.groups[group], let new = next.groups[group] else { continue }
            inputs[group] = GroupRolloutInput(policy: policy, changed: old.contentHash != new.contentHash)
        }
        let started: RolloutState = lock.withLock {
            let fresh = RolloutMachine(id: UUID().uuidString.lowercased(), target: version, previous: before.version,
                                       groups: inputs, connected: Array(streams.values), now: now)
            machine = fresh
            previous = before
            let state = fresh.state
            queue.async { [self] in save(state) }
            return state
        }
        log.info("rollout.started", ["target": String(version.prefix(12)), "previous": String(before.version.prefix(12)),
                                     "groups": "\(inputs.count)", "waves": waveText(started)])
        updateWaveGauges(started)
        let notified = hub.serve(snapshot, rollout: serving(before))
        queue.async { [weak self] in self?.tick() }
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

    /// A person moved the live pointer back (`meshctl snapshot rollback`): that goes everywhere at once.
    private func isOperatorRollback(to version: String) -> Bool {
        guard let last = try? store.history().last else { return false }
        return last.kind == .rollback && last.version == version
    }

    private func savedState() -> RolloutState? {
        guard let store = store as? any RolloutStateStoring, let data = try? store.loadRolloutState() else { return nil }
        return RolloutState.decode(data)
    }

    private func serving(_ before: ServedSnapshot) -> RolloutServing {
        RolloutServing(previous: before) { [weak self] group, node in self?.receivesNew(ProxyKey(group: group, node: node)) ?? true }
    }

    private func receivesNew(_ proxy: ProxyKey) -> Bool {
        lock.withLock {
            guard machine != nil else { return true }
            machine!.admit(proxy)
            return machine!.receivesTarget(proxy)
        }
    }

    // MARK: Stream events

    public func streamOpened(_ stream: ObjectIdentifier, record: ProxyStreamRecord, description: String, snapshotVersion: String) {
        let proxy = ProxyKey(group: record.group, node: record.nodeID)
        lock.withLock {
            streams[stream] = proxy
            guard !stopped else { return }
            machine?.connected(proxy, now: Self.now())
        }
    }

    public func statusChanged(_ stream: ObjectIdentifier, status: ProxyTypeStatus) {
        step { machine, streams in
            guard let proxy = streams[stream] else { return [] }
            let sync: TypeSync = switch status.status {
            case .synced, .notSent: .synced
            case .stale: .pending
            case .nacked: .rejected
            }
            let progress = TypeProgress(sync: sync, targetSent: status.snapshotSent == machine.state.target,
                                        ackedAt: status.ackedAt.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) })
            return machine.typeStatus(proxy, typeURL: status.typeURL, progress, rejection: status.nack?.message, now: Self.now())
        }
    }

    public func streamClosed(_ stream: ObjectIdentifier, mode: SubscriptionMode) {
        let proxy = lock.withLock { streams.removeValue(forKey: stream) }
        guard let proxy else { return }
        step { machine, _ in machine.disconnected(proxy, now: Self.now()) }
    }

    // MARK: Time and operators

    private func tick() {
        for request in takeRequests() { apply(request) }
        step { machine, _ in machine.tick(now: Self.now()) }
    }

    private func takeRequests() -> [RolloutRequest] {
        guard let store = store as? any RolloutStateStoring else { return [] }
        do { return try store.takeRolloutRequests() } catch {
            log.error("rollout.requests-unreadable", ["store": self.store.location, "error": "\(error)"], rateLimitKey: "rollout.requests")
            return []
        }
    }

    private func apply(_ request: RolloutRequest) {
        var refusal: String?
        step { machine, _ in
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
    private func step(_ body: (inout RolloutMachine, [ObjectIdentifier: ProxyKey]) -> [RolloutChange]) {
        lock.withLock {
            guard !stopped, machine != nil else { return }
            let changes = body(&machine!, streams)
            guard !changes.isEmpty else { return }
            schedule(changes, state: machine!.state)
        }
    }

    /// Queues `perform`; called with the lock held.
    private func schedule(_ changes: [RolloutChange], state: RolloutState) {
        queue.async { [self] in perform(changes, state: state) }
    }

    // MARK: Performing changes

    private func perform(_ changes: [RolloutChange], state: RolloutState) {
        save(state)
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
    private func rollBack(_ state: RolloutState, phase: RolloutPhase) {
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
        step { machine, _ in
            guard machine.state.id == rolloutID else { return [] }
            return machine.gateAnswered(group: group, wave: wave, passed: passed, detail: detail, now: Self.now())
        }
    }

    private func save(_ state: RolloutState) {
        guard let store = store as? any RolloutStateStoring else { return }
        do { try store.saveRolloutState(state.encoded()) } catch {
            log.error("rollout.state-unsaved", ["store": self.store.location, "error": "\(error)"], rateLimitKey: "rollout.state")
        }
    }

    private func updateWaveGauges(_ state: RolloutState) {
        lock.withLock {
            for (group, plan) in state.groups {
                let wave = state.phase.isActive && !plan.isComplete ? plan.wave + 1 : 0
                metrics.rolloutWave(group: group, wave: wave)
                groupsWithWaveGauge.insert(group)
            }
        }
    }

    private func clearWaveGauges() {
        lock.withLock { for group in groupsWithWaveGauge { metrics.rolloutWave(group: group, wave: 0) } }
    }

    private func waveText(_ state: RolloutState) -> String {
        state.groups.keys.sorted().map { group in
            let plan = state.groups[group]!
            return "\(group):" + plan.policy.waves.indices.map { "\(plan.members(ofWave: $0).count)" }.joined(separator: "/")
        }.joined(separator: " ")
    }
}
