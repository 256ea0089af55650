// A proxy group's view shares state-of-the-world answers between the group's streams
// (one encoded list per type and subscription) and never across snapshots.
import ControlPlane
import MeshAdmin
import MeshModel
import MeshServer
import ServerTelemetry
import XDSCache
import SnapshotStorage
import XCTest
import XDSProtocol
import XDSWire

private struct NoResponse: Error {
    let actions: [StreamAction]
}

final class GroupViewSharingTests: XCTestCase {
    private func served(clusterBody: String) throws -> ServedSnapshot {
        let group = ProxyGroupResources(group: "web", resources: [
            Resource(typeURL: TypeURL.cluster, name: "a", body: Array(clusterBody.utf8)),
            Resource(typeURL: TypeURL.cluster, name: "b", body: Array("b".utf8)),
            Resource(typeURL: TypeURL.endpoint, name: "a", body: Array("ea".utf8)),
        ])
        return ServedSnapshot(try Snapshot.make(groups: [group], compilerVersion: "test"))
    }

    private func response(_ view: GroupView, _ typeURL: String, _ names: [String] = []) throws -> DiscoveryResponse {
        var stream = DiscoveryStream(configuration: .init(variant: .stateOfTheWorld, binding: .aggregated, controlPlaneIdentifier: "meshctl"),
                                     view: view)
        let actions = stream.handle(.request(DiscoveryRequest(node: Node(id: "p", cluster: "web"), resourceNames: names, typeURL: typeURL)),
                                    at: WallClockTime(nanosecondsSinceEpoch: 1))
        guard case .send(let response)? = actions.first else { throw NoResponse(actions: actions) }
        return response
    }

    func testStreamsOfOneGroupShareOneEncodedAnswer() throws {
        let view = try XCTUnwrap(try served(clusterBody: "a1").groups["web"])
        let first = try response(view, TypeURL.cluster)
        let second = try response(view, TypeURL.cluster)
        XCTAssertTrue(first.resourceList === second.resourceList)
        XCTAssertTrue(first.resourceList.isPreEncoded)
        XCTAssertEqual(first.serialized(headroom: 5), second.serialized(headroom: 5))
        XCTAssertEqual(first.versionInfo, view.contentVersion(typeURL: TypeURL.cluster))
        let endpoints = try response(view, TypeURL.endpoint, ["a"])
        XCTAssertTrue(endpoints.resourceList === (try response(view, TypeURL.endpoint, ["a"])).resourceList)
    }

    func testANewSnapshotNeverServesTheOldAnswer() throws {
        let old = try XCTUnwrap(try served(clusterBody: "a1").groups["web"])
        let new = try XCTUnwrap(try served(clusterBody: "a2").groups["web"])
        let before = try response(old, TypeURL.cluster)
        let after = try response(new, TypeURL.cluster)
        XCTAssertFalse(old.resourceSetCache === new.resourceSetCache)
        XCTAssertEqual(before.resources.map { String(decoding: $0.value.bytes, as: UTF8.self) }, ["a1", "b"])
        XCTAssertEqual(after.resources.map { String(decoding: $0.value.bytes, as: UTF8.self) }, ["a2", "b"])
        XCTAssertNotEqual(before.versionInfo, after.versionInfo)
        let decoded = try DiscoveryResponse(serialized: after.serialized())
        XCTAssertEqual(decoded.resources.map { String(decoding: $0.value.bytes, as: UTF8.self) }, ["a2", "b"])
    }
}
