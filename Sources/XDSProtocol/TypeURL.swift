// The xDS resource type URLs meshctl serves, and the per-type protocol rules that
// hang off them (complete-set responses, wildcard support, ADS push order). Every
// other file refers to types through these constants.

/// The type URLs of the xDS resource types and how the protocol treats each one.
public enum TypeURL {
    public static let listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
    public static let route = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    public static let cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    public static let endpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    public static let secret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

    /// Make-before-break order of pushes on an aggregated stream: a cluster exists before
    /// its endpoints, both before the listeners and routes that send traffic to them.
    /// Types not listed follow, ordered by URL.
    public static let pushOrder: [String] = [cluster, endpoint, listener, route, secret]

    /// Order of removal-only responses on an aggregated delta stream: referrers go before
    /// what they refer to, so nothing is left pointing at a removed resource.
    public static let removalOrder: [String] = [listener, route, cluster, endpoint, secret]

    /// The constant equal to `typeURL` (the same string storage), or `typeURL` itself for a type not listed. A request's
    /// type URL is decoded into a new string; kept as the constant, each later comparison with the constants — several
    /// on every event of every stream — is an identity check instead of a 50-byte compare.
    public static func canonical(_ typeURL: String) -> String {
        knownIndex(typeURL).map { pushOrder[$0] } ?? typeURL
    }

    /// The position of `typeURL` in `pushOrder`, nil for a type not listed: lets per-type tables be arrays rather
    /// than dictionaries that hash the 50-byte URL on every lookup.
    public static func knownIndex(_ typeURL: String) -> Int? {
        // The constants' lengths all differ, so the length (stored, O(1)) picks the one candidate: comparing a type URL
        // with each constant in turn compared up to 70 bytes per mismatch, several times per event of every stream.
        // The lengths are spelled out (TypeURLTests checks them against the constants): looping over `pushOrder` and
        // its strings' lengths cost ≈ 30 instructions a call, and this runs several times per event of every stream.
        let index: Int
        switch typeURL.utf8.count {
        case 51: index = 0  // cluster
        case 66: index = 1  // endpoint
        case 53: index = 2  // listener
        case 60: index = 3  // route
        case 68: index = 4  // secret
        default: return nil
        }
        return pushOrder[index] == typeURL ? index : nil
    }

    /// Feeds a type URL to a hasher: a served type by its position in `pushOrder`, any other by its bytes (equal URLs
    /// hash equal either way). The shared-answer memo keys are looked up on every event of every stream, and SipHash
    /// over the 50-odd bytes of the URL was most of hashing them.
    static func hash(_ typeURL: String, into hasher: inout Hasher) {
        if let index = knownIndex(typeURL) { hasher.combine(index) } else { hasher.combine(typeURL) }
    }

    /// Whether two type URLs are the same: `==`, with the length compared first (cheap for the many mismatches of
    /// looking one type up among a stream's types; an equal canonical pair is then an identity check).
    @inline(__always)
    public static func same(_ a: String, _ b: String) -> Bool {
        a.utf8.count == b.utf8.count && a == b
    }

    /// Whether a state-of-the-world response must carry the type's complete set, so that
    /// absence means removal (Listener and Cluster); other types carry what was asked.
    public static func carriesCompleteSet(_ typeURL: String) -> Bool {
        same(typeURL, listener) || same(typeURL, cluster)
    }

    /// Whether "*" and the legacy empty subscription mean "every resource of this type".
    /// Only Listener and Cluster: an empty EDS/RDS list means "nothing", not "everything".
    public static func supportsWildcard(_ typeURL: String) -> Bool {
        same(typeURL, listener) || same(typeURL, cluster)
    }

    /// The conventional service abbreviation (LDS, RDS, CDS, EDS, SDS), or the message name.
    public static func shortName(_ typeURL: String) -> String {
        if let index = knownIndex(typeURL) { return shortNames[index] }
        return String(typeURL.split(separator: "/").last ?? Substring(typeURL))
    }

    /// The service abbreviations of `pushOrder`'s types, in its order.
    private static let shortNames = ["CDS", "EDS", "LDS", "RDS", "SDS"]
}

/// The type URLs of one stream in push or removal order: the served types it holds, in the order's ranks, then any
/// other type by URL. Two arrays of URLs kept per stream cost ≈ 220 bytes of every idle proxy's memory; this holds
/// a bit set, the (normally empty) list of other types and an order packed in an integer (no array to retain on the
/// several walks of every event).
struct TypeURLOrder: Sequence {
    /// `TypeURL.pushOrder` positions, 3 bits each, in push order and in removal order (`TypeURL.removalOrder`).
    static let pushRanks = packed(TypeURL.pushOrder.indices.map { $0 })
    static let removalRanks = packed(TypeURL.removalOrder.map { TypeURL.pushOrder.firstIndex(of: $0)! })
    private static let rankCount = TypeURL.pushOrder.count

    private static func packed(_ ranks: [Int]) -> UInt32 {
        ranks.enumerated().reduce(0) { $0 | UInt32($1.element) << (3 * $1.offset) }
    }

    let ranks: UInt32
    let served: UInt8
    let others: [String]

    struct Iterator: IteratorProtocol {
        let order: TypeURLOrder
        var position = 0

        mutating func next() -> String? {
            while position < TypeURLOrder.rankCount {
                let rank = Int(order.ranks >> (3 * UInt32(position)) & 7)
                position += 1
                if order.served & (1 << rank) != 0 { return TypeURL.pushOrder[rank] }
            }
            let other = position - TypeURLOrder.rankCount
            guard other < order.others.count else { return nil }
            position += 1
            return order.others[other]
        }
    }

    func makeIterator() -> Iterator { Iterator(order: self) }
}

/// A value per type URL, for tables read and written on every event of every stream: the served types
/// (`TypeURL.pushOrder`) are kept inline and found by `TypeURL.knownIndex`, where a dictionary would hash the
/// 50-byte URL on each access (and be one more allocation per stream); any other type goes to a dictionary.
///
/// Inlinable so that callers in other modules get it specialized for their `Value`: called generically, each access
/// looked up `Optional<Value>`'s metadata at run time (≈ 440 instructions per read; callgrind, docs/BENCHMARKS.md
/// session 12).
public struct TypeURLTable<Value> {
    @usableFromInline var known = InlineArray<5, Value?>(repeating: nil)
    @usableFromInline var other: [String: Value] = [:]

    @inlinable public init() {}

    @inlinable public subscript(typeURL: String) -> Value? {
        get {
            if let index = TypeURL.knownIndex(typeURL), index < known.count { return known[index] }
            return other[typeURL]
        }
        set {
            if let index = TypeURL.knownIndex(typeURL), index < known.count {
                known[index] = newValue
            } else {
                other[typeURL] = newValue
            }
        }
    }

    /// Every entry, the served types first in push order.
    public var entries: [(typeURL: String, value: Value)] {
        var all: [(typeURL: String, value: Value)] = []
        for index in 0..<min(known.count, TypeURL.pushOrder.count) {
            if let value = known[index] { all.append((TypeURL.pushOrder[index], value)) }
        }
        return all + other.map { ($0.key, $0.value) }
    }

    /// How many served types are kept inline (`TypeURL.pushOrder`'s; a longer list spills to the dictionary).
    static var inlineCapacity: Int { InlineArray<5, Value?>.count }
}

extension TypeURLTable: Sendable where Value: Sendable {}
