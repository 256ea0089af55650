// The store benchmark (not a test): publish a 10,000-service snapshot, then a series of
// one-cluster changes; measure publish time, bytes written, load time and watcher latency.
import Foundation
import SnapshotStorage

/// Measures the directory store on synthetic snapshots.
public enum StoreBenchmark {
    /// The measured figures (times in milliseconds).
    public struct Figures: Sendable {
        public var resources = 0
        public var initialPublishMs = 0.0
        public var initialBytes = 0
        public var changePublishMs: [Double] = []
        public var changeBytes: [Int] = []
        public var unchangedPublishMs = 0.0
        public var makeMs = 0.0
        public var uncheckedPublishMs: [Double] = []
        public var loadSizesMs: [Double] = []
        public var loadHashesMs: [Double] = []
        public var watcherDeliveryMs: [Double] = []
        public var watcherNoticeMs: [Double] = []
        public var storeBytes = 0

        public static func median(_ values: [Double]) -> Double {
            guard !values.isEmpty else { return 0 }
            let s = values.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }

        public static func percentile(_ values: [Double], _ p: Double) -> Double {
            guard !values.isEmpty else { return 0 }
            let s = values.sorted()
            return s[min(s.count - 1, Int((Double(s.count - 1) * p).rounded()))]
        }

        public var report: String {
            let bytes = changeBytes.map(Double.init)
            return """
            resources per snapshot:           \(resources)
            initial publish:                  \(String(format: "%.1f", initialPublishMs)) ms, \(initialBytes / 1024) KiB written
            one-cluster change publish:       median \(String(format: "%.1f", Self.median(changePublishMs))) ms, p90 \(String(format: "%.1f", Self.percentile(changePublishMs, 0.9))) ms, max \(String(format: "%.1f", changePublishMs.max() ?? 0)) ms (\(changePublishMs.count) publishes)
            bytes written per change publish: median \(Int(Self.median(bytes))) B (\(String(format: "%.1f", Self.median(bytes) / 1024)) KiB), max \(changeBytes.max() ?? 0) B
            identical (no-op) publish:        \(String(format: "%.1f", unchangedPublishMs)) ms
            same, snapshot not from Snapshot.make (store re-sorts, re-hashes the version): median \(String(format: "%.1f", Self.median(uncheckedPublishMs))) ms
            Snapshot.make (compiler side: hashes every body, sorts, versions): \(String(format: "%.1f", makeMs)) ms
            load (sizes checked):             median \(String(format: "%.1f", Self.median(loadSizesMs))) ms
            load (every hash checked):        median \(String(format: "%.1f", Self.median(loadHashesMs))) ms
            watcher: publish called → loaded snapshot delivered: median \(String(format: "%.1f", Self.median(watcherDeliveryMs))) ms
            watcher notice (one-resource store: publish called → delivered): median \(String(format: "%.1f", Self.median(watcherNoticeMs))) ms, max \(String(format: "%.1f", watcherNoticeMs.max() ?? 0)) ms
            store size after run:             \(storeBytes / 1024) KiB
            """
        }
    }

    static func milliseconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    /// Runs the benchmark in `directory` (which must be empty or absent).
    public static func run(directory: String, services: Int = 10_000, changes: Int = 100, loads: Int = 5,
                           watcherSamples: Int = 10) throws -> Figures {
        var figures = try run(store: SnapshotStore(directory: directory, createIfMissing: true), services: services, changes: changes,
                              loads: loads, watcherSamples: watcherSamples)
        figures.storeBytes = directorySize(directory)
        figures.watcherNoticeMs = try noticeLatency(store: SnapshotStore(directory: directory + "-notice", createIfMissing: true), samples: watcherSamples)
        try? FileManager.default.removeItem(atPath: directory + "-notice")
        return figures
    }

