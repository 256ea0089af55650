// Server logs: one line per event in text or JSON, levels honoured, and a storm of
// identical warnings collapsed into a few lines plus a count.
import Foundation
@testable import ServerTelemetry
import XCTest

final class ServerLogTests: XCTestCase {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.withLock { lines.append(line) } }
        var all: [String] { lock.withLock { lines } }
    }

    func testTextLinesCarryEventAndQuotedFields() {
        let lines = Lines()
        let log = ServerLog(format: .text, write: lines.append)
        log.info("xds.stream-open", ["node": "frontend-1", "group": "frontend", "error": "two words\nand a newline"])
        XCTAssertEqual(lines.all.count, 1)
        let line = lines.all[0]
        XCTAssertFalse(line.contains("\n"), "one event is one line")
        XCTAssertTrue(line.contains(" info xds.stream-open "), line)
        XCTAssertTrue(line.contains("node=frontend-1"), line)
        XCTAssertTrue(line.contains(#"error="two words\nand a newline""#), line)
    }

    func testJSONLinesParseWithEventLevelTimeAndFields() throws {
        let lines = Lines()
        let log = ServerLog(format: .json, write: lines.append)
        log.warning("xds.nack", ["node": "n1", "group": "g", "type": "LDS", "error": "bad \"quote\""])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines.all[0].utf8)) as? [String: String])
        XCTAssertEqual(object["event"], "xds.nack")
        XCTAssertEqual(object["level"], "warning")
        XCTAssertEqual(object["node"], "n1")
        XCTAssertEqual(object["error"], "bad \"quote\"")
        XCTAssertNotNil(object["time"])
    }

    func testLevelsBelowTheMinimumAreDropped() {
        let lines = Lines()
        let log = ServerLog(format: .text, minimumLevel: .warning, write: lines.append)
        log.debug("a")
        log.info("b")
        log.warning("c")
        log.error("d")
        XCTAssertEqual(lines.all.map { $0.split(separator: " ")[2] }, ["c", "d"])
    }

    func testIdenticalWarningsAreRateLimitedWithACount() {
        let lines = Lines()
        let log = ServerLog(format: .text, rateLimit: .init(burst: 3, window: .seconds(3600)), write: lines.append)
        for i in 0..<1000 {
            // Only the peer differs: still the same event.
            log.warning("tls.handshake-failed", ["reason": "untrusted_certificate", "peer": "127.0.0.1:\(40000 + i)"])
        }
        log.warning("tls.handshake-failed", ["reason": "no_client_certificate", "peer": "127.0.0.1:1"])
        XCTAssertEqual(lines.all.count, 4, "3 of the storm, then the different event")
        XCTAssertTrue(lines.all[3].contains("no_client_certificate"))
        log.info("info.is.never.limited")
        XCTAssertEqual(lines.all.count, 5)
    }

    func testTheSuppressedCountIsReportedWhenTheWindowRollsOver() {
        final class FakeClock: @unchecked Sendable {
            var now = ContinuousClock.now
        }
        let clock = FakeClock()
        let limiter = LogRateLimiter(policy: .init(burst: 2, window: .seconds(10)), clock: { clock.now })
        XCTAssertEqual(limiter.admit("k"), .emit(suppressed: 0))
        XCTAssertEqual(limiter.admit("k"), .emit(suppressed: 0))
        for _ in 0..<7 { XCTAssertEqual(limiter.admit("k"), .suppress) }
        XCTAssertEqual(limiter.admit("other"), .emit(suppressed: 0), "keys are independent")
        clock.now += .seconds(11)
        XCTAssertEqual(limiter.admit("k"), .emit(suppressed: 7))
        XCTAssertEqual(limiter.admit("k"), .emit(suppressed: 0))
    }

    func testTheLimiterForgetsKeysBeyondItsBound() {
        let limiter = LogRateLimiter(policy: .init(burst: 1, window: .seconds(3600), maxKeys: 100))
        for i in 0..<10_000 { _ = limiter.admit("key-\(i)") }
        XCTAssertEqual(limiter.admit("key-0"), .emit(suppressed: 0), "old keys were dropped rather than growing without bound")
    }
}
