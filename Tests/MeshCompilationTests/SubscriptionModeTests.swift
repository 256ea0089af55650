// A proxy group's `xds` setting (mesh.yaml) decides the config source of everything its
// resources fetch in turn (RDS, EDS, SDS): ADS, or per-type streams to the bootstrap's xDS
// cluster. Other groups, and the default, are unaffected to the byte.
import EnvoySchema
import Foundation
import MeshCompilation
import MeshTestSupport
import MeshModel
import SnapshotStorage
import XCTest

final class SubscriptionModeTests: XCTestCase {
    static let listenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
    static let clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

    /// A resource as YAML (config sources are easiest to see there).
    func yaml(_ resource: Resource) throws -> String {
        let type = try XCTUnwrap(TestSupport.pool.messageID(named: String(resource.typeURL.dropFirst("type.googleapis.com/".count))))
        return TextWriter(pool: TestSupport.pool).yaml(try DynamicMessage(serialized: resource.body, type: type, pool: TestSupport.pool))
    }

    func group(_ report: CompileReport, _ name: String) throws -> ProxyGroupResources {
        try XCTUnwrap(report.groups.first { $0.group == name }, "group \(name)")
    }

    /// What the group's listeners and clusters say about where their RDS/EDS/SDS come from.
    func sources(_ group: ProxyGroupResources) throws -> (ads: Bool, grpc: Bool, deltaGRPC: Bool) {
        var text = ""
        for type in [Self.listenerType, Self.clusterType] {
            for resource in (group.resources[type] ?? [:]).values { text += try yaml(resource) }
        }
        return (text.contains("ads: {}"), text.contains("api_type: GRPC"), text.contains("api_type: DELTA_GRPC"))
    }

    func testEachModeGivesTheGatewayItsConfigSourceAndLeavesOtherGroupsAlone() throws {
        let baseline = try MeshFixture().compile(encode: true)
        XCTAssertEqual(baseline.errorCount, 0, baseline.summary())
        let cases: [(mode: String, ads: Bool, grpc: Bool, deltaGRPC: Bool)] = [
            ("ads", true, false, false), ("ads-delta", true, false, false),
            ("per-type", false, true, false), ("per-type-delta", false, false, true),
        ]
        for c in cases {
            let fixture = try MeshFixture()
            try fixture.replace("Configs/mesh.yaml", "    kind: ingress\n", with: "    kind: ingress\n    xds: \(c.mode)\n")
            let report = try fixture.compile(encode: true)
            XCTAssertEqual(report.errorCount, 0, "\(c.mode): \(report.summary())")
            let ingress = try group(report, "ingress")
            let seen = try sources(ingress)
            XCTAssertEqual([seen.ads, seen.grpc, seen.deltaGRPC], [c.ads, c.grpc, c.deltaGRPC], "\(c.mode): config sources of the ingress group")
            if c.grpc || c.deltaGRPC {
                XCTAssertTrue(try yaml(ingress.resources[Self.clusterType]!["frontend.http"]!).contains("cluster_name: \(ProxyBootstrap.xdsClusterName)"),
                              "\(c.mode): per-type sources name the bootstrap's xDS cluster")
            }
            let access = try XCTUnwrap(GroupAccess.decode(ingress.resources[GroupAccess.typeURL]!["ingress"]!.body))
            XCTAssertEqual(access.subscriptionMode?.rawValue, c.mode, "the access record carries the mode for meshctl bootstrap --store")
            for other in baseline.groups where other.group != "ingress" {
                XCTAssertEqual(try group(report, other.group).resources, other.resources, "\(c.mode): group \(other.group) is unchanged")
            }
            if c.mode == "ads" {
                XCTAssertEqual(ingress.resources, try group(baseline, "ingress").resources, "xds: ads is the default, byte for byte")
            }
        }
    }

    func testAServiceReachedByGroupsOfDifferentModesIsRenderedForEach() throws {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/mesh.yaml", "    kind: ingress\n", with: "    kind: ingress\n    xds: per-type-delta\n")
        try fixture.replace("Configs/mesh.yaml", "      - name: site\n", with: "      - name: users\n        match: {prefix: /users/}\n        service: users\n      - name: site\n")
        let report = try fixture.compile(encode: true)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        let viaIngress = try XCTUnwrap(try group(report, "ingress").resources[Self.clusterType]?["users.http"])
        let viaFrontend = try XCTUnwrap(try group(report, "frontend").resources[Self.clusterType]?["users.http"])
        XCTAssertTrue(try yaml(viaIngress).contains("api_type: DELTA_GRPC"))
        XCTAssertTrue(try yaml(viaFrontend).contains("ads: {}"), "the ADS sidecar keeps the ADS rendering of the shared cluster")
        XCTAssertEqual(viaFrontend, try MeshFixture().compile(encode: true).groups.first { $0.group == "frontend" }?.resources[Self.clusterType]?["users.http"])
    }

