// A snapshot as the server serves it: per proxy group an immutable view whose
// resource bodies are shared by every stream of the group (encoded once, by the
// compiler), plus the group's access record. Tests and tools build views from
// resources directly.
import MeshModel
import SnapshotStorage
import XDSProtocol
import XDSWire

/// One proxy group's resources, as the xDS state machines read them.
///
/// A single reference to shared, immutable storage: streams hold the view as `any ResourceSnapshotView`,
/// and a one-word value fits the existential inline, so handing the new view to 10,000 streams allocates
/// nothing per stream. The storage also carries the group's `ResourceSetCache`, where the streams share
/// their state-of-the-world answers (built on first use, once per type and subscription).
public struct GroupView: ResourceSnapshotView {
    private final class Storage: Sendable {
        let version: String
        let contentHash: String
        let byType: [String: [String: VersionedResource]]
        let contentVersions: [String: String]
        /// `byType` and `contentVersions` of the served types, by `TypeURL.knownIndex`: streams look them up on every
        /// change and ACK, and a dictionary lookup hashes the whole 50-byte type URL each time.
        let knownResources: [[String: VersionedResource]]
        let knownContentVersions: [String]
        let cache = ResourceSetCache()

        init(version: String, contentHash: String, byType: [String: [String: VersionedResource]], contentVersions: [String: String]) {
            self.version = version
            self.contentHash = contentHash
            self.byType = byType
            self.contentVersions = contentVersions
            knownResources = TypeURL.pushOrder.map { byType[$0] ?? [:] }
            knownContentVersions = TypeURL.pushOrder.map { contentVersions[$0] ?? ContentVersion.of([]) }
        }
    }

    private let storage: Storage

    public var version: String { storage.version }
    /// The snapshot-independent content of the group: equal when nothing in the group changed.
    public var contentHash: String { storage.contentHash }

    init(snapshotVersion: String, group: ProxyGroupResources) {
        var byType: [String: [String: VersionedResource]] = [:]
        for (typeURL, resources) in group.resources where typeURL != GroupAccess.typeURL {
            var named: [String: VersionedResource] = [:]
            named.reserveCapacity(resources.count)
            for (name, resource) in resources {
                named[name] = VersionedResource(name: name, version: resource.hash, body: ResourceBytes(resource.body))
            }
            byType[typeURL] = named
        }
        self.init(version: snapshotVersion, byType: byType)
    }

    /// A view held in memory (tests, tools); for a name listed twice under one type, the later resource wins.
    public init(version: String, resources: [String: [VersionedResource]]) {
        self.init(version: version, byType: resources.mapValues { list in
            Dictionary(list.map { ($0.name, $0) }, uniquingKeysWith: { _, later in later })
        })
    }

    private init(version: String, byType: [String: [String: VersionedResource]]) {
        let contentVersions = byType.mapValues { ContentVersion.of($0.values) }
        let contentHash = contentVersions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
        storage = Storage(version: version, contentHash: contentHash, byType: byType, contentVersions: contentVersions)
    }

    public func resources(typeURL: String) -> [String: VersionedResource] {
        if let index = TypeURL.knownIndex(typeURL) { return storage.knownResources[index] }
        return storage.byType[typeURL] ?? [:]
    }

    public func contentVersion(typeURL: String) -> String {
        if let index = TypeURL.knownIndex(typeURL) { return storage.knownContentVersions[index] }
        return storage.contentVersions[typeURL] ?? ContentVersion.of([])
    }

    public var resourceSetCache: ResourceSetCache? { storage.cache }

    public var resourceCount: Int { storage.byType.values.reduce(0) { $0 + $1.count } }
}

/// Everything the server serves from one snapshot.
public struct ServedSnapshot: Sendable {
    public let metadata: SnapshotMetadata
    public let groups: [String: GroupView]
    public let access: [String: GroupAccess]

    public init(_ snapshot: Snapshot) {
        metadata = snapshot.metadata
        var groups: [String: GroupView] = [:]
        var access: [String: GroupAccess] = [:]
        for (name, group) in snapshot.groups {
            groups[name] = GroupView(snapshotVersion: snapshot.metadata.version, group: group)
            if let record = group.resources[GroupAccess.typeURL]?.values.first, let decoded = GroupAccess.decode(record.body) {
                access[name] = decoded
            }
        }
        self.groups = groups
        self.access = access
    }

    public var version: String { metadata.version }
}
