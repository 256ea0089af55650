// The directory store's object model (manifest → per-(group, type) index → shards → resource bodies, all
// content-addressed) offered to other backends in this package, so a PostgreSQL store keeps the very same
// objects and versions: an unchanged shard or index is shared between versions there too, version ids are
// identical across backends, and `snapshot copy` moves objects without re-encoding them.
import Foundation

/// One content-addressed object of a snapshot's tree.
package struct PortableObject: Sendable {
    package let hash: String
    package let bytes: [UInt8]
    /// 0 resource body, 1 shard, 2 index: children before parents.
    package let level: Int
}

/// A snapshot encoded for storage: its manifest and the objects its tree needs.
package struct PortableSnapshot: Sendable {
    package let metadata: SnapshotMetadata
    package let manifest: [UInt8]
    /// The objects not reported present by the caller's `stored` test, children first.
    package let objects: [PortableObject]
    package let groupCount: Int
    package let resourceCount: Int
}

/// What a manifest says about its version without loading it.
package struct PortableManifestSummary: Sendable {
    package let metadata: SnapshotMetadata
    package let groupCount: Int
    package let resourceCount: Int
}

package enum PortableStoreFormat {
    /// Checks the snapshot (as `SnapshotStore.publish` does), and encodes its manifest and every object
    /// `stored` does not report present (an index reported present implies its shards and bodies are).
    package static func encode(_ snapshot: Snapshot,
                               stored: (String, Int) -> Bool = { _, _ in false }) throws(SnapshotStoreError) -> PortableSnapshot {
        let (sorted, version) = try snapshot.checkedContent()
        let plan = try SnapshotStore.planObjects(sorted, stored: stored)
        let manifest = Manifest(format: ObjectFormat.manifestFormat, metadata: snapshot.metadata, groups: plan.manifestGroups)
        return PortableSnapshot(metadata: snapshot.metadata, manifest: ObjectFormat.encodeManifest(manifest),
                                objects: plan.objects.map { PortableObject(hash: $0.hash, bytes: $0.bytes, level: $0.level) },
                                groupCount: manifest.groups.count, resourceCount: manifest.resourceCount)
    }

    /// True when the snapshot's version was computed from its content by `Snapshot.make` (so it can be trusted
    /// without re-hashing, e.g. to recognise an unchanged publish).
    package static func versionIsComputed(_ snapshot: Snapshot) -> Bool { snapshot.sortedContent != nil }

    /// The index hashes a manifest references (what must be present for the version to load).
    package static func indexHashes(manifest bytes: [UInt8], version: String) throws(SnapshotStoreError) -> [String] {
        try decodeManifest(bytes, version: version).groups.flatMap { $0.types.map(\.index.hash) }
    }

    package static func summary(manifest bytes: [UInt8], version: String) throws(SnapshotStoreError) -> PortableManifestSummary {
        let m = try decodeManifest(bytes, version: version)
        return PortableManifestSummary(metadata: m.metadata, groupCount: m.groups.count, resourceCount: m.resourceCount)
    }

    /// Loads a version from its manifest, fetching objects by hash in three batches (indexes, shards, bodies).
    /// `fetch` returns the objects it has; a missing one is `.objectMissing`. Indexes and shards are always
    /// hash-checked, bodies with `.hashes`.
    package static func load(manifest bytes: [UInt8], version: String, check: LoadCheck,
                             fetch: ([String]) throws(SnapshotStoreError) -> [String: [UInt8]]) throws(SnapshotStoreError) -> Snapshot {
        let manifest = try decodeManifest(bytes, version: version)
        let indexRefs = manifest.groups.flatMap { $0.types.map(\.index) }
        let indexBytes = try fetch(Array(Set(indexRefs.map(\.hash))))
        var indexes: [String: TypeIndex] = [:]
        for ref in indexRefs where indexes[ref.hash] == nil {
            let bytes = try checked(ref, indexBytes[ref.hash], version: version, hash: true)
            guard let index = ObjectFormat.decodeIndex(bytes) else { throw .objectCorrupt(hash: ref.hash, version: version, detail: "not an index object") }
            indexes[ref.hash] = index
        }
        let shardRefs = indexes.values.flatMap { $0.shards }
        let shardBytes = try fetch(Array(Set(shardRefs.map(\.object.hash))))
        var shards: [String: [ShardEntry]] = [:]
        for entry in shardRefs where shards[entry.object.hash] == nil {
            let bytes = try checked(entry.object, shardBytes[entry.object.hash], version: version, hash: true)
            guard let lines = ObjectFormat.decodeShard(bytes), lines.count == entry.count else {
                throw .objectCorrupt(hash: entry.object.hash, version: version, detail: "not a shard object of \(entry.count) entries")
            }
            shards[entry.object.hash] = lines
        }
        let bodies = try fetch(Array(Set(shards.values.flatMap { $0.map(\.object.hash) })))
        var groups: [String: ProxyGroupResources] = [:]
        for group in manifest.groups {
            var byType: [String: [String: Resource]] = [:]
            for type in group.types {
                var byName: [String: Resource] = [:]
                for shard in indexes[type.index.hash]!.shards {
                    for line in shards[shard.object.hash]! {
                        let body = try checked(line.object, bodies[line.object.hash], version: version, hash: check == .hashes)
                        byName[line.name] = Resource(typeURL: type.typeURL, name: line.name, body: body, hash: line.object.hash)
                    }
                }
                guard byName.count == type.count else {
                    throw .manifestCorrupt(version: version, detail: "\(group.group) \(type.typeURL): manifest counts \(type.count) resources, index holds \(byName.count)")
                }
                byType[type.typeURL] = byName
            }
            groups[group.group] = ProxyGroupResources(group: group.group, resources: byType)
        }
        return Snapshot(metadata: manifest.metadata, groups: groups)
    }

    /// Every object hash a version references (for gc), fetching index and shard objects but no bodies.
    package static func referencedObjects(manifest bytes: [UInt8], version: String,
                                          fetch: ([String]) throws(SnapshotStoreError) -> [String: [UInt8]]) throws(SnapshotStoreError) -> Set<String> {
        let manifest = try decodeManifest(bytes, version: version)
        var reachable = Set<String>()
        let indexHashes = Array(Set(manifest.groups.flatMap { $0.types.map(\.index.hash) }))
        reachable.formUnion(indexHashes)
        var shardHashes: [String] = []
        for (_, bytes) in try fetch(indexHashes) {
            for shard in ObjectFormat.decodeIndex(bytes)?.shards ?? [] { shardHashes.append(shard.object.hash) }
        }
        reachable.formUnion(shardHashes)
        for (_, bytes) in try fetch(Array(Set(shardHashes))) {
            for line in ObjectFormat.decodeShard(bytes) ?? [] { reachable.insert(line.object.hash) }
        }
        return reachable
    }

    /// Timestamps and metadata as the directory store writes them (UTC, milliseconds) for JSON columns.
    package static func encodeJSON(_ value: some Encodable) -> String {
        String(decoding: (try? Timestamp.encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    package static func decodeJSON<T: Decodable>(_ type: T.Type, _ text: String) -> T? {
        try? Timestamp.decoder.decode(type, from: Data(text.utf8))
    }

    /// A time as the store writes it for people (UTC ISO 8601, milliseconds).
    package static func timestampText(_ date: Date) -> String { Timestamp.text(date) }

    /// True for a lowercase 64-hex-digit SHA-256 (a version id or object hash).
    package static func isHash(_ text: String) -> Bool { Digest.isHash(text) }

    package static func sha256Hex(_ bytes: [UInt8]) -> String { Digest.sha256Hex(bytes) }

    private static func decodeManifest(_ bytes: [UInt8], version: String) throws(SnapshotStoreError) -> Manifest {
        try ObjectFormat.decodeManifest(bytes, of: version)
    }

    private static func checked(_ ref: ObjectRef, _ bytes: [UInt8]?, version: String, hash: Bool) throws(SnapshotStoreError) -> [UInt8] {
        guard let bytes else { throw .objectMissing(hash: ref.hash, version: version) }
        guard bytes.count == ref.size else {
            throw .objectCorrupt(hash: ref.hash, version: version, detail: "\(bytes.count) bytes, \(ref.size) recorded")
        }
        if hash && Digest.sha256Hex(bytes) != ref.hash {
            throw .objectCorrupt(hash: ref.hash, version: version, detail: "content does not match its SHA-256")
        }
        return bytes
    }
}
