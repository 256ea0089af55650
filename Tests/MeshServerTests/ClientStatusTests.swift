// CSDS without sockets: the protobuf-c encoding is what Python protobuf reads
// (the oracle), requests round-trip with their matchers, the report maps each
// proxy state to CSDS's statuses, and only operator identities may ask.
import Foundation
@testable import MeshServer
@testable import XDSCache
import ServerTelemetry
import Transport
import MeshTestSupport
import XCTest
import XDSProtocol
import XDSWire

final class ClientStatusTests: XCTestCase {
    static var python: String? { TestPaths.installedPython }

    func sampleResponse() -> ClientStatusResponse {
        ClientStatusResponse(configs: [
            ClientConfig(node: Node(id: "frontend-1", cluster: "frontend", userAgentName: "envoy"), xdsConfigs: [
                GenericXDSConfig(typeURL: TypeURL.listener, versionInfo: "v2", details: ["version_acked": "v1", "group": "frontend"],
                                 lastUpdatedNanoseconds: 1_790_000_000_123_000_000, configStatus: .error, clientStatus: .nacked,
                                 errorState: UpdateFailureState(details: "cannot bind '127.0.0.1:80': Address already in use", versionInfo: "v2",
                                                                lastUpdateAttemptNanoseconds: 1_790_000_001_000_000_000)),
                GenericXDSConfig(typeURL: TypeURL.cluster, versionInfo: "c7", configStatus: .synced, clientStatus: .acked),
            ], clientScope: "ads"),
            ClientConfig(node: Node(id: "ingress-1", cluster: "ingress"), xdsConfigs: [
                GenericXDSConfig(typeURL: TypeURL.route, configStatus: .notSent, clientStatus: .requested),
            ]),
        ])
    }

    func testResponseRoundTripsThroughProtobufC() throws {
        let response = sampleResponse()
        XCTAssertEqual(try ClientStatusResponse(serialized: response.serialized()), response)
    }

    func testPythonProtobufReadsTheResponseAsEnvoyDefinesIt() throws {
        guard let python = Self.python else { throw XCTSkip("no Python with xds-protos: set MESHCTL_PYTHON (make test does)") }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("csds-\(UUID().uuidString).bin").path
        try Data(sampleResponse().serialized()).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let script = """
        import sys, json
        from envoy.service.status.v3 import csds_pb2
        from google.protobuf import json_format, struct_pb2
        r = csds_pb2.ClientStatusResponse()
        r.ParseFromString(open(sys.argv[1], 'rb').read())
        out = []
        for c in r.config:
            for g in c.generic_xds_configs:
                s = struct_pb2.Struct()
                if g.HasField('xds_config'): g.xds_config.Unpack(s)
                out.append({'node': c.node.id, 'cluster': c.node.cluster, 'scope': c.client_scope, 'type': g.type_url,
                            'version': g.version_info, 'config_status': csds_pb2.ConfigStatus.Name(g.config_status),
                            'client_status': g.client_status, 'error': g.error_state.details, 'rejected': g.error_state.version_info,
                            'updated': g.last_updated.ToNanoseconds(), 'details': json_format.MessageToDict(s)})
        print(json.dumps(out, sort_keys=True))
        """
        let result = E2E.run(python, ["-c", script, path], timeout: 30)
        XCTAssertEqual(result?.status, 0, result?.output ?? "python did not run")
        let rows = try XCTUnwrap(JSONSerialization.jsonObject(with: Data((result?.output ?? "").utf8)) as? [[String: Any]])
        XCTAssertEqual(rows.count, 3)
        XCTAssertEqual(rows[0]["node"] as? String, "frontend-1")
        XCTAssertEqual(rows[0]["cluster"] as? String, "frontend")
        XCTAssertEqual(rows[0]["scope"] as? String, "ads")
        XCTAssertEqual(rows[0]["config_status"] as? String, "ERROR")
        XCTAssertEqual(rows[0]["client_status"] as? Int, 4, "NACKED")
        XCTAssertEqual(rows[0]["error"] as? String, "cannot bind '127.0.0.1:80': Address already in use")
        XCTAssertEqual(rows[0]["rejected"] as? String, "v2")
        XCTAssertEqual(rows[0]["updated"] as? Int, 1_790_000_000_123_000_000)
        XCTAssertEqual(rows[0]["details"] as? [String: String], ["version_acked": "v1", "group": "frontend"])
        XCTAssertEqual(rows[1]["config_status"] as? String, "SYNCED")
        XCTAssertEqual(rows[2]["config_status"] as? String, "NOT_SENT")
    }

    func testRequestMatchersRoundTripAndMatch() throws {
        let request = ClientStatusRequest(nodeMatchers: [NodeIDMatcher(.exact("a-1")), NodeIDMatcher(.prefix("ING"), ignoreCase: true),
                                                         NodeIDMatcher(.suffix("-9")), NodeIDMatcher(.contains("mid"))],
                                          excludeResourceContents: true)
        let decoded = try ClientStatusRequest(serialized: request.serialized())
        XCTAssertEqual(decoded, request)
        let cases: [(String, Bool)] = [("a-1", true), ("a-10", false), ("ingress-2", true), ("x-9", true), ("amidst", true), ("other", false)]
        for (node, expected) in cases {
            XCTAssertEqual(decoded.nodeMatchers.contains { $0.matches(node) }, expected, node)
        }
    }

