// Owns the synthetic mesh the benchmarks publish: real Envoy resources (encoded by the
// schema engine, so a real Envoy accepts them) for G proxy groups of K EDS clusters, with
// deterministic one-cluster changes and endpoint churn, and the group access records.
// Resources come from the shared fixture builder the tests use.
import Foundation
import MeshFixtures
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
    /// The rollout policy every group carries (nil: immediate, no record).
    public var rollout: RolloutPolicy?

    public init(groups: [String], clusters: Int, identities: [String]) {
        self.groups = groups
        self.clusters = clusters
        self.identities = identities
    }

    /// The snapshot of this mesh (throws only if a template here is not valid Envoy, i.e. a bug).
    public func snapshot(message: String) throws -> Snapshot {
        let shared: [Resource]
        do {
            let envoy = try EnvoyFixtures(file: "benchmark-mesh")
            var resources: [Resource] = []
            var routes: [(prefix: String, cluster: String, timeout: String?)] = []
            for i in 0..<clusters {
                routes.append((prefix: "/svc-\(i)/", cluster: "svc-\(i)", timeout: "2s"))
                let revision = clusterRevisions[i] ?? 0
                resources.append(try envoy.edsCluster("svc-\(i)", connectTimeout: "\(1 + revision / 1000).\(String(format: "%03d", revision % 1000))s",
                                                      extra: "circuit_breakers: {thresholds: [{max_connections: 1000, max_requests: 1000}]}"))
                let port = 20_000 + (i + endpointRevision) % 20_000
                resources.append(try envoy.loadAssignment("svc-\(i)", endpoints: [("127.0.0.1", port), ("127.0.0.2", port)]))
            }
            resources.append(try envoy.routes(routes))
            resources.append(try envoy.httpListener(port: listenerPort))
            shared = resources
        } catch {
            throw LoadGeneratorError(.store, "benchmark mesh template is not valid Envoy: \(error)")
        }
        let groupResources = groups.map { group in
            ProxyGroupResources(group: group, resources: shared + [EnvoyFixtures.access(group: group, identities: identities)]
                                + (rollout.map { [Resource(typeURL: RolloutPolicy.typeURL, name: group, body: $0.encoded())] } ?? []))
        }
        do {
            return try Snapshot.make(groups: groupResources, message: message, compilerVersion: "meshctl-benchmark-mesh")
        } catch {
            throw LoadGeneratorError(.store, "benchmark mesh: \(error)")
        }
    }

    /// Publishes this mesh to `directory` (created if missing); returns the version made live.
    @discardableResult
    public func publish(to store: any SnapshotStoring, message: String) throws -> String {
        let snapshot = try snapshot(message: message)
        do {
            return try store.publish(snapshot).version
        } catch {
            throw LoadGeneratorError(.store, "cannot publish: \(error)")
        }
    }
}
