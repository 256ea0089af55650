// The gRPC method paths of the xDS and CSDS services, beside the type URLs they carry:
// the one table the server routes by and clients (the load generator, `meshctl status`,
// tests) open streams with.

/// The gRPC paths of the discovery services and the status service.
public enum ServicePath {
    public static let aggregated = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
    public static let aggregatedDelta = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"

    /// CSDS: `StreamClientStatus` answers every request; `FetchClientStatus` answers one.
    public static let clientStatusStream = "/envoy.service.status.v3.ClientStatusDiscoveryService/StreamClientStatus"
    public static let clientStatusFetch = "/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus"

    /// The per-type services: (type URL, gRPC service, the noun its methods end in).
    static let perTypeServices: [(typeURL: String, service: String, noun: String)] = [
        (TypeURL.listener, "envoy.service.listener.v3.ListenerDiscoveryService", "Listeners"),
        (TypeURL.cluster, "envoy.service.cluster.v3.ClusterDiscoveryService", "Clusters"),
        (TypeURL.route, "envoy.service.route.v3.RouteDiscoveryService", "Routes"),
        (TypeURL.endpoint, "envoy.service.endpoint.v3.EndpointDiscoveryService", "Endpoints"),
        (TypeURL.secret, "envoy.service.secret.v3.SecretDiscoveryService", "Secrets"),
    ]

    /// The state-of-the-world (`Stream…`) or delta (`Delta…`) path of `typeURL`'s own service, if it has one.
    public static func perType(_ typeURL: String, delta: Bool = false) -> String? {
        perTypeServices.first { $0.typeURL == typeURL }.map { "/\($0.service)/\(delta ? "Delta" : "Stream")\($0.noun)" }
    }

    /// Every discovery path and how a stream on it behaves.
    public static let discovery: [String: (variant: DiscoveryStream.Variant, binding: DiscoveryStream.Binding)] = {
        var table: [String: (variant: DiscoveryStream.Variant, binding: DiscoveryStream.Binding)] = [
            aggregated: (.stateOfTheWorld, .aggregated),
            aggregatedDelta: (.delta, .aggregated),
        ]
        for entry in perTypeServices {
            table[perType(entry.typeURL)!] = (.stateOfTheWorld, .singleType(entry.typeURL))
            table[perType(entry.typeURL, delta: true)!] = (.delta, .singleType(entry.typeURL))
        }
        return table
    }()
}
