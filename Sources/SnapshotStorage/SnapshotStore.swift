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
        // The final name, the pending one, then the final one again: a publish renames the pending manifest to its
        // final name just after moving `current`, and a reader that misses the final name just before that rename
        // misses the pending one just after it. (A server's watcher, woken by `current`'s rename, hit that window in
        // a benchmark: the live version was refused as missing and only served on the retry a second later.)
        for path in [manifestPath(version), pendingManifestPath(version), manifestPath(version)] {
            do {
                bytes = try fs.readFile(path, limit: nil)
                break
            } catch {
                if error.code != ENOENT { throw Self.mapped(error) }
            }
        }
        guard let bytes else { throw .versionNotFound(reference: version) }
        return try ObjectFormat.decodeManifest(bytes, of: version)
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
