// Import (`meshctl snapshot copy`): versions written exactly as a publish writes them, but without moving
// `current` or recording history; then the source's history and live version, once, into an empty store.
import Foundation

extension SnapshotStore: SnapshotImporting {
    public func importVersion(_ snapshot: Snapshot) throws(SnapshotStoreError) {
        let version = Snapshot.contentVersion(snapshot.groups)
        guard version == snapshot.metadata.version else {
            throw .invalidSnapshot(reason: "metadata says version \(snapshot.metadata.version) but the content hashes to \(version)")
        }
        try Snapshot.checkConsistency(snapshot.groups)
        let lock = try lockForWriting(purpose: "import")
        defer { withExtendedLifetime(lock) {} }
        try initializeLayout()
        let session = WriteSession()
        try removeDebris(session: session, report: nil)
        if (try? readManifest(version)) != nil { return }
        let plan = try planObjects(Snapshot.sortedContent(snapshot.groups))
        try writeObjects(plan.objects, session: session)
        let manifest = Manifest(format: ObjectFormat.manifestFormat, metadata: snapshot.metadata, groups: plan.manifestGroups)
        try writeFileAtomically(ObjectFormat.encodeManifest(manifest), to: pendingManifestPath(version), directory: versionsDirectory, session: session)
        try verifyPublished(version: version, plan: plan)
        try io { () throws(FileSystemError) in
            try fs.rename(pendingManifestPath(version), manifestPath(version))
            try fs.syncDirectory(versionsDirectory)
        }
    }

    public func importHistory(_ events: [HistoryEvent], live: String?) throws(SnapshotStoreError) {
        let lock = try lockForWriting(purpose: "import")
        defer { withExtendedLifetime(lock) {} }
        try initializeLayout()
        guard try readPointer() == nil, try history().isEmpty else {
            throw .notAStore(path: directory, reason: "it already has a history; copy into a new, empty store")
        }
        if let live { _ = try readManifest(live) }
        let session = WriteSession()
        var bytes: [UInt8] = []
        for event in events {
            bytes.append(contentsOf: (try? Timestamp.encoder.encode(event)) ?? Data())
            bytes.append(10)
        }
        try writeFileAtomically(bytes, to: historyPath, directory: directory, session: session)
        if let live { try movePointer(to: live, session: session) }
    }
}

extension SnapshotStore {
    /// Creates the store's layout (a no-op for an existing store); `meshctl snapshot init`.
    public func initialize() throws(SnapshotStoreError) {
        let lock = try lockForWriting(purpose: "init")
        defer { withExtendedLifetime(lock) {} }
        try initializeLayout()
    }
}
