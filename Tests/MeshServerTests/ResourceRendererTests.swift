// Resources rendered for people: full YAML for `meshctl snapshot`, and for the admin
// endpoint (no authentication) secrets reduced to their name and content hash.
import ControlPlane
import MeshAdmin
import MeshModel
import MeshServer
import ServerTelemetry
import XDSCache
import SnapshotStorage
import MeshTestSupport
import XCTest

final class ResourceRendererTests: XCTestCase {
    func testTheAdminRenderingNeverShowsASecretsContents() throws {
        let secret = try E2E.resource("envoy.extensions.transport_sockets.tls.v3.Secret", """
        name: api-key
        generic_secret: {secret: {inline_string: "s3cr3t-value"}}
        """)
        let cluster = try E2E.resource("envoy.config.cluster.v3.Cluster", "name: backend\nconnect_timeout: 1s\n")
        XCTAssertTrue(ResourceRenderer().yaml(secret).contains("s3cr3t-value"), "meshctl snapshot show renders it in full")
        let base64 = Data(secret.body).base64EncodedString()
        let redacting = ResourceRenderer(redactsSecrets: true)
        for text in [redacting.yaml(secret), redacting.yamlField(secret), redacting.jsonField(secret)] {
            XCTAssertFalse(text.contains("s3cr3t-value"), text)
            XCTAssertFalse(text.contains(base64), text)
            XCTAssertTrue(text.contains("api-key") && text.contains(String(secret.hash.prefix(12))), text)
        }
        XCTAssertTrue(redacting.yaml(cluster).contains("backend"), "other resources are shown in full")
    }
}
