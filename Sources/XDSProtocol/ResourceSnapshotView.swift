// What the protocol machine reads resources from: an immutable per-proxy-group view
// of a published snapshot. The machine never encodes resources; it wraps the view's
// shared bodies into responses.
import XDSWire

/// One resource as a snapshot holds it: its name, a content-hash version, and the serialized body shared by every stream.
public struct VersionedResource: Sendable, Hashable {
    /// The resource name (Listener/Cluster name, RouteConfiguration name, ClusterLoadAssignment cluster_name…).
    public var name: String
    /// A hash of the body: equal versions mean equal bytes.
    public var version: String
    /// The serialized resource message, encoded once when the snapshot was built.
    public var body: ResourceBytes
    /// How long a proxy may keep the resource without hearing from the control plane (delta TTL); nil for no TTL.
    public var ttl: Duration?

    public init(name: String, version: String, body: ResourceBytes, ttl: Duration? = nil) {
        self.name = name
        self.version = version
        self.body = body
        self.ttl = ttl
    }

    /// Copies `body` into shared storage; build views with this once, not per stream.
    public init(name: String, version: String, body: [UInt8], ttl: Duration? = nil) {
        self.init(name: name, version: version, body: ResourceBytes(body), ttl: ttl)
    }
}

/// An immutable, versioned set of resources for one proxy group, read by every stream that serves the group.
public protocol ResourceSnapshotView: Sendable {
    /// The snapshot version (sent as delta `system_version_info`, recorded in proxy status).
    var version: String { get }
    /// Every resource of `typeURL`, by name (empty for a type the snapshot does not have).
    func resources(typeURL: String) -> [String: VersionedResource]
    /// `ContentVersion.of` all resources of `typeURL`; views may precompute it since every wildcard stream asks.
    func contentVersion(typeURL: String) -> String
    /// Where the streams reading this view share their state-of-the-world answers (built once per type and
    /// subscription); nil makes every stream build its own.
    var resourceSetCache: ResourceSetCache? { get }
}

extension ResourceSnapshotView {
    public func contentVersion(typeURL: String) -> String {
        ContentVersion.of(resources(typeURL: typeURL).values)
    }

    public var resourceSetCache: ResourceSetCache? { nil }

    /// The ClusterLoadAssignment the EDS cluster `name` takes its endpoints from: its `eds_cluster_config.service_name`,
    /// else its name; nil when the view has no such cluster or it is not of type EDS.
    public func assignmentName(ofCluster name: String) -> String? {
        resources(typeURL: TypeURL.cluster)[name]?.body.withUnsafeBytes { ResourceReferences.endpointName(ofCluster: $0) }
    }
}

/// Deterministic version strings for a set of resources: the same names and versions give the same string on any replica.
public enum ContentVersion {
    /// FNV-1a (64-bit) over the (name, version) pairs in name order, as 16 hex digits.
    public static func of(_ resources: some Sequence<VersionedResource>) -> String {
        of(sortedByName: resources.sorted(by: { $0.name < $1.name }))
    }

    /// `of` for resources already sorted by name.
    static func of(sortedByName resources: [VersionedResource]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ byte: UInt8) {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        for resource in resources {
            for byte in resource.name.utf8 { mix(byte) }
            mix(0)
            for byte in resource.version.utf8 { mix(byte) }
            mix(0)
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
