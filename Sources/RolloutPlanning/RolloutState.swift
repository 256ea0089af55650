// The persisted record of one progressive rollout: the plan (per group: policy, which types
// changed, which proxy is in which wave), where it stands, and how it ended. Plain Codable
// values: the server keeps the latest copy in the store, so a restarted server (or another
// replica on a shared store) continues the same plan at the same wave.
import Foundation
import MeshModel

/// One proxy: its group and node id.
public struct ProxyKey: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public var group: String
    public var node: String

    public init(group: String, node: String) {
        self.group = group
        self.node = node
    }

    public static func < (a: ProxyKey, b: ProxyKey) -> Bool { (a.group, a.node) < (b.group, b.node) }

    public var description: String { "\(node) (group \(group))" }
}

/// Where a rollout stands.
public enum RolloutPhase: String, Codable, Sendable {
    /// Waves advance as they pass.
    case running
    /// An operator holds the current wave; failures are still detected.
    case paused
    /// A wave failed under `on_failure: halt`: what was rolled out stays, nothing advances, a person decides.
    case halted
    /// Every group's last wave passed (or an operator promoted a halted rollout): the version is everywhere.
    case completed
    /// A wave failed and the live pointer went back to the previous version.
    case rolledBack = "rolled_back"
    /// An operator aborted it: the live pointer went back to the previous version.
    case aborted
    /// A newer publish replaced the version before it was everywhere.
    case superseded

    /// The server still serves two versions side by side.
    public var isActive: Bool { self == .running || self == .paused || self == .halted }

    /// The `result` label of `meshctl_rollouts_total` once the rollout is over (halted counts when it halts).
    public var result: String { rawValue }
}

/// Why a rollout stopped.
public struct RolloutFailure: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// The proxy rejected the new version.
        case nack
        /// The proxy disconnected within the bake time after receiving the new version (a crash?).
        case disconnected
        /// The proxy did not ACK the new version within the ACK timeout (a hang?).
        case silent
        /// The policy's external gate answered anything but 2xx, or nothing within its timeout.
        case gate
    }

    public var kind: Kind
    public var proxy: ProxyKey
    public var typeURL: String?
    /// Envoy's error detail for a NACK; what was observed otherwise.
    public var detail: String
    public var at: Int64
    public var wave: Int

    public init(kind: Kind, proxy: ProxyKey, typeURL: String?, detail: String, at: Int64, wave: Int) {
        self.kind = kind
        self.proxy = proxy
        self.typeURL = typeURL
        self.detail = detail
        self.at = at
        self.wave = wave
    }

    /// One line for history, logs and `meshctl status`.
    public var summary: String {
        let type = typeURL.map { " " + ($0.split(separator: ".").last.map(String.init) ?? $0) } ?? ""
        switch kind {
        case .nack: return "proxy \(proxy.node) (group \(proxy.group)) rejected\(type) in wave \(wave + 1): \(detail)"
        case .disconnected: return "proxy \(proxy.node) (group \(proxy.group)) disconnected in wave \(wave + 1) within the bake time after receiving the new version"
        case .silent: return "proxy \(proxy.node) (group \(proxy.group)) did not ACK\(type) in wave \(wave + 1): \(detail)"
        case .gate: return "the gate failed wave \(wave + 1) of group \(proxy.group): \(detail)"
        }
    }
}

/// An operator's command, as recorded.
public struct RolloutOperatorAction: Codable, Sendable, Equatable {
    public var action: String
    public var by: String
    public var reason: String?
    public var at: Int64

    public init(action: String, by: String, reason: String?, at: Int64) {
        self.action = action
        self.by = by
        self.reason = reason
        self.at = at
    }
}

/// How a type of one proxy stands against the version it was last sent (from the server's per-type status).
public enum TypeSync: String, Codable, Sendable {
    /// The latest response is ACKed (or nothing was ever sent).
    case synced
    /// The latest response awaits an answer.
    case pending
    /// The proxy rejected the latest response.
    case rejected
}

