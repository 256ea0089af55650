// A proxyless gRPC client (`proxyless: grpc`, the demo's settlement) gets what gRPC's xDS client
// accepts and nothing Envoy-only: an API listener named for each dependency, the callee's routes
// with gRPC's timeout and retry fields, EDS clusters over ADS whose TLS uses certificate-provider
// instances with the callee's SPIFFE SAN, and locality-weighted endpoints. Mesh rules about it are
// in BrokenMeshTests (rule ids at the user's lines).
import EnvoySchema
import Foundation
@testable import MeshCompilation
import MeshModel
import MeshTestSupport
import SnapshotStorage
import XCTest

final class ProxylessClientTests: XCTestCase {
    func yaml(_ resource: Resource) throws -> String {
        let type = try XCTUnwrap(TestSupport.pool.messageID(named: String(resource.typeURL.dropFirst("type.googleapis.com/".count))))
        return TextWriter(pool: TestSupport.pool).yaml(try DynamicMessage(serialized: resource.body, type: type, pool: TestSupport.pool))
    }

    func settlement(_ report: CompileReport) throws -> [String: [String: String]] {
        let group = try XCTUnwrap(report.groups.first { $0.group == "settlement" }, "the demo has the settlement group")
        var out: [String: [String: String]] = [:]
        for (type, resources) in group.resources where type.hasPrefix("type.googleapis.com/") {
            for (name, resource) in resources { out[String(type.split(separator: ".").last!), default: [:]][name] = try yaml(resource) }
        }
        return out
    }

