// Every fuzz harness's seed corpus, replayed through the same entry point libFuzzer calls (no fuzzer build), so
// the harnesses never rot and every kept finding stays fixed: an input that crashed once is in the corpus and
// would crash this test again.
import FuzzHarnesses
import Foundation
import XCTest

final class FuzzReplayTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func replay(_ harness: FuzzHarness, atLeast minimum: Int) {
        let seeds = harness.seedInputs(root: Self.root)
        XCTAssertGreaterThanOrEqual(seeds.count, minimum, "\(harness.rawValue): seed corpus")
        let started = Date()
        for (_, bytes) in seeds { harness.run(bytes) }
        // Each seed also with its tail cut at a few points: truncated input is the commonest malformed input.
        for (_, bytes) in seeds where bytes.count > 8 {
            for cut in [1, bytes.count / 3, bytes.count / 2, bytes.count - 1] { harness.run(Array(bytes.prefix(cut))) }
        }
        print("\(harness.rawValue): \(seeds.count) seeds replayed (+ truncations) in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
    }

    func testEnvoyTextSeeds() { replay(.envoyText, atLeast: 150) }
    func testEnvoyBinarySeeds() { replay(.envoyBinary, atLeast: 40) }
    func testTemplateSeeds() { replay(.template, atLeast: 4) }
    func testMeshConfigSeeds() { replay(.meshConfig, atLeast: 10) }
    func testDiscoverySeeds() { replay(.discovery, atLeast: 5) }
    func testClientStatusSeeds() { replay(.clientStatus, atLeast: 3) }
    func testHTTP2ServerSeeds() { replay(.http2Server, atLeast: 4) }
    func testTLSServerSeeds() { replay(.tlsServer, atLeast: 4) }

    /// The TLS harness really drives the server's SSL_CTX: its seeds are real ClientHellos (a TLS handshake record),
    /// and none completes a handshake without a client answering the server.
    func testTLSHarnessSeedsAreClientHellosThatCannotFinishAlone() {
        let seeds = FuzzHarness.tlsServer.seedInputs(root: Self.root).filter { $0.name.hasPrefix("hello-") }
        XCTAssertEqual(seeds.count, 4)
        for seed in seeds {
            XCTAssertEqual(Array(seed.bytes.prefix(2)), [0x16, 0x03], "\(seed.name) is a TLS handshake record")
            XCTAssertGreaterThan(seed.bytes.count, 100, seed.name)
            XCTAssertFalse(FuzzHarness.runTLS(seed.bytes), seed.name)
        }
    }

    /// The HTTP/2 harness really drives a server session: the well-formed request seed yields its gRPC message.
    func testHTTP2HarnessDeframesTheSeedRequest() {
        let request = FuzzHarness.http2Server.seedInputs(root: Self.root).first { $0.name == "request" }
        XCTAssertNotNil(request)
        XCTAssertEqual(FuzzHarness.runHTTP2(request?.bytes ?? []), 1)
    }
}
