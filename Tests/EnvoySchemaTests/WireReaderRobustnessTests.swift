// Malformed protobuf binary is an error value, never a trap: inputs the fuzzer found (kept in
// Tests/FuzzCorpus/envoy-binary) and their minimal forms.
import EnvoySchema
import Foundation
import XCTest

final class WireReaderRobustnessTests: XCTestCase {
    let pool = try! DescriptorPool.envoy
    var bootstrap: MessageID { pool.messageID(named: "envoy.config.bootstrap.v3.Bootstrap")! }

    /// The last byte of a nested message (Bootstrap.node, 1 byte long) starts a string field whose length varint
    /// lies outside it: reading that varint left the reader past the node's end, and the length check computed a
    /// negative remainder (a crash). A scalar running past the end is refused the same way.
    func testLengthOrScalarRunningPastANestedMessageIsAnError() {
        for node: [UInt8] in [[0x0a, 0x01, 0x0a, 0x05] + Array("abcde".utf8), [0x0a, 0x03, 0xa5, 0x06, 0x00, 0x12, 0x03] + Array("abc".utf8)] {
            XCTAssertThrowsError(try DynamicMessage(serialized: node, type: bootstrap, pool: pool)) { error in
                XCTAssertTrue("\(error)".contains("overruns") || "\(error)".contains("runs past"), "\(error)")
            }
        }
    }

    func testFuzzerFindingsAreErrors() throws {
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("FuzzCorpus/envoy-binary")
        let findings = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix("finding-") }
        XCTAssertFalse(findings.isEmpty)
        for finding in findings {
            let bytes = Array(try Data(contentsOf: directory.appendingPathComponent(finding)))
            XCTAssertThrowsError(try DynamicMessage(serialized: bytes, type: bootstrap, pool: pool), finding)
        }
    }
}
