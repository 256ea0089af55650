// nghttp2's 16 KiB outbound frame buffer is handed back to the kernel when a connection idles. Only whole pages
// can be handed back, so the buffer is placed on page boundaries: all of it goes back, not the 12 KiB of whole
// pages a buffer placed anywhere by malloc has inside it (the rest stayed resident on every idle connection).
@testable import Transport
import XCTest

final class FrameBufferPlacementTests: XCTestCase {
    func testAnIdleSessionHandsBackItsWholeFrameBuffer() throws {
        for _ in 0..<20 {
            let server = try HTTP2Session(role: .server, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100)
            server.submitSettings([.maxConcurrentStreams(100)])
            // Writes the SETTINGS frame into the frame buffer, touching its first page.
            while let chunk = server.nextOutbound(), !chunk.isEmpty {}
            let page = Int(getpagesize())
            let released = server.releaseIdlePages()
            XCTAssertGreaterThanOrEqual(released, 16_384 + 10, "the whole buffer (16,384 bytes and a frame header) went back")
            XCTAssertEqual(released % page, 0)
            XCTAssertEqual(server.frameBufferResidentPages, 0)
        }
    }

    func testASessionStillEncodesAfterItsFrameBufferWasHandedBack() throws {
        let server = try HTTP2Session(role: .server, maxHeaderListBytes: 16 * 1024, maxConcurrentStreams: 100)
        server.submitSettings([.maxConcurrentStreams(100)])
        while let chunk = server.nextOutbound(), !chunk.isEmpty {}
        XCTAssertGreaterThan(server.releaseIdlePages(), 0)
        server.submitPing()
        var written: [UInt8] = []
        while let chunk = server.nextOutbound(), !chunk.isEmpty { written += chunk }
        // A PING frame: 9-byte header (length 8, type 6, no flags, stream 0) and 8 bytes of opaque data.
        XCTAssertEqual(Array(written.prefix(9)), [0, 0, 8, 6, 0, 0, 0, 0, 0])
        XCTAssertEqual(written.count, 17)
    }
}
