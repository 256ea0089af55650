// TypeURL's lookups that the hot path relies on: a decoded type URL (a new string) maps to the constant itself, the
// position picked by length is the right one, short names follow it, and other URLs pass through untouched.
import XCTest
@testable import XDSProtocol
import XDSWire

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

/// A stream's types in push and removal order, kept as a bit set of served types plus any others.
final class TypeURLOrderTests: XCTestCase {
    func testServedTypesFollowTheOrdersAndOthersFollowByURL() {
        let others = ["type.googleapis.com/z.Other", "type.googleapis.com/a.Other"]
        var served: UInt8 = 0
        for url in [TypeURL.route, TypeURL.cluster, TypeURL.listener] { served |= 1 << TypeURL.knownIndex(url)! }
        let push = TypeURLOrder(ranks: TypeURLOrder.pushRanks, served: served, others: others.sorted())
        XCTAssertEqual(Array(push), [TypeURL.cluster, TypeURL.listener, TypeURL.route] + others.sorted())
        let removal = TypeURLOrder(ranks: TypeURLOrder.removalRanks, served: served, others: others.sorted())
        XCTAssertEqual(Array(removal), [TypeURL.listener, TypeURL.route, TypeURL.cluster] + others.sorted())
        // Every served type, in exactly the documented orders.
        let all = TypeURLOrder(ranks: TypeURLOrder.removalRanks, served: 0b11111, others: [])
        XCTAssertEqual(Array(all), TypeURL.removalOrder)
        XCTAssertEqual(Array(TypeURLOrder(ranks: TypeURLOrder.pushRanks, served: 0b11111, others: [])), TypeURL.pushOrder)
        XCTAssertEqual(Array(TypeURLOrder(ranks: TypeURLOrder.pushRanks, served: 0, others: [])), [])
    }
}

/// What a type remembers of the responses it sent: the latest, and the earlier ones only until the proxy answers.
final class SentResponseMemoryTests: XCTestCase {
    func testAnAnswerForgetsTheResponsesBeforeIt() {
        var state = TypeState(typeURL: TypeURL.cluster)
        for n in 1...3 { state.recordSent(nonce: "\(n)", version: "v\(n)", snapshotVersion: "s\(n)", stateOfTheWorld: true) }
        XCTAssertEqual((1...3).map { state.sentVersion(nonce: "\($0)") }, ["v1", "v2", "v3"])
        XCTAssertEqual(state.lastNonce, "3")
        // The proxy answers 2 (late): 1 will not be answered any more; 2 and 3 still may be.
        state.forgetResponses(before: "2")
        XCTAssertEqual((1...3).map { state.sentVersion(nonce: "\($0)") }, [nil, "v2", "v3"])
        state.forgetResponses(before: "3")
        XCTAssertEqual(state.earlier.count, 0, "an idle type keeps only its latest response")
        XCTAssertEqual(state.sentVersion(nonce: "3"), "v3")
        XCTAssertEqual(state.status.versionSent, "v3")
        XCTAssertEqual(state.status.nonceSent, "3")
    }

    func testUnansweredResponsesAreBounded() {
        var state = TypeState(typeURL: TypeURL.endpoint)
        for n in 1...20 { state.recordSent(nonce: "\(n)", version: "v\(n)", snapshotVersion: "s", stateOfTheWorld: false) }
        let remembered = (1...20).filter { state.sentVersion(nonce: "\($0)") != nil }
        XCTAssertEqual(remembered, Array((20 - TypeState.rememberedResponses + 1)...20))
    }

    func testAStreamThatWasAnsweredKeepsNoEarlierResponses() {
        // Three pushes, each ACKed in turn through the state machine: only the latest response stays.
        let now = WallClockTime(nanosecondsSinceEpoch: 0)
        var stream = DiscoveryStream(configuration: .init(variant: .stateOfTheWorld, binding: .aggregated),
                                     view: snapshot("s1", [CDS: ["c1": "1"]]))
        var sent: [DiscoveryResponse] = []
        func apply(_ actions: [StreamAction]) {
            for case .send(let response) in actions {
                sent.append(response)
                apply(stream.handle(.flushed(nonce: response.nonce), at: now))
            }
        }
        apply(stream.handle(.request(DiscoveryRequest(node: testNode, typeURL: CDS)), at: now))
        for version in 2...3 {
            apply(stream.handle(.snapshotChanged(snapshot("s\(version)", [CDS: ["c1": "\(version)"]])), at: now))
            let latest = sent.last!
            apply(stream.handle(.request(DiscoveryRequest(versionInfo: latest.versionInfo, typeURL: CDS, responseNonce: latest.nonce)), at: now))
        }
        let last = try! XCTUnwrap(sent.last)
        apply(stream.handle(.request(DiscoveryRequest(versionInfo: last.versionInfo, typeURL: CDS, responseNonce: last.nonce)), at: now))
        XCTAssertEqual(sent.count, 3)
        XCTAssertEqual(stream.proxyStatus(typeURL: CDS)?.nonceAcked, last.nonce)
        XCTAssertEqual(stream.proxyStatus(typeURL: CDS)?.verdict, .synced)
        XCTAssertEqual(stream.types.read(CDS) { $0.earlier.count }, 0)
    }
}
