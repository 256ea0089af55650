// XDSWire: every envelope survives encode → decode unchanged, malformed bytes are a
// typed INVALID_ARGUMENT error, and framing headroom is left in front of the message.
import XCTest
import XDSWire

/// google.protobuf.Struct {"k": "v"}, serialized.
let metadataStruct: [UInt8] = [0x0a, 0x08, 0x0a, 0x01, 0x6b, 0x12, 0x03, 0x1a, 0x01, 0x76]

let fullNode = Node(id: "sidecar~10.0.0.1~web-1", cluster: "web", metadata: metadataStruct, userAgentName: "envoy",
                    userAgentVersion: "1.40.0", clientFeatures: ["envoy.lb.does_not_support_overprovisioning", "xds.config.resource-in-sotw"])

final class WireCodecTests: XCTestCase {
    func testDiscoveryRequestRoundTrip() throws {
        let cases: [(String, DiscoveryRequest)] = [
            ("empty", DiscoveryRequest()),
            ("first request", DiscoveryRequest(node: fullNode, typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster")),
            ("nack", DiscoveryRequest(versionInfo: "v1", node: Node(id: "n"), resourceNames: ["a", "b", "a"],
                                      typeURL: "t", responseNonce: "7", errorDetail: Status(code: 3, message: "bad cluster"))),
        ]
        for (name, request) in cases {
            XCTAssertEqual(try DiscoveryRequest(serialized: request.serialized()), request, name)
        }
    }

    func testRequestsLargerThanTheDecodeScratchMemoryDecodeWhole() throws {
        // Requests are decoded in 8 KiB of scratch memory; what does not fit spills to malloc. 2,000 names of 40
        // bytes, a node and an error need about 100 KiB: every part must still come through, the spilled ones too.
        let names = (0..<2_000).map { "outbound|8080||service-\($0).namespace.svc.local" }
        let cases: [(String, DiscoveryRequest)] = [
            ("many names", DiscoveryRequest(versionInfo: "v9", node: fullNode, resourceNames: names, typeURL: "t", responseNonce: "12",
                                            errorDetail: Status(code: 3, message: String(repeating: "x", count: 20_000)))),
            ("just over the scratch", DiscoveryRequest(resourceNames: Array(names.prefix(200)), typeURL: "t")),
        ]
        for (name, request) in cases {
            XCTAssertEqual(try DiscoveryRequest(serialized: request.serialized()), request, name)
        }
        let delta = DeltaDiscoveryRequest(node: fullNode, typeURL: "t", resourceNamesSubscribe: names, resourceNamesUnsubscribe: Array(names.suffix(300)),
                                          initialResourceVersions: Dictionary(uniqueKeysWithValues: names.prefix(500).map { ($0, "1") }),
                                          responseNonce: "3")
        XCTAssertEqual(try DeltaDiscoveryRequest(serialized: delta.serialized()), delta)
        // Decoding twice in a row reuses nothing from the first decode.
        XCTAssertEqual(try DiscoveryRequest(serialized: cases[1].1.serialized()).resourceNames, Array(names.prefix(200)))
    }

    func testARequestRepeatingKnownNamesReusesThemAndAnyOtherIsDecodedAsSent() throws {
        let known = ["backend_a", "backend_b", "svc-b"]
        let repeated = DiscoveryRequest(versionInfo: "v", resourceNames: known, typeURL: "t", responseNonce: "4").serialized()
        let reused = try DiscoveryRequest(serialized: repeated, knownNames: { $0 == "t" ? known : nil })
        XCTAssertEqual(reused.resourceNames, known)
        XCTAssertEqual(reused.resourceNames.withUnsafeBufferPointer { $0.baseAddress }, known.withUnsafeBufferPointer { $0.baseAddress },
                       "the known array itself is taken")
        let others: [(String, [String])] = [
            ("another order", ["backend_b", "backend_a", "svc-b"]),
            ("one byte differs", ["backend_a", "backend_c", "svc-b"]),
            ("a prefix of a known name", ["backend_a", "backend_", "svc-b"]),
            ("one name fewer", ["backend_a", "backend_b"]),
            ("one name more", known + ["x"]),
            ("an empty name", ["backend_a", "", "svc-b"]),
        ]
        for (name, names) in others {
            let bytes = DiscoveryRequest(resourceNames: names, typeURL: "t").serialized()
            XCTAssertEqual(try DiscoveryRequest(serialized: bytes, knownNames: { _ in known }).resourceNames, names, name)
        }
        // Known names of another type are not taken.
        let otherType = DiscoveryRequest(resourceNames: known, typeURL: "u").serialized()
        let decoded = try DiscoveryRequest(serialized: otherType, knownNames: { $0 == "t" ? known : nil })
        XCTAssertEqual(decoded.resourceNames, known)
        XCTAssertNotEqual(decoded.resourceNames.withUnsafeBufferPointer { $0.baseAddress }, known.withUnsafeBufferPointer { $0.baseAddress })
    }

    func testDiscoveryResponseRoundTrip() throws {
        let response = DiscoveryResponse(
            versionInfo: "0123abcd",
            resources: [AnyResource(typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster", value: ResourceBytes([0x0a, 0x01, 0x61])),
                        AnyResource(typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster", value: ResourceBytes([UInt8]()))],
            typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster", nonce: "42", controlPlane: "meshctl-0")
        XCTAssertEqual(try DiscoveryResponse(serialized: response.serialized()), response)
        let bare = DiscoveryResponse(versionInfo: "", resources: [], typeURL: "t", nonce: "1")
        XCTAssertEqual(try DiscoveryResponse(serialized: bare.serialized()), bare)
    }

    func testDeltaDiscoveryRequestRoundTrip() throws {
        let request = DeltaDiscoveryRequest(node: fullNode, typeURL: "t", resourceNamesSubscribe: ["*", "a"], resourceNamesUnsubscribe: ["b"],
                                            initialResourceVersions: ["a": "1", "c": "2", "b": "3"], responseNonce: "9",
                                            errorDetail: Status(code: 13, message: "oops"))
        XCTAssertEqual(try DeltaDiscoveryRequest(serialized: request.serialized()), request)
        XCTAssertEqual(try DeltaDiscoveryRequest(serialized: DeltaDiscoveryRequest().serialized()), DeltaDiscoveryRequest())
    }

    func testDeltaDiscoveryResponseRoundTrip() throws {
        let body = AnyResource(typeURL: "type.googleapis.com/envoy.config.listener.v3.Listener", value: ResourceBytes(Array("listener".utf8)))
        let response = DeltaDiscoveryResponse(
            systemVersionInfo: "snap-7",
            resources: [DeltaResource(name: "l1", version: "h1", resource: body, aliases: ["alias-1"], ttl: .seconds(30) + .milliseconds(250)),
                        DeltaResource(name: "l2", version: "h2", resource: nil, ttl: .seconds(5))],
            typeURL: "type.googleapis.com/envoy.config.listener.v3.Listener", removedResources: ["l3", "l4"], nonce: "3", controlPlane: "cp")
        XCTAssertEqual(try DeltaDiscoveryResponse(serialized: response.serialized()), response)
    }

    func testMalformedBytesAreAnInvalidArgumentError() {
        let cases: [(String, [UInt8])] = [
            ("invalid wire type", [0x0f, 0x01]),
            ("length past the end", [0x0a, 0x05, 0x61]),
            ("truncated varint", [0x08, 0xff]),
        ]
        for (name, bytes) in cases {
            XCTAssertThrowsError(try DiscoveryRequest(serialized: bytes), name) { error in
                XCTAssertEqual(error as? WireError, WireError(messageType: "envoy.service.discovery.v3.DiscoveryRequest", byteCount: bytes.count), name)
                XCTAssertEqual((error as? WireError)?.grpcStatusCode, .invalidArgument, name)
            }
            XCTAssertThrowsError(try DeltaDiscoveryRequest(serialized: bytes), name)
        }
    }

    func testHeadroomIsLeftBeforeTheMessage() throws {
        let request = DiscoveryRequest(typeURL: "t", responseNonce: "1")
        let framed = request.serialized(headroom: 5)
        XCTAssertEqual(Array(framed.prefix(5)), [0, 0, 0, 0, 0])
        XCTAssertEqual(Array(framed.dropFirst(5)), request.serialized())
        XCTAssertEqual(try DiscoveryRequest(serialized: Array(framed.dropFirst(5))), request)
    }

    func testResourceBytesCompareByContent() {
        XCTAssertEqual(ResourceBytes([1, 2, 3]), ResourceBytes([1, 2, 3]))
        XCTAssertNotEqual(ResourceBytes([1, 2, 3]), ResourceBytes([1, 2]))
        XCTAssertEqual(ResourceBytes([UInt8]()).bytes, [])
    }
}

/// Fuzz finding (client-status): a Timestamp beyond what Int64 nanoseconds hold crashed the CSDS decoder.
final class ClientStatusTimestampTests: XCTestCase {
    func testFarOffTimestampsSaturateInsteadOfCrashing() throws {
        let finding = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FuzzCorpus/client-status/finding-timestamp-overflow")
        let bytes = Array(try Data(contentsOf: finding))
        // Whatever else it holds, decoding ends in a value or an error, never a trap.
        _ = try? ClientStatusResponse(serialized: bytes)
        // A last_updated of year 9999 (seconds 253402300799) saturates; one before 1970 reads as unset.
        func response(seconds: Int64) -> [UInt8] {
            // ClientStatusResponse{config: [ClientConfig{generic_xds_configs: [GenericXdsConfig{type_url: "t", last_updated: {seconds}}]}]}
            var timestamp: [UInt8] = [0x08] + varint(UInt64(bitPattern: seconds))
            timestamp = [0x2a] + varint(UInt64(timestamp.count)) + timestamp      // GenericXdsConfig.last_updated = 5
            let generic: [UInt8] = [0x0a, 0x01, 0x74] + timestamp                  // type_url = 1
            let config: [UInt8] = [0x1a] + varint(UInt64(generic.count)) + generic // ClientConfig.generic_xds_configs = 3
            return [0x0a] + varint(UInt64(config.count)) + config                  // ClientStatusResponse.config = 1
        }
        let future = try ClientStatusResponse(serialized: response(seconds: 253_402_300_799))
        XCTAssertEqual(future.configs.first?.xdsConfigs.first?.lastUpdatedNanoseconds, .max)
        let past = try ClientStatusResponse(serialized: response(seconds: -1_000))
        XCTAssertEqual(past.configs.first?.xdsConfigs.first?.lastUpdatedNanoseconds, 0)
    }

    private func varint(_ value: UInt64) -> [UInt8] {
        var v = value, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7f) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }
}
