// Shared state-of-the-world answers: streams reading one view get the same resource
// list object (planned and encoded once), the pre-encoded path writes exactly the
// bytes protobuf-c writes, and a view's cache never leaks content into another view.
import XCTest
import XDSCache
import XDSProtocol
import XDSWire

final class SharedAnswerTests: XCTestCase {
    let view = snapshot("s1", [CDS: ["c1": "1", "c2": "1"], EDS: ["c1": "1", "c2": "1", "c3": "1"], LDS: ["l1": "1"]])

    /// Opens an ADS stream, sends one first request and returns the response it gets.
    private func firstResponse(_ view: GroupView, _ typeURL: String, _ names: [String] = []) -> DiscoveryResponse? {
        var stream = DiscoveryStream(configuration: ads, view: view)
        let actions = stream.handle(.request(DiscoveryRequest(node: testNode, resourceNames: names, typeURL: typeURL)),
                                    at: WallClockTime(nanosecondsSinceEpoch: 1))
        guard case .send(let response)? = actions.first else { return nil }
        return response
    }

    func testStreamsOfOneGroupGetTheSameEncodedAnswer() throws {
        let cases: [(name: String, typeURL: String, first: [String], second: [String])] = [
            ("wildcard clusters", CDS, [], ["*"]),
            ("named endpoints, names in another order", EDS, ["c2", "c1"], ["c1", "c2"]),
        ]
        for (name, typeURL, first, second) in cases {
            let a = try XCTUnwrap(firstResponse(view, typeURL, first), name)
            let b = try XCTUnwrap(firstResponse(view, typeURL, second), name)
            XCTAssertTrue(a.resourceList === b.resourceList, "\(name): each stream built its own list")
            XCTAssertTrue(a.resourceList.isPreEncoded, name)
            XCTAssertEqual(a.serialized(), b.serialized(), name)
            XCTAssertEqual(a.versionInfo, b.versionInfo, name)
        }
        XCTAssertEqual(view.resourceSetCache?.count, 2, "one set per (type, subscription)")
    }

    func testStreamsMovingFromOneAnswerShareTheirPartialAnswer() throws {
        let next = snapshot("s2", [CDS: ["c1": "1", "c2": "1"], EDS: ["c1": "2", "c2": "1", "c3": "1"], LDS: ["l1": "1"]])
        let at = WallClockTime(nanosecondsSinceEpoch: 1)
        func answerToTheChange() throws -> DiscoveryResponse {
            var stream = DiscoveryStream(configuration: ads, view: view)
            let first = stream.handle(.request(DiscoveryRequest(node: testNode, resourceNames: ["c1", "c2"], typeURL: EDS)), at: at)
            guard case .send(let response)? = first.first else { throw XCTSkip("no first answer") }
            _ = stream.handle(.request(DiscoveryRequest(versionInfo: response.versionInfo, resourceNames: ["c1", "c2"], typeURL: EDS,
                                                        responseNonce: response.nonce)), at: at)
            guard case .send(let change)? = stream.handle(.snapshotChanged(next), at: at).first else { throw XCTSkip("no answer to the change") }
            return change
        }
        let a = try answerToTheChange(), b = try answerToTheChange()
        XCTAssertEqual(a.resources.map { label($0) }, ["c1@2"], "only the changed assignment")
        XCTAssertTrue(a.resourceList === b.resourceList, "each stream built its own partial answer")
        XCTAssertTrue(a.resourceList.isPreEncoded)
        XCTAssertEqual(a.versionInfo, ContentVersion.of(next.resources(typeURL: EDS).values.filter { $0.name != "c3" }))
    }

    func testDifferentSubscriptionsGetDifferentAnswers() throws {
        let one = try XCTUnwrap(firstResponse(view, EDS, ["c1"]))
        let two = try XCTUnwrap(firstResponse(view, EDS, ["c1", "c3"]))
        XCTAssertEqual(one.resources.map { label($0) }, ["c1@1"])
        XCTAssertEqual(two.resources.map { label($0) }, ["c1@1", "c3@1"])
        XCTAssertNotEqual(one.versionInfo, two.versionInfo)
    }

