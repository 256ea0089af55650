// The ACK fast path (DiscoveryRequestDecoding.swift) against protobuf-c: on every message it accepts it must decode
// exactly what protobuf-c decodes, and it must take the requests proxies send after every response (else the server
// silently pays protobuf-c's price again). Messages are generated, then mutated byte by byte.
import XCTest
@testable import XDSWire

final class DiscoveryRequestDecodingTests: XCTestCase {
    private let cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

    private func bothWays(_ bytes: [UInt8], known: [String]? = nil, file: StaticString = #filePath, line: UInt = #line) -> DiscoveryRequest? {
        bytes.withUnsafeBytes { raw in
            let fast = DiscoveryRequest.decodeAcknowledgement(raw, knownNames: { _ in known })
            let slow = try? DiscoveryRequest(unpacking: raw, knownNames: { _ in known })
            if let fast {
                XCTAssertEqual(fast, slow, "the fast path decodes \(bytes.count) bytes differently from protobuf-c", file: file, line: line)
            }
            return fast
        }
    }

    private func randomName<G: RandomNumberGenerator>(_ generator: inout G) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789-_.:/|~")
        return String((0..<Int.random(in: 0...24, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
    }

    func testAcknowledgementsTakeTheFastPathAndDecodeAsProtobufCDoes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let names = (0..<Int.random(in: 0...60, using: &generator)).map { _ in randomName(&generator) }
            let request = DiscoveryRequest(versionInfo: randomName(&generator), resourceNames: names,
                                           typeURL: Bool.random(using: &generator) ? cluster : randomName(&generator),
                                           responseNonce: randomName(&generator))
            let bytes = request.serialized()
            XCTAssertEqual(bothWays(bytes), request, "an ACK is read by the fast path")
            XCTAssertEqual(bothWays(bytes, known: names), request)
        }
    }

    func testTheStreamsOwnNamesAreTakenWhenTheAcknowledgementRepeatsThem() {
        let known = (0..<50).map { "backend-\($0)" }
        let bytes = DiscoveryRequest(versionInfo: "v1", resourceNames: known, typeURL: cluster, responseNonce: "7").serialized()
        let decoded = bytes.withUnsafeBytes { DiscoveryRequest.decodeAcknowledgement($0, knownNames: { $0 == self.cluster ? known : nil }) }
        XCTAssertEqual(decoded?.resourceNames.withUnsafeBufferPointer { $0.baseAddress }, known.withUnsafeBufferPointer { $0.baseAddress })
        var changed = known
        changed[49] = "backend-5"
        XCTAssertEqual(bothWays(DiscoveryRequest(resourceNames: changed, typeURL: cluster).serialized(), known: known)?.resourceNames, changed)
    }

    func testOtherRequestsAreLeftToProtobufC() {
        let node = Node(id: "n", cluster: "g")
        let cases: [(String, DiscoveryRequest)] = [
            ("a first request (node)", DiscoveryRequest(node: node, resourceNames: ["a"], typeURL: cluster)),
            ("a NACK (error_detail)", DiscoveryRequest(versionInfo: "1", typeURL: cluster, responseNonce: "2", errorDetail: Status(code: 3, message: "bad"))),
            ("a name that is not ASCII", DiscoveryRequest(resourceNames: ["café"], typeURL: cluster)),
        ]
        for (what, request) in cases {
            let bytes = request.serialized()
            XCTAssertNil(bytes.withUnsafeBytes { DiscoveryRequest.decodeAcknowledgement($0, knownNames: { _ in nil }) }, what)
            XCTAssertNoThrow(try DiscoveryRequest(serialized: bytes), what)
        }
        // An unknown field (resource_locators, 7), a varint where a string belongs, a NUL inside a name (protobuf-c's
        // string would end there).
        XCTAssertNil(bothWays([0x3a, 0x00]))
        XCTAssertNil(bothWays([0x08, 0x01]))
        XCTAssertNil(bothWays([0x1a, 0x03, 0x61, 0x00, 0x62]))
    }

    func testHandWrittenEncodingsDecodeAsProtobufCDoes() {
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("fields out of order", [0x2a, 0x01, 0x6e, 0x22, 0x01, 0x74, 0x0a, 0x01, 0x76]),
            ("a singular field twice: the last wins", [0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62]),
            ("names around the type", [0x1a, 0x01, 0x61, 0x22, 0x01, 0x74, 0x1a, 0x01, 0x62]),
            ("a length in a longer varint than needed", [0x0a, 0x81, 0x00, 0x61]),
            ("empty strings present", [0x0a, 0x00, 0x1a, 0x00, 0x22, 0x00, 0x2a, 0x00]),
        ]
        for (what, bytes) in cases { XCTAssertNotNil(bothWays(bytes), what) }
        for (what, bytes) in [("a length past the end", [UInt8]([0x0a, 0x05, 0x61])), ("a truncated tag varint", [0x8a]),
                              ("an 11-byte varint", [0x0a] + [UInt8](repeating: 0xff, count: 10) + [0x01])] {
            XCTAssertNil(bothWays(bytes), what)
        }
    }

    func testMutatedMessagesDecodeAsProtobufCDoesOrAreLeftToIt() {
        var generator = SystemRandomNumberGenerator()
        let names = (0..<8).map { "svc-\($0)" }
        let original = DiscoveryRequest(versionInfo: "3f2a", resourceNames: names, typeURL: cluster, responseNonce: "12").serialized()
        var accepted = 0
        for _ in 0..<5_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.removeLast(Int.random(in: 0...min(4, bytes.count - 1), using: &generator))
                default: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...bytes.count, using: &generator))
                }
            }
            if bothWays(bytes, known: Bool.random(using: &generator) ? names : nil) != nil { accepted += 1 }
        }
        XCTAssertGreaterThan(accepted, 0, "some mutations still read as ACKs, and were compared")
    }
}
