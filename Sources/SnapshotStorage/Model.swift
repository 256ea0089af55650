// The snapshot data model shared by the compiler (which builds snapshots), the store
// (which keeps them) and the xDS server (which serves them).
import Foundation

/// One xDS resource: its type, name and deterministic protobuf encoding, named by content.
public struct Resource: Hashable, Sendable {
    /// `type.googleapis.com/<full message name>`.
    public let typeURL: String
    public let name: String
    /// Deterministic protobuf encoding of the resource message.
    public let body: [UInt8]
    /// Lowercase hex SHA-256 of `body`; also the resource's xDS version.
    public let hash: String

    public init(typeURL: String, name: String, body: [UInt8]) {
        self.typeURL = typeURL
        self.name = name
        self.body = body
        self.hash = Digest.sha256Hex(body)
    }

    /// For the loader: the hash comes from the store's index and is checked by `verify`.
    init(typeURL: String, name: String, body: [UInt8], hash: String) {
        self.typeURL = typeURL
        self.name = name
        self.body = body
        self.hash = hash
    }

    // The hash stands for the body: comparing it avoids touching kilobytes per comparison.
    public static func == (a: Resource, b: Resource) -> Bool {
        a.hash == b.hash && a.name == b.name && a.typeURL == b.typeURL
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(typeURL)
        hasher.combine(name)
        hasher.combine(hash)
    }
}

/// Every resource one proxy group (one kind of Envoy) receives, by type URL and name.
public struct ProxyGroupResources: Sendable {
    public let group: String
    /// typeURL → name → resource.
    public let resources: [String: [String: Resource]]

    public init(group: String, resources: [String: [String: Resource]]) {
        self.group = group
        self.resources = resources
    }

    /// Groups a flat list by type and name; when two share a type and name, the later one is kept.
    public init(group: String, resources list: [Resource]) {
        var byType: [String: [String: Resource]] = [:]
        for resource in list { byType[resource.typeURL, default: [:]][resource.name] = resource }
        self.init(group: group, resources: byType)
    }

    /// Number of resources across all types.
    public var count: Int { resources.values.reduce(0) { $0 + $1.count } }

    /// Type URLs present, in byte order.
    public var typeURLs: [String] { resources.keys.sorted(by: byteOrder) }
}

/// What the store records about a snapshot besides its resources.
public struct SnapshotMetadata: Codable, Sendable, Equatable {
    /// Content hash over every (group, type URL, name, resource hash): equal content, equal version.
    public var version: String
    /// When the compiler made the snapshot (millisecond precision).
    public var createdAt: Date
    /// The configuration repository revision compiled (`--source-rev`), when known.
    public var sourceRevision: String?
    public var author: String?
    public var message: String?
    public var compilerVersion: String

    public init(version: String, createdAt: Date, sourceRevision: String? = nil, author: String? = nil,
                message: String? = nil, compilerVersion: String) {
        self.version = version
        self.createdAt = createdAt
        self.sourceRevision = sourceRevision
        self.author = author
        self.message = message
        self.compilerVersion = compilerVersion
    }
}

/// Groups, their types and each type's resources, all in byte order.
typealias SortedContent = [(group: String, types: [(typeURL: String, resources: [Resource])])]

/// The complete configuration for every proxy group at one version.
public struct Snapshot: Sendable {
    public let metadata: SnapshotMetadata
    /// Proxy group name → its resources.
    public let groups: [String: ProxyGroupResources]
    /// Set by `make`, which computed the version from exactly this content: lets `publish` skip
    /// sorting and hashing twenty thousand entries a second time. Nil for snapshots built any other way.
    let sortedContent: SortedContent?

    /// A snapshot whose metadata the caller vouches for; `SnapshotStore.publish` recomputes the version and refuses a mismatch.
    public init(metadata: SnapshotMetadata, groups: [String: ProxyGroupResources]) {
        self.metadata = metadata
        self.groups = groups
        self.sortedContent = nil
    }

    init(metadata: SnapshotMetadata, groups: [String: ProxyGroupResources], sortedContent: SortedContent) {
        self.metadata = metadata
        self.groups = groups
        self.sortedContent = sortedContent
    }

