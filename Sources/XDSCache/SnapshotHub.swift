// The snapshot being served and the streams being served from it. Replacing the
// snapshot hands each stream whose view changed its new view, on the stream's own
// event loop; streams whose view did not change are not woken. During a progressive
// rollout the hub serves two snapshots side by side: the new one to proxies the
// rollout admits, the previous one to the rest. The hub knows no transport: a stream
// names the serial executor (its event loop) it must be called on.
import Foundation
import SnapshotStorage
import XDSProtocol

/// A serial executor a subscriber is confined to (the server's event loops conform).
public protocol SubscriberExecutor: AnyObject, Sendable {
    /// Runs `work` on the executor, after work already queued.
    func execute(_ work: @escaping @Sendable () -> Void)
}

/// Something a snapshot change is delivered to (an xDS stream), always on `executor`.
public protocol SnapshotSubscriber: AnyObject {
    var executor: any SubscriberExecutor { get }
    func snapshotChanged(to view: GroupView)
}

/// Two versions served side by side while a rollout runs: `previous` to every proxy `receivesNew` refuses.
public struct RolloutServing: Sendable {
    public let previous: ServedSnapshot
    /// Whether the proxy (group, node id) gets the new snapshot. Called outside the hub's lock, possibly from
    /// many threads; it may admit an unknown proxy into the rollout's plan.
    public let receivesNew: @Sendable (_ group: String, _ nodeID: String) -> Bool

    public init(previous: ServedSnapshot, receivesNew: @escaping @Sendable (_ group: String, _ nodeID: String) -> Bool) {
        self.previous = previous
        self.receivesNew = receivesNew
    }
}

/// A loop-confined subscriber carried across threads; only touched on its own loop. A class: every change copies
/// the references of all streams into per-loop lists, and a struct holding a weak reference makes each copy a
/// side-table increment plus three more retains (≈ 2 % of the server's CPU per change at 10,000 proxies).
private final class SubscriberReference: @unchecked Sendable {
    // @unchecked Sendable: the weak subscriber is only dereferenced on its own loop, through `executor`.
    weak var subscriber: (any SnapshotSubscriber)?
    let executor: any SubscriberExecutor
    let group: String
    let nodeID: String

    init(subscriber: any SnapshotSubscriber, executor: any SubscriberExecutor, group: String, nodeID: String) {
        self.subscriber = subscriber
        self.executor = executor
        self.group = group
        self.nodeID = nodeID
    }
}

/// The current snapshot and the streams that follow it. Thread-safe.
public final class SnapshotHub: @unchecked Sendable {
    // @unchecked Sendable: `served`, `rollout`, `subscribers`, `delivered`, `accountedLive`, `freshnessWaiters`, `refresher` and the startup fields are only touched under `lock`; subscribers are called on their own loops.
    private let lock = NSLock()
    private var served: ServedSnapshot?
    private var rollout: RolloutServing?
    private var subscribers: [ObjectIdentifier: SubscriberReference] = [:]
    /// The content hash of the view each subscriber was last handed (or started with).
    private var delivered: [ObjectIdentifier: String] = [:]
    /// A live version the store names that this hub knowingly does not serve yet (a publish queued behind a rollout):
    /// reading it from the store still confirms this replica is up to date.
    private var accountedLive: String?
    private var freshnessWaiters: [FreshnessWaiter] = []
    private var refresher: (@Sendable () -> Void)?
    /// True from a feed's start until something is served or the store is found to have nothing to serve; the work of
    /// streams that arrive meanwhile waits in `startupWaiters`.
    private var startingUp = false
    private var startupWaiters: [FreshnessWaiter] = []

    /// Work waiting until this replica has read the store's live version (after the work was queued) and serves it.
    private struct FreshnessWaiter {
        let executor: any SubscriberExecutor
        let work: @Sendable () -> Void
        /// Confirmations seen since queued: the first may come from a read that began before; the second cannot.
        var confirmations = 0
    }


    public init() {}

    /// The newest snapshot (the store's live one), if one was loaded.
    public var current: ServedSnapshot? { lock.withLock { served } }

    /// The previous snapshot while a rollout holds proxies back on it.
    public var heldBack: ServedSnapshot? { lock.withLock { rollout?.previous } }

