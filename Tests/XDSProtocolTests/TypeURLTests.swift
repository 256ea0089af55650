// TypeURL's lookups that the hot path relies on: a decoded type URL (a new string) maps to the constant itself, the
// position picked by length is the right one, short names follow it, and other URLs pass through untouched.
import XCTest
@testable import XDSProtocol

final class TypeURLTests: XCTestCase {
    func testADecodedTypeURLBecomesTheConstantItself() {
        for (index, constant) in TypeURL.pushOrder.enumerated() {
            let decoded = String(decoding: Array(constant.utf8), as: UTF8.self)  // equal, separate storage
            XCTAssertEqual(TypeURL.knownIndex(decoded), index)
            let canonical = TypeURL.canonical(decoded)
            XCTAssertEqual(canonical, constant)
            XCTAssertEqual(canonical.utf8.withContiguousStorageIfAvailable { $0.baseAddress },
                           constant.utf8.withContiguousStorageIfAvailable { $0.baseAddress }, "\(constant): the constant's storage")
        }
        XCTAssertEqual(TypeURL.pushOrder.map(TypeURL.shortName), ["CDS", "EDS", "LDS", "RDS", "SDS"])
    }

    func testOtherTypeURLsAreNotMistakenForServedOnes() {
        let cluster = TypeURL.cluster
        let cases = [
            "",
            "type.googleapis.com/envoy.config.cluster.v3.Clustex",                 // same length as Cluster, one byte off
            String(cluster.dropLast()),                                          // a prefix
            cluster + "s",
            "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
        ]
        for url in cases {
            XCTAssertNil(TypeURL.knownIndex(url), url)
            XCTAssertEqual(TypeURL.canonical(url), url)
            XCTAssertFalse(TypeURL.same(url, cluster), url)
        }
        XCTAssertEqual(TypeURL.shortName("type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"), "envoy.config.core.v3.TypedExtensionConfig")
        XCTAssertEqual(Set(TypeURL.pushOrder.map(\.utf8.count)).count, TypeURL.pushOrder.count,
                       "knownIndex picks its candidate by length: the served types' URLs must differ in length")
    }

    func testATypeURLTableKeepsEveryTypeItIsGiven() {
        XCTAssertEqual(TypeURLTable<Int>.inlineCapacity, TypeURL.pushOrder.count, "every served type is kept inline")
        var table = TypeURLTable<Int>()
        let other = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
        table[TypeURL.listener] = 1
        table[String(decoding: Array(TypeURL.cluster.utf8), as: UTF8.self)] = 2  // equal to the constant, other storage
        table[other] = 3
        XCTAssertEqual(table[TypeURL.listener], 1)
        XCTAssertEqual(table[TypeURL.cluster], 2)
        XCTAssertEqual(table[other], 3)
        XCTAssertNil(table[TypeURL.route])
        XCTAssertEqual(table.entries.map(\.typeURL), [TypeURL.cluster, TypeURL.listener, other])
        table[TypeURL.listener] = nil
        table[other] = nil
        XCTAssertEqual(table.entries.map(\.value), [2])
    }
}
