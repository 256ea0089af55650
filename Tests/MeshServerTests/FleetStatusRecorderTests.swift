// The fleet-status recorder's batching, without a database: however many stream events arrive, the writer is
// called at most once per flush interval with only the proxies that changed (and the ones that left); the first
// batch, and the one after a failed write, carry every proxy with `replaceAll`.
import ControlPlane
import Foundation
import Locking
import MeshModel
import ServerTelemetry
import XCTest
import XDSCache
import XDSProtocol

final class FleetStatusRecorderTests: XCTestCase {
    /// Stands in for a stream: only its identity is used.
    final class Stream {}

    struct Harness {
        let registry = ProxyRegistry()
        let batches = Locked<[FleetStatusRecorder.Batch]>([])
        let failNext = Locked(false)
        let recorder: FleetStatusRecorder
        var streams: [String: Stream] = [:]
        var statuses: [String: ProxyStreamStatus] = [:]

        init(flushInterval: Double) {
            let batches = self.batches, failNext = self.failNext
            recorder = FleetStatusRecorder(proxies: registry, hub: SnapshotHub(), flushInterval: flushInterval, heartbeatInterval: 3600,
                                           log: ServerLog(minimumLevel: .error)) { batch in
                if failNext.withLock({ value in defer { value = false }; return value }) {
                    struct Down: Error {}
                    throw Down()
                }
                batches.withLock { $0.append(batch) }
            }
        }

        func record(_ node: String) -> ProxyStreamRecord {
            ProxyStreamRecord(nodeID: node, group: "g", mode: .adsStateOfTheWorld, peer: "127.0.0.1:1", identity: nil, userAgent: "test",
                              connectedAt: Date(), types: [])
        }

        mutating func open(_ node: String) {
            let stream = Stream()
            streams[node] = stream
            let status = ProxyStreamStatus(record(node))
            statuses[node] = status
            registry.open(ObjectIdentifier(stream), status)
            recorder.streamOpened(ObjectIdentifier(stream), status: status, description: "ads", snapshotVersion: "v")
        }

        func change(_ node: String) {
            statuses[node]!.update(ProxyStatus(typeURL: TypeURL.cluster), sentAt: nil, ackedAt: nil)
            recorder.statusChanged(ObjectIdentifier(streams[node]!))
        }

        mutating func close(_ node: String) {
            let stream = streams.removeValue(forKey: node)!
            statuses[node] = nil
            registry.close(ObjectIdentifier(stream))
            recorder.streamClosed(ObjectIdentifier(stream), mode: .adsStateOfTheWorld)
        }

        var count: Int { batches.withLock { $0.count } }
        var last: FleetStatusRecorder.Batch? { batches.withLock { $0.last } }

        func waitForBatch(after count: Int) {
            let deadline = Date().addingTimeInterval(10)
            while self.count <= count && Date() < deadline { usleep(10_000) }
        }
    }

    func testOneBatchPerIntervalWithOnlyTheProxiesThatChanged() {
        var h = Harness(flushInterval: 0.2)
        for n in 0..<500 { h.open("p\(n)") }
        h.recorder.start()
        defer { h.recorder.stop() }
        h.waitForBatch(after: 0)
        let first = h.last!
        XCTAssertTrue(first.replaceAll, "the first write replaces whatever the table held for this replica")
        XCTAssertEqual(first.upserts.count, 500)

        // 10,000 status events on 10 proxies within one interval or two: the writer sees those 10 proxies, not 10,000 rows.
        let before = h.count
        let started = Date()
        while Date().timeIntervalSince(started) < 1 {
            for n in 0..<10 { for _ in 0..<100 { h.change("p\(n)") } }
            usleep(100_000)
        }
        h.recorder.stop()
        XCTAssertTrue(h.recorder.waitUntilEnded(seconds: 5))
        let during = h.batches.withLock { Array($0[before...]) }
        XCTAssertLessThanOrEqual(during.count, 8, "at most one write per 0.2 s interval over ~1 s (plus the last): \(during.count)")
        XCTAssertGreaterThanOrEqual(during.count, 3)
        for batch in during {
            XCTAssertFalse(batch.replaceAll)
            XCTAssertLessThanOrEqual(batch.upserts.count, 10)
            XCTAssertTrue(batch.upserts.allSatisfy { Int($0.nodeID.dropFirst())! < 10 })
        }
    }

    func testProxiesThatLeaveAreRemovedAndAFailedWriteIsFollowedByAFullOne() {
        var h = Harness(flushInterval: 0.1)
        for n in 0..<20 { h.open("p\(n)") }
        h.recorder.start()
        defer { h.recorder.stop() }
        h.waitForBatch(after: 0)

        var count = h.count
        h.close("p3")
        h.close("p4")
        h.waitForBatch(after: count)
        XCTAssertEqual(Set(h.last!.removed.map(\.nodeID)), ["p3", "p4"])
        XCTAssertEqual(h.last!.upserts.count, 0)

        // The database is down for one write: the next one carries all 18 proxies and replaces the replica's rows.
        count = h.count
        h.failNext.withLock { $0 = true }
        h.change("p7")
        h.waitForBatch(after: count)
        XCTAssertTrue(h.last!.replaceAll)
        XCTAssertEqual(h.last!.upserts.count, 18)
    }
}