    /// The view the proxy `nodeID` of `group` is to be served now: the newest snapshot's, or during a rollout
    /// the previous one's when the rollout has not reached the proxy (nil when neither has the group).
    public func view(group: String, nodeID: String) -> GroupView? {
        let (newest, rollout) = lock.withLock { (served, self.rollout) }
        guard let rollout else { return newest?.groups[group] }
        if rollout.receivesNew(group, nodeID) { return newest?.groups[group] ?? rollout.previous.groups[group] }
        return rollout.previous.groups[group] ?? newest?.groups[group]
    }

    /// Serves `snapshot` from now on, ending any rollout (`rollout` nil) or starting one; every stream whose
    /// view changed gets it. Returns the number of streams notified.
    @discardableResult
    public func serve(_ snapshot: Snapshot, rollout: RolloutServing? = nil) -> Int {
        let next = ServedSnapshot(snapshot)
        lock.withLock {
            served = next
            self.rollout = rollout
        }
        let notified = redeliver()
        finishStartup()
        return notified
    }

    /// Replaces (or ends, with nil) the rollout's side-by-side serving without a new snapshot, e.g. when a
    /// wave starts or the rollout fails; every stream whose view changed gets it. Returns the streams notified.
    @discardableResult
    public func updateRollout(_ rollout: RolloutServing?) -> Int {
        lock.withLock { self.rollout = rollout }
        return redeliver()
    }

    /// Hands every stream whose view changed its new view, per loop. What a stream is due is recorded when it is
    /// planned, so each change is counted once; the hand-off itself delivers whatever view is current when it runs.
    public func redeliver() -> Int {
        let targets = lock.withLock { subscribers.map { ($0.key, $0.value, delivered[$0.key]) } }
        var due: [(ObjectIdentifier, SubscriberReference, String)] = []
        for (key, target, last) in targets {
            guard let view = view(group: target.group, nodeID: target.nodeID), view.contentHash != last else { continue }
            due.append((key, target, view.contentHash))
        }
        lock.withLock { for (key, _, hash) in due where subscribers[key] != nil { delivered[key] = hash } }
        var perLoop: [ObjectIdentifier: (loop: any SubscriberExecutor, streams: [SubscriberReference])] = [:]
        for (_, target, _) in due { perLoop[ObjectIdentifier(target.executor), default: (target.executor, [])].streams.append(target) }
        for (loop, streams) in perLoop.values { handOff(streams[...], on: loop) }
        return due.count
    }

    /// Streams handed their new view per loop turn. Between chunks the loop writes what the previous
    /// chunk produced and reads ACKs, so the first proxies are not held back until every stream on the
    /// loop has been planned (and the loop keeps serving other connections meanwhile).
    public static let handOffChunk = 128

    /// Each chunk delivers the view current when it runs, not when it was queued: a later snapshot may
    /// arrive while chunks are pending, and no stream may be handed an older view after a newer one.
    private func handOff(_ streams: ArraySlice<SubscriberReference>, on loop: any SubscriberExecutor) {
        let chunk = streams.prefix(Self.handOffChunk)
        let rest = streams.dropFirst(Self.handOffChunk)
        loop.execute { [self] in
            for reference in chunk {
                guard let subscriber = reference.subscriber, let view = view(group: reference.group, nodeID: reference.nodeID) else { continue }
                subscriber.snapshotChanged(to: view)
            }
            if !rest.isEmpty { handOff(rest, on: loop) }
        }
    }

    /// `subscriber` gets every later view of `group` for `nodeID` that differs in content from `startedWith`
    /// (the view it was created with), on its executor. A change that happened between the stream taking its
    /// first view and subscribing is delivered at once.
    public func subscribe(_ subscriber: any SnapshotSubscriber, group: String, nodeID: String = "", startedWith: GroupView? = nil) {
        let key = ObjectIdentifier(subscriber)
        let reference = SubscriberReference(subscriber: subscriber, executor: subscriber.executor, group: group, nodeID: nodeID)
        let now = view(group: group, nodeID: nodeID)
        lock.withLock {
            subscribers[key] = reference
            delivered[key] = startedWith?.contentHash ?? now?.contentHash
        }
        if let startedWith, let now, now.contentHash != startedWith.contentHash {
            lock.withLock { delivered[key] = now.contentHash }
            handOff([reference][...], on: reference.executor)
        }
    }