    func testReportMapsEveryStateAndFiltersByNode() {
        let registry = ProxyRegistry()
        let streamA = NSObject(), streamB = NSObject()
        let keyA = ObjectIdentifier(streamA), keyB = ObjectIdentifier(streamB)
        defer { withExtendedLifetime((streamA, streamB)) {} }
        let now = Date()
        let statusA = ProxyStreamStatus(ProxyStreamRecord(nodeID: "a", group: "g", mode: .adsStateOfTheWorld, peer: "127.0.0.1:1",
                                                          identity: "spiffe://m/proxy/g", userAgent: "envoy", connectedAt: now, types: []))
        let statusB = ProxyStreamStatus(ProxyStreamRecord(nodeID: "b", group: "g", mode: .perTypeDelta, peer: "127.0.0.1:2", identity: nil,
                                                          userAgent: "", connectedAt: now, types: []))
        registry.open(keyA, statusA)
        registry.open(keyB, statusB)
        func type(_ url: String, _ verdict: SyncVerdict, nack: String? = nil) -> ProxyStatus {
            .example(url, verdict, versionSent: "s", snapshot: "snap", versionAcked: verdict == .synced ? "s" : "old", nack: nack)
        }
        for status in [type(TypeURL.cluster, .synced), type(TypeURL.listener, .nacked, nack: "bad listener"),
                       type(TypeURL.route, .stale), type(TypeURL.endpoint, .notSent)] {
            statusA.update(status, sentAt: WallClockTime(nanosecondsSinceEpoch: now.nanosecondsSinceEpoch), ackedAt: nil)
        }
        statusB.update(type(TypeURL.cluster, .synced), sentAt: nil, ackedAt: nil)

        let all = ClientStatusReport.response(to: ClientStatusRequest(), proxies: registry, servedVersion: "served")
        XCTAssertEqual(all.configs.map(\.node.id), ["a", "b"])
        let a = all.configs[0]
        XCTAssertEqual(a.clientScope, "ads")
        XCTAssertEqual(a.xdsConfigs.map { TypeURL.shortName($0.typeURL) }, ["LDS", "RDS", "CDS", "EDS"], "operator order")
        XCTAssertEqual(a.xdsConfigs.map(\.configStatus), [.error, .stale, .synced, .notSent])
        XCTAssertEqual(a.xdsConfigs.map(\.clientStatus), [.nacked, .requested, .acked, .requested])
        XCTAssertEqual(a.xdsConfigs[0].errorState?.details, "bad listener")
        XCTAssertEqual(a.xdsConfigs[1].details["version_acked"], "old")
        XCTAssertEqual(a.xdsConfigs[2].details["snapshot_served"], "served")

        let one = ClientStatusReport.response(to: ClientStatusRequest(nodeMatchers: [NodeIDMatcher(.exact("b"))]), proxies: registry, servedVersion: nil)
        XCTAssertEqual(one.configs.map(\.node.id), ["b"])
        XCTAssertEqual(one.configs[0].clientScope, "per-type-delta")
        let bare = ClientStatusReport.response(to: ClientStatusRequest(excludeResourceContents: true), proxies: registry, servedVersion: nil)
        XCTAssertTrue(bare.configs.allSatisfy { $0.xdsConfigs.allSatisfy { $0.details.isEmpty } })

        registry.close(keyA)
        XCTAssertEqual(ClientStatusReport.response(to: ClientStatusRequest(), proxies: registry, servedVersion: nil).configs.map(\.node.id), ["b"])
    }

    /// A stream's status object changes its record in place: a type's newer status replaces the older one (a type is
    /// listed once, in first-seen order); the registry lists open streams only, and a closed stream's late update does
    /// not bring it back.
    func testAStreamsStatusReplacesATypesStatusAndTheRegistryListsOpenStreamsOnly() {
        let registry = ProxyRegistry()
        let stream = NSObject(), closed = NSObject()
        let key = ObjectIdentifier(stream), closedKey = ObjectIdentifier(closed)
        defer { withExtendedLifetime((stream, closed)) {} }
        let now = Date()
        func status(_ url: String, _ verdict: SyncVerdict, version: String) -> ProxyStatus {
            .example(url, verdict, versionSent: version, snapshot: "snap-" + version)
        }
        let open = ProxyStreamStatus(ProxyStreamRecord(nodeID: "a", group: "g", mode: .adsStateOfTheWorld, peer: "127.0.0.1:1", identity: nil,
                                                       userAgent: "envoy", connectedAt: now, types: []))
        let neverOpened = ProxyStreamStatus(ProxyStreamRecord(nodeID: "z", group: "g", mode: .adsStateOfTheWorld, peer: "127.0.0.1:9",
                                                              identity: nil, userAgent: "envoy", connectedAt: now, types: []))
        registry.open(key, open)
        open.update(status(TypeURL.cluster, .stale, version: "1"), sentAt: nil, ackedAt: nil)
        open.update(status(TypeURL.endpoint, .stale, version: "1"), sentAt: nil, ackedAt: nil)
        open.update(status(TypeURL.cluster, .synced, version: "2"), sentAt: nil, ackedAt: nil)
        neverOpened.update(status(TypeURL.cluster, .stale, version: "9"), sentAt: nil, ackedAt: nil)
        registry.close(closedKey)

        XCTAssertEqual(registry.streams.count, 1, "a stream the registry was not told of is not listed")
        let types = registry.streams[0].types
        XCTAssertEqual(types.map(\.typeURL), [TypeURL.cluster, TypeURL.endpoint])
        XCTAssertEqual(types[0].status, .synced)
        XCTAssertEqual(types[0].versionSent, "2")
        XCTAssertEqual(types[1].status, .stale)
        registry.close(key)
        open.update(status(TypeURL.cluster, .stale, version: "3"), sentAt: nil, ackedAt: nil)
        XCTAssertTrue(registry.streams.isEmpty, "a closed stream's late status does not bring it back")
    }

