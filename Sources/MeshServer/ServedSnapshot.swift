// A snapshot as the server serves it: per proxy group an immutable view whose
// resource bodies are shared by every stream of the group (encoded once, by the
// compiler), plus the group's access record.
import SnapshotStore
import XDSProtocol
import XDSWire

/// One proxy group's resources, as the xDS state machines read them.
public struct GroupView: ResourceSnapshotView {
    public let version: String
    /// The snapshot-independent content of the group: equal when nothing in the group changed.
    public let contentHash: String
    private let byType: [String: [String: VersionedResource]]
    private let contentVersions: [String: String]

    init(snapshotVersion: String, group: ProxyGroupResources) {
        version = snapshotVersion
        var byType: [String: [String: VersionedResource]] = [:]
        var contentVersions: [String: String] = [:]
        for (typeURL, resources) in group.resources where typeURL != GroupAccess.typeURL {
            var named: [String: VersionedResource] = [:]
            named.reserveCapacity(resources.count)
            for (name, resource) in resources {
                named[name] = VersionedResource(name: name, version: resource.hash, body: ResourceBytes(resource.body))
            }
            contentVersions[typeURL] = ContentVersion.of(named.values)
            byType[typeURL] = named
        }
        self.byType = byType
        self.contentVersions = contentVersions
        contentHash = contentVersions.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
    }

    public func resources(typeURL: String) -> [String: VersionedResource] { byType[typeURL] ?? [:] }

    public func contentVersion(typeURL: String) -> String {
        contentVersions[typeURL] ?? ContentVersion.of([])
    }

    public var resourceCount: Int { byType.values.reduce(0) { $0 + $1.count } }
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
