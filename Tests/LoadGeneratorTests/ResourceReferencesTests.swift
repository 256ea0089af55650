// What a simulated proxy follows from resource bodies, as Envoy does: EDS names from clusters,
// RDS names from listeners' HTTP connection managers.
@testable import LoadGenerator
import SnapshotStorage
import XCTest
import XDSWire

final class ResourceReferencesTests: XCTestCase {
    func testListenerNamesItsRouteConfiguration() throws {
        let snapshot = try BenchmarkMesh(groups: ["g"], clusters: 2, identities: []).snapshot(message: "test")
        let listener = try XCTUnwrap(snapshot.groups["g"]?.resources["type.googleapis.com/envoy.config.listener.v3.Listener"]?["ingress_http"])
        XCTAssertEqual(ResourceReferences.routeNames(ofListener: listener.body), ["local_route"])
    }

    func testEDSClusterNamesItsLoadAssignment() throws {
        let snapshot = try BenchmarkMesh(groups: ["g"], clusters: 2, identities: []).snapshot(message: "test")
        let cluster = try XCTUnwrap(snapshot.groups["g"]?.resources["type.googleapis.com/envoy.config.cluster.v3.Cluster"]?["svc-1"])
        XCTAssertEqual(ResourceReferences.endpointName(ofCluster: cluster.body), "svc-1")
        XCTAssertEqual(ResourceReferences.name(cluster.body), "svc-1")
    }

    func testServiceNameOverridesTheClusterName() {
        // Cluster{name: "c" (1), type: EDS (2 = 3), eds_cluster_config (3) {service_name (2): "s"}}
        let body: [UInt8] = [0x0a, 0x01, 0x63, 0x10, 0x03, 0x1a, 0x03, 0x12, 0x01, 0x73]
        XCTAssertEqual(ResourceReferences.endpointName(ofCluster: body), "s")
    }

    func testStaticClusterNamesNoLoadAssignment() {
        let body: [UInt8] = [0x0a, 0x01, 0x63, 0x10, 0x00]  // type STATIC
        XCTAssertNil(ResourceReferences.endpointName(ofCluster: body))
    }

    func testTruncatedBodyYieldsNoNames() {
        XCTAssertEqual(ResourceReferences.routeNames(ofListener: [0x1a, 0x7f, 0x1a]), [])
    }

    func testOneClusterChangeChangesOnlyThatCluster() throws {
        var mesh = BenchmarkMesh(groups: ["g"], clusters: 3, identities: [])
        let before = try mesh.snapshot(message: "a")
        mesh.clusterRevisions[1] = 5
        let after = try mesh.snapshot(message: "b")
        let type = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        let changed = (0..<3).filter { before.groups["g"]!.resources[type]!["svc-\($0)"] != after.groups["g"]!.resources[type]!["svc-\($0)"] }
        XCTAssertEqual(changed, [1])
    }
}
