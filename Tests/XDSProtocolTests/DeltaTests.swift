// Incremental (delta) behaviour of DiscoveryStream, one test per protocol rule.
// Responses render as "Δ CDS#3 +a@1 -b ~c@1(ttl 30s)": added/changed bodies,
// removed names, and TTL heartbeats.
import XCTest
import XDSProtocol
import XDSWire

private func singleType(_ typeURL: String) -> DiscoveryStream.Configuration {
    DiscoveryStream.Configuration(variant: .delta, binding: .singleType(typeURL))
}

final class DeltaTests: XCTestCase {
    func testDeltaSubscriptionChangesApplyEvenWithAStaleNonce() {
        play(deltaADS, view: base, [
            Step(.delta(EDS, subscribe: ["c1"]), ["Δ EDS#1 +c1@1"]),
            // Not the latest nonce, yet the new subscription must not be lost; the answer waits for the ACK of #1.
            Step(.delta(EDS, subscribe: ["c2"], .nonce("0")), []),
            Step(.delta(EDS, .ack), ["ack EDS#1", "Δ EDS#2 +c2@1"]),
        ])
    }

    func testDeltaInitialResourceVersionsAreHonouredOnReconnect() {
        play(singleType(CDS), view: base, [
            // The proxy already holds c1@1 (current), c2@0 (outdated) and c3 (since deleted).
            Step(.delta(CDS, subscribe: ["*"], initial: ["c1": "1", "c2": "0", "c3": "1"]), ["Δ CDS#1 +c2@1 -c3"]),
        ])
        play(deltaADS, view: base, [
            Step(.delta(EDS, subscribe: ["c1", "c2"], initial: ["c1": "1"]), ["Δ EDS#1 +c2@1"]),
        ])
    }

    func testDeltaNonExistentSubscribedNamesAreReportedRemoved() {
        play(singleType(EDS), view: base, [
            Step(.delta(EDS, subscribe: ["c1", "c9"]), ["Δ EDS#1 +c1@1 -c9"]),
            Step(.delta(EDS, .ack), ["ack EDS#1"]),
            Step(.snapshot(snapshot("s2", [EDS: ["c1": "1", "c2": "1", "c9": "1"]])), ["Δ EDS#2 +c9@1"]),
        ])
    }

