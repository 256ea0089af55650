// The progressive rollout as a pure state machine: events in (a proxy connected, a type's
// status changed, a proxy disconnected, time passed, an operator's command), changes out.
// No clock, no socket, no store: the server feeds it and performs what it reports, and the
// unit tests drive it with made-up proxies and times.
import MeshModel

/// What a machine step changed, for the server to perform (serve, persist, roll back) and report.
public enum RolloutChange: Sendable, Equatable {
    /// `group` started wave `wave`: its members now receive the new version.
    case waveStarted(group: String, wave: Int)
    /// Every wave of `group` passed.
    case groupCompleted(group: String)
    /// The rollout failed (the phase says whether it rolled back or halted).
    case failed(RolloutFailure)
    /// The rollout is over with this phase (completed, rolled back, aborted, superseded) or halted.
    case finished(RolloutPhase)
    /// An operator's command took effect.
    case operatorAction(RolloutOperatorAction)
    /// Wave `wave` of `group` baked: ask the policy's gate, and answer with `gateAnswered`.
    case gateRequested(group: String, wave: Int, gate: RolloutPolicy.Gate)
}

/// An operator command the rollout cannot take in its phase.
public struct RolloutCommandError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
}

/// One group's input to a new plan.
public struct GroupRolloutInput: Sendable {
    public var policy: RolloutPolicy
    public var changed: Bool

    public init(policy: RolloutPolicy, changed: Bool) {
        self.policy = policy
        self.changed = changed
    }
}

public struct RolloutMachine: Sendable {
    public private(set) var state: RolloutState

    /// The minimum time between handing a proxy the new version and judging it: its responses are written by its
    /// own event loop after the hand-off, so a status read sooner may still describe the previous version.
    public static let settleMilliseconds: Int64 = 200

    /// A new rollout of `target` over `previous`: groups in `groups` roll out in waves, the connected proxies of
    /// each ordered by `canaryOrder` and cut by the policy's cumulative counts. Groups not listed (no policy,
    /// new, removed) are not held back. `connected` lists each connected stream's proxy (a proxy with one stream
    /// per type appears once per stream).
    public init(id: String, target: String, previous: String, groups: [String: GroupRolloutInput], connected: [ProxyKey], now: Int64) {
        var plans: [String: GroupRollout] = [:]
        var streams: [ProxyKey: Int] = [:]
        for proxy in connected { streams[proxy, default: 0] += 1 }
        for (name, input) in groups {
            let nodes = Self.canaryOrder(streams.keys.filter { $0.group == name }.map(\.node))
            let counts = input.policy.cumulativeCounts(groupSize: nodes.count)
            var proxies: [String: ProxyProgress] = [:]
            for (j, node) in nodes.enumerated() {
                var progress = ProxyProgress(wave: counts.firstIndex { j < $0 } ?? counts.count - 1)
                progress.streams = streams[ProxyKey(group: name, node: node)] ?? 0
                // The first wave is handed the version as the rollout starts.
                if progress.wave == 0 && input.changed { progress.receivedAt = now }
                proxies[node] = progress
            }
            plans[name] = GroupRollout(policy: input.policy, changed: input.changed, wave: 0, waveStartedAt: [now],
                                       completedAt: input.changed ? nil : now, proxies: proxies)
        }
        state = RolloutState(id: id, target: target, previous: previous, startedAt: now, groups: plans)
    }

    /// Continues a persisted rollout after a restart: connections are unknown until proxies reconnect, and the
    /// current wave's members will be handed the version again, so their bake starts again (no wave is skipped
    /// and none is restarted).
    public init(restoring saved: RolloutState) {
        state = saved
        for (name, group) in saved.groups {
            // A gate asked before the restart is asked again (its answer died with the old server).
            if group.gatePassedWave != group.wave { state.groups[name]!.gateAskedWave = nil }
            for (node, progress) in group.proxies {
                var p = progress
                p.streams = 0
                p.types = [:]
                if !group.isComplete && p.wave >= group.wave {
                    p.receivedAt = nil
                    p.settledAt = nil
                }
                state.groups[name]!.proxies[node] = p
            }
        }
    }