    /// Runs the benchmark on any (empty) store; `storeBytes` and the notice latency are the caller's to fill in
    /// (how a backend's size is measured, and where a tiny second store lives, depend on the backend).
    public static func run(store: any SnapshotStoring, services: Int = 10_000, changes: Int = 100, loads: Int = 5,
                           watcherSamples: Int = 10) throws -> Figures {
        var figures = Figures()
        let baseGroups = SyntheticSnapshot.groups(services: services)
        var made: Snapshot?
        figures.makeMs = try milliseconds { made = try Snapshot.make(groups: baseGroups, compilerVersion: "bench") }
        let base = made!
        figures.resources = base.resourceCount
        var outcome: PublishOutcome = .unchanged(version: "")
        figures.initialPublishMs = try milliseconds { outcome = try store.publish(base) }
        if case .published(_, let bytes) = outcome { figures.initialBytes = bytes }
        figures.unchangedPublishMs = try milliseconds { _ = try store.publish(base) }

        var revisions: [Int: Int] = [:]
        var rng = SystemRandomNumberGenerator()
        for step in 1...max(1, changes) {
            revisions[Int.random(in: 0..<services, using: &rng)] = step
            // Building the snapshot (hashing bodies) is the compiler's cost, not the store's.
            let next = try Snapshot.make(groups: SyntheticSnapshot.groups(services: services, revisions: revisions), compilerVersion: "bench")
            var result: PublishOutcome = .unchanged(version: "")
            figures.changePublishMs.append(try milliseconds { result = try store.publish(next) })
            if case .published(_, let bytes) = result { figures.changeBytes.append(bytes) }
        }
        // Snapshots assembled without `make` (e.g. decoded from elsewhere) get their version recomputed.
        for step in 1...5 {
            revisions[step] = 500_000 + step
            let made = try Snapshot.make(groups: SyntheticSnapshot.groups(services: services, revisions: revisions), compilerVersion: "bench")
            let plain = Snapshot(metadata: made.metadata, groups: made.groups)
            figures.uncheckedPublishMs.append(try milliseconds { _ = try store.publish(plain) })
        }
        for _ in 0..<loads {
            figures.loadSizesMs.append(try milliseconds { _ = try store.load(version: "current", check: .sizes) })
            figures.loadHashesMs.append(try milliseconds { _ = try store.load(version: "current", check: .hashes) })
        }

        // Watcher: time from calling publish to the new snapshot arriving through the callback
        // (publish + inotify wake-up + a full load).
        let arrivals = ArrivalLog()
        let watcher = SnapshotWatcher(store: store, pollMilliseconds: store.followPollMilliseconds) { event in
            if case .loaded(let s) = event { arrivals.record(s.metadata.version) }
        }
        defer { watcher.stop() }
        _ = arrivals.wait(for: try store.currentVersion() ?? "", timeoutSeconds: 30)
        for sample in 0..<watcherSamples {
            revisions[sample] = 1_000_000 + sample
            let next = try Snapshot.make(groups: SyntheticSnapshot.groups(services: services, revisions: revisions), compilerVersion: "bench")
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try store.publish(next)
            if let at = arrivals.wait(for: next.metadata.version, timeoutSeconds: 30) {
                figures.watcherDeliveryMs.append(Double(Int64(at) - Int64(start)) / 1e6)
            }
        }
        return figures
    }

    /// How soon a watcher notices a new `current` (the load is negligible for one resource), on a store that
    /// holds nothing else (its live version is replaced).
    public static func noticeLatency(store: any SnapshotStoring, samples: Int) throws -> [Double] {
        func tiny(_ i: Int) throws -> Snapshot {
            try Snapshot.make(groups: [ProxyGroupResources(group: "g", resources: [Resource(typeURL: SyntheticSnapshot.clusterType, name: "c", body: Array("\(i)".utf8))])],
                              compilerVersion: "bench")
        }
        _ = try store.publish(try tiny(0))
        let arrivals = ArrivalLog()
        // A long poll interval: what is measured is the change signal's path (inotify, or LISTEN/NOTIFY).
        let watcher = SnapshotWatcher(store: store, pollMilliseconds: 10_000) { event in
            if case .loaded(let s) = event { arrivals.record(s.metadata.version) }
        }
        defer { watcher.stop() }
        _ = arrivals.wait(for: try store.currentVersion() ?? "", timeoutSeconds: 30)
        var result: [Double] = []
        for i in 1...max(1, samples) {
            let next = try tiny(i)
            // From the call: the watcher often has the snapshot before publish has returned.
            let called = DispatchTime.now().uptimeNanoseconds
            _ = try store.publish(next)
            if let at = arrivals.wait(for: next.metadata.version, timeoutSeconds: 30) {
                result.append(Double(Int64(at) - Int64(called)) / 1e6)
            }
        }
        return result
    }

    static func directorySize(_ path: String) -> Int {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let item = walker.nextObject() as? String {
            if let size = (try? FileManager.default.attributesOfItem(atPath: path + "/" + item))?[.size] as? Int { total += size }
        }
        return total
    }
}

/// Versions delivered by a watcher, with arrival times.
final class ArrivalLog: @unchecked Sendable {
    // @unchecked Sendable: `arrivals` is read and written only while holding `condition`.
    private let condition = NSCondition()
    private var arrivals: [String: UInt64] = [:]

    func record(_ version: String) {
        condition.lock()
        arrivals[version] = DispatchTime.now().uptimeNanoseconds
        condition.broadcast()
        condition.unlock()
    }

    func wait(for version: String, timeoutSeconds: Double) -> UInt64? {
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        condition.lock()
        defer { condition.unlock() }
        while arrivals[version] == nil {
            if !condition.wait(until: deadline) { return nil }
        }
        return arrivals[version]
    }
}
