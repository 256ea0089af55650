// Garbage collection: delete all but the newest versions (never the live one) and the
// objects no kept version reaches.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension SnapshotStore {
    // MARK: Garbage collection

    /// Deletes all but the `keep` newest versions (the live one is always kept) and every object
    /// no kept version references. Deleted versions leave a tombstone in the history.
    public func gc(keep: Int) throws(SnapshotStoreError) -> GCReport {
        guard keep >= 0 else { throw .invalidSnapshot(reason: "gc --keep must be 0 or more") }
        let lock = try lockForWriting(purpose: "gc")
        defer { withExtendedLifetime(lock) {} }
        var report = GCReport()
        guard try checkReadable() else { return report }
        let session = WriteSession()
        try removeDebris(session: session, report: nil)
        let current = try? readPointer()
        let summaries = try list()
        var kept = Set(summaries.prefix(keep).map(\.metadata.version))
        if let current = current ?? nil { kept.insert(current) }
        for summary in summaries where !kept.contains(summary.metadata.version) {
            let version = summary.metadata.version
            // Tombstone first: a crash between the two leaves the version stored, never unexplained.
            try appendHistory(HistoryEvent(kind: .gc, time: Date(), version: version, reason: "gc --keep \(keep)",
                                           sourceRevision: summary.metadata.sourceRevision), session: session)
            try io { () throws(FileSystemError) in try fs.removeFile(manifestPath(version)) }
            report.removedVersions.append(version)
        }
        if !report.removedVersions.isEmpty { try io { () throws(FileSystemError) in try fs.syncDirectory(versionsDirectory) } }
        report.keptVersions = summaries.map(\.metadata.version).filter { kept.contains($0) }

        var reachable = Set<String>()
        for version in kept { reachableObjects(version, into: &reachable) }
        try forEachObject { hash, path throws(SnapshotStoreError) in
            guard !reachable.contains(hash) else { return }
            let size = fs.status(path)?.size ?? 0
            try io { () throws(FileSystemError) in try fs.removeFile(path) }
            report.removedObjects += 1
            report.freedBytes += size
        }
        return report
    }

    /// Adds every object `version` references to `reachable`, tolerating missing or damaged ones.
    /// With `present` (the intact objects verify found), index and shard objects with a child that
    /// is missing, damaged or itself broken are passed to `broken`.
    func reachableObjects(_ version: String, into reachable: inout Set<String>, present: Set<String>? = nil,
                          broken: ((String) -> Void)? = nil) {
        guard let manifest = try? readManifest(version) else { return }
        func missing(_ hash: String) -> Bool { present.map { !$0.contains(hash) } ?? false }
        for group in manifest.groups {
            for type in group.types {
                reachable.insert(type.index.hash)
                guard let index = try? readIndex(type.index, version: version) else { continue }
                var indexBroken = false
                for shard in index.shards {
                    reachable.insert(shard.object.hash)
                    guard let entries = try? readShard(shard, version: version) else {
                        indexBroken = true
                        continue
                    }
                    var shardBroken = false
                    for entry in entries {
                        reachable.insert(entry.object.hash)
                        if missing(entry.object.hash) { shardBroken = true }
                    }
                    if shardBroken {
                        broken?(shard.object.hash)
                        indexBroken = true
                    }
                }
                if indexBroken { broken?(type.index.hash) }
            }
        }
    }

    /// Calls `body` for each file under objects/ (hash, path); names that are not hashes are passed as they are.
    func forEachObject(_ body: (String, String) throws(SnapshotStoreError) -> Void) throws(SnapshotStoreError) {
        guard fs.status(objectsDirectory) != nil else { return }
        for fanout in try io({ () throws(FileSystemError) in try fs.listDirectory(objectsDirectory) }).sorted() {
            let dir = objectsDirectory + "/" + fanout
            guard fs.status(dir)?.kind == .directory else { continue }
            for name in try io({ () throws(FileSystemError) in try fs.listDirectory(dir) }).sorted() {
                try body(name, dir + "/" + name)
            }
        }
    }
}
