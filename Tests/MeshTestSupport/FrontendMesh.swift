// The load generator's target, shared by its tests and the system test of `meshctl loadgen`:
// proxy group "frontend" published to a store and served in process over mutual TLS, with
// certificates for "frontend" and "intruder" and a second CA ("other-ca") the server does not trust.
import ControlPlane
import Foundation
import MeshCertificates
import MeshFixtures
import SnapshotStorage
import XCTest

public enum FrontendMesh {
    /// Publishes group "frontend" (identity spiffe://mesh.local/proxy/frontend) with cluster "backend" of `connectTimeout`.
    public static func publish(connectTimeout: String, to store: String) throws {
        let group = try EnvoyFixtures(file: "loadgen-test").httpGroup(
            "frontend", listenerPort: 10001, routeTo: "backend", routeTimeout: nil, clusters: [("backend", 19001)],
            connectTimeout: connectTimeout, identities: ["spiffe://mesh.local/proxy/frontend"])
        let snapshot = try Snapshot.make(groups: [group], compilerVersion: "loadgen-test")
        _ = try SnapshotStore(directory: store, createIfMissing: true).publish(snapshot)
    }

    /// A new temporary directory holding certs/, other-ca/ and store/ (connect timeout 1s), and a server serving it.
    public static func serve() throws -> (directory: String, server: XDSServer) {
        let directory = try TestPaths.temporaryDirectory("meshctl-loadgen")
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["frontend", "intruder"])
        _ = try DevelopmentCertificates.write(to: directory + "/other-ca", trustDomain: "mesh.local", proxies: [])
        try publish(connectTimeout: "1s", to: directory + "/store")
        let server = try InProcessServer.start(store: directory + "/store", certificates: directory + "/certs")
        XCTAssertNotNil(server.hub.current, "the server loaded the snapshot")
        return (directory, server)
    }

    /// Stops the server and removes the directory.
    public static func stop(_ server: XDSServer?, directory: String) {
        InProcessServer.stop(server)
        try? FileManager.default.removeItem(atPath: directory)
    }
}
