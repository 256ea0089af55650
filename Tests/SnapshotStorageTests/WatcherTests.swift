// SnapshotWatcher: delivers each new live snapshot, refuses ones that do not load, keeps the previous.
import Foundation
import MeshFixtures
import MeshTestSupport
@testable import SnapshotStorage
import XCTest

final class WatcherTests: XCTestCase {
    typealias S = StoreTestSupport

    /// Collects watcher events for bounded waits (no timing assertions: waits only bound a hang).
    final class Events: @unchecked Sendable {
        private let condition = NSCondition()
        private var events: [SnapshotWatcher.Event] = []

        func add(_ e: SnapshotWatcher.Event) {
            condition.lock()
            events.append(e)
            condition.broadcast()
            condition.unlock()
        }

        /// Waits up to 10 s for an event matching `predicate`, returning it.
        func wait(_ predicate: (SnapshotWatcher.Event) -> Bool) -> SnapshotWatcher.Event? {
            let deadline = Date().addingTimeInterval(10)
            condition.lock()
            defer { condition.unlock() }
            while true {
                if let e = events.first(where: predicate) { return e }
                if !condition.wait(until: deadline) { return events.first(where: predicate) }
            }
        }

        /// Waits up to 10 s until `count` events match `predicate`.
        func wait(count: Int, _ predicate: (SnapshotWatcher.Event) -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(10)
            condition.lock()
            defer { condition.unlock() }
            while events.filter(predicate).count < count {
                if !condition.wait(until: deadline) { return events.filter(predicate).count >= count }
            }
            return true
        }

        var all: [SnapshotWatcher.Event] {
            condition.lock()
            defer { condition.unlock() }
            return events
        }
    }

    static func loaded(_ version: String) -> (SnapshotWatcher.Event) -> Bool {
        { if case .loaded(let s) = $0 { return s.metadata.version == version }; return false }
    }

    func testDeliversTheLiveSnapshotThenEachNewOne() throws {
        for pollMilliseconds in [50, 600_000] {
            // With a ten-minute poll, only inotify can deliver within the 10 s wait bound.
            let dir = TemporaryStore("watch")
            let store = dir.store()
            let a = S.snapshot([S.cluster("a", "1")])
            _ = try store.publish(a)
            let events = Events()
            let watcher = SnapshotWatcher(store: store, pollMilliseconds: pollMilliseconds) { events.add($0) }
            defer { watcher.stop() }
            XCTAssertNotNil(events.wait(Self.loaded(a.metadata.version)), "initial snapshot (poll \(pollMilliseconds) ms)")
            for body in ["2", "3"] {
                let next = S.snapshot([S.cluster("a", body)])
                _ = try store.publish(next)
                XCTAssertNotNil(events.wait(Self.loaded(next.metadata.version)), "after publish \(body) (poll \(pollMilliseconds) ms)")
                XCTAssertEqual(watcher.snapshot?.metadata.version, next.metadata.version)
            }
            let rolledBack = try store.rollback(to: a.metadata.version, reason: "test", author: "t")
            XCTAssertEqual(rolledBack, .rolledBack(from: S.snapshot([S.cluster("a", "3")]).metadata.version, to: a.metadata.version))
            XCTAssertTrue(events.wait(count: 2, Self.loaded(a.metadata.version)), "rollback delivered")
        }
    }

    func testAStoreThatAppearsLaterIsPickedUp() throws {
        let dir = TemporaryStore("watch-late", create: false)
        let store = dir.store()
        let events = Events()
        let watcher = SnapshotWatcher(store: store, pollMilliseconds: 20) { events.add($0) }
        defer { watcher.stop() }
        let a = S.snapshot([S.cluster("a", "1")])
        _ = try store.publish(a)
        XCTAssertNotNil(events.wait(Self.loaded(a.metadata.version)))
    }

    func testAVersionThatFailsToLoadIsRefusedAndThePreviousStays() throws {
        let dir = TemporaryStore("watch-bad")
        let store = dir.store()
        let a = S.snapshot([S.cluster("a", "1")])
        let b = S.snapshot([S.cluster("a", "2")])
        _ = try store.publish(b)
        _ = try store.publish(a)
        // b's cluster body is damaged while a is live, then `current` is pointed at b by hand
        // (rollback would refuse it).
        let bad = store.objectPath(b.groups["web"]!.resources[SyntheticSnapshot.clusterType]!["a"]!.hash)
        try Data("longer than the original".utf8).write(to: URL(fileURLWithPath: bad))

        let events = Events()
        let watcher = SnapshotWatcher(store: store, pollMilliseconds: 20, retryMilliseconds: 50) { events.add($0) }
        defer { watcher.stop() }
        XCTAssertNotNil(events.wait(Self.loaded(a.metadata.version)))
        S.write(b.metadata.version + "\n", to: dir.path + "/current.tmp")
        XCTAssertEqual(rename(dir.path + "/current.tmp", dir.path + "/current"), 0)
        let refused = events.wait { if case .refused(let v, _) = $0 { return v == b.metadata.version }; return false }
        guard case .refused(_, let error)? = refused else { return XCTFail("no refusal: \(events.all)") }
        guard case .objectCorrupt = error else { return XCTFail("\(error)") }
        XCTAssertEqual(watcher.snapshot?.metadata.version, a.metadata.version, "the previous snapshot stays")

        // Repairing the object (publishing b's content again) gets b delivered by the retry.
        try FileManager.default.removeItem(atPath: bad)
        XCTAssertTrue(store.verify().problems.allSatisfy { if case .store = $0 { return false }; return true })
        _ = try store.publish(b)
        XCTAssertNotNil(events.wait(Self.loaded(b.metadata.version)))
        XCTAssertEqual(events.all.filter { if case .refused = $0 { return true }; return false }.count, 1, "a refusal is reported once")
    }

    func testACurrentPointingAtAMissingVersionIsRefused() throws {
        let dir = TemporaryStore("watch-missing")
        let store = dir.store()
        let a = S.snapshot([S.cluster("a", "1")])
        _ = try store.publish(a)
        let events = Events()
        let watcher = SnapshotWatcher(store: store, pollMilliseconds: 20) { events.add($0) }
        defer { watcher.stop() }
        XCTAssertNotNil(events.wait(Self.loaded(a.metadata.version)))
        let ghost = String(repeating: "ab", count: 32)
        S.write(ghost + "\n", to: dir.path + "/current.tmp")
        XCTAssertEqual(rename(dir.path + "/current.tmp", dir.path + "/current"), 0)
        let refused = events.wait { if case .refused(let v, _) = $0 { return v == ghost }; return false }
        guard case .refused(_, .currentVersionMissing(let v))? = refused else { return XCTFail("\(events.all)") }
        XCTAssertEqual(v, ghost)
        XCTAssertEqual(watcher.snapshot?.metadata.version, a.metadata.version)
    }

    func testEventsAlsoArriveOnTheAsyncStream() async throws {
        let dir = TemporaryStore("watch-stream")
        let store = dir.store()
        let a = S.snapshot([S.cluster("a", "1")])
        _ = try store.publish(a)
        let watcher = SnapshotWatcher(store: store, pollMilliseconds: 20)
        var iterator = watcher.events.makeAsyncIterator()
        guard case .loaded(let first)? = await iterator.next() else { return XCTFail("no first event") }
        XCTAssertEqual(first.metadata.version, a.metadata.version)
        watcher.stop()
        while await iterator.next() != nil {}
        // The stream ends after stop(): reaching here is the assertion.
    }
}
