// Connections announce an HPACK decoder table of size 0 and encode without one: an xDS connection sends each
// header block about once, so indexed entries only cost memory for the connection's life. With both tables empty
// for good, the pages of nghttp2's two HPACK rings (1 KiB each, allocated whatever the table size) go back to the
// kernel. Two sessions, client and server, in memory: headers must still arrive intact, before and after.
@testable import Transport
import XCTest

final class HeaderTableTests: XCTestCase {
    final class Peer: HTTP2SessionDelegate {
        var requests: [HTTP2StreamID: [HeaderField]] = [:]
        var responses: [HTTP2StreamID: [HeaderField]] = [:]
        func session(receivedHeaders headers: [HeaderField], kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool) {
            switch kind {
            case .request: requests[streamID] = headers
            default: responses[streamID, default: []] += headers
            }
        }
        func session(receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID) {}
        func session(receivedEndStream streamID: HTTP2StreamID) {}
        func session(streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {}
        func session(receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID) {}
        func sessionReceivedPingAck() {}
        func sessionRefusedStream() {}
        func session(sentGoAway errorCode: HTTP2ErrorCode) {}
    }

    struct Pair {
        let client: HTTP2Session
        let server: HTTP2Session
        let clientPeer = Peer()
        let serverPeer = Peer()

        func pump() {
            for _ in 0..<8 {
                var toServer: [UInt8] = []
                while let chunk = client.nextOutbound(), !chunk.isEmpty { toServer += chunk }
                if !toServer.isEmpty { XCTAssertNil(toServer.withUnsafeBytes { server.receive($0) }) }
                var toClient: [UInt8] = []
                while let chunk = server.nextOutbound(), !chunk.isEmpty { toClient += chunk }
                if !toClient.isEmpty { XCTAssertNil(toClient.withUnsafeBytes { client.receive($0) }) }
            }
        }

        /// A request whose headers an encoder with a table would index (custom names, long values).
        func request(_ n: Int) -> (HTTP2StreamID?, [HeaderField]) {
            let headers = [HeaderField(":method", "POST"), HeaderField(":scheme", "https"),
                           HeaderField(":path", "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"),
                           HeaderField(":authority", "xds.mesh.internal:15010"), HeaderField("content-type", "application/grpc"),
                           HeaderField("te", "trailers"), HeaderField("user-agent", "envoy/1.40.0 request \(n)"),
                           HeaderField("x-envoy-node", "sidecar~10.0.0.\(n)~web-\(n).default")]
            return (client.submitRequest(headers: headers), headers)
        }
    }

    /// A server and a client that, like Envoy, indexes its headers in a 4,096-byte table until told otherwise.
    func makePair(serverTableSize: UInt32?) throws -> Pair {
        let pair = Pair(client: try HTTP2Session(role: .client, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100,
                                                 encoderTableSize: 4096),
                        server: try HTTP2Session(role: .server, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100))
        pair.client.delegate = pair.clientPeer
        pair.server.delegate = pair.serverPeer
        pair.client.submitSettings([.enablePush(false)])
        pair.server.submitSettings([.maxConcurrentStreams(100)] + (serverTableSize.map { [.headerTableSize($0)] } ?? []))
        return pair
    }

    func testRingsGoBackOnceTheTablesAreEmptyForGoodAndHeadersStillDecode() throws {
        let pair = try makePair(serverTableSize: 0)
        // The first request leaves before the server's SETTINGS arrive: the client's encoder indexes it.
        let (first, sent) = pair.request(1)
        let firstID = try XCTUnwrap(first)
        var toServer: [UInt8] = []
        while let chunk = pair.client.nextOutbound(), !chunk.isEmpty { toServer += chunk }
        XCTAssertNil(toServer.withUnsafeBytes { pair.server.receive($0) })
        XCTAssertGreaterThan(pair.server.decoderTableBytes, 0, "the first request's headers were indexed")
        XCTAssertGreaterThanOrEqual(pair.server.headerTableResidentPages, 1, "written into the decoder's ring")
        pair.pump()
        XCTAssertEqual(pair.server.decoderTableBytes, 0, "the client acknowledged a table of size 0: entries evicted")
        XCTAssertEqual(pair.serverPeer.requests[firstID], sent)
        XCTAssertTrue(pair.server.submitResponse(streamID: firstID, headers: [HeaderField(":status", "200"), HeaderField("content-type", "application/grpc")], endStream: true))
        pair.pump()
        XCTAssertEqual(pair.clientPeer.responses[firstID]?.first { $0.name == "content-type" }?.value, "application/grpc")

        let released = HTTP2MemoryAccounting.releasedHeaderTableBytes
        _ = pair.server.releaseIdlePages()
        XCTAssertEqual(pair.server.headerTableResidentPages, 0, "both rings handed back")
        XCTAssertGreaterThanOrEqual(HTTP2MemoryAccounting.releasedHeaderTableBytes - released, 2 * Int(getpagesize()))

        // Later header blocks, both ways, decode without a table and leave the rings untouched.
        for n in 2...4 {
            let (next, headers) = pair.request(n)
            let id = try XCTUnwrap(next)
            pair.pump()
            XCTAssertEqual(pair.serverPeer.requests[id], headers)
            XCTAssertTrue(pair.server.submitResponse(streamID: id, headers: [HeaderField(":status", "200"), HeaderField("grpc-status", "0")], endStream: true))
            pair.pump()
            XCTAssertEqual(pair.clientPeer.responses[id]?.first { $0.name == "grpc-status" }?.value, "0")
        }
        XCTAssertEqual(pair.server.headerTableResidentPages, 0, "nothing wrote the rings again")
        XCTAssertEqual(pair.server.decoderTableBytes, 0)
    }

    func testRingsStayWhileThePeerMayIndexHeaders() throws {
        // Without the announcement the client keeps RFC 7541's 4,096-byte table and indexes its headers: the
        // decoder's ring holds entries, and nothing may be released.
        let pair = try makePair(serverTableSize: nil)
        let (first, sent) = pair.request(1)
        let id = try XCTUnwrap(first)
        pair.pump()
        XCTAssertEqual(pair.serverPeer.requests[id], sent)
        XCTAssertGreaterThan(pair.server.decoderTableBytes, 0, "the decoder's table holds the indexed entries")
        _ = pair.server.releaseIdlePages()
        XCTAssertGreaterThan(pair.server.headerTableResidentPages, 0, "and its ring was not handed back")
        let (second, headers) = pair.request(2)
        let secondID = try XCTUnwrap(second)
        pair.pump()
        XCTAssertEqual(pair.serverPeer.requests[secondID], headers, "headers decoded against the entries still held")
    }
}
