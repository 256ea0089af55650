// The on-disk snapshot store: content-addressed objects, per-version manifests, a `current`
// pointer that only ever names a complete, verified version, and a history of who moved it.
//
// Layout of a store directory:
//   FORMAT                  "meshctl-snapshot-store 1"
//   objects/ab/<sha256>     resource bodies, shard and index objects (see ObjectFormats.swift)
//   versions/<version>      manifests; <version>.pending while a publish is between steps
//   current                 the live version id
//   history.jsonl           publish / rollback / gc / recovered events
//   tmp/                    files being written (anything here after a crash is debris)
//   lock                    flock(2) serializing writers
//
// Publish order (each step durable before the next; a crash anywhere leaves `current` as it was):
//   1. new objects written to tmp/, made durable, renamed into objects/ children-first
//      (resources, then shards, then indexes), so an index or shard on disk implies its children are;
//   2. manifest written as versions/<v>.pending;
//   3. everything written is read back and hash-checked, every referenced index checked present;
//   4. `current` replaced by rename; 5. the manifest renamed to its final name; 6. history appended.
// Readers take no lock: every file they read is complete when it appears.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A snapshot store in a local directory (no server needed).
public struct SnapshotStore: SnapshotStoring {
    public let directory: String
    let fs: any StoreFileSystem
    let createIfMissing: Bool
    let lockTimeout: Double

    static let formatLine = "meshctl-snapshot-store 1"
    /// Publishes writing at most this many objects fsync each one; larger ones flush the file system once.
    static let individualSyncLimit = 16

    /// - Parameters:
    ///   - createIfMissing: `publish` creates the directory (and its parents) when it does not exist.
    ///   - lockTimeout: seconds a writer waits for another writer before failing with `.locked`.
    ///   - fileSystem: the disk layer; tests pass a `FaultInjectingFileSystem`.
    public init(directory: String, createIfMissing: Bool = false, lockTimeout: Double = 30,
                fileSystem: any StoreFileSystem = PosixFileSystem()) {
        var path = directory
        while path.count > 1 && path.hasSuffix("/") { path.removeLast() }
        self.directory = path
        self.fs = fileSystem
        self.createIfMissing = createIfMissing
        self.lockTimeout = lockTimeout
    }

    public var location: String { directory }

    // MARK: Paths

    var objectsDirectory: String { directory + "/objects" }
    var versionsDirectory: String { directory + "/versions" }
    var temporaryDirectory: String { directory + "/tmp" }
    var currentPath: String { directory + "/current" }
    var historyPath: String { directory + "/history.jsonl" }
    var lockPath: String { directory + "/lock" }
    var formatPath: String { directory + "/FORMAT" }

    func objectPath(_ hash: String) -> String { "\(directory)/objects/\(hash.prefix(2))/\(hash)" }
    func fanoutDirectory(_ hash: String) -> String { "\(directory)/objects/\(hash.prefix(2))" }
    func manifestPath(_ version: String) -> String { "\(directory)/versions/\(version)" }
    func pendingManifestPath(_ version: String) -> String { "\(directory)/versions/\(version).pending" }

    // MARK: Errors

    /// File-system errors become store errors here and nowhere else.
    static func mapped(_ error: FileSystemError) -> SnapshotStoreError {
        switch error.code {
        case ENOSPC, EDQUOT: return .diskFull(path: error.path)
        case EACCES, EPERM, EROFS: return .unwritable(path: error.path, detail: "\(error.operation): \(error.detail)")
        default: return .io(operation: error.operation, path: error.path, detail: error.detail)
        }
    }

    func io<T>(_ body: () throws(FileSystemError) -> T) throws(SnapshotStoreError) -> T {
        do { return try body() } catch { throw Self.mapped(error) }
    }

    // MARK: Opening