    func testAnswersNeverComeFromAPreviousView() throws {
        let next = snapshot("s2", [CDS: ["c1": "2", "c2": "1"], EDS: ["c1": "1", "c2": "1", "c3": "1"], LDS: ["l1": "1"]])
        // Warm the old view's cache, then move a stream to the new view.
        _ = firstResponse(view, CDS)
        play(view: view, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.snapshot(next), ["CDS#2 c1@2 c2@1"]),
        ])
        let fresh = try XCTUnwrap(firstResponse(next, CDS))
        let bodies = next.resources(typeURL: CDS)
        for resource in fresh.resources {
            let name = String(label(resource).split(separator: "@")[0])
            XCTAssertTrue(resource.value === bodies[name]?.body, "\(name) is not the new view's body")
        }
        XCTAssertEqual(fresh.versionInfo, next.contentVersion(typeURL: CDS))
    }

    func testAckRepeatingTheNamesInAnotherOrderSendsNothing() {
        play(view: view, [
            Step(.sotw(EDS, ["c2", "c1"]), ["EDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#1"]),
            Step(.sotw(EDS, ["c2", "c1"], .latest), []),
            Step(.sotw(EDS, ["c2", "c1", "c3"], .latest), ["EDS#2 c3@1"]),
        ])
    }

    func testUnsubscribedNamesAreResentWhenSubscribedAgain() {
        // Dropping a name needs no message (the proxy forgets it); naming it again must resend it.
        play(view: view, [
            Step(.sotw(EDS, ["c1", "c2"]), ["EDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1"], .ack), ["ack EDS#1"]),
            Step(.sotw(EDS, ["c1"], .latest), []),
            Step(.sotw(EDS, ["c1", "c2"], .latest), ["EDS#2 c2@1"]),
        ])
    }

    /// Thousands of proxies of a group subscribe to the same names: their streams hold the view's one pooled copy of
    /// those names (state of the world and delta), and delta streams that are up to date one pooled name → version
    /// map, instead of a copy each. A stream that changes its own afterwards leaves the others' alone.
    func testStreamsOfOneGroupShareSubscriptionNamesAndKnownVersions() throws {
        func storage(_ names: [String]?) -> UnsafeRawPointer? {
            names?.withUnsafeBufferPointer { $0.baseAddress.map(UnsafeRawPointer.init) }
        }
        let sotwA = play(view: view, [Step(.sotw(EDS, ["c2", "c1"]), ["EDS#1 c1@1 c2@1"])])
        let sotwB = play(view: view, [Step(.sotw(EDS, ["c1", "c2"]), ["EDS#1 c1@1 c2@1"])])
        let deltaA = play(deltaADS, view: view, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(EDS, subscribe: ["c3", "c1"]), ["Δ EDS#2 +c1@1 +c3@1"]),
        ])
        play(deltaADS, view: view, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(EDS, subscribe: ["c1", "c3"]), ["Δ EDS#2 +c1@1 +c3@1"]),
        ])
        let pooled = try XCTUnwrap(view.resourceSetCache?.pooledCount)
        XCTAssertEqual(pooled.subscriptions, 2, "[c1, c2] and [c1, c3]")
        XCTAssertEqual(pooled.knownVersions, 2, "the clusters' map and the endpoints' map")
        let names = sotwA.proxyStatus(typeURL: EDS)?.subscribedNames
        XCTAssertEqual(names, ["c1", "c2"])
        XCTAssertNotNil(storage(names))
        XCTAssertEqual(storage(names), storage(sotwB.proxyStatus(typeURL: EDS)?.subscribedNames), "one copy of the names")
        // A stream changing its subscription gets its own copy; the pooled one is untouched.
        var changed = deltaA
        _ = changed.handle(event(for: .delta(EDS, unsubscribe: ["c3"], .ack), changed), at: WallClockTime(nanosecondsSinceEpoch: 9))
        XCTAssertEqual(changed.proxyStatus(typeURL: EDS)?.subscribedNames, ["c1"])
        XCTAssertEqual(deltaA.proxyStatus(typeURL: EDS)?.subscribedNames, ["c1", "c3"])
        let again = play(deltaADS, view: view, [Step(.delta(EDS, subscribe: ["c1", "c3"]), ["Δ EDS#1 +c1@1 +c3@1"])])
        XCTAssertEqual(again.proxyStatus(typeURL: EDS)?.subscribedNames, ["c1", "c3"])
    }

    /// Delta streams of a group that are up to date with a view hold the same resources, so a change is planned
    /// once for all of them (clusters changed, added and removed; endpoints resent after their cluster changed, a
    /// subscribed name that appears) and each stream only adds its own forced names; every stream still gets
    /// exactly what it is owed, removals after the updates are acknowledged.
    func testUpToDateDeltaStreamsShareEachChangesPlan() throws {
        let v1 = snapshot("v1", [CDS: ["c1": "1", "c2": "1"], EDS: ["c1": "1", "c2": "1"]])
        let v2 = snapshot("v2", [CDS: ["c1": "2", "c3": "1"], EDS: ["c1": "1", "c2": "1", "c9": "1"]])
        let v3 = snapshot("v3", [CDS: ["c1": "2", "c3": "2"], EDS: ["c1": "1", "c2": "1", "c9": "1"]])
        let steps = [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(EDS, subscribe: ["c1", "c2", "c9"]), ["Δ EDS#2 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.delta(EDS, .ack), ["ack EDS#2", "Δ EDS#3 -c9"]),
            Step(.delta(EDS, .ack), ["ack EDS#3"]),
            Step(.snapshot(v2), ["Δ CDS#4 +c1@2 +c3@1", "Δ EDS#5 +c1@1 +c9@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#4", "Δ CDS#6 -c2"]),
            Step(.delta(EDS, .ack), ["ack EDS#5"]),
            Step(.delta(CDS, .ack), ["ack CDS#6"]),
            Step(.snapshot(v3), ["Δ CDS#7 +c3@2"]),
            Step(.delta(CDS, .ack), ["ack CDS#7"]),
        ]
        for _ in 0..<3 { play(deltaADS, view: v1, steps) }
        XCTAssertEqual(v2.resourceSetCache?.sharedDeltaSteps, 2, "one plan for the clusters' change, one for the endpoints'")
        XCTAssertEqual(v2.resourceSetCache?.pooledCount.knownVersions, 2, "one name → version map per type once up to date")
        XCTAssertEqual(v3.resourceSetCache?.sharedDeltaSteps, 1, "the endpoints did not change: nothing to plan for them")
    }

    func testManyDistinctSubscriptionsAreAnsweredButNotAllKept() throws {
        var names: [String: String] = [:]
        for i in 0..<(ResourceSetCache.maxNamedSets + 20) { names["e\(i)"] = "1" }
        let wide = snapshot("s1", [EDS: names])
        for i in 0..<(ResourceSetCache.maxNamedSets + 20) {
            let response = try XCTUnwrap(firstResponse(wide, EDS, ["e\(i)"]))
            XCTAssertEqual(response.resources.map { label($0) }, ["e\(i)@1"])
        }
        XCTAssertEqual(wide.resourceSetCache?.count, ResourceSetCache.maxNamedSets)
    }
}

