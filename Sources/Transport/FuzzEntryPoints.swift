// The transport's entry point for coverage-guided fuzzing (Sources/FuzzHarnesses): bytes a peer could send,
// fed to a server-side HTTP/2 session and gRPC framing in memory — no sockets, no event loop — the same
// session code and callbacks the server runs. `package` access: the harnesses are in this package, users are not.
import GRPCStatusCodes
internal import COpenSSL
import OpenSSLSupport

package enum HTTP2ServerFuzzing {
    /// Feeds `input` to a fresh server session in reads whose sizes come from the input's first bytes, answers
    /// what a gRPC server would (response headers, a message, trailers; RST on a deframing error), and pulls every
    /// frame the session wants to write after each read. Returns the number of gRPC messages deframed.
    @discardableResult
    package static func run(_ input: [UInt8]) -> Int {
        guard let session = try? HTTP2Session(role: .server, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100) else { return 0 }
        let peer = InMemoryServerPeer(session: session)
        session.delegate = peer
        session.dataFrameWriter = { _ in true }  // as the server writes DATA: payloads straight from the queues
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

/// A server-side TLS session over memory BIOs: bytes a client could send (ClientHello and records) fed to the
/// server's own `SSL_CTX` — its version limits, ALPN select and client-hello callbacks, client-certificate
/// demand — with no socket. Random bytes rarely get past the ClientHello (the rest needs real keys), which is the
/// point: the ClientHello is the unauthenticated input every peer can send, and the ALPN callbacks that parse it
/// are meshctl's own C-callback code.
package final class TLSServerFuzzing: @unchecked Sendable {
    // @unchecked Sendable: the contexts are immutable after init; libFuzzer and the replay test call `run` from one
    // thread at a time.
    private let server: TLSContext
    private let client: TLSContext

    package init(server: TLSServerCredentials, client: TLSClientCredentials) throws(TransportError) {
        self.server = try TLSContext.server(server)
        self.client = try TLSContext.client(client)
    }

    /// Feeds `input` to a fresh server session in reads sized by the input's first byte; returns whether the
    /// handshake completed (it cannot without a real client, so a `true` would be a finding).
    @discardableResult
    package func run(_ input: [UInt8]) -> Bool {
        guard let ssl = SSL_new(server.raw) else { return false }
        defer { SSL_free(ssl) }
        guard let incoming = BIO_new(BIO_s_mem()), let outgoing = BIO_new(BIO_s_mem()) else { return false }
        SSL_set_bio(ssl, incoming, outgoing)  // the session owns both now
        SSL_set_accept_state(ssl)
        let chunk = max(1, Int(input.first ?? 1)) * 16
        var offset = 0
        var done = false
        while offset < input.count && !done {
            let size = min(chunk, input.count - offset)
            _ = input[offset..<(offset + size)].withUnsafeBytes { BIO_write(incoming, $0.baseAddress, Int32(size)) }
            offset += size
            let rc = SSL_do_handshake(ssl)
            if rc == 1 {
                done = true
            } else {
                let error = SSL_get_error(ssl, rc)
                if error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE { break }
            }
            Self.drain(outgoing)
        }
        OpenSSLErrorQueue.clear()
        return done
    }

    /// The first flight of a real client offering `alpn` (empty: no ALPN extension), for seeds.
    package func clientHello(alpn: [String]) -> [UInt8] {
        guard let ssl = SSL_new(client.raw) else { return [] }
        defer { SSL_free(ssl) }
        guard let incoming = BIO_new(BIO_s_mem()), let outgoing = BIO_new(BIO_s_mem()) else { return [] }
        SSL_set_bio(ssl, incoming, outgoing)
        SSL_set_connect_state(ssl)
        var wire: [UInt8] = []
        for name in alpn { wire.append(UInt8(name.utf8.count)); wire.append(contentsOf: name.utf8) }
        _ = SSL_set_alpn_protos(ssl, wire.isEmpty ? nil : wire, UInt32(wire.count))
        _ = SSL_do_handshake(ssl)
        let hello = Self.drain(outgoing)
        OpenSSLErrorQueue.clear()
        return hello
    }

    @discardableResult
    private static func drain(_ bio: OpaquePointer) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let n = BIO_read(bio, &buffer, Int32(buffer.count))
            if n <= 0 { break }
            out.append(contentsOf: buffer.prefix(Int(n)))
        }
        return out
    }
}
