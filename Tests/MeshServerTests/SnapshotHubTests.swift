// The hub hands a new snapshot to streams in chunks per loop; whatever the timing, every
// stream ends on the newest view and never receives an older view after a newer one.
import Locking
import MeshServer
@testable import XDSCache
import SnapshotStorage
import Transport
import XCTest
import XDSProtocol

final class SnapshotHubTests: XCTestCase {
    /// A stream stand-in recording the snapshot versions it was handed, on its loop.
    final class RecordingSubscriber: SnapshotSubscriber, @unchecked Sendable {
        let eventLoop: EventLoop
        private let lock = NSLock()
        private var versions: [String] = []

        init(eventLoop: EventLoop) { self.eventLoop = eventLoop }

        var executor: any SubscriberExecutor { eventLoop }

        func snapshotChanged(to view: GroupView) { lock.withLock { versions.append(view.version) } }

        var received: [String] { lock.withLock { versions } }
    }

    func snapshot(_ body: String) throws -> Snapshot {
        try Snapshot.make(groups: [ProxyGroupResources(group: "web", resources: [
            Resource(typeURL: TypeURL.cluster, name: "a", body: Array(body.utf8)),
        ])], compilerVersion: "test")
    }

    func testEveryStreamEndsOnTheNewestViewAndNeverGoesBack() throws {
        let group = EventLoopGroup(loopCount: 2)
        defer { group.shutdown() }
        let hub = SnapshotHub()
        let versions = try (0..<6).map { try snapshot("v\($0)") }
        hub.serve(versions[0])
        // More streams than one hand-off chunk on each loop, so later chunks are still queued when newer snapshots arrive.
        let subscribers = (0..<(SnapshotHub.handOffChunk * 6)).map { RecordingSubscriber(eventLoop: group.loops[$0 % 2]) }
        for subscriber in subscribers { hub.subscribe(subscriber, group: "web") }
        for snapshot in versions.dropFirst() { XCTAssertEqual(hub.serve(snapshot), subscribers.count) }

        let order = versions.map(\.metadata.version)
        let newest = order.last!
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !subscribers.allSatisfy({ $0.received.last == newest }) { usleep(10_000) }
        for (i, subscriber) in subscribers.enumerated() {
            let received = subscriber.received
            XCTAssertEqual(received.last, newest, "stream \(i) ends on the newest snapshot")
            let positions = received.map { order.firstIndex(of: $0)! }
            XCTAssertEqual(positions, positions.sorted(), "stream \(i) never goes back to an older snapshot: \(positions)")
        }
        withExtendedLifetime(subscribers) {}
    }

    func testStreamsOfUnchangedGroupsAreNotWoken() throws {
        let group = EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let hub = SnapshotHub()
        let first = try snapshot("same")
        hub.serve(first)
        let subscriber = RecordingSubscriber(eventLoop: group.loops[0])
        hub.subscribe(subscriber, group: "web")
        // Same content, different snapshot metadata: the group's view did not change.
        let again = try Snapshot.make(groups: [ProxyGroupResources(group: "web", resources: [
            Resource(typeURL: TypeURL.cluster, name: "a", body: Array("same".utf8)),
        ]), ProxyGroupResources(group: "other", resources: [])], compilerVersion: "test")
        XCTAssertEqual(hub.serve(again), 0)
        usleep(100_000)
        XCTAssertEqual(subscriber.received, [])
    }

    /// During a rollout each stream is served its proxy's version; moving the decision (a wave starting, a rollback)
    /// wakes exactly the streams whose view changes, and a stream subscribing after a change still gets it.
    func testARolloutServesTwoVersionsSideBySideAndWakesOnlyStreamsWhoseViewChanges() throws {
        let loops = EventLoopGroup(loopCount: 1)
        defer { loops.shutdown() }
        let hub = SnapshotHub()
        let old = try snapshot("old"), new = try snapshot("new")
        hub.serve(old)
        let canary = RecordingSubscriber(eventLoop: loops.loops[0]), other = RecordingSubscriber(eventLoop: loops.loops[0])
        hub.subscribe(canary, group: "web", nodeID: "canary", startedWith: hub.view(group: "web", nodeID: "canary"))
        hub.subscribe(other, group: "web", nodeID: "other", startedWith: hub.view(group: "web", nodeID: "other"))
        let admitted = Locked<Set<String>>(["canary"])
        let serving = RolloutServing(previous: ServedSnapshot(old)) { _, node in admitted.withLock { $0.contains(node) } }
        // Each step waits for its hand-off: a hand-off delivers the view current when it runs.
        func settle(_ counts: [(RecordingSubscriber, Int)]) {
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline && !counts.allSatisfy({ $0.0.received.count >= $0.1 }) { usleep(5_000) }
        }
        XCTAssertEqual(hub.serve(new, rollout: serving), 1, "only the canary's view changes")
        settle([(canary, 1)])
        XCTAssertEqual(hub.view(group: "web", nodeID: "other")?.version, old.metadata.version)
        XCTAssertEqual(hub.view(group: "web", nodeID: "canary")?.version, new.metadata.version)
        XCTAssertEqual(hub.heldBack?.version, old.metadata.version)

        admitted.withLock { $0.insert("other") }
        XCTAssertEqual(hub.redeliver(), 1, "the next wave: only the other stream")
        settle([(other, 1)])
        admitted.withLock { $0 = [] }
        XCTAssertEqual(hub.redeliver(), 2, "a rollback: both go back")
        settle([(canary, 2), (other, 2)])
        XCTAssertEqual(hub.updateRollout(nil), 2, "the rollout ends with the new version everywhere")
        settle([(canary, 3), (other, 3)])
        let o = old.metadata.version, n = new.metadata.version
        XCTAssertEqual(canary.received, [n, o, n])
        XCTAssertEqual(other.received, [n, o, n])
        let deadline = Date().addingTimeInterval(5)

        // A stream that took its first view just before the change is handed the change at once.
        let late = RecordingSubscriber(eventLoop: loops.loops[0])
        hub.subscribe(late, group: "web", nodeID: "late", startedWith: GroupView(version: o, resources: [:]))
        while Date() < deadline && late.received.isEmpty { usleep(10_000) }
        XCTAssertEqual(late.received, [n])
        withExtendedLifetime([canary, other, late]) {}
    }
}