/// One type of one proxy, as the gate reads it.
public struct TypeProgress: Codable, Sendable, Equatable {
    public var sync: TypeSync
    /// The latest response carried the rollout's target version.
    public var targetSent: Bool
    /// When the latest response was ACKed.
    public var ackedAt: Int64?

    public init(sync: TypeSync, targetSent: Bool, ackedAt: Int64?) {
        self.sync = sync
        self.targetSent = targetSent
        self.ackedAt = ackedAt
    }
}

/// One proxy in the plan.
public struct ProxyProgress: Codable, Sendable, Equatable {
    public var wave: Int
    /// When the server handed it the new version (nil: not yet, or not since the server restarted).
    public var receivedAt: Int64?
    /// When every type it subscribes to was ACKed after the new version went out, and it stayed connected since.
    public var settledAt: Int64?
    /// Connected streams now (not meaningful across a restart: reset when restored).
    public var streams: Int
    public var types: [String: TypeProgress]
    /// When its last stream went away with a replica (`lost`); cleared when it connects again. A member of the
    /// current wave gone longer than the wave's ACK timeout leaves the plan, so a host that never comes back
    /// does not hold the rollout.
    public var lostAt: Int64?

    public init(wave: Int) {
        self.wave = wave
        streams = 0
        types = [:]
    }
}

/// One group's part of the plan.
public struct GroupRollout: Codable, Sendable, Equatable {
    public var policy: RolloutPolicy
    /// Whether anything the group's proxies receive changed (a group with nothing changed completes at once).
    public var changed: Bool
    /// The current wave (index into `policy.waves`).
    public var wave: Int
    /// When each wave started.
    public var waveStartedAt: [Int64]
    public var completedAt: Int64?
    /// node id → progress.
    public var proxies: [String: ProxyProgress]
    /// The wave the policy's gate was last asked about, and the last wave it passed.
    public var gateAskedWave: Int? = nil
    public var gatePassedWave: Int? = nil

    public var isComplete: Bool { completedAt != nil }

    /// Nodes of wave `index`, sorted.
    public func members(ofWave index: Int) -> [String] { proxies.filter { $0.value.wave == index }.map(\.key).sorted() }
}

/// The whole rollout.
public struct RolloutState: Codable, Sendable, Equatable {
    public var id: String
    /// The version being rolled out (the store's live version while the rollout runs).
    public var target: String
    /// The version proxies not yet in a passed wave keep.
    public var previous: String
    public var startedAt: Int64
    public var phase: RolloutPhase
    public var groups: [String: GroupRollout]
    public var failure: RolloutFailure?
    public var actions: [RolloutOperatorAction]
    public var finishedAt: Int64?
    /// The newest version published while this rollout ran: it starts when this one completes (and is dropped
    /// when this one is rolled back). Nil when nothing waits.
    public var queued: String?
    /// Versions that waited in the queue and were replaced there by a newer publish, oldest first.
    public var collapsed: [String]

    public init(id: String, target: String, previous: String, startedAt: Int64, groups: [String: GroupRollout]) {
        self.id = id
        self.target = target
        self.previous = previous
        self.startedAt = startedAt
        self.phase = .running
        self.groups = groups
        self.failure = nil
        self.actions = []
        self.finishedAt = nil
        self.queued = nil
        self.collapsed = []
    }

    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return (try? encoder.encode(self)) ?? Data()
    }

    public static func decode(_ data: Data) -> RolloutState? { try? JSONDecoder().decode(RolloutState.self, from: data) }

    /// Whether `proxy` is served the new version now (the others keep the previous one). A proxy the plan does not
    /// know yet gets the previous version while its group is held back: only the leader places proxies in waves.
    public func servesTarget(_ proxy: ProxyKey) -> Bool {
        switch phase {
        case .completed, .superseded: return true
        case .rolledBack, .aborted: return false
        case .running, .paused, .halted:
            guard let group = groups[proxy.group] else { return true }
            if group.isComplete { return true }
            guard let progress = group.proxies[proxy.node] else { return false }
            return progress.wave <= group.wave
        }
    }
}
