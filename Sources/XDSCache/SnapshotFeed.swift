// The cache's one way in from a store: follows any `SnapshotStoring` (hot reload) and
// serves each newly live snapshot through a hub. A refused snapshot leaves the
// previous one served. What happened is reported as values; callers log and count.
import SnapshotStorage

/// Keeps a hub serving a store's live snapshot until stopped.
public final class SnapshotFeed: Sendable {
    /// What the feed did with a store event.
    public enum Event: Sendable {
        /// `snapshot` was loaded from the store and is about to be served.
        case loaded(Snapshot)
        /// `snapshot` is served now; `streamsNotified` streams were handed their group's new view, which took `handOff`.
        case served(Snapshot, streamsNotified: Int, handOff: Duration)
        /// The store's live version cannot be loaded; `serving` (if any) stays served.
        case refused(version: String, error: SnapshotStoreError, serving: String?)
        /// The store's live pointer can be read again after a refusal of "current".
        case storeReachable(serving: String?)
    }

    private let watcher: SnapshotWatcher
    private let hub: SnapshotHub

    /// Starts following `store` at once; its live snapshot (if any) is the first event. `serve` hands a loaded
    /// snapshot to the hub (the default serves it to every proxy at once; a rollout controller may hold some back)
    /// and returns the number of streams notified.
    public init(store: any SnapshotStoring, hub: SnapshotHub, serve: (@Sendable (Snapshot) -> Int)? = nil,
                onEvent: @escaping @Sendable (Event) -> Void) {
        self.hub = hub
        hub.beginStartup()
        watcher = SnapshotWatcher(store: store, pollMilliseconds: store.followPollMilliseconds) { event in
            switch event {
            case .loaded(let snapshot):
                onEvent(.loaded(snapshot))
                let started = ContinuousClock.now
                let notified = serve?(snapshot) ?? hub.serve(snapshot)
                onEvent(.served(snapshot, streamsNotified: notified, handOff: ContinuousClock.now - started))
            case .refused(let version, let error):
                onEvent(.refused(version: version, error: error, serving: hub.current?.version))
            case .storeReachable:
                onEvent(.storeReachable(serving: hub.current?.version))
            }
        }
        let watcher = self.watcher
        watcher.onUpToDate { version in hub.confirmUpToDate(version: version) }
        hub.setRefresher { watcher.refresh() }
        // After the first read: if a snapshot was loaded but nothing is served (a follower holding the new version
        // until the leader's plan is known), streams keep waiting until it serves; otherwise they are answered now.
        watcher.onFirstPass { [weak watcher] in
            if watcher?.snapshot == nil || hub.current != nil { hub.finishStartup() }
        }
    }

    /// Stops following the store (the hub keeps serving what it has).
    public func stop() {
        hub.setRefresher(nil)
        watcher.stop()
        hub.finishStartup()
    }
}
