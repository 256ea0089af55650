// The transport's entry point for coverage-guided fuzzing (Sources/FuzzHarnesses): bytes a peer could send,
// fed to a server-side HTTP/2 session and gRPC framing in memory — no sockets, no event loop — the same
// session code and callbacks the server runs. `package` access: the harnesses are in this package, users are not.
import GRPCStatusCodes

package enum HTTP2ServerFuzzing {
    /// Feeds `input` to a fresh server session in reads whose sizes come from the input's first bytes, answers
    /// what a gRPC server would (response headers, a message, trailers; RST on a deframing error), and pulls every
    /// frame the session wants to write after each read. Returns the number of gRPC messages deframed.
    @discardableResult
    package static func run(_ input: [UInt8]) -> Int {
        guard let session = try? HTTP2Session(role: .server, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100) else { return 0 }
        let peer = InMemoryServerPeer(session: session)
        session.delegate = peer
        session.submitSettings([.maxConcurrentStreams(100), .initialWindowSize(65_535), .maxHeaderListSize(16 * 1024)])
        var offset = 0
        var sizes = input.prefix(8).map { max(1, Int($0)) }
        if sizes.isEmpty { sizes = [1] }
        var turn = 0
        while offset < input.count {
            let size = min(input.count - offset, sizes[turn % sizes.count] * (turn % 3 == 0 ? 1 : 16))
            turn += 1
            let failed = input[offset..<(offset + size)].withUnsafeBytes { session.receive($0) != nil }
            offset += size
            peer.respond()
            while let chunk = session.nextOutbound(), !chunk.isEmpty {}
            if failed || !session.wantsRead { break }
        }
        return peer.messages
    }
}

/// Plays the gRPC server on top of a fuzzed session: deframes each request stream and answers it.
private final class InMemoryServerPeer: HTTP2SessionDelegate {
    let session: HTTP2Session
    var deframers: [HTTP2StreamID: GRPCMessageDeframer] = [:]
    var pendingAnswers: [HTTP2StreamID] = []
    var messages = 0

    init(session: HTTP2Session) { self.session = session }

    func session(receivedHeaders headers: [HeaderField], kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool) {
        if kind == .request { deframers[streamID] = GRPCMessageDeframer(maxMessageBytes: 64 * 1024) }
        if endStream { pendingAnswers.append(streamID) }
    }

    func session(receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID) {
        guard var deframer = deframers[streamID] else { return }
        var out: [[UInt8]] = []
        do {
            try deframer.append(data, to: &out)
            deframers[streamID] = deframer
        } catch {
            deframers[streamID] = nil
            session.submitReset(streamID: streamID, errorCode: .internalError)
        }
        messages += out.count
    }

    func session(receivedEndStream streamID: HTTP2StreamID) { pendingAnswers.append(streamID) }
    func session(streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) { deframers[streamID] = nil }
    func session(receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID) {}
    func sessionReceivedPingAck() {}
    func sessionRefusedStream() {}
    func session(sentGoAway errorCode: HTTP2ErrorCode) {}

    /// Answers every stream whose request ended: headers, one message, trailers (outside nghttp2's callbacks).
    func respond() {
        let answers = pendingAnswers
        pendingAnswers.removeAll()
        for streamID in answers where deframers[streamID] != nil {
            guard session.submitResponse(streamID: streamID, headers: [HeaderField(":status", "200"), HeaderField("content-type", "application/grpc")],
                                         endStream: false) else { continue }
            session.enqueue(streamID: streamID, GRPCFraming.prefix(forLength: 3), [1, 2, 3])
            session.finishOutbound(streamID: streamID, trailers: GRPCStatus.ok.trailers)
        }
    }
}