    /// The order in which a group's proxies join waves: by a stable hash of the node id, so the plan is the
    /// same on every replica and every run, and canaries are spread rather than alphabetical.
    public static func canaryOrder(_ nodes: [String]) -> [String] {
        nodes.sorted { (fnv1a($0), $0) < (fnv1a($1), $1) }
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    // MARK: Queries

    /// Whether `proxy` is served the new version now (the others keep the previous one).
    public func receivesTarget(_ proxy: ProxyKey) -> Bool { state.servesTarget(proxy) }

    /// The first wave (0-based) of `group` not yet passed, or nil when complete or unknown.
    public func currentWave(of group: String) -> Int? {
        guard let g = state.groups[group], !g.isComplete else { return nil }
        return g.wave
    }

    // MARK: Proxy events

    /// A proxy asks for its configuration: a proxy the plan does not know joins the earliest wave, from the
    /// current one on, that is short of its share once the group counts it (the last wave when none is).
    public mutating func admit(_ proxy: ProxyKey) {
        guard state.phase.isActive, var group = state.groups[proxy.group], group.proxies[proxy.node] == nil else { return }
        if group.isComplete {
            group.proxies[proxy.node] = ProxyProgress(wave: group.wave)
        } else {
            let counts = group.policy.cumulativeCounts(groupSize: group.proxies.count + 1)
            var wave = counts.count - 1
            for i in group.wave..<counts.count {
                let placed = group.proxies.values.filter { $0.wave <= i }.count
                if placed < counts[i] { wave = i; break }
            }
            group.proxies[proxy.node] = ProxyProgress(wave: wave)
        }
        state.groups[proxy.group] = group
    }

    /// One of the proxy's streams was admitted.
    public mutating func connected(_ proxy: ProxyKey, now: Int64) {
        admit(proxy)
        guard var progress = state.groups[proxy.group]?.proxies[proxy.node] else { return }
        progress.streams += 1
        progress.lostAt = nil
        if progress.receivedAt == nil && receivesTarget(proxy) { progress.receivedAt = now }
        state.groups[proxy.group]!.proxies[proxy.node] = progress
    }

    /// One type's status of one of the proxy's streams changed. A rejection of the new version by a proxy of
    /// the current wave fails the rollout.
    public mutating func typeStatus(_ proxy: ProxyKey, typeURL: String, _ progress: TypeProgress, rejection: String?, now: Int64) -> [RolloutChange] {
        guard state.phase.isActive, var group = state.groups[proxy.group], var member = group.proxies[proxy.node] else { return [] }
        member.types[typeURL] = progress
        group.proxies[proxy.node] = member
        state.groups[proxy.group] = group
        guard state.phase != .halted, !group.isComplete, member.wave == group.wave, member.receivedAt != nil,
              progress.sync == .rejected, progress.targetSent else { return [] }
        return fail(RolloutFailure(kind: .nack, proxy: proxy, typeURL: typeURL, detail: rejection ?? "(no error detail)", at: now, wave: group.wave))
    }

    /// One of the proxy's streams ended. The last one ending within a wave that has handed it the new version
    /// fails the rollout; a proxy that leaves before receiving it leaves the plan (it rejoins when it returns).
    public mutating func disconnected(_ proxy: ProxyKey, now: Int64) -> [RolloutChange] {
        guard state.phase.isActive, var group = state.groups[proxy.group], var member = group.proxies[proxy.node] else { return [] }
        member.streams = max(0, member.streams - 1)
        member.types = member.streams == 0 ? [:] : member.types
        guard member.streams == 0 else {
            state.groups[proxy.group]!.proxies[proxy.node] = member
            return []
        }
        if group.isComplete || member.wave < group.wave {
            member.settledAt = nil
            group.proxies[proxy.node] = member
            state.groups[proxy.group] = group
            return []
        }
        if member.wave == group.wave, member.receivedAt != nil, state.phase != .halted {
            group.proxies[proxy.node] = member
            state.groups[proxy.group] = group
            return fail(RolloutFailure(kind: .disconnected, proxy: proxy, typeURL: nil, detail: "the proxy's last stream closed", at: now, wave: group.wave))
        }
        group.proxies[proxy.node] = nil
        state.groups[proxy.group] = group
        return []
    }

    /// One of the proxy's streams went away with the replica that held it (the replica stopped, died or lost the
    /// store): not the proxy's doing, so not a failure. A member of a wave not yet passed left with no stream is
    /// handed the version again when it reconnects elsewhere, and its bake starts again then (as after a restart);
    /// one that does not reconnect within the wave's ACK timeout leaves the plan (see `tick`).
    public mutating func lost(_ proxy: ProxyKey, now: Int64) {
        guard state.phase.isActive, var group = state.groups[proxy.group], var member = group.proxies[proxy.node] else { return }
        member.streams = max(0, member.streams - 1)
        if member.streams == 0 {
            member.types = [:]
            member.settledAt = nil
            member.lostAt = now
            if !group.isComplete && member.wave >= group.wave { member.receivedAt = nil }
        }
        group.proxies[proxy.node] = member
        state.groups[proxy.group] = group
    }

    // MARK: Time

    /// Judges every group's current wave: a member passes once every type it subscribes to is ACKed since it was
    /// handed the new version and it has stayed connected for the bake time after that; a member still not ACKing
    /// after the ACK timeout fails the rollout. A passed wave starts the next one (unless paused).
    public mutating func tick(now: Int64) -> [RolloutChange] {
        guard state.phase == .running || state.phase == .paused else { return [] }
        var changes: [RolloutChange] = []
        for name in state.groups.keys.sorted() {
            guard var group = state.groups[name], !group.isComplete else { continue }
            // Members whose replica went away and who have not reconnected anywhere within the ACK timeout (a host
            // that is gone) leave the plan, and rejoin it if they return. Each is replaced by the next connected
            // proxy of a later wave in canary order, so the wave still has its share of proxies that took the new
            // version before the rest do (an emptied canary wave must not pass on no evidence).
            var replaced = false
            for node in group.members(ofWave: group.wave) {
                guard let member = group.proxies[node], member.streams == 0, let lostAt = member.lostAt,
                      now - lostAt >= group.policy.ackTimeoutMilliseconds else { continue }
                group.proxies[node] = nil
                let later = Self.canaryOrder(group.proxies.filter { $0.value.wave > group.wave && $0.value.streams > 0 }.map(\.key))
                if let substitute = later.first {
                    group.proxies[substitute]!.wave = group.wave
                    group.proxies[substitute]!.receivedAt = now
                    group.proxies[substitute]!.settledAt = nil
                    replaced = true
                }
            }
            if replaced { changes.append(.waveStarted(group: name, wave: group.wave)) }
            var passed = true
            for node in group.members(ofWave: group.wave) {
                var member = group.proxies[node]!
                guard let received = member.receivedAt, member.streams > 0 else { passed = false; continue }
                let waiting = member.types.filter { $0.value.sync != .synced || ($0.value.targetSent && $0.value.ackedAt == nil) }
                // The new version must have been ACKed on some type, not merely nothing be outstanding: right after the
                // hand-off the statuses still describe the previous version.
                let ackedTarget = member.types.values.contains { $0.targetSent && $0.sync == .synced && $0.ackedAt != nil }
                if !waiting.isEmpty || !ackedTarget || now - received < Self.settleMilliseconds {
                    member.settledAt = nil
                    group.proxies[node] = member
                    passed = false
                    if now - received >= group.policy.ackTimeoutMilliseconds {
                        state.groups[name] = group
                        let type = waiting.keys.sorted().first
                        return changes + fail(RolloutFailure(kind: .silent, proxy: ProxyKey(group: name, node: node), typeURL: type,
                                                             detail: "no ACK of the new version within \(RolloutPolicy.seconds(group.policy.ackTimeoutMilliseconds)) of receiving it",
                                                             at: now, wave: group.wave))
                    }
                    continue
                }
                let lastAck = member.types.values.filter(\.targetSent).compactMap(\.ackedAt).max() ?? received
                let settled = max(received, lastAck)
                if member.settledAt == nil { member.settledAt = settled }
                group.proxies[node] = member
                if now - member.settledAt! < group.policy.bakeMilliseconds { passed = false }
            }
            state.groups[name] = group
            guard passed && state.phase == .running else { continue }
            if let gate = group.policy.gate, group.gatePassedWave != group.wave {
                // The proxies passed; the gate has the last word on this wave.
                if group.gateAskedWave != group.wave {
                    state.groups[name]!.gateAskedWave = group.wave
                    changes.append(.gateRequested(group: name, wave: group.wave, gate: gate))
                }
                continue
            }
            changes += advance(name, now: now)
        }
        return changes + finishIfComplete(now: now)
    }

    /// The gate's answer for wave `wave` of `group`: a pass lets the wave advance, anything else fails the rollout.
    public mutating func gateAnswered(group name: String, wave: Int, passed: Bool, detail: String, now: Int64) -> [RolloutChange] {
        guard state.phase == .running || state.phase == .paused, let group = state.groups[name], !group.isComplete,
              group.wave == wave, group.gateAskedWave == wave else { return [] }
        if passed {
            state.groups[name]!.gatePassedWave = wave
            return tick(now: now)
        }
        return fail(RolloutFailure(kind: .gate, proxy: ProxyKey(group: name, node: "(gate)"), typeURL: nil, detail: detail, at: now, wave: wave))
    }

    /// Moves `group` to its next wave (or completes it), handing the new version to the next wave's members.
    private mutating func advance(_ name: String, now: Int64) -> [RolloutChange] {
        var group = state.groups[name]!
        guard !group.isComplete else { return [] }
        if group.wave + 1 >= group.policy.waves.count {
            group.completedAt = now
            state.groups[name] = group
            return [.groupCompleted(group: name)]
        }
        group.wave += 1
        group.waveStartedAt.append(now)
        for (node, progress) in group.proxies where progress.wave == group.wave && progress.streams > 0 {
            group.proxies[node]!.receivedAt = now
        }
        state.groups[name] = group
        return [.waveStarted(group: name, wave: group.wave)]
    }

    private mutating func finishIfComplete(now: Int64) -> [RolloutChange] {
        guard state.phase == .running, state.groups.values.allSatisfy(\.isComplete) else { return [] }
        state.phase = .completed
        state.finishedAt = now
        return [.finished(.completed)]
    }

    private mutating func fail(_ failure: RolloutFailure) -> [RolloutChange] {
        state.failure = failure
        let policy = state.groups[failure.proxy.group]?.policy.onFailure ?? .rollback
        state.phase = policy == .rollback ? .rolledBack : .halted
        if policy == .rollback { state.finishedAt = failure.at }
        return [.failed(failure), .finished(state.phase)]
    }

    // MARK: Operators

    /// Holds every group at its current wave (failures are still detected).
    public mutating func pause(by person: String, reason: String?, now: Int64) throws(RolloutCommandError) -> [RolloutChange] {
        guard state.phase == .running else { throw RolloutCommandError(description: "the rollout of \(state.target.prefix(12)) is \(state.phase.rawValue), not running; only a running rollout can be paused") }
        state.phase = .paused
        return [record("pause", by: person, reason: reason, now: now)]
    }

    /// Lets a paused rollout advance again.
    public mutating func resume(by person: String, reason: String?, now: Int64) throws(RolloutCommandError) -> [RolloutChange] {
        guard state.phase == .paused else {
            let hint = state.phase == .halted ? "; a halted rollout failed: promote it to send the version everywhere, or abort it to roll back" : ""
            throw RolloutCommandError(description: "the rollout of \(state.target.prefix(12)) is \(state.phase.rawValue), not paused\(hint)")
        }
        state.phase = .running
        return [record("resume", by: person, reason: reason, now: now)] + tick(now: now)
    }

    /// Skips the rest of the current wave's bake: every unfinished group starts its next wave now. A halted
    /// rollout is promoted to completion: the person overrides the failure and the version goes everywhere.
    public mutating func promote(by person: String, reason: String?, now: Int64) throws(RolloutCommandError) -> [RolloutChange] {
        guard state.phase.isActive else { throw RolloutCommandError(description: "the rollout of \(state.target.prefix(12)) is \(state.phase.rawValue); there is nothing to promote") }
        var changes = [record("promote", by: person, reason: reason, now: now)]
        if state.phase == .halted {
            for name in state.groups.keys.sorted() where !state.groups[name]!.isComplete {
                state.groups[name]!.completedAt = now
                changes.append(.groupCompleted(group: name))
            }
            state.phase = .completed
            state.finishedAt = now
            return changes + [.finished(.completed)]
        }
        state.phase = .running
        for name in state.groups.keys.sorted() { changes += advance(name, now: now) }
        return changes + finishIfComplete(now: now)
    }

    /// Ends the rollout; the server rolls the live pointer back to the previous version.
    public mutating func abort(by person: String, reason: String?, now: Int64) throws(RolloutCommandError) -> [RolloutChange] {
        guard state.phase.isActive else { throw RolloutCommandError(description: "the rollout of \(state.target.prefix(12)) is \(state.phase.rawValue); there is nothing to abort") }
        let action = record("abort", by: person, reason: reason, now: now)
        state.phase = .aborted
        state.finishedAt = now
        return [action, .finished(.aborted)]
    }

    /// A newer version was published while this rollout runs: it waits until this one completes. A version already
    /// waiting is replaced (collapsed): only the newest is rolled out next. Returns the version it replaced.
    @discardableResult
    public mutating func enqueue(_ version: String) -> String? {
        guard state.phase.isActive, version != state.queued else { return nil }
        let replaced = state.queued
        if let replaced { state.collapsed.append(replaced) }
        state.queued = version
        return replaced
    }

    /// A newer version became live before this one was everywhere.
    public mutating func supersede(now: Int64) -> [RolloutChange] {
        guard state.phase.isActive else { return [] }
        state.phase = .superseded
        state.finishedAt = now
        return [.finished(.superseded)]
    }

    private mutating func record(_ action: String, by person: String, reason: String?, now: Int64) -> RolloutChange {
        let entry = RolloutOperatorAction(action: action, by: person, reason: reason, at: now)
        state.actions.append(entry)
        return .operatorAction(entry)
    }
}
