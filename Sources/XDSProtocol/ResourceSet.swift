// Owns the state-of-the-world answers that streams share: for one view, the resource
// set a wildcard subscription gets and the set each distinct list of names gets,
// each sorted, versioned and Any-encoded once. Every proxy of a group subscribes
// alike, so 10,000 streams reading one view plan and encode once per type, not
// 10,000 times; a stream remembers what it sent as a reference to the shared set.
import Locking
import XDSWire

/// The resources of one type that a state-of-the-world response carries, sorted by name, with their content version; immutable and shared by every stream sending the same answer.
public final class ResourceSet: Sendable {
    public let typeURL: String
    /// Sorted by name; names are unique.
    public let resources: [VersionedResource]
    /// `ContentVersion.of(resources)`: the response's `version_info`.
    public let version: String
    /// The resources wrapped as Any, the list every response built from this set carries.
    public let list: ResourceList

    /// A set from resources already sorted by name with unique names. `preEncode` encodes the
    /// Any list now (for sets that many streams send); `version` skips recomputing a known content version.
    init(typeURL: String, sorted resources: [VersionedResource], version: String? = nil, preEncode: Bool) {
        self.typeURL = typeURL
        self.resources = resources
        self.version = version ?? ContentVersion.of(sortedByName: resources)
        let items = resources.map { AnyResource(typeURL: typeURL, value: $0.body) }
        list = preEncode ? ResourceList(preEncoding: items) : ResourceList(items)
    }

    public var isEmpty: Bool { resources.isEmpty }
    public var count: Int { resources.count }

    /// Whether some resource here is absent from `other` or has another version there (nil: no set at all).
    /// Both are sorted by name, so this is one merge walk without hashing.
    func hasChange(against other: ResourceSet?) -> Bool {
        guard let other else { return !resources.isEmpty }
        if other === self { return false }
        let theirs = other.resources
        var j = 0
        for mine in resources {
            while j < theirs.count && theirs[j].name < mine.name { j += 1 }
            guard j < theirs.count, theirs[j].name == mine.name, theirs[j].version == mine.version else { return true }
            j += 1
        }
        return false
    }

    /// The resources whose names `keep` accepts (a stream's own set after its subscription shrank; not shared).
    func filtered(_ keep: (String) -> Bool) -> ResourceSet {
        ResourceSet(typeURL: typeURL, sorted: resources.filter { keep($0.name) }, preEncode: false)
    }

    /// The resources here that `other` lacks or has at another version, and those `forced` names; sorted by name.
    /// One merge walk, as in `hasChange`.
    func outstanding(against other: ResourceSet?, forced: Set<String>) -> [VersionedResource] {
        guard let other else { return resources }
        if other === self { return forced.isEmpty ? [] : resources.filter { forced.contains($0.name) } }
        let theirs = other.resources
        var j = 0
        return resources.filter { mine in
            while j < theirs.count && theirs[j].name < mine.name { j += 1 }
            let held = j < theirs.count && theirs[j].name == mine.name && theirs[j].version == mine.version
            return !held || (!forced.isEmpty && forced.contains(mine.name))
        }
    }
}

/// What a state-of-the-world response holds and carries: `holds` is what the proxy has once it accepts it (its
/// version is the response's `version_info`); `carries` is what the response contains. They differ only for types
/// whose responses need not be complete (routes, endpoints, secrets): the proxy keeps what a response leaves out.
struct SotWAnswer {
    var holds: ResourceSet
    var carries: ResourceSet

    init(holds: ResourceSet, carries: ResourceSet) {
        self.holds = holds
        self.carries = carries
    }

    init(complete set: ResourceSet) { self.init(holds: set, carries: set) }
}

/// Which resources of a type a delta stream follows: every one (wildcard, with no names besides) or the named ones.
struct DeltaScope: Hashable, Sendable {
    var typeURL: String
    var wildcard: Bool
    var names: SubscriptionNames

    func hash(into hasher: inout Hasher) {
        TypeURL.hash(typeURL, into: &hasher)
        hasher.combine(wildcard)
        hasher.combine(names)
    }
}

/// The content version and count of the resources a delta stream holds once up to date with a view.
struct DeltaTarget: Hashable, Sendable {
    var version: String
    var count: Int
}

