// Stream events reach the rollout controller from every event loop (an ACK is a status change). During a fan-out
// they arrive by the thousand; each must not cost its own hop to a Dispatch thread, and none may be lost.
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

    func testAFanOutsStreamEventsAreEvaluatedInBatches() throws {
        let directory = try TestPaths.temporaryDirectory("meshctl-rollout-events")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let controller = RolloutController(hub: SnapshotHub(), store: try SnapshotStore(directory: directory, createIfMissing: true),
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
        // 150 events within a few milliseconds: a handful of evaluations, not one each.
        XCTAssertLessThanOrEqual(controller.lock.withLock { controller.evaluationsQueued }, 5)
        XCTAssertEqual(controller.lock.withLock { controller.local.count }, streams.count, "every stream is recorded")
        E2E.waitUntil(5, "the batch evaluated") { !controller.lock.withLock { controller.evaluateQueued } }
        for stream in streams { controller.streamClosed(ObjectIdentifier(stream), mode: .adsStateOfTheWorld) }
        XCTAssertEqual(controller.lock.withLock { controller.local.count }, 0)
        E2E.waitUntil(5, "the closes evaluated") { !controller.lock.withLock { controller.evaluateQueued } }
        XCTAssertLessThanOrEqual(controller.lock.withLock { controller.evaluationsQueued }, 10)
    }
}
