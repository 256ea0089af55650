// How a proxy group's Envoys subscribe to meshctl serve, shared by the compiler (which
// writes config sources accordingly), the access records and `meshctl bootstrap`.

/// How a proxy subscribes.
public enum SubscriptionMode: String, Sendable, CaseIterable {
    case adsStateOfTheWorld = "ads"
    case adsDelta = "ads-delta"
    case perType = "per-type"
    case perTypeDelta = "per-type-delta"

    /// The static cluster a proxy bootstrap (`meshctl bootstrap`) names for meshctl serve; per-type config sources name it.
    public static let xdsClusterName = "meshctl_xds"

    public var isDelta: Bool { self == .adsDelta || self == .perTypeDelta }

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