    func testDeltaResourceVersionsAreTheSnapshotContentHashes() {
        let stream = play(singleType(CDS), view: base, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "1", "c2": "9f3a"]])), ["Δ CDS#2 +c2@9f3a"]),
        ])
        XCTAssertEqual(stream.proxyStatus(typeURL: CDS)?.versionSent, "s2", "system_version_info is the snapshot version")
    }

    func testDeltaResourcesThatDisappearAreRemoved() {
        play(deltaADS, view: base, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "1"]])), ["Δ CDS#2 -c2"]),
        ])
    }

    func testDeltaEmptyFirstRequestIsWildcardOnlyBeforeAnyExplicitSubscription() {
        let grown = snapshot("s2", [CDS: ["c1": "1", "c2": "1", "c3": "1"]])
        play(deltaADS, view: base, [
            Step(.delta(CDS, subscribe: ["c1"]), ["Δ CDS#1 +c1@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.snapshot(grown), []),
        ])
        play(deltaADS, view: base, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.snapshot(grown), ["Δ CDS#2 +c3@1"]),
        ])
        play(deltaADS, view: base, [
            Step(.delta(EDS), []),
        ])
    }

    func testDeltaFirstWildcardRequestIsAnsweredEvenWhenEmpty() {
        play(deltaADS, view: snapshot("s1", [:]), [
            Step(.delta(CDS), ["Δ CDS#1"]),
        ])
        play(deltaADS, view: base, [
            Step(.delta(CDS, initial: ["c1": "1", "c2": "1"]), ["Δ CDS#1"]),
        ])
    }

    func testDeltaAggregatedSendsRemovalsAfterUpdatesListenersFirst() {
        play(deltaADS, view: base, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(LDS), ["Δ LDS#2 +l1@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.delta(LDS, .ack), ["ack LDS#2"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c2": "1", "c3": "1"], LDS: ["l2": "1"]])), ["Δ CDS#3 +c3@1", "Δ LDS#4 +l2@1"]),
            // Clusters are not removed while a listener that may still use them is there.
            Step(.delta(CDS, .ack), ["ack CDS#3"]),
            Step(.delta(LDS, .ack), ["ack LDS#4", "Δ LDS#5 -l1", "Δ CDS#6 -c1"]),
        ])
    }

    func testDeltaUnsubscribingANameUnderTheWildcardIsAnswered() {
        play(deltaADS, view: base, [
            Step(.delta(CDS, subscribe: ["*", "c1"]), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            // c1 is still covered by the wildcard: the proxy must hear so.
            Step(.delta(CDS, unsubscribe: ["c1"], .latest), ["Δ CDS#2 +c1@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#2"]),
            Step(.delta(CDS, subscribe: ["c9"], .latest), ["Δ CDS#3 -c9"]),
            Step(.delta(CDS, .ack), ["ack CDS#3"]),
            // c9 is not covered by the wildcard either.
            Step(.delta(CDS, unsubscribe: ["c9"], .latest), ["Δ CDS#4 -c9"]),
        ])
    }

    func testDeltaNackedVersionIsNeverRepushed() {
        let stream = play(deltaADS, view: base, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"]])), ["Δ CDS#2 +c1@2"]),
            Step(.delta(CDS, .nack("cluster c1: bad lb_policy")), ["nack CDS#2: cluster c1: bad lb_policy"]),
            Step(.snapshot(snapshot("s3", [CDS: ["c1": "2", "c2": "1"]])), []),
            Step(.snapshot(snapshot("s4", [CDS: ["c1": "3", "c2": "1"]])), ["Δ CDS#3 +c1@3"]),
        ])
        let status = stream.proxyStatus(typeURL: CDS)!
        XCTAssertEqual(status.lastNack?.rejectedVersion, "s2")
        XCTAssertEqual(status.versionAcked, "s1")
    }

    func testDeltaResubscribingIsAnsweredEvenIfUnchanged() {
        play(deltaADS, view: base, [
            Step(.delta(EDS, subscribe: ["c1"]), ["Δ EDS#1 +c1@1"]),
            Step(.delta(EDS, .ack), ["ack EDS#1"]),
            Step(.delta(EDS, subscribe: ["c1"]), ["Δ EDS#2 +c1@1"]),
        ])
    }

    func testDeltaEndpointsAreResentAfterAClusterChange() {
        play(deltaADS, view: base, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(EDS, subscribe: ["c1", "c2"]), ["Δ EDS#2 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.delta(EDS, .ack), ["ack EDS#2"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"], EDS: ["c1": "1", "c2": "1"]])),
                 ["Δ CDS#3 +c1@2", "Δ EDS#4 +c1@1"]),
        ])
    }

    func testDeltaResendsTheAssignmentAChangedClustersServiceNameNames() {
        // The assignment c1 warms with is "svc-a" (eds_cluster_config.service_name); a "c1" assignment is another's.
        let named = snapshot("s1", [CDS: ["c1": "1"], EDS: ["svc-a": "1", "c1": "1"]], serviceNames: ["c1": "svc-a"])
        play(deltaADS, view: named, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1"]),
            Step(.delta(EDS, subscribe: ["svc-a", "c1"]), ["Δ EDS#2 +c1@1 +svc-a@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.delta(EDS, .ack), ["ack EDS#2"]),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2"], EDS: ["svc-a": "1", "c1": "1"]], serviceNames: ["c1": "svc-a"])),
                 ["Δ CDS#3 +c1@2", "Δ EDS#4 +svc-a@1"]),
        ])
    }

    func testDeltaHeartbeatRefreshesTTLs() {
        let withTTL = snapshot("s1", [CDS: ["c1": "1", "c2": "1"]], ttl: ["c1": .seconds(30)])
        play(deltaADS, view: withTTL, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1(ttl 30s) +c2@1"]),
            Step(.heartbeat, []),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.heartbeat, ["Δ CDS#2 ~c1@1(ttl 30s)"]),
            Step(.delta(CDS, .ack), ["ack CDS#2"]),
        ])
        play(ads, view: withTTL, [
            Step(.sotw(CDS), ["CDS#1 c1@1 c2@1"]),
            Step(.sotw(CDS, [], .ack), ["ack CDS#1"]),
            Step(.heartbeat, []),
        ])
    }

    func testDeltaUnwritableStreamReceivesOnlyTheNewestVersion() {
        play(deltaADS, view: base, [
            Step(.delta(CDS), ["Δ CDS#1 +c1@1 +c2@1"]),
            Step(.delta(CDS, .ack), ["ack CDS#1"]),
            Step(.writable(false), []),
            Step(.snapshot(snapshot("s2", [CDS: ["c1": "2", "c2": "1"]])), []),
            Step(.snapshot(snapshot("s3", [CDS: ["c1": "3", "c2": "1"]])), []),
            Step(.writable(true), ["Δ CDS#2 +c1@3"]),
        ])
    }

    func testDeltaLimitsCloseTheStreamWithResourceExhausted() {
        let limited = DiscoveryStream.Configuration(variant: .delta, binding: .aggregated, limits: .init(maxTypes: 4, maxNamesPerType: 3))
        play(limited, view: base, [
            Step(.delta(EDS, subscribe: ["c1", "c2"]), ["Δ EDS#1 +c1@1 +c2@1"]),
            Step(.delta(EDS, subscribe: ["c3", "c4"]), ["close RESOURCE_EXHAUSTED: 4 resource names for EDS; the limit is 3"]),
        ])
    }

    func testStateOfTheWorldRequestOnADeltaStreamClosesIt() {
        play(deltaADS, view: base, [
            Step(.sotw(CDS), ["close INTERNAL: a state-of-the-world request reached a delta stream"]),
        ])
    }
}
