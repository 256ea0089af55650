// Owns what the names in resource bodies lead to: the ClusterLoadAssignment an EDS cluster takes its endpoints
// from (what a changed cluster needs again to finish warming, what a proxy subscribes to next) and the route
// configurations a listener names. Envoy follows the same fields; a scan of a handful of fixed field numbers is
// enough, and it allocates nothing but the names it returns.
import ProtobufWire

/// The names a resource body refers a proxy on to.
public enum ResourceReferences {
    /// The name of a Cluster, ClusterLoadAssignment (`cluster_name`), Listener or RouteConfiguration: field 1 in all four.
    public static func name(_ body: UnsafeRawBufferPointer) -> String? { ProtobufScanner(bytes: body).string(1) }

    /// The ClusterLoadAssignment name an EDS cluster asks for: `eds_cluster_config.service_name` (3.2) or the
    /// cluster's `name` (1); nil for clusters that are not of `type` EDS (2 = 3).
    public static func endpointName(ofCluster body: UnsafeRawBufferPointer) -> String? {
        let cluster = ProtobufScanner(bytes: body)
        guard cluster.varint(2) == 3 else { return nil }
        if let config = cluster.last(3), let serviceName = ProtobufScanner(bytes: config).string(2), !serviceName.isEmpty {
            return serviceName
        }
        return cluster.string(1)
    }

    /// The RDS route configuration names a Listener uses: filter_chains (3) and default_filter_chain (25) →
    /// filters (3) → typed_config (4, an Any) → HttpConnectionManager → rds (3) → route_config_name (2).
    public static func routeNames(ofListener body: UnsafeRawBufferPointer) -> [String] {
        var names: [String] = []
        let listener = ProtobufScanner(bytes: body)
        func chain(_ chain: ProtobufScanner) {
            chain.each(3) { filter in
                filter.each(4) { any in
                    guard any.string(1)?.hasSuffix("HttpConnectionManager") == true, let manager = any.last(2),
                          let rds = ProtobufScanner(bytes: manager).last(3),
                          let name = ProtobufScanner(bytes: rds).string(2), !name.isEmpty else { return }
                    names.append(name)
                }
            }
        }
        listener.each(3, chain)
        listener.each(25, chain)
        return names
    }

    // Array conveniences (tests, the report's expected versions).
    public static func name(_ body: [UInt8]) -> String? { body.withUnsafeBytes { name($0) } }
    public static func endpointName(ofCluster body: [UInt8]) -> String? { body.withUnsafeBytes { endpointName(ofCluster: $0) } }
    public static func routeNames(ofListener body: [UInt8]) -> [String] { body.withUnsafeBytes { routeNames(ofListener: $0) } }
}
