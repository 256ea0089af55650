// The xDS services in process, driven by the transport's own gRPC client over
// mutual TLS: what a misbehaving or unauthorized client gets back, one named case each.
import Foundation
import MeshCertificates
import ControlPlane
import MeshAdmin
import MeshModel
import MeshServer
import ServerTelemetry
import XDSCache
import SnapshotStorage
import Transport
import MeshTestSupport
import XCTest
import XDSProtocol
import XDSWire

final class XDSServiceTests: XCTestCase {
    var directory = ""
    var server: XDSServer!
    let loops = EventLoopGroup(loopCount: 1)

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["frontend", "intruder"])
        try E2E.publish([E2E.group("frontend", listenerPort: 10001, routeTo: "backend", clusters: ["backend": 19001],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
        server = try InProcessServer.start(store: directory + "/store", certificates: directory + "/certs")
        XCTAssertNotNil(server.hub.current, "the snapshot to load")
    }

    override func tearDown() {
        InProcessServer.stop(server)
        loops.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func call(as identity: String = "frontend", path: String, messages: [[UInt8]]) throws -> RecordingCall {
        let credentials = TLSClientCredentials(certificateChainFile: "\(directory)/certs/\(identity).crt", privateKeyFile: "\(directory)/certs/\(identity).key",
                                               trustedCAFile: directory + "/certs/ca.crt", serverName: "localhost")
        let client = try GRPCClient(configuration: GRPCClientConfiguration(host: "127.0.0.1", port: server.boundPort, security: .tls(credentials)))
        let recording = RecordingCall()
        let loop = loops.next()
        let connection = try client.connect(on: loop, delegate: recording)
        loop.execute {
            guard let stream = connection.openStream(path: path, handler: recording) else { return }
            for message in messages { _ = stream.send(message) }
        }
        return recording
    }

    static let ads = ServicePath.aggregated
    static let clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

    func request(node: Node? = Node(id: "f-1", cluster: "frontend"), typeURL: String = clusterType) -> [UInt8] {
        DiscoveryRequest(node: node, typeURL: typeURL).serialized()
    }

    func testAuthorizedProxyReceivesItsGroupsClusters() throws {
        let recording = try call(path: Self.ads, messages: [request()])
        let first = try XCTUnwrap(recording.firstMessage(), "a DiscoveryResponse arrives")
        let response = try DiscoveryResponse(serialized: first)
        XCTAssertEqual(response.typeURL, Self.clusterType)
        XCTAssertEqual(response.resources.count, 1)
        XCTAssertFalse(response.nonce.isEmpty)
    }

    func testUnknownMethodIsUnimplemented() throws {
        XCTAssertEqual(try call(path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/Nope", messages: []).status()?.code, .unimplemented)
    }

    func testUnparsableRequestIsInvalidArgument() throws {
        XCTAssertEqual(try call(path: Self.ads, messages: [[0x0a, 0xff, 0xff, 0xff, 0x0f]]).status()?.code, .invalidArgument)
    }

    func testFirstRequestWithoutNodeIsInvalidArgument() throws {
        XCTAssertEqual(try call(path: Self.ads, messages: [request(node: nil)]).status()?.code, .invalidArgument)
    }

    func testUnknownTypeURLIsRefused() throws {
        let status = try call(path: Self.ads, messages: [request(typeURL: "type.googleapis.com/not.a.Type")]).status()
        XCTAssertEqual(status?.code, .invalidArgument, "\(String(describing: status))")
    }

    func testUnknownGroupIsNotFound() throws {
        XCTAssertEqual(try call(path: Self.ads, messages: [request(node: Node(id: "x", cluster: "no-such-group"))]).status()?.code, .notFound)
    }

    func testIdentityNotAllowedForTheGroupIsPermissionDenied() throws {
        let status = try call(as: "intruder", path: Self.ads, messages: [request()]).status()
        XCTAssertEqual(status?.code, .permissionDenied)
        XCTAssertTrue(status?.message.contains("spiffe://mesh.local/proxy/intruder") == true, "\(String(describing: status))")
    }
}
