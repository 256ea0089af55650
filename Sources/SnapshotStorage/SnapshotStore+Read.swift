// Reading the store: a version by reference (current, full id, unique prefix), loaded with
// the chosen checks from its manifest, indexes, shards and bodies; the list of versions; the history.
import Foundation
import Locking
#if canImport(Glibc)
import Glibc
#endif

extension SnapshotStore {
    // MARK: Reading

    /// The live snapshot, or nil when nothing was ever published.
    public func current() throws(SnapshotStoreError) -> Snapshot? {
        guard let version = try currentVersion() else { return nil }
        do {
            return try loadResolved(version, check: .sizes)
        } catch .versionNotFound {
            throw .currentVersionMissing(version: version)
        }
    }

    /// Loads a version (`current`, a full id or a unique prefix). With `.sizes` (the default) every
    /// object must exist with the size its parent records and index/shard objects are hash-checked;
    /// resource bodies are hash-checked only with `.hashes` (as `verify` does).
    public func load(version reference: String, check: LoadCheck = .sizes) throws(SnapshotStoreError) -> Snapshot {
        let version = try resolve(reference)
        do {
            return try loadResolved(version, check: check)
        } catch .versionNotFound where reference == "current" {
            throw .currentVersionMissing(version: version)
        }
    }

    func loadResolved(_ version: String, check: LoadCheck) throws(SnapshotStoreError) -> Snapshot {
        let manifest = try readManifest(version)
        // Indexes first (small), then every shard's bodies: shards are read in parallel, since
        // opening and reading thousands of small files is per-file system-call work.
        var jobs: [(group: Int, type: Int, shard: IndexEntry)] = []
        for (g, group) in manifest.groups.enumerated() {
            for (t, type) in group.types.enumerated() {
                for shard in try readIndex(type.index, version: version).shards { jobs.append((g, t, shard)) }
            }
        }
        let shardJobs = jobs
        let slots = WriteOnceSlots<Result<[Resource], SnapshotStoreError>>(count: shardJobs.count)
        DispatchQueue.concurrentPerform(iterations: shardJobs.count) { i in
            let job = shardJobs[i]
            let typeURL = manifest.groups[job.group].types[job.type].typeURL
            slots.set(i, Result { () throws(SnapshotStoreError) -> [Resource] in
                try readShard(job.shard, version: version).map { entry throws(SnapshotStoreError) in
                    Resource(typeURL: typeURL, name: entry.name,
                             body: try readObject(entry.object, version: version, checkHash: check == .hashes), hash: entry.object.hash)
                }
            })
        }
        let results = slots.values.map { $0 ?? .success([]) }
        var collected = manifest.groups.map { $0.types.map { _ in [String: Resource]() } }
        for (job, result) in zip(jobs, results) {
            for resource in try result.get() { collected[job.group][job.type][resource.name] = resource }
        }
        var groups: [String: ProxyGroupResources] = [:]
        for (g, group) in manifest.groups.enumerated() {
            var byType: [String: [String: Resource]] = [:]
            for (t, type) in group.types.enumerated() {
                guard collected[g][t].count == type.count else {
                    throw .manifestCorrupt(version: version, detail: "\(group.group) \(type.typeURL): manifest counts \(type.count) resources, index holds \(collected[g][t].count)")
                }
                byType[type.typeURL] = collected[g][t]
            }
            groups[group.group] = ProxyGroupResources(group: group.group, resources: byType)
        }
        return Snapshot(metadata: manifest.metadata, groups: groups)
    }

    func readObject(_ ref: ObjectRef, version: String, checkHash: Bool) throws(SnapshotStoreError) -> [UInt8] {
        let bytes: [UInt8]
        do {
            bytes = try fs.readFile(objectPath(ref.hash), limit: ref.size)
        } catch {
            if error.code == ENOENT { throw .objectMissing(hash: ref.hash, version: version) }
            throw Self.mapped(error)
        }
        guard bytes.count == ref.size else {
            throw .objectCorrupt(hash: ref.hash, version: version,
                                 detail: bytes.count > ref.size ? "larger than the \(ref.size) bytes recorded" : "\(bytes.count) bytes, \(ref.size) recorded")
        }
        if checkHash && Digest.sha256Hex(bytes) != ref.hash {
            throw .objectCorrupt(hash: ref.hash, version: version, detail: "content does not match its SHA-256")
        }
        return bytes
    }

    func readIndex(_ ref: ObjectRef, version: String) throws(SnapshotStoreError) -> TypeIndex {
        let bytes = try readObject(ref, version: version, checkHash: true)
        guard let index = ObjectFormat.decodeIndex(bytes) else {
            throw .objectCorrupt(hash: ref.hash, version: version, detail: "not an index object")
        }
        return index
    }

    func readShard(_ entry: IndexEntry, version: String) throws(SnapshotStoreError) -> [ShardEntry] {
        let bytes = try readObject(entry.object, version: version, checkHash: true)
        guard let entries = ObjectFormat.decodeShard(bytes), entries.count == entry.count else {
            throw .objectCorrupt(hash: entry.object.hash, version: version, detail: "not a shard object of \(entry.count) entries")
        }
        return entries
    }

    /// Every stored version, newest first.
    public func list() throws(SnapshotStoreError) -> [VersionSummary] {
        guard try checkReadable() else { return [] }
        let current = try? readPointer()
        var summaries: [VersionSummary] = []
        for version in try storedVersions(current: current ?? nil) {
            // A damaged manifest is left out here; `verify` reports it.
            guard let manifest = try? readManifest(version) else { continue }
            summaries.append(VersionSummary(metadata: manifest.metadata, groupCount: manifest.groups.count,
                                            resourceCount: manifest.resourceCount, isCurrent: version == current))
        }
        return summaries.sorted {
            $0.metadata.createdAt != $1.metadata.createdAt ? $0.metadata.createdAt > $1.metadata.createdAt : $0.metadata.version < $1.metadata.version
        }
    }

    /// The store's history, oldest first. Lines a crash cut short are skipped.
    public func history() throws(SnapshotStoreError) -> [HistoryEvent] {
        let bytes: [UInt8]
        do {
            bytes = try fs.readFile(historyPath, limit: nil)
        } catch {
            if error.code == ENOENT { return [] }
            throw Self.mapped(error)
        }
        var events: [HistoryEvent] = []
        var lines = LineReader(bytes)
        while let line = lines.next() {
            guard !line.isEmpty, let event = try? Timestamp.decoder.decode(HistoryEvent.self, from: Data(line)) else { continue }
            events.append(event)
        }
        return events
    }

    func appendHistory(_ event: HistoryEvent, session: WriteSession) throws(SnapshotStoreError) {
        // A leading newline keeps a record whole even when the previous append was cut short by a crash.
        let bytes = [10] + Array((try? Timestamp.encoder.encode(event)) ?? Data()) + [10]
        try io { () throws(FileSystemError) in try fs.append(historyPath, bytes) }
        session.bytesWritten += bytes.count
    }
}
