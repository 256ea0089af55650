// `serve --cache DIR`: a directory store holding a copy of the last snapshot this replica served, written
// in the background (newest wins, older pending copies are skipped) so a slow disk never delays serving.
import Foundation
import ServerTelemetry
import SnapshotStorage

final class SnapshotCacheWriter: @unchecked Sendable {
    // @unchecked Sendable: `pending` is only touched under `lock`; the store is written only on the serial `queue`.
    let directory: String
    private let store: SnapshotStore
    private let log: ServerLog
    private let queue = DispatchQueue(label: "meshctl.snapshot-cache")
    private let lock = NSLock()
    private var pending: Snapshot?

    init(directory: String, log: ServerLog) {
        self.directory = directory
        self.store = SnapshotStore(directory: directory, createIfMissing: true)
        self.log = log
    }

    /// The cached snapshot, if the cache holds one that loads.
    func cached() -> Snapshot? { try? store.current() }

    /// Copies `snapshot` into the cache soon (the newest one wins when several arrive quickly).
    func keep(_ snapshot: Snapshot) {
        lock.withLock { pending = snapshot }
        queue.async { [self] in
            guard let next = lock.withLock({ () -> Snapshot? in defer { pending = nil }; return pending }) else { return }
            do {
                if (try? store.currentVersion()) == next.metadata.version { return }
                _ = try store.publish(next)
                // Only the newest matters: older copies would make the cache grow with every publish.
                _ = try store.gc(keep: 1)
            } catch {
                log.warning("cache.write-failed", ["cache": directory, "version": String(next.metadata.version.prefix(12)), "error": "\(error)"])
            }
        }
    }
}
