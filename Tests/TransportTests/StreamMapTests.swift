// The per-connection stream table: a linear list that behaves as a dictionary for the few streams a connection
// carries, changes values in place, and gives its storage back with its last entry.
@testable import Transport
import XCTest

final class StreamMapTests: XCTestCase {
    func testBehavesAsADictionaryOfStreams() {
        var map = StreamMap<[Int]>()
        XCTAssertTrue(map.isEmpty)
        map[HTTP2StreamID(1)] = [1]
        map[HTTP2StreamID(3)] = [3]
        map[HTTP2StreamID(1)]!.append(2)   // in place
        map[HTTP2StreamID(5)]?.append(9)   // absent: nothing happens, nothing is added
        XCTAssertEqual(map.count, 2)
        XCTAssertEqual(map[HTTP2StreamID(1)], [1, 2])
        XCTAssertNil(map[HTTP2StreamID(5)])
        XCTAssertEqual(map.keys.map(\.rawValue).sorted(), [1, 3])
        XCTAssertEqual(map.removeValue(forKey: HTTP2StreamID(3)), [3])
        XCTAssertNil(map.removeValue(forKey: HTTP2StreamID(3)))
        map[HTTP2StreamID(1)] = nil
        XCTAssertTrue(map.isEmpty)
    }

    func testAValueChangedInPlaceIsNotCopied() {
        var map = StreamMap<[UInt8]>()
        map[HTTP2StreamID(1)] = Array(repeating: 0, count: 1024)
        let before = map[HTTP2StreamID(1)]!.withUnsafeBufferPointer { $0.baseAddress }
        map[HTTP2StreamID(1)]![0] = 7
        let after = map[HTTP2StreamID(1)]!.withUnsafeBufferPointer { $0.baseAddress }
        XCTAssertEqual(before, after, "the buffer was changed where it is stored, not copied")
        XCTAssertEqual(map[HTTP2StreamID(1)]?.first, 7)
    }
}
