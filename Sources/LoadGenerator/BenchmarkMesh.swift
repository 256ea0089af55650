// Owns the synthetic mesh the benchmarks publish: real Envoy resources (encoded by the
// schema engine, so a real Envoy accepts them) for G proxy groups of K EDS clusters, with
// deterministic one-cluster changes and endpoint churn, and the group access records.
import EnvoySchema
import Foundation
import MeshModel
import SnapshotStorage

/// A made-up but valid mesh for benchmarks: per group one listener, one route configuration and K EDS clusters.
public struct BenchmarkMesh: Sendable {
    public var groups: [String]
    public var clusters: Int
    /// SPIFFE IDs or CNs allowed to receive every group.
    public var identities: [String]
    /// Port of the listener each proxy would open (Envoys of one host need different ones: see `listenerPortBase`).
    public var listenerPort = 10_000
    /// cluster index → revision: a revision changes the cluster's connect_timeout (a one-cluster CDS change).
    public var clusterRevisions: [Int: Int] = [:]
    /// Changes every cluster's endpoint port (EDS churn).
    public var endpointRevision = 0

    public init(groups: [String], clusters: Int, identities: [String]) {
        self.groups = groups
        self.clusters = clusters
        self.identities = identities
    }

    /// The snapshot of this mesh (throws only if a template here is not valid Envoy, i.e. a bug).
    public func snapshot(message: String) throws -> Snapshot {
        let pool = try DescriptorPool.envoy
        func resource(_ typeName: String, _ yaml: String) throws -> Resource {
            let type = pool.messageID(named: typeName)!
            let (decoded, diagnostics) = ConfigDocument.decode(text: yaml, file: "benchmark-mesh", syntax: .yaml, type: type, pool: pool)
            guard let decoded, !diagnostics.contains(where: { $0.severity == .error }) else {
                throw LoadGeneratorError(.store, "benchmark mesh template is not valid \(typeName): \(diagnostics)")
            }
            let name = decoded.value(named: "name", in: pool)?.stringValue ?? decoded.value(named: "cluster_name", in: pool)?.stringValue ?? ""
            return Resource(typeURL: "type.googleapis.com/" + typeName, name: name, body: decoded.serialized(pool: pool))
        }
        let ads = "{ads: {}, resource_api_version: V3}"
        var shared: [Resource] = []
        var routes = ""
        for i in 0..<clusters {
            routes += "\n    - match: {prefix: \"/svc-\(i)/\"}\n      route: {cluster: svc-\(i), timeout: 2s}"
            let revision = clusterRevisions[i] ?? 0
            shared.append(try resource("envoy.config.cluster.v3.Cluster", """
            name: svc-\(i)
            type: EDS
            connect_timeout: \(1 + revision / 1000).\(String(format: "%03d", revision % 1000))s
            eds_cluster_config: {eds_config: \(ads)}
            circuit_breakers: {thresholds: [{max_connections: 1000, max_requests: 1000}]}
            """))
            shared.append(try resource("envoy.config.endpoint.v3.ClusterLoadAssignment", """
            cluster_name: svc-\(i)
            endpoints:
            - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: \(20_000 + (i + endpointRevision) % 20_000)}}}
              - endpoint: {address: {socket_address: {address: 127.0.0.2, port_value: \(20_000 + (i + endpointRevision) % 20_000)}}}
            """))
        }
        shared.append(try resource("envoy.config.route.v3.RouteConfiguration", """
        name: local_route
        virtual_hosts:
        - name: all
          domains: ["*"]
          routes:\(routes)
        """))
        shared.append(try resource("envoy.config.listener.v3.Listener", """
        name: ingress_http
        address: {socket_address: {address: 127.0.0.1, port_value: \(listenerPort)}}
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: ingress
              rds: {route_config_name: local_route, config_source: \(ads)}
              http_filters:
              - name: envoy.filters.http.router
                typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
        """))
        let groupResources = groups.map { group in
            ProxyGroupResources(group: group, resources: shared + [
                Resource(typeURL: GroupAccess.typeURL, name: group, body: GroupAccess(group: group, identities: identities).encoded()),
            ])
        }
        do {
            return try Snapshot.make(groups: groupResources, message: message, compilerVersion: "meshctl-benchmark-mesh")
        } catch {
            throw LoadGeneratorError(.store, "benchmark mesh: \(error)")
        }
    }

    /// Publishes this mesh to `directory` (created if missing); returns the version made live.
    @discardableResult
    public func publish(to directory: String, message: String) throws -> String {
        let snapshot = try snapshot(message: message)
        do {
            return try SnapshotStore(directory: directory, createIfMissing: true).publish(snapshot).version
        } catch {
            throw LoadGeneratorError(.store, "cannot publish to \(directory): \(error)")
        }
    }
}
