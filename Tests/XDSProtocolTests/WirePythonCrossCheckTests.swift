// XDSWire against the reference protobuf runtime: Python's protobuf with the pinned
// xds-protos (envoy.service.discovery.v3.discovery_pb2) must read what we write, byte
// for byte where field order agrees, and we must read what it writes.
import Foundation
import XCTest
import XDSWire

final class WirePythonCrossCheckTests: XCTestCase {
    /// MESHCTL_PYTHON, else the repository's .venv, else the helper venv of the dev machine.
    static var python: String? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["MESHCTL_PYTHON"], !configured.isEmpty { candidates.append(configured) }
        candidates += [root.appendingPathComponent(".venv/bin/python").path, "/tmp/venv-x/bin/python"]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static let script = #"""
import sys
from google.protobuf import any_pb2, duration_pb2, struct_pb2
from google.rpc import status_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2 as d

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
meta = struct_pb2.Struct()
meta.fields["k"].string_value = "v"
node = base_pb2.Node(id="sidecar~10.0.0.1~web-1", cluster="web", metadata=meta, user_agent_name="envoy",
                     user_agent_version="1.40.0", client_features=["envoy.lb.does_not_support_overprovisioning"])

expected = {
    "response": d.DiscoveryResponse(
        version_info="0123abcd", type_url=CDS, nonce="42",
        resources=[any_pb2.Any(type_url=CDS, value=b"\x0a\x01a"), any_pb2.Any(type_url=CDS, value=b"")],
        control_plane=base_pb2.ControlPlane(identifier="meshctl-0")),
    "delta_request": d.DeltaDiscoveryRequest(
        node=node, type_url=CDS, resource_names_subscribe=["*", "a"], resource_names_unsubscribe=["b"],
        initial_resource_versions={"a": "1", "c": "2", "b": "3"}, response_nonce="9",
        error_detail=status_pb2.Status(code=13, message="oops")),
    "delta_response": d.DeltaDiscoveryResponse(
        system_version_info="snap-7", type_url=CDS, removed_resources=["c3"], nonce="3",
        resources=[d.Resource(name="c1", version="h1", resource=any_pb2.Any(type_url=CDS, value=b"\x0a\x02c1"),
                              aliases=["alias-1"], ttl=duration_pb2.Duration(seconds=30, nanos=250000000)),
                   d.Resource(name="c2", version="h2", ttl=duration_pb2.Duration(seconds=5))]),
}
kinds = {"response": d.DiscoveryResponse, "delta_request": d.DeltaDiscoveryRequest, "delta_response": d.DeltaDiscoveryResponse}
for arg in sys.argv[1:]:
    name, hexed = arg.split("=")
    ours = bytes.fromhex(hexed)
    parsed = kinds[name].FromString(ours)
    theirs = expected[name].SerializeToString(deterministic=True)
    print(name, "equal" if parsed == expected[name] else "different", "same-bytes" if theirs == ours else "other-bytes")

request = d.DiscoveryRequest(
    version_info="v9", resource_names=["c1", "c2"], type_url=CDS, response_nonce="17",
    node=base_pb2.Node(id="n1", cluster="edge", metadata=meta, user_agent_name="envoy",
                       user_agent_build_version=base_pb2.BuildVersion(version={"major_number": 1, "minor_number": 40, "patch": 2}),
                       client_features=["xds.config.resource-in-sotw"]),
    error_detail=status_pb2.Status(code=3, message="cluster c2: bad"))
print("request", request.SerializeToString(deterministic=True).hex())
"""#

    func testEncodingMatchesPythonProtobufAndDecodesItsOutput() throws {
        guard let python = Self.python else {
            throw XCTSkip("no Python with xds-protos: set MESHCTL_PYTHON (make test does)")
        }
        let node = Node(id: "sidecar~10.0.0.1~web-1", cluster: "web", metadata: metadataStruct, userAgentName: "envoy",
                        userAgentVersion: "1.40.0", clientFeatures: ["envoy.lb.does_not_support_overprovisioning"])
        let response = DiscoveryResponse(versionInfo: "0123abcd",
                                         resources: [AnyResource(typeURL: CDS, value: ResourceBytes([0x0a, 0x01, 0x61])),
                                                     AnyResource(typeURL: CDS, value: ResourceBytes([UInt8]()))],
                                         typeURL: CDS, nonce: "42", controlPlane: "meshctl-0")
        let deltaRequest = DeltaDiscoveryRequest(node: node, typeURL: CDS, resourceNamesSubscribe: ["*", "a"], resourceNamesUnsubscribe: ["b"],
                                                 initialResourceVersions: ["a": "1", "c": "2", "b": "3"], responseNonce: "9",
                                                 errorDetail: Status(code: 13, message: "oops"))
        let deltaResponse = DeltaDiscoveryResponse(
            systemVersionInfo: "snap-7",
            resources: [DeltaResource(name: "c1", version: "h1", resource: AnyResource(typeURL: CDS, value: ResourceBytes([0x0a, 0x02, 0x63, 0x31])),
                                      aliases: ["alias-1"], ttl: .seconds(30) + .milliseconds(250)),
                        DeltaResource(name: "c2", version: "h2", resource: nil, ttl: .seconds(5))],
            typeURL: CDS, removedResources: ["c3"], nonce: "3")

        let output = try runPython(python, arguments: [
            "response=" + hex(response.serialized()),
            "delta_request=" + hex(deltaRequest.serialized()),
            "delta_response=" + hex(deltaResponse.serialized()),
        ])
        let lines = output.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first { $0.hasPrefix("response ") }, "response equal same-bytes")
        XCTAssertEqual(lines.first { $0.hasPrefix("delta_request ") }?.hasPrefix("delta_request equal"), true, output)
        XCTAssertEqual(lines.first { $0.hasPrefix("delta_response ") }?.hasPrefix("delta_response equal"), true, output)

        guard let requestHex = lines.first(where: { $0.hasPrefix("request ") })?.dropFirst("request ".count) else {
            return XCTFail("no request from Python: \(output)")
        }
        let request = try DiscoveryRequest(serialized: bytes(fromHex: String(requestHex)))
        XCTAssertEqual(request, DiscoveryRequest(
            versionInfo: "v9",
            node: Node(id: "n1", cluster: "edge", metadata: metadataStruct, userAgentName: "envoy", userAgentVersion: "1.40.2",
                       clientFeatures: ["xds.config.resource-in-sotw"]),
            resourceNames: ["c1", "c2"], typeURL: CDS, responseNonce: "17", errorDetail: Status(code: 3, message: "cluster c2: bad")))
    }

    private func runPython(_ python: String, arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = ["-c", Self.script] + arguments
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        let out = stdout.fileHandleForReading.readDataToEndOfFile()
        let err = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: out, as: UTF8.self)
        XCTAssertEqual(process.terminationStatus, 0, "python failed: \(String(decoding: err, as: UTF8.self))")
        return text
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    private func bytes(fromHex hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            out.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return out
    }
}
