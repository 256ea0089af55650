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
            let status = ProxyStreamStatus(record)
            controller.streamOpened(ObjectIdentifier(stream), status: status, description: "ads", snapshotVersion: "v")
            for typeURL in [TypeURL.cluster, TypeURL.endpoint] {
                status.update(ProxyStatus(typeURL: typeURL), sentAt: nil, ackedAt: nil)
                controller.statusChanged(ObjectIdentifier(stream))
            }
        }
        // The events are still recorded: the fleet view a rollout would start from counts every stream.
        XCTAssertEqual(controller.lock.withLock { controller.local.count }, streams.count)
        XCTAssertEqual(controller.lock.withLock { controller.evaluationsQueued }, 0, "no rollout machine: nothing to feed")
        for stream in streams { controller.streamClosed(ObjectIdentifier(stream), mode: .adsStateOfTheWorld) }
        XCTAssertEqual(controller.lock.withLock { controller.local.count }, 0)
        XCTAssertEqual(controller.lock.withLock { controller.evaluationsQueued }, 0)
    }

    /// The controller reads a stream's status where the stream keeps it: what it reports is the stream's latest, for
    /// every type, with a rejection's message, and a closed stream is gone from it.
    func testTheReportReadsEachStreamsLatestStatus() throws {
        let directory = try TestPaths.temporaryDirectory("meshctl-rollout-report")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let controller = RolloutController(hub: SnapshotHub(), store: SnapshotStore(directory: directory, createIfMissing: true),
                                           log: ServerLog(minimumLevel: .error), metrics: ServerMetrics())
        let stream = Stream()
        let status = ProxyStreamStatus(ProxyStreamRecord(nodeID: "n1", group: "g", mode: .adsStateOfTheWorld, peer: "127.0.0.1:1",
                                                         identity: nil, userAgent: "test", connectedAt: Date(), types: []))
        controller.streamOpened(ObjectIdentifier(stream), status: status, description: "ads", snapshotVersion: "v1")
        status.update(.example(TypeURL.cluster, .synced, snapshot: "v1"), sentAt: nil, ackedAt: nil)
        status.update(.example(TypeURL.endpoint, .stale, snapshot: "v1"), sentAt: nil, ackedAt: nil)
        controller.statusChanged(ObjectIdentifier(stream))
        status.update(.example(TypeURL.cluster, .nacked, snapshot: "v2", nack: "bad cluster"), sentAt: nil, ackedAt: nil)
        controller.statusChanged(ObjectIdentifier(stream))

        let report = controller.lock.withLock { controller.localReport() }
        XCTAssertEqual(report.proxies.count, 1)
        let types = try XCTUnwrap(report.proxies.first?.types)
        XCTAssertEqual(types[TypeURL.cluster]?.sync, .rejected)
        XCTAssertEqual(types[TypeURL.cluster]?.sentVersion, "v2")
        XCTAssertEqual(types[TypeURL.cluster]?.rejection, "bad cluster")
        XCTAssertEqual(types[TypeURL.endpoint]?.sync, .pending)
        controller.streamClosed(ObjectIdentifier(stream), mode: .adsStateOfTheWorld)
        XCTAssertTrue(controller.lock.withLock { controller.localReport() }.proxies.isEmpty)
    }
}
