// The server's frame-boundary scanner finds every frame header (type, flags, stream id) wherever the reads split
// the bytes, after the client preface; it is what lets frames on closed streams be judged (RFC 9113 §5.1).
import XCTest
@testable import Transport

final class FrameBoundaryScannerTests: XCTestCase {
    struct Seen: Equatable {
        let type: UInt8, flags: UInt8, streamID: Int32
    }

    static func frame(type: UInt8, flags: UInt8, streamID: UInt32, payload: Int) -> [UInt8] {
        [UInt8(payload >> 16 & 0xff), UInt8(payload >> 8 & 0xff), UInt8(payload & 0xff), type, flags,
         UInt8(streamID >> 24 & 0xff), UInt8(streamID >> 16 & 0xff), UInt8(streamID >> 8 & 0xff), UInt8(streamID & 0xff)]
            + [UInt8](repeating: 0xAB, count: payload)
    }

    func testEveryHeaderIsFoundWhateverTheSplits() {
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let frames: [(Seen, Int)] = [
            (Seen(type: 4, flags: 0, streamID: 0), 12),        // SETTINGS
            (Seen(type: 1, flags: 4, streamID: 1), 40),        // HEADERS
            (Seen(type: 0, flags: 0, streamID: 1), 20_000),    // DATA, larger than any read
            (Seen(type: 3, flags: 0, streamID: 1), 4),         // RST_STREAM
            (Seen(type: 0, flags: 1, streamID: 1), 0),         // empty DATA with END_STREAM
            (Seen(type: 9, flags: 4, streamID: 0x7fff_ffff), 3), // CONTINUATION, highest id (reserved bit cleared)
        ]
        var bytes = preface
        var starts: [Int] = []
        for (seen, payload) in frames {
            starts.append(bytes.count)
            var header = Self.frame(type: seen.type, flags: seen.flags, streamID: UInt32(seen.streamID), payload: payload)
            if seen.streamID == 0x7fff_ffff { header[5] |= 0x80 }  // the reserved bit must be ignored
            bytes += header
        }
        for split in [1, 2, 7, 9, 10, 1000, bytes.count] {
            var scanner = FrameBoundaryScanner()
            var seen: [Seen] = []
            var offset = 0
            while offset < bytes.count {
                let end = min(bytes.count, offset + split)
                let chunkStart = offset
                bytes[offset..<end].withUnsafeBytes { chunk in
                    scanner.scan(chunk) { headerStart, type, flags, streamID in
                        seen.append(Seen(type: type, flags: flags, streamID: streamID))
                        // A header that began in this read is reported at its offset in it.
                        if let index = starts.firstIndex(where: { $0 >= chunkStart }), starts[index] < end, seen.count - 1 == index {
                            XCTAssertEqual(chunkStart + headerStart, starts[index], "split \(split): header \(index) offset")
                        }
                    }
                }
                offset = end
            }
            XCTAssertEqual(seen, frames.map(\.0), "split size \(split)")
        }
    }
}
