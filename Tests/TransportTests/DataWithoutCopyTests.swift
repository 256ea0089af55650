// DATA payloads go from a stream's queue to the connection's output without a copy into nghttp2's 16 KiB
// outbound frame buffer (NGHTTP2_DATA_FLAG_NO_COPY). Two sessions, client and server, in memory: the bytes
// must arrive intact, and a response written after the buffer's pages were handed back must not fault them in
// again (with the copy, every page of the buffer is written).
@testable import Transport
import XCTest

final class DataWithoutCopyTests: XCTestCase {
    /// What a session's delegate saw.
    final class Peer: HTTP2SessionDelegate {
        var data: [HTTP2StreamID: [UInt8]] = [:]
        var requests: [HTTP2StreamID] = []
        var ended: Set<HTTP2StreamID> = []
        var trailers: [HTTP2StreamID: [HeaderField]] = [:]
        func session(receivedHeaders headers: [HeaderField], kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool) {
            if headers.contains(where: { $0.name == ":path" }) { requests.append(streamID) }
            if headers.contains(where: { $0.name == "grpc-status" }) { trailers[streamID] = headers }
            if endStream { ended.insert(streamID) }
        }
        func session(receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID) { self.data[streamID, default: []] += data }
        func session(receivedEndStream streamID: HTTP2StreamID) { ended.insert(streamID) }
        func session(streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {}
        func session(receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID) {}
        func sessionReceivedPingAck() {}
        func sessionRefusedStream() {}
        func session(sentGoAway errorCode: HTTP2ErrorCode) {}
    }

    final class Output {
        var bytes: [UInt8] = []
        var most = 0
    }

    /// Everything `session` wants to write, in order: encoded frames and the DATA frames written around them.
    func drain(_ session: HTTP2Session, _ output: Output) -> [UInt8] {
        while let chunk = session.nextOutbound(), !chunk.isEmpty { output.bytes += chunk }
        defer { output.bytes = [] }
        return output.bytes
    }

    /// A request and a 40,000-byte response with trailers between two in-memory sessions; returns the server's
    /// resident frame-buffer pages after the response (written after its pages were handed back) and what arrived.
    func exchange(withoutCopy: Bool) throws -> (residentPages: Int, received: [UInt8], trailers: [HeaderField]?) {
        let client = try HTTP2Session(role: .client, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100)
        let server = try HTTP2Session(role: .server, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100)
        let (clientPeer, serverPeer) = (Peer(), Peer())
        client.delegate = clientPeer
        server.delegate = serverPeer
        let (clientOutput, serverOutput) = (Output(), Output())
        client.dataFrameWriter = { clientOutput.bytes += $0; return true }
        // The server's output has room for 16 KiB: past that, nghttp2 must pause until it is drained.
        if withoutCopy {
            server.dataFrameWriter = { serverOutput.bytes += $0; serverOutput.most = max(serverOutput.most, serverOutput.bytes.count); return serverOutput.bytes.count < 16 * 1024 }
        }
        client.submitSettings([.enablePush(false), .initialWindowSize(1 << 20)])
        server.submitSettings([.maxConcurrentStreams(100), .initialWindowSize(1 << 20)])
        func pump() {
            for _ in 0..<8 {
                let toServer = drain(client, clientOutput)
                if !toServer.isEmpty { XCTAssertNil(toServer.withUnsafeBytes { server.receive($0) }) }
                let toClient = drain(server, serverOutput)
                if !toClient.isEmpty { XCTAssertNil(toClient.withUnsafeBytes { client.receive($0) }) }
            }
        }
        let headers = [HeaderField(":method", "POST"), HeaderField(":scheme", "http"), HeaderField(":path", "/test.Echo/Echo"),
                       HeaderField(":authority", "localhost"), HeaderField("content-type", "application/grpc")]
        guard let streamID = client.submitRequest(headers: headers) else { throw XCTSkip("the client session refused the request") }
        client.enqueue(streamID: streamID, Array(repeating: 1, count: 5_000))
        client.finishOutbound(streamID: streamID, trailers: nil)
        pump()
        XCTAssertEqual(serverPeer.requests, [streamID])
        XCTAssertEqual(serverPeer.data[streamID]?.count, 5_000, "the client's DATA (written without a copy) arrived")
        XCTAssertTrue(server.submitResponse(streamID: streamID, headers: [HeaderField(":status", "200"), HeaderField("content-type", "application/grpc")], endStream: false))
        pump()
        XCTAssertGreaterThan(server.releaseIdlePages(), 0)
        XCTAssertEqual(server.frameBufferResidentPages, 0, "handed back")
        let payload = (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        server.enqueue(streamID: streamID, Array(payload[..<12_000]), Array(payload[12_000...]))
        server.finishOutbound(streamID: streamID, trailers: [HeaderField("grpc-status", "0")])
        let resident = server.frameBufferResidentPages
        pump()
        if withoutCopy { XCTAssertLessThanOrEqual(serverOutput.most, 16 * 1024 + 16 * 1024 + 9, "a full output paused the frames after the one that filled it") }
        return (server.frameBufferResidentPages - resident, clientPeer.data[streamID] ?? [], clientPeer.trailers[streamID])
    }

    func testAResponseArrivesIntactAndLeavesTheReleasedFrameBufferUntouched() throws {
        let noCopy = try exchange(withoutCopy: true)
        XCTAssertEqual(noCopy.received.count, 40_000)
        XCTAssertEqual(noCopy.received, (0..<40_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        XCTAssertEqual(noCopy.trailers?.first { $0.name == "grpc-status" }?.value, "0", "trailers after the last DATA frame")
        XCTAssertLessThanOrEqual(noCopy.residentPages, 1, "only frame headers and trailers touch the buffer")
        // The same exchange with nghttp2 copying the payloads: the buffer's pages are written again.
        let copied = try exchange(withoutCopy: false)
        XCTAssertEqual(copied.received, noCopy.received)
        XCTAssertGreaterThanOrEqual(copied.residentPages, 3, "with the copy, the 16 KiB buffer is written through")
    }
}
