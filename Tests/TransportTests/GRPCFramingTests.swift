// Pure tests of gRPC message framing and grpc-message encoding.
import XCTest
@testable import Transport
import GRPCStatusCodes

final class GRPCFramingTests: XCTestCase {
    func testDeframerReassemblesMessagesAcrossArbitrarySplits() throws {
        let messages: [[UInt8]] = [Array("a".utf8), [], [UInt8](repeating: 7, count: 70_000), Array("tail".utf8)]
        let stream = messages.flatMap { GRPCFraming.prefix(forLength: $0.count) + $0 }
        for splitSize in [1, 2, 5, 6, 4096, stream.count] {
            var deframer = GRPCMessageDeframer(maxMessageBytes: 1 << 20)
            var out: [[UInt8]] = []
            var index = 0
            while index < stream.count {
                let end = min(stream.count, index + splitSize)
                try stream[index..<end].withUnsafeBytes { try deframer.append($0, to: &out) }
                index = end
            }
            XCTAssertEqual(out, messages, "split size \(splitSize)")
            XCTAssertFalse(deframer.hasPartialMessage)
        }
    }

    func testDeframerRejectsBadPrefixes() {
        let cases: [(name: String, bytes: [UInt8], failure: GRPCMessageDeframer.Failure)] = [
            ("length over the limit", [0, 0, 0, 4, 1], .messageTooLarge(length: 1025, limit: 1024)),
            ("maximum length", [0, 0xff, 0xff, 0xff, 0xff], .messageTooLarge(length: 0xffff_ffff, limit: 1024)),
            ("compressed flag", [1, 0, 0, 0, 1], .compressedMessage),
        ]
        for testCase in cases {
            var deframer = GRPCMessageDeframer(maxMessageBytes: 1024)
            var out: [[UInt8]] = []
            XCTAssertThrowsError(try testCase.bytes.withUnsafeBytes { try deframer.append($0, to: &out) }, testCase.name) { error in
                XCTAssertEqual(error as? GRPCMessageDeframer.Failure, testCase.failure, testCase.name)
            }
        }
    }

    func testPartialMessageIsReported() throws {
        var deframer = GRPCMessageDeframer(maxMessageBytes: 1024)
        var out: [[UInt8]] = []
        let bytes: [UInt8] = [0, 0, 0, 0, 3, 1]
        try bytes.withUnsafeBytes { try deframer.append($0, to: &out) }
        XCTAssertTrue(deframer.hasPartialMessage)
        XCTAssertEqual(out, [])
    }

    func testGrpcMessagePercentEncodingRoundTrips() {
        let cases = ["plain", "100% done", "ümlaut ✗", "line\nbreak", ""]
        for text in cases {
            let encoded = GRPCStatus.percentEncode(text)
            XCTAssertTrue(encoded.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7e }, text)
            XCTAssertEqual(GRPCStatus.percentDecode(encoded), text)
        }
        XCTAssertEqual(GRPCStatus.percentEncode("100% ✗"), "100%25 %E2%9C%97")
    }
}
