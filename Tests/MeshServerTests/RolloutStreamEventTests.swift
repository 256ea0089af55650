// Stream events reach the rollout controller from every event loop (an ACK is a status change); between rollouts
// nothing on its queue needs them, so they must not each cost a hop to a Dispatch thread.
@testable import ControlPlane
import Foundation
import MeshTestSupport
import ServerTelemetry
import SnapshotStorage
import XCTest
import XDSCache
import XDSProtocol

final class RolloutStreamEventTests: XCTestCase {
    final class Stream {}

    func testStreamEventsBetweenRolloutsQueueNoWork() throws {
        let directory = try TestPaths.temporaryDirectory("meshctl-rollout-events")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let controller = RolloutController(hub: SnapshotHub(), store: SnapshotStore(directory: directory, createIfMissing: true),
                                           log: ServerLog(minimumLevel: .error), metrics: ServerMetrics())
        let streams = (0..<50).map { _ in Stream() }
        for (i, stream) in streams.enumerated() {
            let record = ProxyStreamRecord(nodeID: "n\(i)", group: "g", mode: .adsStateOfTheWorld, peer: "127.0.0.1:1", identity: nil,
                                           userAgent: "test", connectedAt: Date(), types: [])
            controller.streamOpened(ObjectIdentifier(stream), record: record, description: "ads", snapshotVersion: "v")
            for typeURL in [TypeURL.cluster, TypeURL.endpoint] {
                controller.statusChanged(ObjectIdentifier(stream), status: ProxyTypeStatus(ProxyStatus(typeURL: typeURL), sentAt: nil, ackedAt: nil))
            }
        }
        // The events are still recorded: the fleet view a rollout would start from counts every stream.
        XCTAssertEqual(controller.lock.withLock { controller.local.count }, streams.count)
        XCTAssertEqual(controller.lock.withLock { controller.evaluationsQueued }, 0, "no rollout machine: nothing to feed")
        for stream in streams { controller.streamClosed(ObjectIdentifier(stream), mode: .adsStateOfTheWorld) }
        XCTAssertEqual(controller.lock.withLock { controller.local.count }, 0)
        XCTAssertEqual(controller.lock.withLock { controller.evaluationsQueued }, 0)
    }
}
