// State-of-the-world behaviour of DiscoveryStream, one test per protocol rule. Each test
// is a table of steps: an input and the actions it must produce, rendered as
// "CDS#3 a@1 b@2" (type, nonce, bodies "name@version") or "ack CDS#3" / "nack CDS#3: why".
import XCTest
import XDSProtocol
import XDSWire

let base = snapshot("s1", [
    CDS: ["c1": "1", "c2": "1"],
    EDS: ["c1": "1", "c2": "1"],
    LDS: ["l1": "1"],
    RDS: ["r1": "1"],
])

final class StateOfTheWorldTests: XCTestCase {
    // MARK: Nonces, versions, node

    func testNoncesAreUniquePerStream() {
        let stream = play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"]), ["EDS#2 c1@1 c2@1"]),
            Step(.sotw(LDS), ["LDS#3 l1@1"]),
            Step(.sotw(RDS, ["r1"]), ["RDS#4 r1@1"]),
        ])
        let nonces = stream.proxyStatus.compactMap(\.nonceSent)
        XCTAssertEqual(nonces.count, 4)
        XCTAssertEqual(Set(nonces).count, nonces.count)
    }

    func testVersionsArePerTypeURL() {
        let stream = play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(LDS), ["LDS#2 l1@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.sotw(LDS, [], .ack), ["ack LDS#2"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "1", "c2": "1"], LDS: ["l1": "2"]])), ["LDS#3 l1@2"]),
        ])
        let clusters = stream.proxyStatus(typeURL: CDS)!
        let listeners = stream.proxyStatus(typeURL: LDS)!
        XCTAssertEqual(clusters.versionSent, clusters.versionAcked, "an unrelated change leaves the cluster version alone")
        XCTAssertNotEqual(listeners.versionSent, listeners.versionAcked)
        XCTAssertNotEqual(clusters.versionSent, listeners.versionSent)
        XCTAssertEqual(listeners.snapshotVersionSent, "s2")
    }

    func testNodeIsCachedFromTheFirstRequest() {
        let envoy = Node(id: testNode.id, cluster: testNode.cluster, metadata: [0x0a, 0x00], userAgentName: "envoy",
                         userAgentVersion: "1.40.0", clientFeatures: ["envoy.lb.does_not_support_overprovisioning"])
        let stream = play(view: base, [
            Step(.sotw(CDS, node: envoy), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack, node: nil), ["ack CDS#1"]),
            Step(.sotw(LDS, node: nil), ["LDS#2 l1@1"]),
        ])
        XCTAssertEqual(stream.node?.id, testNode.id)
        XCTAssertEqual(stream.node?.cluster, testNode.cluster)
        // Only what later requests are checked against is kept for the stream's life.
        XCTAssertEqual(stream.node?.metadata, [])
        XCTAssertEqual(stream.node?.clientFeatures, [])
    }

    func testFirstRequestWithoutNodeClosesTheStream() {
        let stream = play(view: base, [
            Step(.sotw(CDS, node: nil), ["close INVALID_ARGUMENT: the first request on a stream must carry node"]),
            Step(.sotw(CDS), []),
        ])
        XCTAssertTrue(stream.isClosed)
    }

    func testNodeChangingMidStreamClosesTheStream() {
        play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(LDS, node: Node(id: "intruder", cluster: "web")),
                 ["close INVALID_ARGUMENT: node changed mid-stream from \(testNode.id)/web to intruder/web"]),
        ])
    }

    // MARK: ACK / NACK

    func testAckIsRecognizedByEchoedNonceAndVersion() {
        let stream = play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .nonce("1"), version: "not-what-was-sent"), []),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
        ])
        let status = stream.proxyStatus(typeURL: CDS)!
        XCTAssertEqual(status.versionAcked, status.versionSent)
        XCTAssertEqual(status.nonceAcked, "1")
        XCTAssertEqual(status.verdict, .synced)
    }

    func testNackIsRecognizedByErrorDetailNotByVersion() {
        let stream = play(view: base, [
            Step(.sotw(EDS, ["c1"]), ["EDS#1 c1@1"]),
            // Latest nonce, old version, no error_detail: a subscription change racing the response, not a NACK.
            Step(.sotw(EDS, ["c1", "c2"], .latest), ["EDS#2 c2@1"]),
            // error_detail set although the version echoes the one sent: a NACK.
            Step(.sotw(EDS, ["c1", "c2"], .nackEchoing("endpoint c2: bad port")), ["nack EDS#2: endpoint c2: bad port"]),
        ])
        XCTAssertEqual(stream.proxyStatus(typeURL: EDS)?.verdict, .nacked)
    }

    func testNackedVersionIsNeverRepushed() {
        let stream = play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"]])), ["CDS#2 c1@2 c2@1"]),
            Step(.sotw(CDS, [], .nack("cluster c1: unknown field")), ["nack CDS#2: cluster c1: unknown field"]),
            // Same cluster content under a new snapshot version: the proxy keeps what it accepted.
            Step(.snapshot(snapshot("s3", [CDS: ["c1": "2", "c2": "1"]])), []),
            // A different version is sent as soon as it is published.
            Step(.snapshot(snapshot("s4", [CDS: ["c1": "3", "c2": "1"]])), ["CDS#3 c1@3 c2@1"]),
        ])
        XCTAssertEqual(stream.proxyStatus(typeURL: CDS)?.lastNack?.nonce, "2")
    }

    func testNackErrorDetailIsSurfacedInStatus() {
        let stream = play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"]])), ["CDS#2 c1@2 c2@1"]),
            Step(.sotw(CDS, [], .nack("cluster c1: unknown field")), ["nack CDS#2: cluster c1: unknown field"]),
        ])
        let status = stream.proxyStatus(typeURL: CDS)!
        let accepted = ContentVersion.of(base.resources(typeURL: CDS).values)
        XCTAssertEqual(status.verdict, .nacked)
        XCTAssertEqual(status.versionAcked, accepted, "the proxy keeps the version it accepted")
        XCTAssertEqual(status.lastNack?.rejectedVersion, status.versionSent)
        XCTAssertEqual(status.lastNack?.proxyVersion, accepted)
        XCTAssertEqual(status.lastNack?.errorDetail, Status(code: 3, message: "cluster c1: unknown field"))
        XCTAssertEqual(status.lastNack?.at, WallClockTime(nanosecondsSinceEpoch: 4))
    }

    func testNackOfAnOlderResponseIsRecordedButNotActedOn() {
        let stream = play(view: base, [
            Step(.sotw(EDS, ["c1"]), ["EDS#1 c1@1"]),
            Step(.sotw(EDS, ["c1"], .ack), ["ack EDS#1"]),
            Step(.snapshot(snapshot("s2", [EDS: ["c1": "2"]])), ["EDS#2 c1@2"]),
            Step(.sotw(EDS, ["c1"], .nackNonce("1", "late complaint")), ["nack(stale) EDS#1: late complaint"]),
        ])
        let status = stream.proxyStatus(typeURL: EDS)!
        XCTAssertEqual(status.verdict, .stale, "the NACK is about EDS#1, not the latest response")
        XCTAssertEqual(status.lastNack?.nonce, "1")
        XCTAssertEqual(status.lastNack?.stale, true)
        // EDS#1 was answered (ACKed) before EDS#2 went out, so the stream no longer remembers what it carried: a
        // stream keeps only responses the proxy has not answered (a proxy answers each response once, in order).
        XCTAssertNil(status.lastNack?.rejectedVersion)
    }

    // MARK: Requests and responses

    func testStaleNonceRequestIsNotAnswered() {
        play(view: base, [
            Step(.sotw(EDS, ["c1"]), ["EDS#1 c1@1"]),
            Step(.sotw(EDS, ["c1"], .ack), ["ack EDS#1"]),
            Step(.snapshot(snapshot("s2", [EDS: ["c1": "2", "c2": "1"]])), ["EDS#2 c1@2"]),
            // Sent before the proxy saw #2: superseded, so its new name is not acted on.
            Step(.sotw(EDS, ["c1", "c2"], .nonce("1")), []),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#2", "EDS#3 c2@1"]),
        ])
    }

    func testOnlyTheLatestRequestPerTypeCounts() {
        play(view: base, [
            Step(.sotw(EDS, ["c9"]), []),
            Step(.sotw(EDS, ["c1"]), ["EDS#1 c1@1"]),
            Step(.snapshot(snapshot("s2", [EDS: ["c1": "1", "c9": "1"]])), []),
        ])
    }

    func testListenersAndClustersCarryTheCompleteSet() {
        play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "1", "c2": "2"]])), ["CDS#2 c1@1 c2@2"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#2"]),
            Step(.snapshot(snapshot("s3", [CDS: ["c1": "1"]])), ["CDS#3 c1@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#3"]),
            Step(.snapshot(snapshot("s4", [CDS: [:]])), ["CDS#4"]),
        ])
    }

    func testRoutesAndEndpointsCarryWhatWasAsked() {
        let three = snapshot("s1", [EDS: ["c1": "1", "c2": "1", "c3": "1"]])
        play(view: three, [
            Step(.sotw(EDS, ["c1", "c2"]), ["EDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#1"]),
            Step(.snapshot(snapshot("s2", [EDS: ["c1": "1", "c2": "1", "c3": "2"]])), []),
            // Only what changed: the proxy keeps the endpoints a response leaves out (c2@1).
            Step(.snapshot(snapshot("s3", [EDS: ["c1": "2", "c2": "1", "c3": "2"]])), ["EDS#2 c1@2"]),
        ])
    }

    func testNamesThatDoNotExistYetAreSentWhenTheyAppear() {
        play(view: base, [
            Step(.sotw(RDS, ["r1", "r2"]), ["RDS#1 r1@1"]),
            Step(.sotw(RDS, ["r1", "r2"], .ack), ["ack RDS#1"]),
            Step(.snapshot(snapshot("s2", [RDS: ["r1": "1", "r2": "1"]])), ["RDS#2 r2@1"]),
        ])
    }

    func testNewlySubscribedNamesAreSentEvenIfUnchanged() {
        let two = snapshot("s1", [RDS: ["r1": "1", "r2": "1"]])
        play(view: two, [
            Step(.sotw(RDS, ["r1", "r2"]), ["RDS#1 r1@1 r2@1"]),
            Step(.sotw(RDS, ["r1", "r2"], .ack), ["ack RDS#1"]),
            Step(.sotw(RDS, ["r1"], .ack), []),
            Step(.sotw(RDS, ["r1", "r2"], .ack), ["RDS#2 r2@1"]),
        ])
    }

    func testNoDuplicateNamesInOneResponse() {
        play(view: base, [
            Step(.sotw(EDS, ["c1", "c1", "c2"]), ["EDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, ["*", "c1"]), ["CDS#2 c1@1 c2@1"]),
        ])
    }

    func testNothingIsSentWhenNothingChanged() {
        play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1"]), ["EDS#2 c1@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.sotw(EDS, ["c1"], .ack), ["ack EDS#2"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "1", "c2": "1"], EDS: ["c1": "1", "c2": "1"]])), []),
            Step(.sotw(CDS, [], .ack), []),
        ])
    }

    // MARK: Wildcard

    func testStarSubscribesToEveryResourceOfTheType() {
        play(view: base, [
            Step(.sotw(CDS, ["*"]), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, ["*"], .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "1", "c2": "1", "c3": "1"]])), ["CDS#2 c1@1 c2@1 c3@1"]),
        ])
    }

    func testEmptyListIsWildcardOnlyBeforeAnyExplicitSubscription() {
        // The sequence from the xDS protocol document, on listeners.
        let stream = play(view: snapshot("s1", [LDS: ["A": "1", "B": "1"]]), [
            Step(.sotw(LDS, []), ["LDS#1 A@1 B@1"]),
            // "*" continues, "A" is newly requested: resent although unchanged.
            Step(.sotw(LDS, ["*", "A"], .ack), ["ack LDS#1", "LDS#2 A@1 B@1"]),
            // Leaves the wildcard, keeps A: nothing new to send.
            Step(.sotw(LDS, ["A"], .ack), ["ack LDS#2"]),
            // Empty after an explicit subscription: unsubscribes from everything, not a wildcard.
            Step(.sotw(LDS, [], .ack), []),
            Step(.snapshot(snapshot("s2", [LDS: ["A": "1", "B": "1", "C": "1"]])), []),
        ])
        let status = stream.proxyStatus(typeURL: LDS)!
        XCTAssertFalse(status.wildcard)
        XCTAssertEqual(status.subscribedNames, [])
    }

    func testEmptyEndpointListIsNotAWildcard() {
        play(view: base, [
            Step(.sotw(EDS, []), []),
            Step(.snapshot(snapshot("s2", [EDS: ["c1": "2", "c2": "2"]])), []),
        ])
    }

    // MARK: Warming

    func testEndpointsAreResentAfterAClusterPush() {
        play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"]), ["EDS#2 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#2"]),
            // Cluster c1 changes, its endpoints do not: c1 still needs its assignment to finish warming. Unchanged
            // c2 is not recreated by Envoy, so its assignment is not sent again.
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"], EDS: ["c1": "1", "c2": "1"]])),
                 ["CDS#3 c1@2 c2@1", "EDS#4 c1@1"]),
            // Envoy's own EDS request, sent while processing CDS#3, is superseded by EDS#4.
            Step(.sotw(EDS, ["c1", "c2"], .nonce("2")), []),
            Step(.sotw(CDS, [], .ack), ["ack CDS#3"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#4"]),
        ])
    }

    func testEndpointRequestAfterAClusterPushIsAnsweredWhenUnchanged() {
        play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"]), ["EDS#2 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"], EDS: ["c1": "1", "c2": "1"]])), ["CDS#3 c1@2 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#2", "EDS#4 c1@1"]),
        ])
    }

    func testAChangedClusterGetsTheAssignmentItsServiceNameNames() {
        // c1 reads its endpoints from the assignment "svc-a" (eds_cluster_config.service_name), not from one named c1.
        let named = snapshot("s1", [CDS: ["c1": "1", "c2": "1"], EDS: ["svc-a": "1", "c2": "1", "c1": "1"]], serviceNames: ["c1": "svc-a"])
        play(view: named, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2", "svc-a"]), ["EDS#2 c1@1 c2@1 svc-a@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.sotw(EDS, ["c1", "c2", "svc-a"], .ack), ["ack EDS#2"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"], EDS: ["svc-a": "1", "c2": "1", "c1": "1"]],
                                    serviceNames: ["c1": "svc-a"])),
                 ["CDS#3 c1@2 c2@1", "EDS#4 svc-a@1"]),
        ])
    }

    func testAPartialAnswerCarriesTheVersionOfEverythingTheProxyHolds() {
        let stream = play(view: base, [
            Step(.sotw(EDS, ["c1", "c2"]), ["EDS#1 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#1"]),
            Step(.snapshot(snapshot("s2", [EDS: ["c1": "2", "c2": "1"]])), ["EDS#2 c1@2"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#2"]),
        ])
        let held = snapshot("s2", [EDS: ["c1": "2", "c2": "1"]]).resources(typeURL: EDS).values
        XCTAssertEqual(stream.proxyStatus(typeURL: EDS)?.versionAcked, ContentVersion.of(held),
                       "version_info names both assignments the proxy holds, not only the one carried")
    }

    func testListenerRouteConfigurationIsSuppliedPromptly() {
        play(view: base, [
            Step(.sotw(LDS), ["LDS#1 l1@1"]),
            Step(.sotw(RDS, ["r1"]), ["RDS#2 r1@1"]),
            Step(.sotw(LDS, [], .ack), ["ack LDS#1"]),
            Step(.sotw(RDS, ["r1"], .ack), ["ack RDS#2"]),
            Step(.snapshot(snapshot("s2", [LDS: ["l1": "1", "l2": "1"], RDS: ["r1": "1", "r2": "1"]])), ["LDS#3 l1@1 l2@1"]),
            // The new listener's route is answered at once, before the LDS ACK.
            Step(.sotw(RDS, ["r1", "r2"], .ack), ["RDS#4 r2@1"]),
        ])
    }

    // MARK: ADS ordering and flow control

    func testAggregatedPushOrderIsClustersEndpointsListenersRoutes() {
        play(view: base, [
            Step(.sotw(LDS), ["LDS#1 l1@1"]),
            Step(.sotw(RDS, ["r1"]), ["RDS#2 r1@1"]),
            Step(.sotw(CDS), ["CDS#3 c1@1 c2@1"]),
            Step(.sotw(EDS, ["c1", "c2"]), ["EDS#4 c1@1 c2@1"]),
            Step(.sotw(LDS, [], .ack), ["ack LDS#1"]),
            Step(.sotw(RDS, ["r1"], .ack), ["ack RDS#2"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#3"]),
            Step(.sotw(EDS, ["c1", "c2"], .ack), ["ack EDS#4"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"], EDS: ["c1": "2", "c2": "1"],
                                           LDS: ["l1": "2"], RDS: ["r1": "2"]])),
                 ["CDS#5 c1@2 c2@1", "EDS#6 c1@2", "LDS#7 l1@2", "RDS#8 r1@2"]),
        ])
    }

    func testLaterTypesWaitBehindAnEarlierTypeThatMustWait() {
        play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(LDS), ["LDS#2 l1@1"]),
            Step(.sotw(LDS, [], .ack), ["ack LDS#2"]),
            // CDS#1 is unanswered, so the new clusters wait, and the listener that may use them waits too.
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"], LDS: ["l1": "2"]])), []),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1", "CDS#3 c1@2 c2@1", "LDS#4 l1@2"]),
        ])
    }

    func testUnwritableStreamReceivesOnlyTheNewestVersion() {
        play(view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.writable(false), []),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"]])), []),
            Step(.snapshot(snapshot("s3", [CDS: ["c1": "3", "c2": "1"]])), []),
            Step(.writable(true), ["CDS#2 c1@3 c2@1"]),
        ])
    }

    func testInFlightResponseDefersNewerVersionsToTheNewest() {
        let stream = play(view: base, autoFlush: false, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            // CDS#1 is still being written: newer versions only mark clusters as owed.
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"]])), []),
            Step(.snapshot(snapshot("s3", [CDS: ["c1": "3", "c2": "1"]])), []),
            Step(.flushed(CDS), []),
            // Answered: the proxy gets the newest version, never s2.
            Step(.sotw(CDS, [], .ack), ["ack CDS#1", "CDS#2 c1@3 c2@1"]),
        ])
        XCTAssertEqual(stream.proxyStatus(typeURL: CDS)?.flushed, false, "CDS#2 is not written out yet")
    }

    func testAnswerCountsAsFlushedWhenTheTransportDoesNotReportFlushes() {
        let stream = play(view: base, autoFlush: false, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"]])), ["CDS#2 c1@2 c2@1"]),
        ])
        XCTAssertEqual(stream.proxyStatus(typeURL: CDS)?.flushed, false)
    }

    // MARK: Encoded once

    func testResponsesShareTheSnapshotBodiesInsteadOfCopying() {
        var stream = DiscoveryStream(configuration: ads, view: base)
        let actions = stream.handle(.request(DiscoveryRequest(node: testNode, typeURL: CDS)), at: WallClockTime(nanosecondsSinceEpoch: 1))
        guard case .send(let response)? = actions.first else { return XCTFail("no response: \(actions)") }
        let bodies = base.resources(typeURL: CDS)
        XCTAssertEqual(response.resources.count, 2)
        for resource in response.resources {
            let name = label(resource).split(separator: "@")[0]
            XCTAssertTrue(resource.value === bodies[String(name)]?.body, "\(name) was copied")
            XCTAssertEqual(resource.typeURL, CDS)
        }
    }

    // MARK: Stream binding and validation

    func testSingleTypeStreamServesOnlyItsType() {
        play(DiscoveryStream.Configuration(variant: .stateOfTheWorld, binding: .singleType(CDS)), view: base, [
            Step(.sotw(""), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(LDS), ["close INVALID_ARGUMENT: this stream serves \(CDS), not \(LDS)"]),
        ])
    }

    func testAggregatedStreamRequiresATypeURL() {
        play(view: base, [
            Step(.sotw(""), ["close INVALID_ARGUMENT: type_url is required on an aggregated stream"]),
        ])
    }

    func testReconnectingProxyWithTheCurrentVersionIsNotResent() {
        let stream = play(view: base, [
            Step(.sotw(CDS, version: base.contentVersion(typeURL: CDS)), []),
            Step(.sotw(LDS, version: "an-older-version"), ["LDS#1 l1@1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"], LDS: ["l1": "1"]])), ["CDS#2 c1@2 c2@1"]),
        ])
        XCTAssertEqual(stream.proxyStatus(typeURL: CDS)?.versionAcked, base.contentVersion(typeURL: CDS))
    }

    func testLimitsCloseTheStreamWithResourceExhausted() {
        let limited = DiscoveryStream.Configuration(variant: .stateOfTheWorld, binding: .aggregated,
                                                    limits: .init(maxTypes: 2, maxNamesPerType: 3))
        play(limited, view: base, [
            Step(.sotw(EDS, ["a", "b", "c", "d"]), ["close RESOURCE_EXHAUSTED: 4 resource names for EDS; the limit is 3"]),
        ])
        play(limited, view: base, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(LDS), ["LDS#2 l1@1"]),
            Step(.sotw(RDS, ["r1"]), ["close RESOURCE_EXHAUSTED: more than 2 resource types on one stream"]),
        ])
    }

    func testDeltaRequestOnAStateOfTheWorldStreamClosesIt() {
        play(view: base, [
            Step(.delta(CDS), ["close INTERNAL: a delta request reached a state-of-the-world stream"]),
        ])
    }

    func testControlPlaneIdentifierIsSentWhenConfigured() {
        var stream = DiscoveryStream(configuration: .init(variant: .stateOfTheWorld, binding: .aggregated, controlPlaneIdentifier: "meshctl-0"),
                                     view: base)
        let actions = stream.handle(.request(DiscoveryRequest(node: testNode, typeURL: CDS)), at: WallClockTime(nanosecondsSinceEpoch: 1))
        guard case .send(let response)? = actions.first else { return XCTFail("no response: \(actions)") }
        XCTAssertEqual(response.controlPlane, "meshctl-0")
    }
}
