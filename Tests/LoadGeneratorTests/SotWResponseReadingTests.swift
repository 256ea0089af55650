// How a simulated proxy reads SotW responses: envelope fields in place, and resource readings shared between
// proxies only when the bytes are the same (a version sent with other contents is read again).
@testable import LoadGenerator
import XCTest
import XDSProtocol
import XDSWire

final class SotWResponseReadingTests: XCTestCase {
    /// Cluster{name (1), type: EDS (2 = 3), eds_cluster_config (3) {service_name (2)}}.
    static func edsCluster(_ name: String, serviceName: String) -> [UInt8] {
        let config: [UInt8] = [0x12, UInt8(serviceName.utf8.count)] + Array(serviceName.utf8)
        return [0x0a, UInt8(name.utf8.count)] + Array(name.utf8) + [0x10, 0x03, 0x1a, UInt8(config.count)] + config
    }

    static func response(version: String, nonce: String, clusters: [[UInt8]]) -> [UInt8] {
        DiscoveryResponse(versionInfo: version, resources: clusters.map { AnyResource(typeURL: TypeURL.cluster, value: ResourceBytes($0)) },
                          typeURL: TypeURL.cluster, nonce: nonce).serialized()
    }

    func read(_ bytes: [UInt8], with readings: SharedResourceReadings) throws -> (SotWResponseEnvelope, ResourceReading) {
        try bytes.withUnsafeBytes { raw in
            let envelope = try XCTUnwrap(SotWResponseEnvelope(raw))
            return (envelope, readings.reading(of: envelope, typeURL: envelope.typeURL.isEmpty ? TypeURL.cluster : envelope.typeURL))
        }
    }

    func testEnvelopeFieldsMatchTheDecodedMessage() throws {
        let bytes = Self.response(version: "v1", nonce: "n-7", clusters: [Self.edsCluster("a", serviceName: "a-eds"), Self.edsCluster("b", serviceName: "b")])
        let decoded = try DiscoveryResponse(serialized: bytes)
        let (envelope, reading) = try read(bytes, with: SharedResourceReadings())
        XCTAssertEqual(envelope.versionInfo, decoded.versionInfo)
        XCTAssertEqual(envelope.typeURL, decoded.typeURL)
        XCTAssertEqual(envelope.nonce, decoded.nonce)
        XCTAssertEqual(envelope.bodies.map { Array($0) }, decoded.resources.map { $0.value.withUnsafeBytes { Array($0) } })
        XCTAssertNotNil(envelope.resourcesSpan)
        XCTAssertEqual(reading.references, ["a": ["a-eds"], "b": ["b"]])
        XCTAssertEqual(reading.referencedNames, ["a-eds", "b"])
    }

    func testSameBytesAreReadOnceAndOtherBytesUnderTheSameVersionAreReadAgain() throws {
        let readings = SharedResourceReadings()
        let clusters = [Self.edsCluster("a", serviceName: "a"), Self.edsCluster("b", serviceName: "b")]
        // Two proxies of one group: different nonces, the same resources.
        let (_, first) = try read(Self.response(version: "v1", nonce: "1", clusters: clusters), with: readings)
        let (_, second) = try read(Self.response(version: "v1", nonce: "2", clusters: clusters), with: readings)
        XCTAssertTrue(first === second, "identical resources are read once")
        // Same version string, one byte different: must not be mistaken for the reading above.
        let (_, other) = try read(Self.response(version: "v1", nonce: "3", clusters: [clusters[0], Self.edsCluster("b", serviceName: "c")]), with: readings)
        XCTAssertFalse(other === first)
        XCTAssertEqual(other.referencedNames, ["a", "c"])
        XCTAssertEqual(first.referencedNames, ["a", "b"], "the earlier reading is unchanged")
    }

    func testResourcesInterleavedWithOtherFieldsAreReadWithoutSharing() throws {
        // version_info (1), a resource (2), nonce (5), another resource (2): valid protobuf, not one span.
        let any = { (body: [UInt8]) -> [UInt8] in
            let url = Array(TypeURL.cluster.utf8)
            let inner: [UInt8] = [0x0a, UInt8(url.count)] + url + [0x12, UInt8(body.count)] + body
            return [0x12, UInt8(inner.count)] + inner
        }
        let bytes: [UInt8] = [0x0a, 0x02, 0x76, 0x31] + any(Self.edsCluster("a", serviceName: "x")) + [0x2a, 0x01, 0x6e]
            + any(Self.edsCluster("b", serviceName: "y"))
        let (envelope, reading) = try read(bytes, with: SharedResourceReadings())
        XCTAssertNil(envelope.resourcesSpan)
        XCTAssertEqual(envelope.nonce, "n")
        XCTAssertEqual(envelope.versionInfo, "v1")
        XCTAssertEqual(reading.referencedNames, ["x", "y"])
    }

    func testTruncatedResponseIsRefused() {
        let bytes = Self.response(version: "v1", nonce: "1", clusters: [Self.edsCluster("a", serviceName: "a")])
        XCTAssertNil(bytes.dropLast(1).withUnsafeBytes { SotWResponseEnvelope($0) })
    }
}