    /// Checks the directory is a store (or an empty directory, which is a store with nothing in it).
    /// Returns false when it holds no store yet.
    @discardableResult
    func checkReadable() throws(SnapshotStoreError) -> Bool {
        guard let status = fs.status(directory) else { throw .storeMissing(path: directory) }
        guard status.kind == .directory else { throw .notAStore(path: directory, reason: "not a directory") }
        if let marker = try? fs.readFile(formatPath, limit: 256) {
            let line = String(decoding: marker, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard line == Self.formatLine else { throw .unsupportedFormat(path: formatPath, found: line) }
            return true
        }
        let entries = try io { () throws(FileSystemError) in try fs.listDirectory(directory) }
        let ours: Set<String> = ["lock", "objects", "versions", "tmp", "FORMAT.tmp"]
        guard entries.allSatisfy({ ours.contains($0) }) else {
            throw .notAStore(path: directory, reason: "it is not empty and has no FORMAT file")
        }
        return false
    }

    /// Creates the directory when allowed, then takes the writer lock.
    func lockForWriting(purpose: String) throws(SnapshotStoreError) -> StoreLock {
        if fs.status(directory) == nil {
            guard createIfMissing else { throw .storeMissing(path: directory) }
            // A relative store path is created relative to the working directory, not to "/".
            var path = directory.hasPrefix("/") ? "" : "."
            for component in directory.split(separator: "/", omittingEmptySubsequences: true) {
                path += "/" + component
                if fs.status(path) == nil { try io { () throws(FileSystemError) in try fs.createDirectory(path) } }
            }
        }
        try checkReadable()
        return try StoreLock(path: lockPath, timeout: lockTimeout, purpose: purpose)
    }

    /// Under the lock: lays out a new store. The FORMAT file comes last, so a store whose
    /// creation was interrupted is simply laid out again.
    func initializeLayout() throws(SnapshotStoreError) {
        guard try !checkReadable() else { return }
        try io { () throws(FileSystemError) in
            for dir in [objectsDirectory, versionsDirectory, temporaryDirectory] { try fs.createDirectory(dir) }
            let digits = Array("0123456789abcdef")
            for a in digits { for b in digits { try fs.createDirectory("\(objectsDirectory)/\(a)\(b)") } }
            try fs.syncDirectory(objectsDirectory)
            let temp = directory + "/FORMAT.tmp"
            try fs.removeFile(temp)
            try fs.writeNewFile(temp, Array((Self.formatLine + "\n").utf8), sync: true)
            try fs.rename(temp, formatPath)
            try fs.syncDirectory(directory)
        }
    }

    // MARK: Pointer and manifests

    /// The live version, or nil when nothing was ever published.
    public func currentVersion() throws(SnapshotStoreError) -> String? {
        guard try checkReadable() else { return nil }
        return try readPointer()
    }

    func readPointer() throws(SnapshotStoreError) -> String? {
        let bytes: [UInt8]
        do {
            bytes = try fs.readFile(currentPath, limit: 128)
        } catch {
            if error.code == ENOENT { return nil }
            throw Self.mapped(error)
        }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard Digest.isHash(text) else {
            throw .currentPointerCorrupt(path: currentPath, detail: bytes.isEmpty ? "empty" : "does not hold a version id")
        }
        return text
    }

    /// The manifest of `version`: final, or pending (a publish interrupted after moving `current`).
    func readManifest(_ version: String) throws(SnapshotStoreError) -> Manifest {
        var bytes: [UInt8]? = nil
        for path in [manifestPath(version), pendingManifestPath(version)] {
            do {
                bytes = try fs.readFile(path, limit: nil)
                break
            } catch {
                if error.code != ENOENT { throw Self.mapped(error) }
            }
        }
        guard let bytes else { throw .versionNotFound(reference: version) }
        switch ObjectFormat.decodeManifest(bytes) {
        case .failure(let problem): throw .manifestCorrupt(version: version, detail: problem.detail)
        case .success(let manifest):
            guard manifest.metadata.version == version else {
                throw .manifestCorrupt(version: version, detail: "it describes version \(manifest.metadata.version)")
            }
            return manifest
        }
    }

    /// Stored version ids (final manifests, plus the pending one `current` names).
    func storedVersions(current: String?) throws(SnapshotStoreError) -> [String] {
        guard fs.status(versionsDirectory) != nil else { return [] }
        let names = try io { () throws(FileSystemError) in try fs.listDirectory(versionsDirectory) }
        var versions = Set<String>()
        for name in names {
            if Digest.isHash(name) { versions.insert(name) }
            else if name.hasSuffix(".pending"), let current, name == current + ".pending" { versions.insert(current) }
        }
        return versions.sorted()
    }

    /// Resolves `current`, a full version id, or a unique prefix of one.
    public func resolve(_ reference: String) throws(SnapshotStoreError) -> String {
        guard try checkReadable() else {
            if reference == "current" { throw .noCurrentVersion }
            throw .versionNotFound(reference: reference)
        }
        let current = try? readPointer()
        if reference == "current" {
            guard let pointer = try readPointer() else { throw .noCurrentVersion }
            return pointer
        }
        let prefix = reference.lowercased()
        guard !prefix.isEmpty, prefix.count <= 64, prefix.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }) else {
            throw .versionNotFound(reference: reference)
        }
        let matches = try storedVersions(current: current ?? nil).filter { $0.hasPrefix(prefix) }
        if matches.count == 1 { return matches[0] }
        if matches.count > 1 { throw .ambiguousVersion(prefix: reference, matches: matches) }
        if let tombstone = (try? history())?.last(where: { $0.kind == .gc && $0.version.hasPrefix(prefix) }) {
            throw .versionGarbageCollected(version: tombstone.version, removedAt: tombstone.time, sourceRevision: tombstone.sourceRevision)
        }
        throw .versionNotFound(reference: reference)
    }

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
        let slots = ParallelSlots<Result<[Resource], SnapshotStoreError>>(count: shardJobs.count)
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

    // MARK: Publishing

    /// Makes `snapshot` the live version. Identical content to the live version is a no-op (`.unchanged`).
    /// Content identical to an older stored version makes that version live again, reusing its objects.
    public func publish(_ snapshot: Snapshot) throws(SnapshotStoreError) -> PublishOutcome {
        // A snapshot from `Snapshot.make` is consistent and versioned by construction (its fields
        // are immutable); any other is checked and its version recomputed here.
        let sorted: SortedContent
        let version: String
        if let cached = snapshot.sortedContent {
            sorted = cached
            version = snapshot.metadata.version
        } else {
            try Snapshot.checkConsistency(snapshot.groups)
            sorted = Snapshot.sortedContent(snapshot.groups)
            version = Snapshot.contentVersion(sorted)
        }
        guard version == snapshot.metadata.version else {
            throw .invalidSnapshot(reason: "metadata says version \(snapshot.metadata.version) but the content hashes to \(version) (build snapshots with Snapshot.make)")
        }
        let lock = try lockForWriting(purpose: "publish")
        defer { withExtendedLifetime(lock) {} }
        try initializeLayout()
        let session = WriteSession()
        try removeDebris(session: session, report: nil)
        let previous = try? readPointer()

        // Planning (encoding and hashing every shard and index) and decoding the stored manifest
        // each take ~0.4 s for 10,000 groups and only read the disk: done side by side.
        let plan: Plan
        let existingManifest: Manifest?
        do {
            let planSlot = ParallelSlots<Result<Plan, SnapshotStoreError>>(count: 1)
            let manifestSlot = ParallelSlots<Manifest>(count: 1)
            let store = self
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                if i == 0 {
                    planSlot.set(0, Result { () throws(SnapshotStoreError) in try store.planObjects(sorted) })
                } else if let manifest = try? store.readManifest(version) {
                    manifestSlot.set(0, manifest)
                }
            }
            plan = try planSlot.values[0]!.get()
            existingManifest = manifestSlot.values[0] ?? nil
        }
        if previous == version && plan.objects.isEmpty && existingManifest != nil {
            return .unchanged(version: version)
        }
        try writeObjects(plan.objects, session: session)

        var writtenManifest = false
        if existingManifest == nil {
            let manifest = Manifest(format: ObjectFormat.manifestFormat, metadata: snapshot.metadata, groups: plan.manifestGroups)
            try writeFileAtomically(ObjectFormat.encodeManifest(manifest), to: pendingManifestPath(version),
                                    directory: versionsDirectory, session: session)
            writtenManifest = true
        }
        try verifyPublished(version: version, plan: plan)
        try movePointer(to: version, session: session)
        // Committed: the version is live. What follows is bookkeeping that the next publish or
        // `verify` completes if it fails here, so it must not turn a live publish into an error.
        if writtenManifest {
            try? io { () throws(FileSystemError) in
                try fs.rename(pendingManifestPath(version), manifestPath(version))
                try fs.syncDirectory(versionsDirectory)
            }
        }
        let metadata = snapshot.metadata
        let reason = existingManifest != nil ? "content identical to version stored at \(Timestamp.text(existingManifest!.metadata.createdAt))" : metadata.message
        try? appendHistory(HistoryEvent(kind: .publish, time: Date(), version: version, previous: previous ?? nil,
                                        author: metadata.author, reason: reason, sourceRevision: metadata.sourceRevision),
                           session: session)
        return .published(version: version, bytesWritten: session.bytesWritten)
    }

    /// An object publish must write: level 0 resources, 1 shards, 2 indexes (children before parents).
    struct PendingObject {
        let hash: String
        let bytes: [UInt8]
        let level: Int
    }

    struct Plan {
        var objects: [PendingObject] = []
        var manifestGroups: [Manifest.GroupEntry] = []
        /// Every index the manifest references.
        var indexes: [ObjectRef] = []
    }

    /// Works out every object of the snapshot's tree and which are not on disk yet. An index or shard
    /// already on disk implies all its children are (they are always written first), so a one-resource
    /// change looks at one shard's resources, not at ten thousand files.
    func planObjects(_ snapshot: Snapshot) throws(SnapshotStoreError) -> Plan {
        try planObjects(Snapshot.sortedContent(snapshot.groups))
    }

    func planObjects(_ sorted: SortedContent) throws(SnapshotStoreError) -> Plan {
        var plan = Plan()
        var planned = Set<String>()
        func present(_ hash: String, size: Int) -> Bool {
            if planned.contains(hash) { return true }
            return fs.status(objectPath(hash)).map { $0.kind == .file && $0.size == size } ?? false
        }
        for (groupName, sortedTypes) in sorted {
            var types: [Manifest.TypeEntry] = []
            for (typeURL, resources) in sortedTypes {
                let bits = ObjectFormat.shardBits(forCount: resources.count)
                // Resources arrive sorted by name, so each bucket is sorted too. Buckets hold
                // positions, not resources: cheaper to move around.
                var buckets = [[Int]](repeating: [], count: 1 << bits)
                for (position, resource) in resources.enumerated() { buckets[ObjectFormat.shard(of: resource.name, bits: bits)].append(position) }
                var shards: [(entry: IndexEntry, bytes: [UInt8], members: [Int])] = []
                for (number, members) in buckets.enumerated() where !members.isEmpty {
                    let bytes = ObjectFormat.encodeShard(members.lazy.map { resources[$0] })
                    let entry = IndexEntry(shard: number, object: ObjectRef(hash: Digest.sha256Hex(bytes), size: bytes.count), count: members.count)
                    shards.append((entry, bytes, members))
                }
                let index = TypeIndex(bits: bits, count: resources.count, shards: shards.map(\.entry))
                let indexBytes = ObjectFormat.encodeIndex(index)
                let indexRef = ObjectRef(hash: Digest.sha256Hex(indexBytes), size: indexBytes.count)
                types.append(Manifest.TypeEntry(typeURL: typeURL, index: indexRef, count: resources.count))
                plan.indexes.append(indexRef)
                if present(indexRef.hash, size: indexRef.size) { continue }
                for shard in shards where !present(shard.entry.object.hash, size: shard.entry.object.size) {
                    for resource in shard.members.lazy.map({ resources[$0] }) where !present(resource.hash, size: resource.body.count) {
                        // The body is about to be stored under its hash: make sure they agree.
                        guard Digest.sha256Hex(resource.body) == resource.hash else {
                            throw .invalidSnapshot(reason: "resource \(resource.typeURL) \"\(resource.name)\" in group \"\(groupName)\" has a body that does not match its hash")
                        }
                        plan.objects.append(PendingObject(hash: resource.hash, bytes: resource.body, level: 0))
                        planned.insert(resource.hash)
                    }
                    plan.objects.append(PendingObject(hash: shard.entry.object.hash, bytes: shard.bytes, level: 1))
                    planned.insert(shard.entry.object.hash)
                }
                plan.objects.append(PendingObject(hash: indexRef.hash, bytes: indexBytes, level: 2))
                planned.insert(indexRef.hash)
            }
            plan.manifestGroups.append(Manifest.GroupEntry(group: groupName, types: types))
        }
        return plan
    }

    /// Writes objects to tmp/, makes them durable, then renames them into place level by level,
    /// making each level's renames durable before the next level's.
    func writeObjects(_ objects: [PendingObject], session: WriteSession) throws(SnapshotStoreError) {
        guard !objects.isEmpty else { return }
        let individually = objects.count <= Self.individualSyncLimit
        var temporaries: [String] = []
        temporaries.reserveCapacity(objects.count)
        try io { () throws(FileSystemError) in
            for object in objects {
                let temp = session.temporaryPath(in: temporaryDirectory)
                try fs.writeNewFile(temp, object.bytes, sync: individually)
                session.bytesWritten += object.bytes.count
                temporaries.append(temp)
            }
            if !individually { try fs.syncFileSystem(containing: directory) }
            for level in 0...2 {
                var directories = Set<String>()
                for (object, temp) in zip(objects, temporaries) where object.level == level {
                    try fs.rename(temp, objectPath(object.hash))
                    directories.insert(fanoutDirectory(object.hash))
                }
                if directories.isEmpty { continue }
                if individually || directories.count <= Self.individualSyncLimit {
                    for dir in directories.sorted() { try fs.syncDirectory(dir) }
                } else {
                    try fs.syncFileSystem(containing: directory)
                }
            }
        }
    }

    /// Before `current` moves: the manifest reads back as written, every index it references is
    /// present, and every object this publish wrote is present with the right hash.
    func verifyPublished(version: String, plan: Plan) throws(SnapshotStoreError) {
        let manifest = try readManifest(version)
        guard manifest.groups == plan.manifestGroups else {
            throw .manifestCorrupt(version: version, detail: "it does not list the snapshot's content")
        }
        for index in plan.indexes {
            guard let status = fs.status(objectPath(index.hash)), status.kind == .file else {
                throw .objectMissing(hash: index.hash, version: version)
            }
            guard status.size == index.size else {
                throw .objectCorrupt(hash: index.hash, version: version, detail: "\(status.size) bytes, \(index.size) recorded")
            }
        }
        for object in plan.objects {
            _ = try readObject(ObjectRef(hash: object.hash, size: object.bytes.count), version: version, checkHash: true)
        }
    }

    /// Replaces `current` by rename: readers see the old or the new version id, never a mix.
    /// Once the rename is done the move has happened, so a failing directory fsync after it is not an error.
    func movePointer(to version: String, session: WriteSession) throws(SnapshotStoreError) {
        try writeFileAtomically(Array((version + "\n").utf8), to: currentPath, directory: directory, session: session, committedByRename: true)
    }

    func writeFileAtomically(_ bytes: [UInt8], to path: String, directory: String, session: WriteSession,
                             committedByRename: Bool = false) throws(SnapshotStoreError) {
        let temp = session.temporaryPath(in: temporaryDirectory)
        try io { () throws(FileSystemError) in
            try fs.writeNewFile(temp, bytes, sync: true)
            session.bytesWritten += bytes.count
            try fs.rename(temp, path)
        }
        if committedByRename {
            try? io { () throws(FileSystemError) in try fs.syncDirectory(directory) }
        } else {
            try io { () throws(FileSystemError) in try fs.syncDirectory(directory) }
        }
    }

    /// Under the lock: removes what interrupted writers left (tmp/ files, pending manifests that
    /// never went live) and finishes a publish that moved `current` but not its manifest.
    func removeDebris(session: WriteSession, report: VerifyReport.Builder?) throws(SnapshotStoreError) {
        try io { () throws(FileSystemError) in
            if fs.status(temporaryDirectory) != nil {
                for name in try fs.listDirectory(temporaryDirectory) {
                    try fs.removeFile(temporaryDirectory + "/" + name)
                    report?.debris.append("tmp/\(name) (left by an interrupted write)")
                }
            }
        }
        guard fs.status(versionsDirectory) != nil else { return }
        let current = try? readPointer()
        let names = try io { () throws(FileSystemError) in try fs.listDirectory(versionsDirectory) }
        for name in names where name.hasSuffix(".pending") {
            let version = String(name.dropLast(".pending".count))
            try io { () throws(FileSystemError) in
                if version == current, fs.status(manifestPath(version)) == nil {
                    try fs.rename(pendingManifestPath(version), manifestPath(version))
                    report?.debris.append("versions/\(name) (finished: the publish was interrupted after `current` moved)")
                } else {
                    try fs.removeFile(pendingManifestPath(version))
                    report?.debris.append("versions/\(name) (a publish interrupted before `current` moved)")
                }
                try fs.syncDirectory(versionsDirectory)
            }
        }
    }

    // MARK: Rollback

    /// Makes an older version live again. The target is loaded and every object hash-checked first;
    /// a damaged or missing target leaves `current` untouched.
    public func rollback(to reference: String, reason: String?, author: String?) throws(SnapshotStoreError) -> RollbackOutcome {
        let lock = try lockForWriting(purpose: "rollback")
        defer { withExtendedLifetime(lock) {} }
        guard try checkReadable() else { throw .versionNotFound(reference: reference) }
        let target = try resolve(reference)
        let previous = try? readPointer()
        if previous == target { return .alreadyCurrent(version: target) }
        let snapshot = try loadResolved(target, check: .hashes)
        let session = WriteSession()
        try removeDebris(session: session, report: nil)
        try movePointer(to: target, session: session)
        // The rollback is live; a history record lost to a full disk is restored by `verify` as "recovered".
        try? appendHistory(HistoryEvent(kind: .rollback, time: Date(), version: target, previous: previous ?? nil,
                                       author: author, reason: reason, sourceRevision: snapshot.metadata.sourceRevision),
                          session: session)
        return .rolledBack(from: previous ?? nil, to: target)
    }

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

    // MARK: Change signal

    public func makeChangeSignal() -> any StoreChangeSignal {
        DirectoryChangeSignal(directory: directory)
    }
}

/// Per-operation bookkeeping: bytes written and unique temporary names.
final class WriteSession {
    var bytesWritten = 0
    private var counter = 0
    private let prefix = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    func temporaryPath(in directory: String) -> String {
        counter += 1
        return "\(directory)/\(prefix)-\(counter)"
    }
}

/// Results of a `concurrentPerform`, one slot per iteration. Each slot is written by exactly one
/// iteration and read only after all have finished, so no lock is needed.
final class ParallelSlots<T>: @unchecked Sendable {
    private let buffer: UnsafeMutableBufferPointer<T?>

    init(count: Int) {
        buffer = .allocate(capacity: max(count, 1))
        buffer.initialize(repeating: nil)
    }

    deinit {
        _ = buffer.deinitialize()
        buffer.deallocate()
    }

    func set(_ index: Int, _ value: T) { buffer[index] = value }

    var values: [T?] { Array(buffer) }
}