    /// Builds a snapshot and computes its version from the content.
    /// Throws `invalidSnapshot` when two groups share a name or a resource is filed under the wrong type or name.
    public static func make(groups: [ProxyGroupResources], sourceRevision: String? = nil, author: String? = nil,
                            message: String? = nil, compilerVersion: String,
                            createdAt: Date = Date()) throws(SnapshotStoreError) -> Snapshot {
        var byName: [String: ProxyGroupResources] = [:]
        for group in groups {
            guard byName[group.group] == nil else {
                throw .invalidSnapshot(reason: "proxy group \"\(group.group)\" appears twice")
            }
            byName[group.group] = group
        }
        try checkConsistency(byName)
        let sorted = sortedContent(byName)
        let metadata = SnapshotMetadata(version: contentVersion(sorted), createdAt: millisecondPrecision(createdAt),
                                        sourceRevision: sourceRevision, author: author, message: message,
                                        compilerVersion: compilerVersion)
        return Snapshot(metadata: metadata, groups: byName, sortedContent: sorted)
    }

    /// The version of this content: SHA-256 over the sorted (group, type URL, name, hash) entries,
    /// each field length-prefixed so no two different contents serialize alike.
    public static func contentVersion(_ groups: [String: ProxyGroupResources]) -> String {
        contentVersion(sortedContent(groups))
    }

    /// Groups, their types and each type's resources, all in byte order: the one ordering that the
    /// version hash, the store's shards and every listing share.
    static func sortedContent(_ groups: [String: ProxyGroupResources]) -> SortedContent {
        groups.keys.sorted(by: byteOrder).map { name in
            let group = groups[name]!
            return (name, group.resources.keys.sorted(by: byteOrder).map { typeURL in (typeURL, sortedByName(group.resources[typeURL]!)) })
        }
    }

    /// Sorting an index array keeps the comparisons from copying whole resources around.
    static func sortedByName(_ byName: [String: Resource]) -> [Resource] {
        let list = Array(byName.values)
        let names = list.map(\.name)
        var order = Array(0..<list.count)
        names.withUnsafeBufferPointer { n in
            order.sort { byteOrder(n[$0], n[$1]) }
        }
        return order.map { list[$0] }
    }

    static func contentVersion(_ sorted: SortedContent) -> String {
        var text: [UInt8] = Array("meshctl-snapshot 1\n".utf8)
        text.reserveCapacity(sorted.reduce(64) { $0 + $1.types.reduce(0) { $0 + $1.resources.count * 160 } })
        func field(_ s: String) {
            appendDecimal(s.utf8.count, to: &text)
            text.append(UInt8(ascii: ":"))
            text.append(contentsOf: s.utf8)
            text.append(UInt8(ascii: " "))
        }
        for (groupName, types) in sorted {
            text.append(contentsOf: "g ".utf8)
            field(groupName)
            text.append(UInt8(ascii: "\n"))
            for (typeURL, resources) in types {
                for resource in resources {
                    text.append(contentsOf: "r ".utf8)
                    field(typeURL)
                    field(resource.name)
                    text.append(contentsOf: resource.hash.utf8)
                    text.append(UInt8(ascii: "\n"))
                }
            }
        }
        return Digest.sha256Hex(text)
    }

    /// Total resources across groups.
    public var resourceCount: Int { groups.values.reduce(0) { $0 + $1.count } }

    /// Group names in byte order.
    public var groupNames: [String] { groups.keys.sorted(by: byteOrder) }

    static func checkConsistency(_ groups: [String: ProxyGroupResources]) throws(SnapshotStoreError) {
        for (key, group) in groups {
            guard key == group.group else {
                throw .invalidSnapshot(reason: "proxy group \"\(group.group)\" is filed under \"\(key)\"")
            }
            for (typeURL, byName) in group.resources {
                for (name, resource) in byName where resource.typeURL != typeURL || resource.name != name {
                    throw .invalidSnapshot(reason: "in group \"\(key)\", resource \(resource.typeURL) \"\(resource.name)\" is filed under \(typeURL) \"\(name)\"")
                }
            }
        }
    }

    static func millisecondPrecision(_ date: Date) -> Date {
        Date(timeIntervalSince1970: Double(Int64((date.timeIntervalSince1970 * 1000).rounded(.down))) / 1000)
    }
}

/// The result of `publish`.
public enum PublishOutcome: Equatable, Sendable {
    /// The snapshot is now live; `bytesWritten` counts every byte the publish wrote.
    case published(version: String, bytesWritten: Int)
    /// The live snapshot already had this content; nothing was written.
    case unchanged(version: String)

    public var version: String {
        switch self {
        case .published(let v, _), .unchanged(let v): return v
        }
    }
}