/// A delta response's content: resources to (re)send, sorted by name, and names to remove, sorted.
struct DeltaPlan: Hashable, Sendable {
    var updates: [VersionedResource]
    var removals: [String]

    static let none = DeltaPlan(updates: [], removals: [])
}

/// The explicitly subscribed names of one type, sorted, with a fingerprint so that looking a
/// subscription up in a cache neither sorts nor hashes every name.
public struct SubscriptionNames: Sendable, Hashable {
    public let sorted: [String]
    private let fingerprint: UInt64

    public static let none = SubscriptionNames(sorted: [])

    public init(_ names: some Sequence<String>) { self.init(sorted: names.sorted()) }

    private init(sorted: [String]) {
        self.sorted = sorted
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for name in sorted {
            for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            hash = (hash ^ 0xff) &* 0x0000_0100_0000_01b3
        }
        fingerprint = hash
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }

    public static func == (a: SubscriptionNames, b: SubscriptionNames) -> Bool {
        a.fingerprint == b.fingerprint && a.sorted == b.sorted
    }

    /// Whether `requested` (a request's list, in any order) names exactly these names; cheap when it is sorted.
    func isExactly(_ requested: [String]) -> Bool {
        guard requested.count == sorted.count else { return false }
        // The decoder hands back these very names when an ACK repeats them (`DiscoveryRequest(serialized:knownNames:)`).
        if requested.withUnsafeBufferPointer({ $0.baseAddress }) == sorted.withUnsafeBufferPointer({ $0.baseAddress }) { return true }
        return requested.elementsEqual(sorted)
    }
}

/// A view's memo of shared `ResourceSet`s, one per (type, subscription). Views are immutable and read
/// by streams on every event loop, so the memo is behind a lock; a new snapshot is a new view with an
/// empty memo, so nothing from an older view is ever served.
public final class ResourceSetCache: Sendable {
    /// Distinct explicit subscriptions remembered per view; past this, sets are built per stream (a bound
    /// on what proxies with unusual subscriptions can make the server keep).
    public static let maxNamedSets = 256

    private struct NamedKey: Hashable {
        var typeURL: String
        var names: SubscriptionNames

        func hash(into hasher: inout Hasher) {
            TypeURL.hash(typeURL, into: &hasher)
            hasher.combine(names)
        }
    }

    private struct Memo {
        /// Looked up on every push of a wildcard type to every stream: by position, not by hashing the URL.
        var wildcard = TypeURLTable<ResourceSet>()
        var named: [NamedKey: ResourceSet] = [:]
        var outstanding: [OutstandingKey: ResourceSet] = [:]
        var assignmentsOwed: [ClusterStepKey: [String]] = [:]
        /// cluster name → its assignment's name (nil: not an EDS cluster), as read from the cluster's body.
        var assignmentNames: [String: String?] = [:]
        var subscriptions: [SubscriptionNames: Set<String>] = [:]
        var deltaTargets: [NamedKey: DeltaTarget] = [:]
        var knownVersions: [DeltaTargetKey: [String: String]] = [:]
        var deltaSteps: [DeltaStepKey: DeltaPlan] = [:]
    }

    /// A partial state-of-the-world answer: what a stream of one subscription holding `from` is owed, `forced` included.
    private struct OutstandingKey: Hashable {
        var typeURL: String
        var names: SubscriptionNames
        var from: String
        var forced: SubscriptionNames

        func hash(into hasher: inout Hasher) {
            TypeURL.hash(typeURL, into: &hasher)
            hasher.combine(names)
            hasher.combine(from)
            hasher.combine(forced)
        }
    }

    /// Streams moving from one cluster set to another (by content version; nil: from none).
    private struct ClusterStepKey: Hashable {
        var from: String?
        var to: String
    }

    private struct DeltaTargetKey: Hashable {
        var scope: DeltaScope
        var version: String
    }

    private struct DeltaStepKey: Hashable {
        var scope: DeltaScope
        /// The target version the streams held in the view they come from.
        var from: String
    }

    private let memo = Locked(Memo())

    public init() {}

    /// Number of sets built and kept so far (for tests and diagnostics).
    public var count: Int { memo.withLock { $0.wildcard.entries.count + $0.named.count } }

    /// Distinct subscriptions and delta name → version maps pooled so far (for tests and diagnostics).
    public var pooledCount: (subscriptions: Int, knownVersions: Int) {
        memo.withLock { ($0.subscriptions.count, $0.knownVersions.count) }
    }

