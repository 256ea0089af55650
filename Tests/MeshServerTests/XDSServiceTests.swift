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
import XCTest
import XDSWire

/// Records one client stream.
final class RecordingCall: GRPCClientConnectionDelegate, GRPCClientStreamHandler, @unchecked Sendable {
    // @unchecked Sendable: fields are written on the client loop and read after `done` is signalled.
    private let lock = NSLock()
    private var messages: [[UInt8]] = []
    private var finalStatus: Transport.GRPCStatus?
    private let done = DispatchSemaphore(value: 0)

    func onMessage(_ message: [UInt8]) { lock.withLock { messages.append(message) } }
    func onFinish(_ status: Transport.GRPCStatus, trailers: [HeaderField]) {
        lock.withLock { finalStatus = status }
        done.signal()
    }
    func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason) {
        lock.withLock { if finalStatus == nil { finalStatus = Transport.GRPCStatus(.unavailable, "connection closed: \(reason)") } }
        done.signal()
    }

    func status(timeout: Double = 10) -> Transport.GRPCStatus? {
        _ = done.wait(timeout: .now() + timeout)
        return lock.withLock { finalStatus }
    }

    func firstMessage(timeout: Double = 10) -> [UInt8]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let first = lock.withLock({ messages.first }) { return first }
            usleep(20_000)
        }
        return nil
    }
}

final class XDSServiceTests: XCTestCase {
    var directory = ""
    var server: XDSServer!
    let loops = EventLoopGroup(loopCount: 1)

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["frontend", "intruder"])
        try E2E.publish([E2E.group("frontend", listenerPort: 10001, routeTo: "backend", clusters: ["backend": 19001],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
        var options = XDSServerOptions()
        options.port = 0
        options.eventLoops = 1
        options.drainGrace = .milliseconds(200)
        options.tls = TLSServerCredentials(certificateChainFile: directory + "/certs/server.crt", privateKeyFile: directory + "/certs/server.key",
                                           clientCAFile: directory + "/certs/ca.crt")
        server = try XDSServer(options: options, store: SnapshotStore(directory: directory + "/store"), log: ServerLog(minimumLevel: .error))
        try server.start()
        E2E.waitUntil(10, "the snapshot to load") { server.hub.current != nil }
    }

    override func tearDown() {
        let stopped = DispatchSemaphore(value: 0)
        let server = self.server
        Task.detached {
            await server?.drain()
            stopped.signal()
        }
        _ = stopped.wait(timeout: .now() + 20)
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

    static let ads = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
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
