// `verify`: the full integrity check (every object hashed, every version walked) and the
// clean-up of what interrupted writers leave behind.
import Foundation

/// What `verify` found and what it cleaned up.
public struct VerifyReport: Sendable, Equatable {
    /// Something wrong that verify could not repair.
    public enum Problem: Sendable, Equatable, CustomStringConvertible {
        /// The store cannot be checked at all (missing, locked, unreadable).
        case store(SnapshotStoreError)
        /// `current` is unreadable or names a version that is missing or damaged.
        case current(SnapshotStoreError)
        /// A stored version cannot be loaded.
        case version(String, SnapshotStoreError)

        public var description: String {
            switch self {
            case .store(let e): return e.description
            case .current(let e): return "current: \(e.description)"
            case .version(let v, let e): return "version \(v.prefix(12)): \(e.description)"
            }
        }
    }

    public var currentVersion: String?
    public var versionsChecked = 0
    public var objectsChecked = 0
    public var problems: [Problem] = []
    /// One line per thing removed or finished: temporary files, orphaned and damaged objects, pending manifests.
    public var debrisRemoved: [String] = []

    public init() {}

    /// No problems remain (debris that was cleaned up does not count).
    public var isHealthy: Bool { problems.isEmpty }

    /// Collects findings while verify runs.
    final class Builder {
        var debris: [String] = []
    }
}

extension SnapshotStore {
    /// Checks the whole store and cleans debris: removes temporary files, pending manifests that never
    /// went live, objects whose content does not match their name, index/shard objects whose children
    /// are gone (so the next publish rewrites them), and objects no version references. Never throws:
    /// anything wrong is in the report.
    public func verify() -> VerifyReport {
        var report = VerifyReport()
        do {
            try verifyLocked(&report)
        } catch {
            report.problems.append(.store(error))
        }
        return report
    }

    private func verifyLocked(_ report: inout VerifyReport) throws(SnapshotStoreError) {
        let lock = try lockForWriting(purpose: "verify")
        defer { withExtendedLifetime(lock) {} }
        guard try checkReadable() else { return }
        let builder = VerifyReport.Builder()
        let session = WriteSession()
        try removeDebris(session: session, report: builder)

        // Every object must hash to its name; damaged ones are removed (a later publish of the same
        // content rewrites them).
        var present = Set<String>()
        try forEachObject { name, path throws(SnapshotStoreError) in
            report.objectsChecked += 1
            guard Digest.isHash(name), path == objectPath(name) else {
                try io { () throws(FileSystemError) in try fs.removeFile(path) }
                builder.debris.append("objects/…/\(name) (not an object name)")
                return
            }
            let intact: Bool
            if let bytes = try? fs.readFile(path, limit: nil) { intact = Digest.sha256Hex(bytes) == name } else { intact = false }
            if intact {
                present.insert(name)
            } else {
                try io { () throws(FileSystemError) in try fs.removeFile(path) }
                builder.debris.append("objects/\(name.prefix(2))/\(name) (damaged: content does not match its hash; removed)")
            }
        }

        // Walk every version; remember structure objects whose children are gone.
        let current: String?
        do {
            current = try readPointer()
            report.currentVersion = current
        } catch {
            current = nil
            report.problems.append(.current(error))
        }
        var reachable = Set<String>()
        var broken = Set<String>()
        for version in try storedVersions(current: current) {
            report.versionsChecked += 1
            do throws(SnapshotStoreError) {
                // Damaged objects are gone by now, so sizes suffice (index and shard objects are hash-checked anyway).
                let snapshot = try loadResolved(version, check: .sizes)
                let recomputed = Snapshot.contentVersion(snapshot.groups)
                if recomputed != version {
                    throw .manifestCorrupt(version: version, detail: "its content hashes to \(recomputed)")
                }
            } catch {
                report.problems.append(.version(version, error))
                if version == current { report.problems.append(.current(error)) }
            }
            reachableObjects(version, into: &reachable, present: present) { broken.insert($0) }
        }
        if let current, !(try storedVersions(current: current)).contains(current) {
            report.problems.append(.current(.currentVersionMissing(version: current)))
        }

        // Parents of missing objects go too, restoring "an index or shard on disk has all its children".
        for hash in broken.sorted() where present.contains(hash) {
            try io { () throws(FileSystemError) in try fs.removeFile(objectPath(hash)) }
            present.remove(hash)
            builder.debris.append("objects/\(hash.prefix(2))/\(hash) (index or shard whose children are missing; removed so a publish rewrites it)")
        }
        let orphans = present.subtracting(reachable).sorted()
        for hash in orphans {
            try io { () throws(FileSystemError) in try fs.removeFile(objectPath(hash)) }
        }
        if !orphans.isEmpty { builder.debris.append("\(orphans.count) object(s) no version references (left by an interrupted publish)") }

        // A publish or rollback killed after moving `current` but before its history line.
        if let current, report.problems.isEmpty,
           let last = (try? history())?.last(where: { $0.kind.movesLivePointer }), last.version != current {
            try appendHistory(HistoryEvent(kind: .recovered, time: Date(), version: current, previous: last.version,
                                           reason: "current moved without a history record (interrupted publish or rollback)"),
                              session: session)
            builder.debris.append("history: recorded that current is \(current.prefix(12))")
        } else if let current, report.problems.isEmpty, (try? history())?.isEmpty ?? true {
            try appendHistory(HistoryEvent(kind: .recovered, time: Date(), version: current,
                                           reason: "current moved without a history record (interrupted publish)"),
                              session: session)
            builder.debris.append("history: recorded that current is \(current.prefix(12))")
        }
        report.debrisRemoved = builder.debris
    }
}