    /// Delta plans shared by streams moving to this view from one up-to-date state (for tests and diagnostics).
    public var sharedDeltaSteps: Int { memo.withLock { $0.deltaSteps.count } }

    func wildcard(typeURL: String, build: () -> ResourceSet) -> ResourceSet {
        // Built under the lock: a stream on another loop asking for the same set waits for this one.
        memo.withLock { memo in
            if let set = memo.wildcard[typeURL] { return set }
            let set = build()
            memo.wildcard[typeURL] = set
            return set
        }
    }

    /// The pooled copies of a subscription's names (equal to `names` and `set`): thousands of proxies of a group
    /// subscribe to the same names, and each stream would otherwise hold its own sorted list and set (≈ 3 KiB for
    /// 50 EDS names). Bounded like the named sets; past the bound the stream keeps its own.
    func shared(_ names: SubscriptionNames, _ set: Set<String>) -> (SubscriptionNames, Set<String>) {
        memo.withLock { memo in
            if let index = memo.subscriptions.index(forKey: names) { return memo.subscriptions[index] }
            if memo.subscriptions.count < Self.maxNamedSets { memo.subscriptions[names] = set }
            return (names, set)
        }
    }

    /// What a delta stream with an explicit subscription holds once up to date with this view: the content version
    /// (and count) of the subscribed resources that exist, computed once per subscription. nil past the bound (the
    /// stream then plans on its own).
    func deltaTarget(typeURL: String, names: SubscriptionNames, build: () -> DeltaTarget) -> DeltaTarget? {
        let key = NamedKey(typeURL: typeURL, names: names)
        return memo.withLock { memo in
            if let target = memo.deltaTargets[key] { return target }
            guard memo.deltaTargets.count < Self.maxNamedSets else { return nil }
            let target = build()
            memo.deltaTargets[key] = target
            return target
        }
    }

    /// The pooled name → version map of delta streams up to date with `target` in `scope` (equal to `known`, which
    /// the first such stream hands in): the streams of a group hold one map (≈ 4 KiB for 50 resources) instead of a
    /// copy each. Looked up by the target's version, so pooling costs no hashing of the map. Bounded like the named sets.
    func pooledKnown(_ scope: DeltaScope, target: String) -> [String: String]? {
        memo.withLock { $0.knownVersions[DeltaTargetKey(scope: scope, version: target)] }
    }

    func pooledKnown(_ scope: DeltaScope, target: String, _ known: [String: String]) -> [String: String] {
        let key = DeltaTargetKey(scope: scope, version: target)
        return memo.withLock { memo in
            if let pooled = memo.knownVersions[key] { return pooled }
            if memo.knownVersions.count < Self.maxNamedSets { memo.knownVersions[key] = known }
            return known
        }
    }

    /// What takes a delta stream that was up to date with `from` (in the view it came from) to this view: the same
    /// updates and removals for every stream of the group in that state, so planned once (`build`, from the first
    /// such stream) and shared. Past the bound each stream plans on its own.
    func deltaStep(_ scope: DeltaScope, from: String, build: () -> DeltaPlan) -> DeltaPlan {
        memoized(\.deltaSteps, DeltaStepKey(scope: scope, from: from), build: build)
    }

    /// The part of a subscription's answer a stream holding the set `from` is owed (see `SotWAnswer`): after a change
    /// every stream of the group holds the same set, so the part is built and encoded once. Bounded like the named sets.
    func outstanding(typeURL: String, names: SubscriptionNames, from: String, forced: SubscriptionNames,
                     build: () -> ResourceSet) -> ResourceSet {
        memoized(\.outstanding, OutstandingKey(typeURL: typeURL, names: names, from: from, forced: forced), build: build)
    }

    /// The assignments owed after a move between two cluster sets (see `assignmentsOwed(from:to:)`), worked out once per
    /// pair of sets rather than per stream.
    func assignmentsOwed(from: String?, to: String, build: () -> [String]) -> [String] {
        memoized(\.assignmentsOwed, ClusterStepKey(from: from, to: to), build: build)
    }

    /// The assignment a cluster of this view takes its endpoints from (see `ResourceSnapshotView.assignmentName`), read
    /// from its body once per view rather than by every delta stream the cluster's change reaches. Not bounded: at most
    /// one entry per cluster of the view.
    func assignmentName(ofCluster cluster: String, read: () -> String?) -> String? {
        memoized(\.assignmentNames, cluster, bound: .max, build: read)
    }