final class PreEncodedResponseTests: XCTestCase {
    func testDeltaResponsesAreByteIdenticalToProtobufC() throws {
        let body = ResourceBytes(Array("cluster body".utf8)), big = ResourceBytes([UInt8](repeating: 0x42, count: 70_000))
        func resource(_ name: String, _ version: String, _ any: AnyResource?, aliases: [String] = [], ttl: Duration? = nil) -> DeltaResource {
            DeltaResource(name: name, version: version, resource: any, aliases: aliases, ttl: ttl)
        }
        let cases: [(String, DeltaDiscoveryResponse)] = [
            ("typical", DeltaDiscoveryResponse(systemVersionInfo: "0123456789abcdef",
                                               resources: [resource("c1", "h1", AnyResource(typeURL: CDS, value: body)),
                                                           resource("c2", "h2", AnyResource(typeURL: CDS, value: body))],
                                               typeURL: CDS, removedResources: ["c3"], nonce: "17", controlPlane: "meshctl")),
            ("removals only", DeltaDiscoveryResponse(systemVersionInfo: "v", resources: [], typeURL: EDS,
                                                     removedResources: ["a", "", "b"], nonce: "2")),
            ("empty", DeltaDiscoveryResponse(systemVersionInfo: "", resources: [], typeURL: "", removedResources: [], nonce: "")),
            ("heartbeats, TTLs of every sign", DeltaDiscoveryResponse(
                systemVersionInfo: "v", resources: [resource("a", "1", nil, ttl: .seconds(30)),
                                                    resource("b", "1", nil, ttl: .milliseconds(1500)),
                                                    resource("c", "1", nil, ttl: .zero),
                                                    resource("d", "1", nil, ttl: .milliseconds(-1500))],
                typeURL: CDS, removedResources: [], nonce: "9", controlPlane: "")),
            ("aliases, empty name and version, empty body, NUL in a string, large body", DeltaDiscoveryResponse(
                systemVersionInfo: "v\u{0}cut", resources: [resource("", "", AnyResource(typeURL: "", value: ResourceBytes([UInt8]())), aliases: ["x", ""]),
                                                            resource("n\u{0}ul", "1", AnyResource(typeURL: EDS, value: big))],
                typeURL: EDS, removedResources: [], nonce: "18446744073709551615", controlPlane: "cp")),
        ]
        for (name, response) in cases {
            for headroom in [0, 5] {
                XCTAssertEqual(response.serialized(headroom: headroom), response.serializedByProtobufC(headroom: headroom), "\(name), headroom \(headroom)")
            }
        }
    }

