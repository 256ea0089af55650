// End-to-end behaviour of the transport: a real server on 127.0.0.1 with real
// certificates, driven by the transport's own gRPC client, hand-made bytes,
// and nghttp. Every wait has a deadline; every server and loop is stopped.
import Foundation
import XCTest
@testable import Transport
import GRPCStatusCodes

final class TransportTests: XCTestCase {
    private func withHarness(_ harness: TestHarness, _ body: (TestHarness) async throws -> Void) async throws {
        do {
            try await body(harness)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    // MARK: gRPC over mTLS

    func testEchoOverMutualTLSExposesPeerIdentity() async throws {
        try await withHarness(TestHarness()) { h in
            let call = h.call(try h.client(), path: "/test.Echo/Echo", messages: [Array("hello".utf8), [], Array("world".utf8)])
            XCTAssertEqual(call.status(), .ok)
            XCTAssertEqual(call.messages, [Array("hello".utf8), [], Array("world".utf8)])
            let opened = h.service.events.all.first { if case .opened = $0 { return true } else { return false } }
            guard case .opened(_, let identity)? = opened else { return XCTFail("stream never reached the handler") }
            XCTAssertEqual(identity?.spiffeID, "spiffe://mesh.local/ns/default/sa/test")
            XCTAssertEqual(identity?.commonName, "test-client")
            // The client verified the server too.
            XCTAssertEqual(call.readyIdentity??.commonName, "localhost")
            call.hangUp()
            h.assertEachConnectionLoggedOnce()
        }
    }

    /// Credentials reload: unusable material is refused and the current stays; usable material is served to new
    /// connections; a plaintext server has nothing to reload.
    func testCredentialReloadRefusesUnusableMaterialAndKeepsTheCurrent() async throws {
        let certificates = TestCertificates.shared
        try await withHarness(TestHarness()) { h in
            let before = try XCTUnwrap(h.server.certificate)
            XCTAssertEqual(before.validity, .valid)
            XCTAssertTrue(before.subject.contains("localhost"), before.subject)
            let refusals: [(String, TLSServerCredentials, String)] = [
                ("expired certificate", TLSServerCredentials(certificateChainFile: certificates.path("expired.crt"), privateKeyFile: certificates.path("expired.key"),
                                                             clientCAFile: certificates.path("ca.crt")), "expired on Feb  1 00:00:00 2020 GMT"),
                ("key of another certificate", TLSServerCredentials(certificateChainFile: certificates.path("server.crt"), privateKeyFile: certificates.path("client.key"),
                                                                    clientCAFile: certificates.path("ca.crt")), "key"),
                ("missing CA bundle", TLSServerCredentials(certificateChainFile: certificates.path("server.crt"), privateKeyFile: certificates.path("server.key"),
                                                           clientCAFile: certificates.path("nope.crt")), "cannot load CA certificates"),
            ]
            for (name, credentials, says) in refusals {
                XCTAssertThrowsError(try h.server.reloadCredentials(credentials), name) { error in
                    XCTAssertTrue("\(error)".contains(says), "\(name): \(error)")
                }
                XCTAssertEqual(h.server.certificate, before, "\(name): the current certificate stays")
                let call = h.call(try h.client(), path: "/test.Echo/Echo", messages: [[1]])
                XCTAssertEqual(call.status(), .ok, "\(name): new connections are still served")
                call.hangUp()
            }
            // The same files again are accepted (a no-op rotation), and served.
            let reloaded = try h.server.reloadCredentials(certificates.serverCredentials)
            XCTAssertEqual(reloaded, before)
            let call = h.call(try h.client(), path: "/test.Echo/Echo", messages: [[2]])
            XCTAssertEqual(call.status(), .ok)
            call.hangUp()
        }
        try await withHarness(TestHarness(plaintext: true)) { h in
            XCTAssertNil(h.server.certificate)
            XCTAssertThrowsError(try h.server.reloadCredentials(certificates.serverCredentials))
        }
    }

    /// One client identity holds at most maxConnectionsPerIdentity connections and maxStreamsPerIdentity streams;
    /// beyond them a connection is closed (GOAWAY ENHANCE_YOUR_CALM) and a stream ends RESOURCE_EXHAUSTED, each
    /// with a log record naming the identity; closing a connection gives its share back.
    func testPerIdentityLimitsRefuseBeyondThemAndReleaseOnClose() async throws {
        let harness = try TestHarness { configuration in
            configuration.limits.maxConnectionsPerIdentity = 2
            configuration.limits.maxStreamsPerIdentity = 3
        }
        try await withHarness(harness) { h in
            func openedCount(_ events: [ServiceEvent]) -> Int { events.filter { if case .opened = $0 { return true } else { return false } }.count }
            func opened() -> Int { openedCount(h.service.events.all) }
            let first = h.call(try h.client(), path: "/test.Echo/Hold", halfClose: false)
            let second = h.call(try h.client(), path: "/test.Echo/Hold", halfClose: false)
            XCTAssertTrue(h.service.events.wait { openedCount($0) == 2 }, "two connections of one identity are served")

            let third = h.call(try h.client(), path: "/test.Echo/Hold", halfClose: false)
            XCTAssertNotNil(third.closeReason(), "a third connection of the identity is closed")
            XCTAssertTrue(h.logs.wait { $0.contains { $0.identityLimit == IdentityLimitRefusal(kind: .connections, identity: "spiffe://mesh.local/ns/default/sa/test", limit: 2) } })
            XCTAssertEqual(opened(), 2)

            // Two streams held; two more on the first connection: one fits the limit of 3, the other is refused.
            let extra = [ClientCall(), ClientCall()]
            let connection = try XCTUnwrap(first.connection)
            connection.eventLoop.execute {
                for call in extra { call.stream = connection.openStream(path: "/test.Echo/Hold", handler: call) }
            }
            XCTAssertEqual(extra[1].status()?.code, .resourceExhausted)
            XCTAssertTrue(extra[1].status()?.message.contains("spiffe://mesh.local/ns/default/sa/test") ?? false)
            XCTAssertNil(extra[0].status(timeout: 0.5), "the third stream is served and still open")
            XCTAssertTrue(h.logs.wait { $0.contains { $0.identityLimit?.kind == .streams } })

            // Hanging up gives the connection and its stream back: a new connection is served again.
            second.hangUp()
            let fourth = h.call(try h.client(), path: "/test.Echo/Hold", halfClose: false)
            XCTAssertTrue(h.service.events.wait { openedCount($0) == 4 }, "after a hang-up the identity may connect again")
            XCTAssertNil(fourth.closeReason(timeout: 0.5))
            for call in [first, third, fourth] { call.hangUp() }
        }
    }

    func testClientVerifiesServerByNameOrAddress() async throws {
        let cases: [(serverName: String, verified: Bool)] = [("localhost", true), ("127.0.0.1", true), ("elsewhere.example", false)]
        try await withHarness(TestHarness()) { h in
            for testCase in cases {
                let client = try h.client { configuration in
                    guard case .tls(var credentials) = configuration.security else { return }
                    credentials.serverName = testCase.serverName
                    configuration.security = .tls(credentials)
                }
                let call = h.call(client, path: "/test.Echo/Echo", messages: [[1]])
                XCTAssertEqual(call.status()?.code, testCase.verified ? .ok : .unavailable, testCase.serverName)
                call.hangUp()
            }
        }
    }

    func testStatusesReachTheClient() async throws {
        let cases: [(name: String, path: String, messages: [[UInt8]], raw: [UInt8]?, expected: GRPCStatus)] = [
            ("unknown method", "/test.Echo/Nope", [], nil, GRPCStatus(.unimplemented, "unknown method /test.Echo/Nope")),
            ("handler denies", "/test.Echo/Deny", [], nil,
             GRPCStatus(.permissionDenied, "identity spiffe://mesh.local/ns/default/sa/test may not call this ✗")),
            ("handler rejects argument", "/test.Echo/Invalid", [], nil, GRPCStatus(.invalidArgument, "bad request: 100% wrong")),
            ("message over the size limit", "/test.Echo/Echo", [[UInt8](repeating: 1, count: 2048)], nil,
             GRPCStatus(.resourceExhausted, "gRPC message of 2048 bytes exceeds the limit of 1024 bytes")),
            ("length prefix beyond the end of the stream", "/test.Echo/Echo", [], H2.grpcMessage([1, 2, 3]).dropLast(1).map { $0 },
             GRPCStatus(.internalError, "stream ended inside a gRPC message (length prefix exceeds the data sent)")),
            ("compressed message without grpc-encoding", "/test.Echo/Echo", [], [1, 0, 0, 0, 1, 7],
             GRPCStatus(.unimplemented, "compressed gRPC messages are not supported (no grpc-encoding negotiated)")),
        ]
        try await withHarness(TestHarness { $0.limits.maxReceiveMessageBytes = 1024 }) { h in
            let client = try h.client()
            for testCase in cases {
                let call = h.call(client, path: testCase.path, messages: testCase.messages, raw: testCase.raw)
                XCTAssertEqual(call.status(), testCase.expected, testCase.name)
                call.hangUp()
            }
            try h.assertStillServing()
        }
    }

    func testClientCancelReachesHandlerAndFreesTheStream() async throws {
        try await withHarness(TestHarness()) { h in
            let call = h.call(try h.client(), path: "/test.Echo/Hold", halfClose: false)
            XCTAssertTrue(eventually { h.server.statistics.activeStreams == 1 })
            call.connection!.eventLoop.execute { call.stream?.cancel() }
            XCTAssertEqual(call.status()?.code, .cancelled)
            XCTAssertTrue(h.service.events.wait { $0.contains(.closed(path: "/test.Echo/Hold", .cancelledByPeer(errorCode: .cancel))) },
                          "\(h.service.events.all)")
            XCTAssertTrue(eventually { h.server.statistics.activeStreams == 0 })
            call.hangUp()
        }
    }

    func testNghttpClientInteroperates() async throws {
        try await withHarness(TestHarness()) { h in
            let body = h.certificates.directory.appendingPathComponent("request.bin")
            try Data(H2.grpcMessage(Array("from nghttp".utf8))).write(to: body)
            let result = runProcess("/usr/bin/nghttp", [
                "-v", "-n", "-t", "5",
                "--cert=\(h.certificates.path("client.crt"))", "--key=\(h.certificates.path("client.key"))",
                "-H", "content-type: application/grpc", "-H", "te: trailers", "-d", body.path,
                "https://127.0.0.1:\(h.port)/test.Echo/Echo",
            ], timeout: 20)
            XCTAssertEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains("grpc-status: 0"), result.output)
            XCTAssertTrue(result.output.contains("h2"), result.output)
        }
    }

    func testTLS12ClientIsAcceptedWithALPNh2() async throws {
        try await withHarness(TestHarness()) { h in
            let c = h.certificates
            let result = runProcess("/usr/bin/openssl", [
                "s_client", "-connect", "127.0.0.1:\(h.port)", "-tls1_2", "-alpn", "h2",
                "-cert", c.path("client.crt"), "-key", c.path("client.key"), "-CAfile", c.path("ca.crt"),
                "-verify_return_error", "-servername", "localhost",
            ], timeout: 20)
            XCTAssertTrue(result.output.contains("New, TLSv1.2, Cipher is"), result.output)
            XCTAssertTrue(result.output.contains("ALPN protocol: h2"), result.output)
            XCTAssertTrue(result.output.contains("Verify return code: 0 (ok)"), result.output)
        }
    }

    /// The server issues no TLS session tickets, so a client has nothing to resume with and every reconnect is a full
    /// handshake that is served. (With one ticket and no session id context, a client offering the ticket it was
    /// given — Envoy caches one per upstream — got a fatal internal_error alert, "session id context
    /// uninitialized", and no connection.)
    func testServerIssuesNoSessionTicketsAndReconnectingClientsAreServed() async throws {
        try await withHarness(TestHarness()) { h in
            let c = h.certificates
            let session = c.directory.appendingPathComponent("session-\(UUID().uuidString).pem").path
            defer { try? FileManager.default.removeItem(atPath: session) }
            func connect(_ sessionArguments: [String]) -> String {
                // s_client quits at the end of its input: a second of input keeps it reading long enough for
                // post-handshake tickets to arrive, had the server sent any.
                runProcess("/bin/sh", ["-c", "sleep 1 | /usr/bin/openssl \"$@\"", "openssl",
                    "s_client", "-connect", "127.0.0.1:\(h.port)", "-alpn", "h2",
                    "-cert", c.path("client.crt"), "-key", c.path("client.key"), "-CAfile", c.path("ca.crt"),
                    "-verify_return_error", "-servername", "localhost",
                ] + sessionArguments, timeout: 20).output
            }
            let first = connect(["-sess_out", session])
            XCTAssertTrue(first.contains("New, TLSv1.3, Cipher is"), first)
            XCTAssertFalse(first.contains("New Session Ticket arrived"), "the server sent a ticket:\n\(first)")
            // s_client saves a TLS 1.3 session only once a ticket makes it resumable.
            XCTAssertFalse(FileManager.default.fileExists(atPath: session), "the client got a resumable session")
            let second = connect([])
            XCTAssertTrue(second.contains("New, TLSv1.3, Cipher is"), "a reconnecting client makes a full handshake:\n\(second)")
            XCTAssertTrue(second.contains("Verify return code: 0 (ok)"), second)
            XCTAssertFalse(second.contains("alert"), second)
            XCTAssertTrue(h.closeRecords { if case .tlsHandshakeFailed = $0 { return true } else { return false } }.isEmpty,
                          "\(h.logs.all)")
        }
    }

    /// An idle connection hands the pages of nghttp2's outbound frame buffer back to the kernel, and the next
    /// response on it (written into the zeroed pages) arrives intact.
    func testIdleConnectionReleasesFrameBufferPagesAndKeepsServing() async throws {
        try await withHarness(TestHarness {
            $0.limits.releaseIdleFrameBufferAfter = .milliseconds(50)
            $0.limits.keepBusyFrameBufferFor = nil  // the second response comes soon after the release
        }) { h in
            let before = HTTP2MemoryAccounting.releasedFrameBufferBytes
            let tablesBefore = HTTP2MemoryAccounting.releasedHeaderTableBytes
            let first = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }
            let call = h.call(try h.client(), path: "/test.Echo/Echo", messages: [first], halfClose: false)
            XCTAssertTrue(eventually { call.messages.count == 1 })
            XCTAssertEqual(call.messages.first, first)
            // A 16 KiB block always holds at least three whole pages.
            XCTAssertTrue(eventually(timeout: 5) { HTTP2MemoryAccounting.releasedFrameBufferBytes - before >= 3 * 4096 },
                          "released \(HTTP2MemoryAccounting.releasedFrameBufferBytes - before) B")
            // The HPACK rings too, on both sides: server and client announce a decoder table of size 0.
            XCTAssertTrue(eventually(timeout: 5) { HTTP2MemoryAccounting.releasedHeaderTableBytes - tablesBefore >= 4 * 4096 },
                          "released \(HTTP2MemoryAccounting.releasedHeaderTableBytes - tablesBefore) B of HPACK rings")
            let released = HTTP2MemoryAccounting.releasedFrameBufferBytes
            let second = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
            guard let connection = call.connection, let stream = call.stream else { return XCTFail("no stream") }
            connection.eventLoop.execute { _ = stream.send(second); stream.closeSend() }
            XCTAssertEqual(call.status(), .ok)
            XCTAssertEqual(call.messages.count, 2)
            XCTAssertEqual(call.messages.last, second)
            // And again once idle after that response.
            XCTAssertTrue(eventually(timeout: 5) { HTTP2MemoryAccounting.releasedFrameBufferBytes > released })
            // A new stream on the same connection: its request and response headers decode without tables.
            let again = ClientCall()
            again.connection = connection
            connection.eventLoop.execute {
                guard let stream = connection.openStream(path: "/test.Echo/Echo", handler: again) else {
                    return again.events.append(.finished(GRPCStatus(.unavailable, "cannot open stream")))
                }
                _ = stream.send(second)
                stream.closeSend()
            }
            XCTAssertEqual(again.status(), .ok)
            XCTAssertEqual(again.messages, [second])
            call.hangUp()
        }
    }