    public func unsubscribe(_ subscriber: any SnapshotSubscriber) {
        let key = ObjectIdentifier(subscriber)
        lock.withLock {
            subscribers.removeValue(forKey: key)
            delivered.removeValue(forKey: key)
        }
    }

    public var streamCount: Int { lock.withLock { subscribers.count } }

    // MARK: Startup (a proxy connecting before the first read of the store is answered, not refused)

    /// Set by a feed before it first reads the store: until something is served (or the store is found to have
    /// nothing to serve), a stream's first request waits instead of being refused.
    public func beginStartup() {
        lock.withLock { startingUp = true }
    }

    /// Whether nothing served may only mean "not read yet" (or "held until the rollout plan is known").
    public var isStartingUp: Bool { lock.withLock { startingUp } }

    /// Streams whose first request waits for start-up to end.
    public var startupWaiterCount: Int { lock.withLock { startupWaiters.count } }

    /// Runs `work` on `executor` once start-up is over (at once if it is).
    public func whenStarted(on executor: any SubscriberExecutor, _ work: @escaping @Sendable () -> Void) {
        let waiting = lock.withLock { () -> Bool in
            if startingUp { startupWaiters.append(FreshnessWaiter(executor: executor, work: work)) }
            return startingUp
        }
        if !waiting { executor.execute(work) }
    }

    /// Something is served, or the store has nothing this replica could serve (none published, or unreadable): the
    /// streams that waited are handled now. (A replica that loaded the live snapshot but holds it back until its
    /// rollout plan is known stays starting up until it serves.)
    public func finishStartup() {
        let ready = lock.withLock { () -> [FreshnessWaiter] in
            defer { startingUp = false; startupWaiters = [] }
            return startupWaiters
        }
        for waiter in ready { waiter.executor.execute(waiter.work) }
    }

    // MARK: Freshness (a proxy must never be sent older configuration than it reports having)

    /// Set by the feed: asks the store follower to read the live pointer now. Nil: nothing follows a store.
    public func setRefresher(_ refresher: (@Sendable () -> Void)?) {
        lock.withLock { self.refresher = refresher }
    }

    /// Whether a store follower can confirm freshness (otherwise nothing would ever release a waiter).
    public var canConfirmFreshness: Bool { lock.withLock { refresher != nil } }

    /// Runs `work` on `executor` once a read of the store's live pointer that began after this call found the
    /// version this hub serves — i.e. once this replica is known to be serving the newest published snapshot.
    /// While the store cannot be read the work waits (a proxy that may be ahead of us is held, never sent older).
    public func whenUpToDate(on executor: any SubscriberExecutor, _ work: @escaping @Sendable () -> Void) {
        let refresher = lock.withLock { () -> (@Sendable () -> Void)? in
            freshnessWaiters.append(FreshnessWaiter(executor: executor, work: work))
            return self.refresher
        }
        refresher?()
    }

    /// Asks the store follower to read the live pointer now (e.g. when the store may have come back).
    public func requestRefresh() {
        lock.withLock { refresher }?()
    }

    /// Called by the feed after each read of the live pointer that found `version` already served.
    public func confirmUpToDate(version: String) {
        let (ready, again) = lock.withLock { () -> ([FreshnessWaiter], (@Sendable () -> Void)?) in
            guard served?.version == version || accountedLive == version, !freshnessWaiters.isEmpty else { return ([], nil) }
            for i in freshnessWaiters.indices { freshnessWaiters[i].confirmations += 1 }
            let ready = freshnessWaiters.filter { $0.confirmations >= 2 }
            freshnessWaiters.removeAll { $0.confirmations >= 2 }
            return (ready, freshnessWaiters.isEmpty ? nil : refresher)
        }
        for waiter in ready { waiter.executor.execute(waiter.work) }
        again?()
    }

    /// The store's live version is `version`, which this hub knowingly does not serve yet (queued behind a rollout).
    public func accountForLive(_ version: String?) {
        lock.withLock { accountedLive = version }
    }

    /// Streams waiting for a freshness check (for tests and the status page).
    public var heldForFreshness: Int { lock.withLock { freshnessWaiters.count } }
}