/// One stored version as `list` shows it.
public struct VersionSummary: Sendable, Equatable {
    public let metadata: SnapshotMetadata
    public let groupCount: Int
    public let resourceCount: Int
    public let isCurrent: Bool

    public init(metadata: SnapshotMetadata, groupCount: Int, resourceCount: Int, isCurrent: Bool) {
        self.metadata = metadata
        self.groupCount = groupCount
        self.resourceCount = resourceCount
        self.isCurrent = isCurrent
    }
}

/// A line of the store's history: what became live, when, and who said so.
public struct HistoryEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// A publish moved `current` to a new snapshot.
        case publish
        /// An operator moved `current` back to an older snapshot.
        case rollback
        /// `gc` deleted a version (kept as a tombstone so a later rollback can say what happened).
        case gc
        /// `verify` found `current` moved without a record (a publish interrupted after its last rename).
        case recovered
        /// A publish that waited behind a running progressive rollout was replaced in the queue by a newer one and
        /// will never roll out (`version` is the replaced one; the live pointer did not move).
        case collapsed

        /// Whether an event of this kind moved the live pointer (gc and queue records did not).
        public var movesLivePointer: Bool { self == .publish || self == .rollback || self == .recovered }
    }

    public var kind: Kind
    public var time: Date
    public var version: String
    public var previous: String?
    public var author: String?
    public var reason: String?
    public var sourceRevision: String?

    public init(kind: Kind, time: Date, version: String, previous: String? = nil, author: String? = nil,
                reason: String? = nil, sourceRevision: String? = nil) {
        self.kind = kind
        self.time = time
        self.version = version
        self.previous = previous
        self.author = author
        self.reason = reason
        self.sourceRevision = sourceRevision
    }
}

/// What `rollback` did.
public enum RollbackOutcome: Equatable, Sendable {
    case rolledBack(from: String?, to: String)
    /// The requested version was already live.
    case alreadyCurrent(version: String)
}

/// What `gc` removed.
public struct GCReport: Sendable, Equatable {
    public var removedVersions: [String] = []
    public var keptVersions: [String] = []
    public var removedObjects = 0
    public var freedBytes = 0

    public init() {}
}

/// How much the loader checks resource bodies against the index.
public enum LoadCheck: Sendable {
    /// Every object exists with the size its index records; index objects are hash-checked (the default: I/O-bound).
    case sizes
    /// As `sizes`, and every resource body is hashed and compared (what `verify` and `rollback` do).
    case hashes
}

/// Byte-wise order of UTF-8: deterministic, and what Envoy and other tools mean by "sorted".
@inline(__always)
func byteOrder(_ a: String, _ b: String) -> Bool {
    let fast = a.utf8.withContiguousStorageIfAvailable { x in
        b.utf8.withContiguousStorageIfAvailable { y in
            let n = min(x.count, y.count)
            if n > 0 {
                let c = memcmp(x.baseAddress!, y.baseAddress!, n)
                if c != 0 { return c < 0 }
            }
            return x.count < y.count
        }
    }
    if let fast, let result = fast { return result }
    return a.utf8.lexicographicallyPrecedes(b.utf8)
}

/// Appends the decimal digits of a non-negative integer (no String allocation).
@inline(__always)
func appendDecimal(_ value: Int, to out: inout [UInt8]) {
    var divisor = 1
    while divisor <= value / 10 { divisor *= 10 }
    var rest = value
    while divisor > 0 {
        out.append(UInt8(48 + rest / divisor))
        rest %= divisor
        divisor /= 10
    }
}

extension Snapshot {
    /// The snapshot's content sorted for storage, and its version, checked: a snapshot from `Snapshot.make` is
    /// consistent and versioned by construction (its fields are immutable); any other is checked and its version
    /// recomputed here, and a version that does not match the content is refused. Every backend publishes through this.
    func checkedContent() throws(SnapshotStoreError) -> (sorted: SortedContent, version: String) {
        if let cached = sortedContent { return (cached, metadata.version) }
        try Snapshot.checkConsistency(groups)
        let sorted = Snapshot.sortedContent(groups)
        let version = Snapshot.contentVersion(sorted)
        guard version == metadata.version else {
            throw .invalidSnapshot(reason: "metadata says version \(metadata.version) but the content hashes to \(version) (build snapshots with Snapshot.make)")
        }
        return (sorted, version)
    }
}