    /// A connection that writes a response again soon after its frame buffer was released (not counting the first
    /// release, which can fall inside a proxy's first configuration) is busy: it keeps the buffer until
    /// `keepBusyFrameBufferFor` passes without stream data, so pushes seconds apart do not fault the pages in on
    /// every push, and keepalive PINGs, here every 100 ms, do not postpone that release.
    func testBusyConnectionKeepsFrameBufferUntilQuietAndPingsDoNotPostponeTheRelease() async throws {
        try await withHarness(TestHarness {
            $0.limits.releaseIdleFrameBufferAfter = .milliseconds(50)
            $0.limits.keepBusyFrameBufferFor = .seconds(3)
            $0.limits.keepaliveInterval = .milliseconds(100)
        }) { h in
            // Only the server's releases are counted: the client keeps its buffer and sends no PINGs.
            let client = try h.client { $0.limits.releaseIdleFrameBufferAfter = nil; $0.limits.keepaliveInterval = nil }
            let call = h.call(client, path: "/test.Echo/Echo", messages: [], halfClose: false)
            XCTAssertTrue(eventually { call.stream != nil })
            guard let connection = call.connection, let stream = call.stream else { return XCTFail("no stream") }
            func echo(_ seed: Int) -> (before: Int, after: Int) {
                let before = HTTP2MemoryAccounting.releasedFrameBufferBytes
                let message = (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* seed &+ 1) }
                let count = call.messages.count
                connection.eventLoop.execute { _ = stream.send(message) }
                XCTAssertTrue(eventually { call.messages.count == count + 1 })
                XCTAssertEqual(call.messages.last, message)
                return (before, HTTP2MemoryAccounting.releasedFrameBufferBytes)
            }
            for seed in [7, 11] {
                let written = echo(seed)
                XCTAssertTrue(eventually(timeout: 5) { HTTP2MemoryAccounting.releasedFrameBufferBytes - written.after >= 3 * 4096 },
                              "response \(seed): released after the idle period")
            }
            let third = echo(13)
            let thirdAt = Date()
            usleep(1_000_000)
            if Date().timeIntervalSince(thirdAt) < 2.5 {
                XCTAssertEqual(HTTP2MemoryAccounting.releasedFrameBufferBytes, third.after,
                               "busy: the buffer is kept past the idle period")
            }
            XCTAssertTrue(eventually(timeout: 8) { HTTP2MemoryAccounting.releasedFrameBufferBytes > third.after },
                          "released once quiet for the busy period, PINGs every 100 ms notwithstanding")
            connection.eventLoop.execute { stream.closeSend() }
            XCTAssertEqual(call.status(), .ok)
            call.hangUp()
        }
    }

    // MARK: refused handshakes

    func testHandshakeRefusals() async throws {
        let cases: [(name: String, stem: String?, alpn: [String], reason: (ConnectionCloseReason) -> Bool)] = [
            ("no client certificate", nil, ["h2"], { if case .tlsHandshakeFailed(let why) = $0 { return why.contains("did not return a certificate") } else { return false } }),
            ("client certificate from another CA", "foreign", ["h2"], { if case .tlsHandshakeFailed(let why) = $0 { return why.contains("unable to get local issuer certificate") } else { return false } }),
            ("expired client certificate", "expired", ["h2"], { if case .tlsHandshakeFailed(let why) = $0 { return why.contains("certificate has expired") } else { return false } }),
            ("ALPN without h2", "client", ["http/1.1"], { $0 == .alpnNotNegotiated }),
            ("no ALPN at all", "client", [], { $0 == .alpnNotNegotiated }),
        ]
        try await withHarness(TestHarness()) { h in
            for testCase in cases {
                let before = h.closeRecords(testCase.reason).count
                let call = h.call(try h.client(testCase.stem, alpn: testCase.alpn), path: "/test.Echo/Echo", messages: [[1]])
                XCTAssertEqual(call.status()?.code, .unavailable, testCase.name)
                XCTAssertTrue(h.waitForClose(count: before + 1, testCase.reason), "\(testCase.name): \(h.logs.all)")
                XCTAssertEqual(h.closeRecords(testCase.reason).count, before + 1, testCase.name)
                call.hangUp()
            }
            XCTAssertFalse(h.service.events.all.contains { if case .opened = $0 { return true } else { return false } },
                           "a refused client reached the handler")
            h.assertEachConnectionLoggedOnce()
            try h.assertStillServing()
        }
    }

    func testHandshakeTimeoutClosesSilentConnection() async throws {
        try await withHarness(TestHarness { $0.limits.handshakeTimeout = .milliseconds(300) }) { h in
            let raw = try RawConnection(port: h.port, credentials: nil)
            XCTAssertTrue(raw.readUntilClosed(timeout: 10))
            XCTAssertTrue(h.waitForClose { $0 == .handshakeTimeout })
            try h.assertStillServing()
        }
    }

    // MARK: bad input

    func testBadInputIsRefusedAndLoggedOnce() async throws {
        let protocolError: (ConnectionCloseReason) -> Bool = { if case .http2ProtocolError = $0 { return true } else { return false } }
        let tlsError: (ConnectionCloseReason) -> Bool = { if case .tlsHandshakeFailed = $0 { return true } else { return false } }
        let cases: [(name: String, tls: Bool, bytes: [UInt8], expectGoAway: Bool, reason: (ConnectionCloseReason) -> Bool)] = [
            ("garbage instead of TLS", false, (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }, false, tlsError),
            ("HTTP/1.1 request instead of TLS", false, Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8), false, tlsError),
            ("HTTP/1.1 request over TLS with ALPN h2", true, Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8), true, protocolError),
            ("HTTP/2 preface followed by junk", true, H2.preface + [UInt8](repeating: 0xff, count: 64), true, protocolError),
        ]
        try await withHarness(TestHarness()) { h in
            for testCase in cases {
                let before = h.closeRecords(testCase.reason).count
                let raw = try RawConnection(port: h.port, credentials: testCase.tls ? h.certificates.client("client") : nil)
                raw.write(testCase.bytes)
                XCTAssertTrue(raw.readUntilClosed(timeout: 10), "\(testCase.name): server did not close")
                if testCase.expectGoAway {
                    let code = H2.goAwayErrorCode(H2.parse(raw.received))
                    XCTAssertEqual(code, 0x1, "\(testCase.name): expected GOAWAY PROTOCOL_ERROR, got frames \(H2.parse(raw.received).map(\.type))")
                }
                XCTAssertTrue(h.waitForClose(count: before + 1, testCase.reason), "\(testCase.name): \(h.logs.all)")
                XCTAssertEqual(h.closeRecords(testCase.reason).count, before + 1, testCase.name)
            }
            h.assertEachConnectionLoggedOnce()
            try h.assertStillServing()
        }
    }

    func testHTTP1RequestOnPlaintextPortIsRefused() async throws {
        try await withHarness(TestHarness(plaintext: true)) { h in
            let raw = try RawConnection(port: h.port, credentials: nil)
            raw.write(Array("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".utf8))
            XCTAssertTrue(raw.readUntilClosed(timeout: 10))
            XCTAssertTrue(h.waitForClose { if case .http2ProtocolError = $0 { return true } else { return false } }, "\(h.logs.all)")
            try h.assertStillServing()
        }
    }

    func testTenThousandStreamsOnOneConnectionGetGoAway() async throws {
        try await withHarness(TestHarness { $0.limits.maxConcurrentStreamsPerConnection = 10 }) { h in
            let raw = try RawConnection(port: h.port, credentials: h.certificates.client("client"))
            var bytes = H2.preface + H2.settings
            for index in 0..<10_000 {
                bytes += H2.requestHeaders(stream: UInt32(2 * index + 1), path: "/test.Echo/Hold", endStream: true)
            }
            raw.write(bytes, timeout: 20)
            XCTAssertTrue(raw.readUntilClosed(timeout: 10), "server kept the flooding connection open")
            XCTAssertTrue(h.waitForClose { $0 == .tooManyStreams }, "\(h.logs.all)")
            XCTAssertEqual(h.closeRecords { $0 == .tooManyStreams }.count, 1)
            let frames = H2.parse(raw.received)
            if let code = H2.goAwayErrorCode(frames) { XCTAssertEqual(code, 0xb, "GOAWAY should be ENHANCE_YOUR_CALM") }
            XCTAssertTrue(frames.contains { $0.type == 0x3 && $0.payload == [0, 0, 0, 7] } || raw.received.isEmpty || H2.goAwayErrorCode(frames) != nil,
                          "excess streams were neither refused nor answered with GOAWAY")
            let opened = h.service.events.all.filter { if case .opened = $0 { return true } else { return false } }.count
            XCTAssertLessThanOrEqual(opened, 10, "more streams than SETTINGS_MAX_CONCURRENT_STREAMS reached the handler")
            h.service.events.wait { $0.filter { if case .closed = $0 { return true } else { return false } }.count == opened }
            XCTAssertEqual(h.server.statistics.activeStreams, 0)
            try h.assertStillServing()
        }
    }

    // MARK: backpressure and keepalive

    func testSlowReaderIsBoundedThenClosedByKeepalive() async throws {
        let queueLimit = 256 * 1024, messageBytes = 64 * 1024, writeBuffer = 64 * 1024
        let harness = try TestHarness(service: TestService(floodMessageBytes: messageBytes)) {
            $0.limits.maxQueuedBytesPerStream = queueLimit
            $0.limits.connectionWriteBufferBytes = writeBuffer
            $0.limits.keepaliveInterval = .milliseconds(500)
            $0.limits.keepaliveTimeout = .milliseconds(500)
        }
        try await withHarness(harness) { h in
            let raw = try RawConnection(port: h.port, credentials: h.certificates.client("client"))
            raw.write(H2.preface + H2.settings + H2.requestHeaders(stream: 1, path: "/test.Echo/Flood", endStream: false))
            // The client now never reads: the handler must be told the queue is full.
            XCTAssertTrue(h.service.events.wait { $0.contains(.sendResult(.queueFull)) }, "send never reported backpressure")
            let stats = h.server.statistics
            // One framed message may overshoot the queue limit; one HTTP/2 frame may overshoot the write buffer.
            let bound = queueLimit + (messageBytes + 5) + writeBuffer + (16 * 1024 + 9)
            XCTAssertLessThanOrEqual(stats.peakConnectionOutboundBytes, bound, "server buffered without bound: \(stats)")
            XCTAssertGreaterThan(stats.bufferedOutboundBytes, 0)
            // A reader that never answers PING is dropped, with the reason logged once.
            XCTAssertTrue(h.waitForClose { $0 == .keepaliveTimeout }, "\(h.logs.all)")
            XCTAssertEqual(h.closeRecords { $0 == .keepaliveTimeout }.count, 1)
            XCTAssertTrue(h.service.events.wait { $0.contains(.closed(path: "/test.Echo/Flood", .connectionClosed(.keepaliveTimeout))) })
            XCTAssertTrue(eventually { h.server.statistics.bufferedOutboundBytes == 0 }, "buffers not released")
            try h.assertStillServing()
        }
    }

    // MARK: connection lifetime

    func testMaxConnectionAgeSendsGoAwayThenEndsStreamsUnavailable() async throws {
        try await withHarness(TestHarness {
            $0.limits.maxConnectionAge = .milliseconds(500)
            $0.limits.maxConnectionAgeGrace = .milliseconds(500)
        }) { h in
            let call = h.call(try h.client(), path: "/test.Echo/Hold", halfClose: false)
            XCTAssertTrue(call.events.wait { $0.contains(.goAway(0)) }, "no GOAWAY(NO_ERROR): \(call.events.all)")
            let status = call.status()
            XCTAssertEqual(status?.code, .unavailable)
            XCTAssertEqual(status?.message, ConnectionCloseReason.maxConnectionAge.description)
            XCTAssertNotNil(call.closeReason())
            XCTAssertTrue(h.waitForClose { $0 == .maxConnectionAge })
            h.assertEachConnectionLoggedOnce()
        }
    }

    func testGracefulDrainLetsStreamsFinishThenCancelsTheRest() async throws {
        let harness = try TestHarness()
        try await withHarness(harness) { h in
            let client = try h.client()
            let held = h.call(client, path: "/test.Echo/Hold", halfClose: false)
            let finishing = h.call(client, path: "/test.Echo/Echo", messages: [Array("before".utf8)], halfClose: false)
            XCTAssertTrue(finishing.events.wait { $0.contains(.message(Array("before".utf8))) })
            XCTAssertTrue(h.service.events.wait { $0.contains(.opened(path: "/test.Echo/Hold", identity: $0.compactMap { if case .opened(_, let id) = $0 { return id } else { return nil } }.first)) })

            let drained = Task { await h.server.drain(gracePeriod: .seconds(2)) }
            XCTAssertTrue(finishing.events.wait { $0.contains(.goAway(0)) }, "no GOAWAY on drain")
            // Within the grace period an existing stream still completes normally.
            let finishingStream = finishing
            finishing.connection!.eventLoop.execute {
                _ = finishingStream.stream?.send(Array("after".utf8))
                finishingStream.stream?.closeSend()
            }
            XCTAssertEqual(finishing.status(), .ok)
            XCTAssertEqual(finishing.messages, [Array("before".utf8), Array("after".utf8)])
            // The stream that never ends is cancelled with UNAVAILABLE at the deadline.
            let heldStatus = held.status()
            XCTAssertEqual(heldStatus?.code, .unavailable)
            XCTAssertEqual(heldStatus?.message, ConnectionCloseReason.serverDrain.description)
            await drained.value
            XCTAssertEqual(h.server.statistics.activeConnections, 0)
            // No longer accepting.
            let late = h.call(client, path: "/test.Echo/Echo", messages: [[1]])
            XCTAssertEqual(late.status()?.code, .unavailable)
            XCTAssertEqual(h.closeRecords { $0 == .serverDrain }.count, 2)
            h.assertEachConnectionLoggedOnce()
        }
    }

    func testConnectionLimitRefusesExtraConnections() async throws {
        try await withHarness(TestHarness { $0.limits.maxConnections = 1 }) { h in
            let first = h.call(try h.client(), path: "/test.Echo/Hold", halfClose: false)
            XCTAssertTrue(h.service.events.wait { !$0.isEmpty })
            let second = h.call(try h.client(), path: "/test.Echo/Echo", messages: [[1]])
            XCTAssertEqual(second.status()?.code, .unavailable)
            XCTAssertTrue(h.logs.wait { $0.contains { $0.closeReason == .connectionLimit } })
            XCTAssertEqual(h.server.statistics.refusedConnections, 1)
            first.hangUp()
            XCTAssertTrue(eventually { h.server.statistics.activeConnections == 0 })
            try h.assertStillServing()
        }
    }

    /// After `releaseMemoryAfterClosedConnections` connections closed, the server trims its heap once (batched 2 s
    /// later), and again only after as many more: a storm's memory goes back to the kernel instead of staying at its peak.
    func testClosedConnectionsTriggerOneBatchedHeapTrim() async throws {
        try await withHarness(TestHarness { $0.limits.releaseMemoryAfterClosedConnections = 3 }) { h in
            XCTAssertEqual(h.server.statistics.heapTrims, 0)
            for _ in 0..<4 {
                let call = h.call(try h.client(), path: "/test.Echo/Echo", messages: [[1]])
                XCTAssertEqual(call.status()?.code, .ok)
                call.hangUp()
            }
            XCTAssertTrue(eventually { h.server.statistics.activeConnections == 0 })
            XCTAssertTrue(eventually(timeout: 6) { h.server.statistics.heapTrims == 1 }, "one trim for the burst: \(h.server.statistics)")
            usleep(2_500_000)
            XCTAssertEqual(h.server.statistics.heapTrims, 1, "no second trim without three more closes")
            try h.assertStillServing()
        }
    }

    // MARK: plaintext

    func testPlaintextOnlyWhenExplicitlyConfigured() async throws {
        try await withHarness(TestHarness(plaintext: true)) { h in
            let call = h.call(try h.client(plaintext: true), path: "/test.Echo/Echo", messages: [Array("h2c".utf8)])
            XCTAssertEqual(call.status(), .ok)
            XCTAssertEqual(call.messages, [Array("h2c".utf8)])
            guard case .opened(_, let identity)? = h.service.events.all.first else { return XCTFail("no stream") }
            XCTAssertNil(identity)
            call.hangUp()
        }
        try await withHarness(TestHarness()) { h in
            let call = h.call(try h.client(plaintext: true), path: "/test.Echo/Echo", messages: [[1]])
            XCTAssertEqual(call.status()?.code, .unavailable)
            XCTAssertTrue(h.waitForClose { if case .tlsHandshakeFailed = $0 { return true } else { return false } })
        }
    }

    // MARK: configuration errors

    func testBadCredentialFilesFailAtStartupNamingTheFile() throws {
        let certificates = TestCertificates.shared
        var credentials = certificates.serverCredentials
        credentials.privateKeyFile = certificates.path("client.key")
        XCTAssertThrowsError(try GRPCServer(configuration: GRPCServerConfiguration(security: .mutualTLS(credentials)))) { error in
            let error = error as? TransportError
            XCTAssertEqual(error?.kind, .tlsConfiguration)
            XCTAssertEqual(error?.context, certificates.path("client.key"))
            XCTAssertTrue(error?.message.contains("private key") == true, "\(String(describing: error))")
        }
        credentials = certificates.serverCredentials
        credentials.clientCAFile = certificates.path("missing.crt")
        XCTAssertThrowsError(try GRPCServer(configuration: GRPCServerConfiguration(security: .mutualTLS(credentials)))) { error in
            XCTAssertEqual((error as? TransportError)?.context, certificates.path("missing.crt"))
        }
    }
}
