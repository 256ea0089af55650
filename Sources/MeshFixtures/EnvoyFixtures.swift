// Real Envoy resources for tests and benchmarks, written as Envoy YAML and encoded by
// the schema engine (so a real Envoy accepts them): the one builder behind the
// end-to-end meshes, the load generator's tests and its benchmark mesh.
import EnvoySchema
import MeshModel
import SnapshotStorage

/// Why a fixture could not be built (a YAML template here is not valid Envoy: a bug in the caller).
public struct FixtureError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Builds snapshot resources from Envoy YAML.
public struct EnvoyFixtures: Sendable {
    /// How resources name their RDS/EDS source: the ADS stream.
    public static let adsSource = SubscriptionMode.adsStateOfTheWorld.configSource
    public static let perTypeSource = "{resource_api_version: V3, api_config_source: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: \(SubscriptionMode.xdsClusterName)}}]}}"
    public static let perTypeDeltaSource = "{resource_api_version: V3, api_config_source: {api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: \(SubscriptionMode.xdsClusterName)}}]}}"

    public let pool: DescriptorPool
    /// The file name diagnostics carry.
    public let file: String

    public init(pool: DescriptorPool, file: String = "fixture") {
        self.pool = pool
        self.file = file
    }

    /// The embedded Envoy schema's builder.
    public init(file: String = "fixture") throws { self.init(pool: try DescriptorPool.envoy, file: file) }

    /// One resource of `typeName` (e.g. "envoy.config.cluster.v3.Cluster") from YAML; named by its `name` or `cluster_name`.
    public func resource(_ typeName: String, _ yaml: String) throws -> Resource {
        guard let type = pool.messageID(named: typeName) else { throw FixtureError(description: "no Envoy type \(typeName)") }
        let (message, diagnostics) = ConfigDocument.decode(text: yaml, file: file, syntax: .yaml, type: type, pool: pool)
        let errors = diagnostics.filter { $0.severity == .error }
        guard let message, errors.isEmpty else { throw FixtureError(description: "not a valid \(typeName): \(errors)") }
        let name = message.value(named: "name", in: pool)?.stringValue ?? message.value(named: "cluster_name", in: pool)?.stringValue ?? ""
        return Resource(typeURL: "type.googleapis.com/" + typeName, name: name, body: message.serialized(pool: pool))
    }

    /// Listener `ingress_http` on 127.0.0.1:`port`: an HTTP connection manager reading route configuration `local_route` by RDS.
    public func httpListener(port: Int, configSource: String = adsSource) throws -> Resource {
        try resource("envoy.config.listener.v3.Listener", """
        name: ingress_http
        address: {socket_address: {address: 127.0.0.1, port_value: \(port)}}
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: ingress
              rds: {route_config_name: local_route, config_source: \(configSource)}
              http_filters:
              - name: envoy.filters.http.router
                typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
        """)
    }

    /// Route configuration `local_route`: one virtual host for every domain, routing each path prefix to a cluster.
    public func routes(_ routes: [(prefix: String, cluster: String, timeout: String?)]) throws -> Resource {
        var lines = ""
        for route in routes {
            let timeout = route.timeout.map { ", timeout: \($0)" } ?? ""
            lines += "\n  - match: {prefix: \"\(route.prefix)\"}\n    route: {cluster: \(route.cluster)\(timeout)}"
        }
        return try resource("envoy.config.route.v3.RouteConfiguration", """
        name: local_route
        virtual_hosts:
        - name: all
          domains: ["*"]
          routes:\(lines)
        """)
    }

    /// An EDS cluster; `extra` is more YAML for the Cluster message (one line per field, unindented).
    public func edsCluster(_ name: String, connectTimeout: String = "1s", configSource: String = adsSource, extra: String = "") throws -> Resource {
        try resource("envoy.config.cluster.v3.Cluster", """
        name: \(name)
        type: EDS
        connect_timeout: \(connectTimeout)
        eds_cluster_config: {eds_config: \(configSource)}
        """ + (extra.isEmpty ? "" : "\n" + extra))
    }

    /// The cluster's endpoints, one locality.
    public func loadAssignment(_ cluster: String, endpoints: [(address: String, port: Int)]) throws -> Resource {
        let lines = endpoints.map { "\n  - endpoint: {address: {socket_address: {address: \($0.address), port_value: \($0.port)}}}" }.joined()
        return try resource("envoy.config.endpoint.v3.ClusterLoadAssignment", """
        cluster_name: \(cluster)
        endpoints:
        - lb_endpoints:\(lines)
        """)
    }

    /// The group's access record (never sent to proxies).
    public static func access(group: String, identities: [String]) -> Resource {
        Resource(typeURL: GroupAccess.typeURL, name: group, body: GroupAccess(group: group, identities: identities).encoded())
    }

    /// A proxy group with listener `ingress_http` on `listenerPort` routing "/" to `cluster`, EDS clusters
    /// `clusters` (name → upstream port on 127.0.0.1), any extra listeners, and the access record for `identities`.
    public func httpGroup(_ name: String, listenerPort: Int, routeTo cluster: String, routeTimeout: String? = "2s",
                          clusters: [(name: String, port: Int)], connectTimeout: String = "1s", identities: [String],
                          extraListeners: [String] = [], configSource: String = adsSource) throws -> ProxyGroupResources {
        var resources = [try httpListener(port: listenerPort, configSource: configSource),
                         try routes([(prefix: "/", cluster: cluster, timeout: routeTimeout)])]
        for listener in extraListeners { resources.append(try resource("envoy.config.listener.v3.Listener", listener)) }
        for (clusterName, port) in clusters {
            resources.append(try edsCluster(clusterName, connectTimeout: connectTimeout, configSource: configSource))
            resources.append(try loadAssignment(clusterName, endpoints: [("127.0.0.1", port)]))
        }
        resources.append(Self.access(group: name, identities: identities))
        return ProxyGroupResources(group: name, resources: resources)
    }
}
