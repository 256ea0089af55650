// Feeds the fleet-status table from the server's one proxy tracker, the ProxyRegistry. As an observer it only
// notes WHICH proxies changed (open, status change, close); every flush interval one thread reads those proxies'
// merged records from the registry and hands the writer one batch: changed proxies to upsert, gone ones to delete,
// and the replica's heartbeat. However many proxy events arrive, the database sees at most one write per
// interval from this replica, plus a heartbeat-only write when nothing changed for `heartbeatInterval`.
// After a failed write the next batch carries every proxy and `replaceAll`, so the table catches up whole.
import Foundation
import MeshModel
import MeshServer
import ServerTelemetry
import XDSCache

public final class FleetStatusRecorder: XDSServerObserver, @unchecked Sendable {
    // @unchecked Sendable: `streams`, `dirty`, `needsFullSync`, `stopped`, `failing` are only touched under `condition`.

    /// One write for the database.
    public struct Batch: Sendable {
        public var upserts: [ProxyStreamRecord]
        public var removed: [(group: String, nodeID: String)]
        /// Delete this replica's rows that are not in `upserts` (the first write and the one after a failure).
        public var replaceAll: Bool
        /// The snapshot this replica serves.
        public var servingVersion: String?
    }

    /// Writes a batch (one statement); throws when the database cannot be written.
    public typealias Writer = @Sendable (Batch) throws -> Void

    private let proxies: ProxyRegistry
    private let hub: SnapshotHub
    private let write: Writer
    private let log: ServerLog
    private let flushInterval: Double
    private let heartbeatInterval: Double
    private let condition = NSCondition()
    private var streams: [ObjectIdentifier: String] = [:]
    private var dirty = Set<String>()
    private var needsFullSync = true
    private var stopped = false
    private var failing = false
    /// Signalled when the flush thread has written its last batch and ended.
    private let ended = DispatchSemaphore(value: 0)

    public init(proxies: ProxyRegistry, hub: SnapshotHub, flushInterval: Double, heartbeatInterval: Double, log: ServerLog, write: @escaping Writer) {
        self.proxies = proxies
        self.hub = hub
        self.flushInterval = flushInterval
        self.heartbeatInterval = heartbeatInterval
        self.log = log
        self.write = write
    }

    static func key(group: String, nodeID: String) -> String { group + "\u{0}" + nodeID }

    // MARK: Observer (called on stream event loops: note the proxy, nothing more)

    public func streamOpened(_ stream: ObjectIdentifier, status: ProxyStreamStatus, description: String, snapshotVersion: String) {
        let key = Self.key(group: status.group, nodeID: status.nodeID)
        condition.withLock {
            streams[stream] = key
            dirty.insert(key)
        }
    }

    public func statusChanged(_ stream: ObjectIdentifier) {
        condition.withLock { if let key = streams[stream] { dirty.insert(key) } }
    }

    public func streamClosed(_ stream: ObjectIdentifier, mode: SubscriptionMode) {
        condition.withLock { if let key = streams.removeValue(forKey: stream) { dirty.insert(key) } }
    }

    // MARK: Flushing

    /// Starts the flush thread.
    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "meshctl-fleet-status"
        thread.start()
    }

    /// Stops flushing after one last batch (a draining replica's proxies have gone by then); does not wait.
    public func stop() {
        condition.withLock {
            stopped = true
            condition.signal()
        }
    }

    /// Waits until the last batch is written (or `seconds` pass): a replica removing its rows at exit does it after,
    /// so the last heartbeat cannot bring its row back.
    @discardableResult
    public func waitUntilEnded(seconds: Double) -> Bool {
        guard ended.wait(timeout: .now() + seconds) == .success else { return false }
        ended.signal()
        return true
    }

    private func run() {
        var lastWrite = Date.distantPast
        while true {
            let finished = condition.withLock { () -> Bool in
                if !stopped { _ = condition.wait(until: Date().addingTimeInterval(flushInterval)) }
                return stopped
            }
            let idle = condition.withLock { dirty.isEmpty && !needsFullSync }
            if finished || !idle || Date().timeIntervalSince(lastWrite) >= heartbeatInterval {
                if flush() { lastWrite = Date() }
            }
            if finished {
                ended.signal()
                return
            }
        }
    }

    /// Builds and writes one batch; true when written.
    @discardableResult
    func flush() -> Bool {
        let (changed, full) = condition.withLock { () -> (Set<String>, Bool) in
            defer { dirty = []; needsFullSync = false }
            return (dirty, needsFullSync)
        }
        var batch = Batch(upserts: [], removed: [], replaceAll: full, servingVersion: hub.current?.metadata.version)
        var present = Set<String>()
        for record in proxies.proxies {
            let key = Self.key(group: record.group, nodeID: record.nodeID)
            present.insert(key)
            if full || changed.contains(key) { batch.upserts.append(record) }
        }
        for key in changed where !present.contains(key) {
            let parts = key.split(separator: "\u{0}", maxSplits: 1, omittingEmptySubsequences: false)
            batch.removed.append((String(parts[0]), parts.count > 1 ? String(parts[1]) : ""))
        }
        do {
            try write(batch)
            let recovered = condition.withLock { () -> Bool in defer { failing = false }; return failing }
            if recovered { log.info("fleet.status-written", ["proxies": "\(present.count)", "note": "fleet status written again after failures"]) }
            return true
        } catch {
            let first = condition.withLock { () -> Bool in
                needsFullSync = true
                defer { failing = true }
                return !failing
            }
            if first {
                log.warning("fleet.status-write-failed", ["error": "\(error)", "effect": "proxies are served as before; the fleet table is written again in full once the database answers"])
            }
            return false
        }
    }
}
