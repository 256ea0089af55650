// How a proxy subscribes to meshctl serve — the one xDS mode vocabulary: mesh.yaml's
// `xds`, `meshctl bootstrap --mode`, `meshctl loadgen --mode`, the status column, the
// metric labels and the proxy registry all use these four spellings. Older spellings
// are still read, with a deprecation warning.

/// How a proxy subscribes: one aggregated stream or one stream per type, state of the world or delta.
public enum SubscriptionMode: String, Sendable, CaseIterable, Codable {
    case adsStateOfTheWorld = "ads"
    case adsDelta = "ads-delta"
    case perType = "per-type"
    case perTypeDelta = "per-type-delta"

    /// The static cluster a proxy bootstrap (`meshctl bootstrap`) names for meshctl serve; per-type config sources name it.
    public static let xdsClusterName = "meshctl_xds"

    public var isDelta: Bool { self == .adsDelta || self == .perTypeDelta }
    /// One aggregated (ADS) stream rather than one stream per resource type.
    public var isAggregated: Bool { self == .adsStateOfTheWorld || self == .adsDelta }

    /// The mode with these two properties.
    public init(aggregated: Bool, delta: Bool) {
        switch (aggregated, delta) {
        case (true, false): self = .adsStateOfTheWorld
        case (true, true): self = .adsDelta
        case (false, false): self = .perType
        case (false, true): self = .perTypeDelta
        }
    }

    /// Spellings earlier versions printed (status, metrics, loadgen) and still accepted as input.
    public static let deprecatedSpellings: [String: SubscriptionMode] = ["ads-sotw": .adsStateOfTheWorld, "per-type-sotw": .perType]

    /// Reads a mode as a user wrote it: a current spelling, or a deprecated one (`deprecated` is then true).
    public static func parse(_ text: String) -> (mode: SubscriptionMode, deprecated: Bool)? {
        if let mode = SubscriptionMode(rawValue: text) { return (mode, false) }
        return deprecatedSpellings[text].map { ($0, true) }
    }

    /// The sentence a command prints when a deprecated spelling was used.
    public static func deprecationWarning(_ text: String, option: String) -> String? {
        guard let (mode, deprecated) = parse(text), deprecated else { return nil }
        return "warning: \(option) \(text) is deprecated; write \(mode.rawValue)"
    }

    /// The four spellings, for help and error messages.
    public static var spellings: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// The `ConfigSource` (YAML flow mapping) that resources served to such a proxy must use for what
    /// they fetch in turn (RDS, EDS, SDS): the ADS stream, or per-type streams to the bootstrap's
    /// xDS cluster. A proxy without ADS cannot use `{ads: {}}`, so the compiler writes this per group.
    public var configSource: String {
        switch self {
        case .adsStateOfTheWorld, .adsDelta:
            return "{ads: {}, resource_api_version: V3}"
        case .perType, .perTypeDelta:
            return "{api_config_source: {api_type: \(isDelta ? "DELTA_GRPC" : "GRPC"), transport_api_version: V3, set_node_on_first_message_only: true, "
                + "grpc_services: [{envoy_grpc: {cluster_name: \(Self.xdsClusterName)}}]}, resource_api_version: V3}"
        }
    }
}