    func testTheDemoClientGetsGRPCsDialectForEachDependency() throws {
        let fixture = try MeshFixture()
        let report = try fixture.compile(encode: true)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        let resources = try settlement(report)
        // Exactly what it dials and what that reaches: no sidecar listeners, no secrets, no other service's clusters.
        XCTAssertEqual(Set(resources.keys), ["Listener", "RouteConfiguration", "Cluster", "ClusterLoadAssignment"])
        XCTAssertEqual(Set(resources["Listener"]!.keys), ["payments"])
        XCTAssertEqual(Set(resources["Cluster"]!.keys), ["payments.grpc"])
        XCTAssertEqual(Set(resources["ClusterLoadAssignment"]!.keys), ["payments.grpc"])

        let listener = try XCTUnwrap(resources["Listener"]?["payments"])
        XCTAssertTrue(listener.contains("api_listener:"), listener)
        XCTAssertFalse(listener.contains("socket_address"), "gRPC reads a listener with an address as a server listener: \(listener)")
        XCTAssertTrue(listener.contains("route_config_name: payments"), listener)
        XCTAssertTrue(listener.contains("ads: {}"), listener)
        XCTAssertTrue(listener.hasSuffix("type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n"), "the router is the last filter: \(listener)")

        let routes = try XCTUnwrap(resources["RouteConfiguration"]?["payments"])
        XCTAssertTrue(routes.contains("prefix: /payments.v1.Payments/"), routes)
        XCTAssertTrue(routes.contains("max_stream_duration: 4s"), "the service's 4s timeout, as gRPC reads it: \(routes)")
        XCTAssertTrue(routes.contains("retry_on: unavailable,cancelled"), routes)
        XCTAssertFalse(routes.contains("per_try_timeout"), "gRPC has no per-try timeout: \(routes)")

        let cluster = try XCTUnwrap(resources["Cluster"]?["payments.grpc"])
        XCTAssertTrue(cluster.contains("type: EDS") && cluster.contains("ads: {}"), cluster)
        XCTAssertTrue(cluster.range(of: #"tls_certificate_provider_instance:\n *instance_name: mesh-identity\n"#, options: .regularExpression) != nil, cluster)
        XCTAssertTrue(cluster.range(of: #"ca_certificate_provider_instance:\n *instance_name: mesh-ca\n"#, options: .regularExpression) != nil, cluster)
        XCTAssertTrue(cluster.contains("exact: spiffe://mesh.local/proxy/payments"), cluster)
        XCTAssertFalse(cluster.contains("sds"), "gRPC NACKs SDS: \(cluster)")

        let endpoints = try XCTUnwrap(resources["ClusterLoadAssignment"]?["payments.grpc"])
        XCTAssertTrue(endpoints.contains("region: demo"), endpoints)
        XCTAssertTrue(endpoints.contains("port_value: 10150"), "payments' sidecar port: \(endpoints)")
        XCTAssertTrue(endpoints.hasSuffix("\n  load_balancing_weight: 1\n"), "a locality weight, without which gRPC drops the locality: \(endpoints)")

        // The sidecars' view of payments is unchanged: SDS, its own content under the same name.
        let orders = try XCTUnwrap(report.groups.first { $0.group == "orders" }?.resources["type.googleapis.com/envoy.config.cluster.v3.Cluster"]?["payments.grpc"])
        XCTAssertTrue(try yaml(orders).contains("tls_certificate_sds_secret_configs"))

        // Who may receive it, and how it subscribes.
        let record = try XCTUnwrap(report.groups.first { $0.group == "settlement" }?.resources[GroupAccess.typeURL]?["settlement"])
        let access = try XCTUnwrap(GroupAccess.decode(record.body))
        XCTAssertEqual(access.identities, ["spiffe://mesh.local/proxy/settlement"])
        XCTAssertEqual(access.subscriptionMode, .adsStateOfTheWorld)
    }

    func testAWeightedSplitAndHeaderMatchReachTheClientAndEveryTarget() throws {
        let fixture = try MeshFixture()
        // orders without the two routes gRPC cannot follow (a direct response and a redirect).
        let orders = try fixture.read("Configs/services/orders.yaml")
        try fixture.write("Configs/services/orders.yaml", String(orders[..<orders.range(of: "  - name: healthz")!.lowerBound]))
        try fixture.replace("Configs/services/settlement.yaml", "dependencies: [payments]", with: "dependencies: [payments, orders]")
        let report = try fixture.compile(encode: true)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        let resources = try settlement(report)
        XCTAssertEqual(Set(resources["Listener"]!.keys), ["payments", "orders"])
        XCTAssertEqual(Set(resources["Cluster"]!.keys), ["payments.grpc", "orders.http", "orders-canary.http"], "what the routes reach, canary included")
        let routes = try XCTUnwrap(resources["RouteConfiguration"]?["orders"])
        XCTAssertTrue(routes.contains("weighted_clusters:"), routes)
        XCTAssertTrue(routes.contains("name: orders-canary.http\n") && routes.contains("weight: 10"), routes)
        XCTAssertTrue(routes.contains("name: x-canary") && routes.contains("exact: \"1\""), routes)
        // orders' own retry conditions (connect-failure, refused-stream) mean nothing to gRPC: no policy, and a warning.
        XCTAssertFalse(routes.contains("retry_policy"), routes)
        XCTAssertTrue(report.diagnostics.contains { $0.rule == "grpc.retry-condition" && $0.severity == .warning }, report.summary())
        XCTAssertNotNil(resources["ClusterLoadAssignment"]?["orders-canary.http"])
    }

    func testTheBootstrapsCertificateProvidersAreTheNamesTheResourcesUse() {
        XCTAssertEqual(GRPCBootstrap.identityProvider, MeshSecrets.identity)
        XCTAssertEqual(GRPCBootstrap.caProvider, MeshSecrets.ca)
        var bootstrap = GRPCBootstrap(nodeID: "settlement-1", nodeCluster: "settlement", serverHost: "127.0.0.1", serverPort: 18000)
        bootstrap.certificate = "/certs/settlement.crt"
        bootstrap.privateKey = "/certs/settlement.key"
        bootstrap.caCertificate = "/certs/ca.crt"
        let json = try? JSONSerialization.jsonObject(with: Data(bootstrap.json.utf8)) as? [String: Any]
        let servers = json?["xds_servers"] as? [[String: Any]]
        XCTAssertEqual(servers?.first?["server_uri"] as? String, "127.0.0.1:18000")
        XCTAssertEqual(servers?.first?["server_features"] as? [String], ["xds_v3"])
        let creds = (servers?.first?["channel_creds"] as? [[String: Any]])?.first
        XCTAssertEqual(creds?["type"] as? String, "tls")
        XCTAssertEqual((creds?["config"] as? [String: String])?["certificate_file"], "/certs/settlement.crt")
        XCTAssertEqual((json?["node"] as? [String: Any])?["cluster"] as? String, "settlement")
        let providers = json?["certificate_providers"] as? [String: [String: Any]]
        XCTAssertEqual(providers?["mesh-identity"]?["plugin_name"] as? String, "file_watcher")
        XCTAssertEqual((providers?["mesh-identity"]?["config"] as? [String: String])?["private_key_file"], "/certs/settlement.key")
        XCTAssertEqual((providers?["mesh-ca"]?["config"] as? [String: String])?["ca_certificate_file"], "/certs/ca.crt")

        // Several serve replicas (--server repeated): gRPC falls back through them in order.
        bootstrap.additionalServers = [("::1", 18001)]
        let replicas = (try? JSONSerialization.jsonObject(with: Data(bootstrap.json.utf8)) as? [String: Any])?["xds_servers"] as? [[String: Any]]
        XCTAssertEqual(replicas?.map { $0["server_uri"] as? String }, ["127.0.0.1:18000", "[::1]:18001"])
    }
}
