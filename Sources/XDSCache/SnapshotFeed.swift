// The snapshot being served and the streams being served from it. Replacing the
// snapshot hands each stream whose proxy group changed its new view, on the
// stream's own event loop; streams of unchanged groups are not woken. The hub
// knows no transport: a stream names the serial executor (its event loop) it
// must be called on.
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

/// A loop-confined subscriber carried across threads; only touched on its own loop.
private struct SubscriberReference: @unchecked Sendable {
    // @unchecked Sendable: the weak subscriber is only dereferenced on its own loop, through `executor`.
    weak var subscriber: (any SnapshotSubscriber)?
    let executor: any SubscriberExecutor
    let group: String
}

/// The current snapshot and the streams that follow it. Thread-safe.
public final class SnapshotHub: @unchecked Sendable {
    // @unchecked Sendable: `served` and `subscribers` are only touched under `lock`; subscribers are called on their own loops.
    private let lock = NSLock()
    private var served: ServedSnapshot?
    private var subscribers: [ObjectIdentifier: SubscriberReference] = [:]
    private var freshnessWaiters: [FreshnessWaiter] = []
    private var refresher: (@Sendable () -> Void)?

    /// Work waiting until this replica has read the store's live version (after the work was queued) and serves it.
    private struct FreshnessWaiter {
        let executor: any SubscriberExecutor
        let work: @Sendable () -> Void
        /// Confirmations seen since queued: the first may come from a read that began before; the second cannot.
        var confirmations = 0
    }

    public init() {}

    /// The snapshot now being served, if one was loaded.
    public var current: ServedSnapshot? { lock.withLock { served } }

    /// Serves `snapshot` from now on; every stream of a group whose content changed gets the new view.
    /// Returns the number of streams notified.
    @discardableResult
    public func serve(_ snapshot: Snapshot) -> Int {
        let next = ServedSnapshot(snapshot)
        let (previous, targets) = lock.withLock { () -> (ServedSnapshot?, [SubscriberReference]) in
            let previous = served
            served = next
            return (previous, Array(subscribers.values))
        }
        var notified = 0
        var perLoop: [ObjectIdentifier: (loop: any SubscriberExecutor, streams: [SubscriberReference])] = [:]
        for target in targets {
            guard let view = next.groups[target.group] else { continue }
            if let old = previous?.groups[target.group], old.contentHash == view.contentHash { continue }
            notified += 1
            perLoop[ObjectIdentifier(target.executor), default: (target.executor, [])].streams.append(target)
        }
        for (loop, streams) in perLoop.values { handOff(streams[...], on: loop) }
        return notified
    }

    /// Streams handed their new view per loop turn. Between chunks the loop writes what the previous
    /// chunk produced and reads ACKs, so the first proxies are not held back until every stream on the
    /// loop has been planned (and the loop keeps serving other connections meanwhile).
    public static let handOffChunk = 128

    /// Each chunk delivers the group's view current when it runs, not when it was queued: a later
    /// snapshot may arrive while chunks are pending, and no stream may be handed an older view after a newer one.
    private func handOff(_ streams: ArraySlice<SubscriberReference>, on loop: any SubscriberExecutor) {
        let chunk = streams.prefix(Self.handOffChunk)
        let rest = streams.dropFirst(Self.handOffChunk)
        loop.execute { [self] in
            let groups = current?.groups
            for reference in chunk {
                guard let view = groups?[reference.group] else { continue }
                reference.subscriber?.snapshotChanged(to: view)
            }
            if !rest.isEmpty { handOff(rest, on: loop) }
        }
    }

    /// `subscriber` gets every later view of `group` that differs in content, on its executor.
    public func subscribe(_ subscriber: any SnapshotSubscriber, group: String) {
        lock.withLock { subscribers[ObjectIdentifier(subscriber)] = SubscriberReference(subscriber: subscriber, executor: subscriber.executor, group: group) }
    }

    public func unsubscribe(_ subscriber: any SnapshotSubscriber) {
        _ = lock.withLock { subscribers.removeValue(forKey: ObjectIdentifier(subscriber)) }
    }

    public var streamCount: Int { lock.withLock { subscribers.count } }

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
            guard served?.version == version, !freshnessWaiters.isEmpty else { return ([], nil) }
            for i in freshnessWaiters.indices { freshnessWaiters[i].confirmations += 1 }
            let ready = freshnessWaiters.filter { $0.confirmations >= 2 }
            freshnessWaiters.removeAll { $0.confirmations >= 2 }
            return (ready, freshnessWaiters.isEmpty ? nil : refresher)
        }
        for waiter in ready { waiter.executor.execute(waiter.work) }
        again?()
    }

    /// Streams waiting for a freshness check (for tests and the status page).
    public var heldForFreshness: Int { lock.withLock { freshnessWaiters.count } }
}
