// Several `meshctl serve` replicas on one shared store: one leads the rollout (it holds the store's
// lease), the others follow the state it saves. Two pure decisions, kept here so they are tested
// without a database: whether this replica may act as leader now (by its own monotonic clock,
// stepping down before its lease could have expired in the store), and what a follower serves for
// the live version given the saved state.
import Foundation

/// This replica's side of the leader lease. The store decides who holds the lease (by its own clock); the tracker
/// decides, by the replica's monotonic clock, until when this replica may act on it: a claim's answer is dated from
/// when the claim was sent, and the replica stops acting `margin` before the lease could expire, so a replica
/// that cannot reach the store stops leading before another can take over.
public struct LeaderLeaseTracker: Sendable, Equatable {
    public enum Transition: Sendable, Equatable {
        case unchanged
        /// The replica leads from now on under `term` (also when it held an earlier term: it must reload the state).
        case became(term: Int64)
        /// The replica no longer leads.
        case lost(term: Int64)
    }

    public let replica: String
    public let margin: Int64
    /// The term this replica leads under, nil when it follows.
    public private(set) var term: Int64?
    private var validUntil: Int64 = 0

    public init(replica: String, marginMilliseconds: Int64) {
        self.replica = replica
        self.margin = marginMilliseconds
    }

    /// Whether the replica may act as leader at `now`.
    public func leads(now: Int64) -> Bool { term != nil && now < validUntil }

    /// The store answered a claim sent at `sentAt`: `holder` holds the lease of `term` for `remaining` more ms.
    public mutating func claimed(holder: String, term leaseTerm: Int64, remainingMilliseconds remaining: Int64, sentAt: Int64) -> Transition {
        guard holder == replica, remaining > margin else { return stepDown() }
        validUntil = sentAt + remaining - margin
        if term == leaseTerm { return .unchanged }
        term = leaseTerm
        return .became(term: leaseTerm)
    }

    /// The claim could not be made (the store is unreachable): the replica keeps leading only while its last
    /// renewal is valid.
    public mutating func expire(now: Int64) -> Transition {
        guard term != nil, now >= validUntil else { return .unchanged }
        return stepDown()
    }

    /// A fenced write found another replica holding the lease.
    public mutating func fenced() -> Transition { stepDown() }

    private mutating func stepDown() -> Transition {
        guard let held = term else { return .unchanged }
        term = nil
        validUntil = 0
        return .lost(term: held)
    }
}

/// What a follower serves for the store's live version.
public enum FollowerServing: Sendable, Equatable {
    /// The live version to every proxy (no rollout holds it back).
    case everyone
    /// `target` to the proxies the saved plan admits, `previous` to the others (`RolloutState.servesTarget`).
    case plan(target: String, previous: String)
    /// What is served now stays: the live version carries a rollout policy but the leader has not saved a plan for
    /// it yet (no proxy may get it before the plan says so).
    case hold

    /// - Parameters:
    ///   - live: the store's live version.
    ///   - livePolicies: whether it carries a rollout policy for any group.
    ///   - operatorRollback: whether the live pointer got there by a rollback (those go everywhere at once).
    ///   - state: the rollout state the leader saved last.
    public static func decide(live: String, livePolicies: Bool, operatorRollback: Bool, state: RolloutState?) -> FollowerServing {
        if !livePolicies || operatorRollback { return .everyone }
        guard let state else { return .hold }
        if state.target == live {
            return state.phase == .completed || state.phase == .superseded ? .everyone : .plan(target: live, previous: state.previous)
        }
        if state.phase.isActive && (state.queued == live || state.collapsed.contains(live)) {
            return .plan(target: state.target, previous: state.previous)
        }
        return .hold
    }
}