    func testOnlyOperatorIdentitiesMayReadStatus() {
        let cases: [(String, StatusReaders, [String], Bool)] = [
            ("operator of any trust domain", .operators, ["spiffe://mesh.local/operator/oncall"], true),
            ("a proxy", .operators, ["spiffe://mesh.local/proxy/frontend"], false),
            ("operator-looking path elsewhere", .operators, ["spiffe://mesh.local/proxy/operator/x"], false),
            ("no certificate identity", .operators, [], false),
            ("listed exactly", .identities(["spiffe://corp/sre/alice"]), ["spiffe://corp/sre/alice"], true),
            ("listed by prefix", .identities(["spiffe://corp/sre/*"]), ["spiffe://corp/sre/bob"], true),
            ("not listed", .identities(["spiffe://corp/sre/*"]), ["spiffe://mesh.local/operator/oncall"], false),
        ]
        for (name, readers, uris, expected) in cases {
            XCTAssertEqual(readers.admits(PeerIdentity(uriSANs: uris, commonName: nil)), expected, name)
        }
    }

    func testHandshakeFailuresAreCountedUnderABoundedReason() {
        let cases: [(String, String)] = [
            ("error:0A0000C7:SSL routines::peer did not return a certificate", "no_client_certificate"),
            ("error:0A000086:SSL routines::certificate verify failed", "untrusted_certificate"),
            ("error:0A00010B:SSL routines::wrong version number", "not_tls"),
            ("error:0A00009C:SSL routines::http request", "not_tls"),
            ("connection closed during handshake", "closed_during_handshake"),
            ("error:0A000086:SSL routines::certificate verify failed (certificate is not yet valid)", "certificate_not_yet_valid"),
            ("something new", "other"),
        ]
        for (text, reason) in cases { XCTAssertEqual(HandshakeFailureReason.classify(text), reason, text) }
    }

    /// A stream's status keeps when each type was last sent and ACKed across updates that carry only one of them: the
    /// stream reports a time with the event that sets it.
    func testAStatusKeepsTheLastSendAndAckTimesAcrossUpdates() {
        let status = ProxyStreamStatus(ProxyStreamRecord(nodeID: "a", group: "g", mode: .adsStateOfTheWorld, peer: "127.0.0.1:1", identity: nil,
                                                         userAgent: "", connectedAt: Date(), types: []))
        let sent = WallClockTime(nanosecondsSinceEpoch: 1_700_000_000_000_000_000)
        let acked = WallClockTime(nanosecondsSinceEpoch: 1_700_000_001_000_000_000)
        status.update(.example(TypeURL.cluster, .stale, versionSent: "1", snapshot: "s1"), sentAt: sent, ackedAt: nil)
        status.update(.example(TypeURL.cluster, .synced, versionSent: "1", snapshot: "s1", versionAcked: "1"), sentAt: nil, ackedAt: acked)
        status.update(.example(TypeURL.cluster, .synced, versionSent: "1", snapshot: "s1", versionAcked: "1"), sentAt: nil, ackedAt: nil)
        var seen: [(WallClockTime?, WallClockTime?)] = []
        status.forEachType { _, sentAt, ackedAt in seen.append((sentAt, ackedAt)) }
        XCTAssertEqual(seen.count, 1)
        XCTAssertEqual(seen.first?.0, sent)
        XCTAssertEqual(seen.first?.1, acked)
        let type = status.record.types.first
        XCTAssertEqual(type?.status, .synced)
        XCTAssertEqual(type?.sentAt, Date(wallClock: sent))
        XCTAssertEqual(type?.ackedAt, Date(wallClock: acked))
        // A type never sent reports no times.
        status.update(ProxyStatus(typeURL: TypeURL.endpoint), sentAt: nil, ackedAt: nil)
        XCTAssertNil(status.record.types.first { $0.typeURL == TypeURL.endpoint }?.sentAt)
    }
}