    func testSidecarsFollowTheirSetting() throws {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/mesh.yaml", "  identity: \"spiffe://{trust_domain}/proxy/{service}\"\n",
                            with: "  identity: \"spiffe://{trust_domain}/proxy/{service}\"\n  xds: per-type\n")
        let report = try fixture.compile(encode: true)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        for name in ["catalog", "frontend", "orders", "users"] {
            let seen = try sources(try group(report, name))
            XCTAssertEqual([seen.ads, seen.grpc, seen.deltaGRPC], [false, true, false], "sidecar group \(name)")
        }
        let ingress = try sources(try group(report, "ingress"))
        XCTAssertEqual([ingress.ads, ingress.grpc], [true, false], "gateways keep their own (default) setting")
    }

    func testAnUnknownModeNamesTheAllowedValues() throws {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/mesh.yaml", "  identity: \"spiffe://{trust_domain}/proxy/{service}\"\n",
                            with: "  identity: \"spiffe://{trust_domain}/proxy/{service}\"\n  xds: grpc\n")
        let report = try fixture.compile()
        let error = try XCTUnwrap(report.errors.first { $0.path == "sidecars.xds" }, report.summary())
        XCTAssertEqual(error.rule, "config.value")
        XCTAssertEqual(error.location.map { Int($0.line) }, try fixture.line(of: "xds: grpc", in: "Configs/mesh.yaml"))
        XCTAssertTrue(error.message.contains("ads, ads-delta, per-type, per-type-delta"), error.message)
    }

    /// One vocabulary: the four spellings are read as themselves; the spellings older versions printed
    /// (status, metrics, loadgen) are still read, flagged as deprecated; anything else is refused.
    func testModeSpellingsAndDeprecatedAliases() {
        for mode in SubscriptionMode.allCases {
            XCTAssertEqual(SubscriptionMode.parse(mode.rawValue)?.mode, mode)
            XCTAssertEqual(SubscriptionMode.parse(mode.rawValue)?.deprecated, false)
            XCTAssertEqual(SubscriptionMode(aggregated: mode.isAggregated, delta: mode.isDelta), mode)
        }
        XCTAssertEqual(SubscriptionMode.parse("ads-sotw")?.mode, .adsStateOfTheWorld)
        XCTAssertEqual(SubscriptionMode.parse("per-type-sotw")?.mode, .perType)
        XCTAssertEqual(SubscriptionMode.parse("ads-sotw")?.deprecated, true)
        XCTAssertEqual(SubscriptionMode.deprecationWarning("ads-sotw", option: "--mode"), "warning: --mode ads-sotw is deprecated; write ads")
        XCTAssertNil(SubscriptionMode.deprecationWarning("ads", option: "--mode"))
        XCTAssertNil(SubscriptionMode.parse("sotw"))
        XCTAssertEqual(SubscriptionMode.spellings, "ads, ads-delta, per-type, per-type-delta")
    }

    /// Several replicas: the xDS cluster lists every one (the proxy reconnects to another when one goes); one host
    /// name among them makes the whole cluster DNS-resolved.
    func testBootstrapListsEveryReplica() {
        var bootstrap = ProxyBootstrap(nodeID: "n", nodeCluster: "g", serverHost: "10.0.0.1", serverPort: 18000)
        bootstrap.additionalServers = [("10.0.0.2", 18000), ("10.0.0.3", 18001)]
        let yaml = bootstrap.yaml
        for (host, port) in [("10.0.0.1", 18000), ("10.0.0.2", 18000), ("10.0.0.3", 18001)] {
            XCTAssertTrue(yaml.contains("- endpoint: {address: {socket_address: {address: \"\(host)\", port_value: \(port)}}}"), yaml)
        }
        XCTAssertTrue(yaml.contains("type: STATIC\n"), yaml)
        bootstrap.additionalServers.append(("xds.internal", 18000))
        XCTAssertTrue(bootstrap.yaml.contains("type: STRICT_DNS\n"))
    }

    /// The bootstrap's xDS cluster is STATIC only for what inet_pton reads as an address; anything else is resolved by DNS.
    func testBootstrapClusterTypeFollowsInetPton() {
        for (host, type) in [("127.0.0.1", "STATIC"), ("::1", "STATIC"), ("fd00::2", "STATIC"), ("meshctl.internal", "STRICT_DNS"),
                             ("1.2.3.04", "STRICT_DNS"), ("xds:1", "STRICT_DNS"), ("1.2.3", "STRICT_DNS")] {
            let yaml = ProxyBootstrap(nodeID: "n", nodeCluster: "g", serverHost: host, serverPort: 18000).yaml
            XCTAssertTrue(yaml.contains("type: \(type)\n"), "\(host): \(yaml)")
        }
    }
}