    /// The entry `key` of one of the memo's tables, built on a miss and kept while the table has fewer than `bound`
    /// entries. Built outside the lock: other loops' streams may build the same entry meanwhile (the first one kept
    /// is returned to all), and building may itself read the memo (the lock is not recursive).
    private func memoized<Key: Hashable, Value>(_ table: WritableKeyPath<Memo, [Key: Value]>, _ key: Key, bound: Int = maxNamedSets,
                                                build: () -> Value) -> Value {
        if let value = memo.withLock({ $0[keyPath: table][key] }) { return value }
        let value = build()
        return memo.withLock { memo in
            if let kept = memo[keyPath: table][key] { return kept }
            if memo[keyPath: table].count < bound { memo[keyPath: table][key] = value }
            return value
        }
    }

    func named(typeURL: String, names: SubscriptionNames, build: () -> ResourceSet) -> ResourceSet {
        let key = NamedKey(typeURL: typeURL, names: names)
        return memo.withLock { memo in
            if let set = memo.named[key] { return set }
            let set = build()
            if memo.named.count < Self.maxNamedSets { memo.named[key] = set }
            return set
        }
    }
}

extension ResourceSnapshotView {
    /// Every resource of `typeURL`: what a wildcard state-of-the-world answer carries.
    func wildcardSet(typeURL: String) -> ResourceSet {
        let build = {
            ResourceSet(typeURL: typeURL, sorted: resources(typeURL: typeURL).values.sorted { $0.name < $1.name },
                        version: contentVersion(typeURL: typeURL), preEncode: resourceSetCache != nil)
        }
        guard let cache = resourceSetCache else { return build() }
        return cache.wildcard(typeURL: typeURL, build: build)
    }

    /// The subscribed resources of `typeURL` that exist: what an explicit state-of-the-world answer carries.
    func subscribedSet(typeURL: String, names: SubscriptionNames) -> ResourceSet {
        let build = {
            let all = resources(typeURL: typeURL)
            return ResourceSet(typeURL: typeURL, sorted: names.sorted.compactMap { all[$0] },
                               preEncode: resourceSetCache != nil)
        }
        guard let cache = resourceSetCache else { return build() }
        return cache.named(typeURL: typeURL, names: names, build: build)
    }

    /// What a stream of an explicit subscription holding `sent` is owed of `desired` (the subscribed set now): the
    /// resources that are new or changed since `sent`, and the `forced` ones. `desired` itself when that is all of it.
    func outstandingSet(typeURL: String, names: SubscriptionNames, desired: ResourceSet, sent: ResourceSet,
                        forced: Set<String>) -> ResourceSet {
        let build = {
            let owed = desired.outstanding(against: sent, forced: forced)
            return owed.count == desired.count ? desired
                : ResourceSet(typeURL: typeURL, sorted: owed, preEncode: resourceSetCache != nil)
        }
        guard let cache = resourceSetCache else { return build() }
        return cache.outstanding(typeURL: typeURL, names: names, from: sent.version,
                                 forced: forced.isEmpty ? .none : SubscriptionNames(forced), build: build)
    }

    /// The ClusterLoadAssignments of this view that the EDS clusters in `clusters` take their endpoints from.
    func assignments(ofClusters clusters: some Sequence<String>) -> [String] {
        let assignments = resources(typeURL: TypeURL.endpoint)
        return clusters.compactMap { cluster in
            let name = resourceSetCache.map { $0.assignmentName(ofCluster: cluster) { assignmentName(ofCluster: cluster) } }
                ?? assignmentName(ofCluster: cluster)
            return name.flatMap { assignments[$0] == nil ? nil : $0 }
        }
    }

    /// The assignments owed to a stream that held the clusters `previous` and was sent `current`: those of the clusters
    /// in `current` that `previous` lacks or has at another version.
    func assignmentsOwed(from previous: ResourceSet?, to current: ResourceSet) -> [String] {
        let build = { assignments(ofClusters: current.outstanding(against: previous, forced: []).lazy.map(\.name)) }
        guard let cache = resourceSetCache else { return build() }
        return cache.assignmentsOwed(from: previous?.version, to: current.version, build: build)
    }
}
