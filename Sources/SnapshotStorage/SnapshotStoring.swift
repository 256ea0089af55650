// The store as the compiler and the xDS server see it: a protocol, so another backend
// (etcd, an object store) can replace the directory store without touching either.
import Foundation

/// A place that keeps snapshots and says which one is live.
public protocol SnapshotStoring: Sendable {
    /// Where the store lives, for logs and messages (a directory path; an endpoint for a remote backend).
    var location: String { get }
    /// Makes the snapshot live (crash-safe); identical content to the live version is `.unchanged`.
    func publish(_ snapshot: Snapshot) throws(SnapshotStoreError) -> PublishOutcome
    /// The live version id, or nil when nothing was published yet.
    func currentVersion() throws(SnapshotStoreError) -> String?
    /// The live snapshot, or nil when nothing was published yet.
    func current() throws(SnapshotStoreError) -> Snapshot?
    /// A stored version by `current`, full id or unique prefix.
    func load(version: String, check: LoadCheck) throws(SnapshotStoreError) -> Snapshot
    /// The full version id for `current`, a full id or a unique prefix.
    func resolve(_ reference: String) throws(SnapshotStoreError) -> String
    /// Stored versions, newest first.
    func list() throws(SnapshotStoreError) -> [VersionSummary]
    /// Publish, rollback and gc events, oldest first.
    func history() throws(SnapshotStoreError) -> [HistoryEvent]
    /// Makes a stored version live again, recording who and why.
    func rollback(to reference: String, reason: String?, author: String?) throws(SnapshotStoreError) -> RollbackOutcome
    /// Deletes all but the `keep` newest versions (never the live one) and unreferenced objects.
    func gc(keep: Int) throws(SnapshotStoreError) -> GCReport
    /// Full integrity check and clean-up of debris from interrupted writers.
    func verify() -> VerifyReport
    /// A way to wait for `current` to move (used by `SnapshotWatcher`).
    func makeChangeSignal() -> any StoreChangeSignal
    /// How long a follower waits between reads of the live pointer when its change signal stays quiet
    /// (the poll backstop: a missed signal costs at most this long).
    var followPollMilliseconds: Int { get }
}

/// Wakes a waiter when the live pointer may have moved. Spurious wake-ups are allowed; a waiter
/// always re-reads the pointer, so a signal only has to be prompt, not exact.
public protocol StoreChangeSignal: AnyObject, Sendable {
    /// Blocks until a change may have happened, `wake()` is called, or `milliseconds` pass.
    func wait(milliseconds: Int)
    /// Ends the current (or next) `wait` at once; used to stop a watcher promptly.
    func wake()
}

extension SnapshotStoring {
    /// A local directory is cheap to read and inotify can miss a change on some file systems: poll often.
    public var followPollMilliseconds: Int { 50 }

    /// A stored version, loaded with the default check (sizes).
    public func load(version: String) throws(SnapshotStoreError) -> Snapshot { try load(version: version, check: .sizes) }
}

/// A store that can take versions and history from another store as they are (`meshctl snapshot copy`):
/// identical version ids, metadata and history, whichever backends the two are.
public protocol SnapshotImporting: SnapshotStoring {
    /// Stores a version without making it live and without a history line; a version already stored is left alone.
    func importVersion(_ snapshot: Snapshot) throws(SnapshotStoreError)
    /// Writes `events` as the store's history and makes `live` the live version. Refused unless the store
    /// has no history and no live version yet (a copy never merges two histories).
    func importHistory(_ events: [HistoryEvent], live: String?) throws(SnapshotStoreError)
}