    func testPreEncodedResponsesAreByteIdenticalToProtobufC() throws {
        let big = ResourceBytes([UInt8](repeating: 0x41, count: 70_000))  // multi-byte length varints
        let cluster = AnyResource(typeURL: CDS, value: ResourceBytes(Array("c1".utf8)))
        let cases: [(String, [AnyResource], String, String, String?)] = [
            ("typical", [cluster, AnyResource(typeURL: CDS, value: ResourceBytes(Array("c2".utf8)))], "0123456789abcdef", "17", "meshctl"),
            ("no resources", [], "cbf29ce484222325", "1", nil),
            ("empty version and empty control plane", [cluster], "", "2", ""),
            ("empty body and empty Any type", [AnyResource(typeURL: "", value: ResourceBytes([UInt8]()))], "v", "3", nil),
            ("large body", [AnyResource(typeURL: EDS, value: big)], "v", "18446744073709551615", "cp"),
            ("NUL ends a string as in protobuf-c", [cluster], "v\u{0}tail", "4", nil),
        ]
        for (name, items, version, nonce, controlPlane) in cases {
            let plain = DiscoveryResponse(versionInfo: version, resourceList: ResourceList(items), typeURL: CDS, nonce: nonce,
                                          controlPlane: controlPlane)
            let shared = DiscoveryResponse(versionInfo: version, resourceList: ResourceList(preEncoding: items), typeURL: CDS, nonce: nonce,
                                           controlPlane: controlPlane)
            XCTAssertFalse(plain.resourceList.isPreEncoded, name)
            XCTAssertTrue(shared.resourceList.isPreEncoded, name)
            XCTAssertEqual(shared.serialized(headroom: 5), plain.serialized(headroom: 5), name)
            XCTAssertEqual(Array(shared.serialized(headroom: 5).prefix(5)), [0, 0, 0, 0, 0], name)
            let decoded = try DiscoveryResponse(serialized: shared.serialized())
            XCTAssertEqual(decoded.resources, items, name)
            XCTAssertEqual(decoded.nonce, nonce, name)
        }
    }

    func testResponsesCompareByContentWhateverTheirListObject() {
        let items = [AnyResource(typeURL: CDS, value: ResourceBytes(Array("c1".utf8)))]
        let a = DiscoveryResponse(versionInfo: "v", resources: items, typeURL: CDS, nonce: "1")
        let b = DiscoveryResponse(versionInfo: "v", resourceList: ResourceList(preEncoding: items), typeURL: CDS, nonce: "1")
        XCTAssertEqual(a, b)
        var c = b
        c.resources = []
        XCTAssertNotEqual(b, c)
        XCTAssertFalse(c.resourceList.isPreEncoded, "a changed list must not keep the old encoding")
        XCTAssertEqual(try DiscoveryResponse(serialized: c.serialized()).resources, [])
    }
}
