// A replica that is behind never sends a proxy older configuration than the proxy reports having: a
// reconnecting proxy whose version_info this replica does not serve is answered only once the replica has read
// the store's live version (and loaded it), and is held while the store cannot be read.
import ControlPlane
import Foundation
import MeshCertificates
import Locking
import MeshTestSupport
import ServerTelemetry
import SnapshotStorage
import Transport
import XCTest
import XDSCache
import XDSProtocol
import XDSWire

/// A store whose follower is never woken by a change (no inotify, a minute between polls), so the replica stays
/// behind a publish until something asks it to look; and which can be made unreadable, like a database that is down.
final class QuietStore: SnapshotStoring, @unchecked Sendable {
    // @unchecked Sendable: `failing` and `gate` are only touched under `lock`; `base` is a Sendable value.
    let base: SnapshotStore
    private let lock = NSLock()
    private var failing = false
    private var gate: DispatchSemaphore?

    init(_ base: SnapshotStore) { self.base = base }

    func setFailing(_ value: Bool) { lock.withLock { failing = value } }

    /// Until `openGate()`, reads of the live pointer wait (a slow first read, like a database that answers late).
    func closeGate() { lock.withLock { gate = DispatchSemaphore(value: 0) } }

    func openGate() {
        let opened = lock.withLock { () -> DispatchSemaphore? in
            defer { gate = nil }
            return gate
        }
        opened?.signal()
    }

    private func check() throws(SnapshotStoreError) {
        if lock.withLock({ failing }) { throw .unreachable(location: "quiet", detail: "made unreachable by the test") }
    }

    private func passGate() {
        guard let gate = lock.withLock({ self.gate }) else { return }
        gate.wait()
        gate.signal()
    }

    var location: String { base.location }
    var followPollMilliseconds: Int { 60_000 }
    func publish(_ snapshot: Snapshot) throws(SnapshotStoreError) -> PublishOutcome { try base.publish(snapshot) }
    func currentVersion() throws(SnapshotStoreError) -> String? { passGate(); try check(); return try base.currentVersion() }
    func current() throws(SnapshotStoreError) -> Snapshot? { try check(); return try base.current() }
    func load(version: String, check level: LoadCheck) throws(SnapshotStoreError) -> Snapshot { try check(); return try base.load(version: version, check: level) }
    func resolve(_ reference: String) throws(SnapshotStoreError) -> String { try base.resolve(reference) }
    func list() throws(SnapshotStoreError) -> [VersionSummary] { try base.list() }
    func history() throws(SnapshotStoreError) -> [HistoryEvent] { try base.history() }
    func rollback(to reference: String, reason: String?, author: String?) throws(SnapshotStoreError) -> RollbackOutcome {
        try base.rollback(to: reference, reason: reason, author: author)
    }
    func gc(keep: Int) throws(SnapshotStoreError) -> GCReport { try base.gc(keep: keep) }
    func verify() -> VerifyReport { base.verify() }
    func makeChangeSignal() -> any StoreChangeSignal { TimedSignal() }
}

/// Wakes only on `wake()` or the timeout.
final class TimedSignal: StoreChangeSignal, @unchecked Sendable {
    // @unchecked Sendable: `woken` is only touched under `condition`.
    private let condition = NSCondition()
    private var woken = false

    func wait(milliseconds: Int) {
        condition.lock()
        let deadline = Date().addingTimeInterval(Double(milliseconds) / 1000)
        while !woken && condition.wait(until: deadline) {}
        woken = false
        condition.unlock()
    }

    func wake() {
        condition.lock()
        woken = true
        condition.signal()
        condition.unlock()
    }
}

/// An in-process mTLS server on `store` with the development certificates under `certs` (one loop, short drain).
func startQuietServer(store: QuietStore, certs: String, log: ServerLog = ServerLog(minimumLevel: .error),
                      startupWaitReportInterval: Duration = .seconds(5)) throws -> XDSServer {
    var options = XDSServerOptions()
    options.port = 0
    options.eventLoops = 1
    options.drainGrace = .milliseconds(200)
    options.startupWaitReportInterval = startupWaitReportInterval
    options.tls = TLSServerCredentials(certificateChainFile: certs + "/server.crt", privateKeyFile: certs + "/server.key", clientCAFile: certs + "/ca.crt")
    let server = try XDSServer(options: options, store: store, log: log)
    try server.start()
    return server
}

/// Proxy f-1 of group frontend opens an ADS stream to `server` and sends its first CDS request, claiming `version`.
func openFrontendStream(to server: XDSServer, certs: String, claiming version: String = "", on loop: EventLoop) throws -> RecordingCall {
    let credentials = TLSClientCredentials(certificateChainFile: certs + "/frontend.crt", privateKeyFile: certs + "/frontend.key",
                                           trustedCAFile: certs + "/ca.crt", serverName: "localhost")
    let client = try GRPCClient(configuration: GRPCClientConfiguration(host: "127.0.0.1", port: server.boundPort, security: .tls(credentials)))
    let recording = RecordingCall()
    let connection = try client.connect(on: loop, delegate: recording)
    let request = DiscoveryRequest(versionInfo: version, node: Node(id: "f-1", cluster: "frontend"), typeURL: VersionMonotonicityTests.clusterType).serialized()
    loop.execute {
        guard let stream = connection.openStream(path: ServicePath.aggregated, handler: recording) else { return }
        _ = stream.send(request)
    }
    return recording
}

final class VersionMonotonicityTests: XCTestCase {
    var directory = ""
    var server: XDSServer!
    var store: QuietStore!
    let loops = EventLoopGroup(loopCount: 1)
    static let clusterType = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["frontend"])
        try publish(clusters: ["backend": 19001])
        store = QuietStore(SnapshotStore(directory: directory + "/store"))
        server = try startQuietServer(store: store, certs: directory + "/certs")
        E2E.waitUntil(10, "the first snapshot served") { self.server.hub.current != nil }
    }

    override func tearDown() {
        InProcessServer.stop(server)
        loops.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func publish(clusters: [String: Int]) throws {
        try E2E.publish([E2E.group("frontend", listenerPort: 10001, routeTo: "backend", clusters: clusters,
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
    }

    /// The CDS version_info a proxy holding the store's live snapshot reports.
    func liveClusterVersion() throws -> String {
        let live = try XCTUnwrap(try SnapshotStore(directory: directory + "/store").current())
        return try XCTUnwrap(ServedSnapshot(live).groups["frontend"]).contentVersion(typeURL: Self.clusterType)
    }

    func reconnect(claiming version: String) throws -> RecordingCall {
        try openFrontendStream(to: server, certs: directory + "/certs", claiming: version, on: loops.next())
    }

    func testAProxyAheadOfTheReplicaIsSentTheNewerSnapshotNotTheOlderOne() throws {
        let v1 = try XCTUnwrap(server.hub.current?.version)
        // Another replica has served this publish; this one has not noticed it (nothing wakes it for a minute).
        try publish(clusters: ["backend": 19001, "extra": 19003])
        let v2Clusters = try liveClusterVersion()
        let v2 = try XCTUnwrap(try store.base.currentVersion())
        XCTAssertNotEqual(v1, v2)
        XCTAssertEqual(server.hub.current?.version, v1, "the replica is behind")
        let recording = try reconnect(claiming: v2Clusters)
        // Without the check the replica would answer at once with v1's clusters; instead it fetches v2 (well
        // before its next poll, a minute away), and a proxy that already has v2 needs no answer at all.
        E2E.waitUntil(10, "the replica fetched the newer snapshot") { self.server.hub.current?.version == v2 }
        XCTAssertNil(recording.firstMessage(timeout: 1), "nothing older was sent")
        XCTAssertEqual(server.hub.heldForFreshness, 0)
        // The stream is live: the next publish reaches the proxy.
        try publish(clusters: ["backend": 19001, "extra": 19003, "third": 19004])
        server.hub.requestRefresh()
        let response = try DiscoveryResponse(serialized: try XCTUnwrap(recording.firstMessage(timeout: 10), "the next publish"))
        XCTAssertEqual(response.versionInfo, try liveClusterVersion())
        XCTAssertEqual(response.resources.count, 3)
    }

    func testWhileTheStoreCannotBeReadAProxyAheadIsHeldThenAnswered() throws {
        try publish(clusters: ["backend": 19001, "extra": 19003])
        let v2Clusters = try liveClusterVersion()
        store.setFailing(true)
        let recording = try reconnect(claiming: v2Clusters)
        XCTAssertNil(recording.firstMessage(timeout: 1.5), "held: this replica cannot tell whether it is behind")
        E2E.waitUntil(5, "the stream is counted as held") { self.server.hub.heldForFreshness == 1 }
        store.setFailing(false)
        // The store follower reads again at its next poll (a minute here): ask now.
        server.hub.requestRefresh()
        let v2 = try XCTUnwrap(try store.base.currentVersion())
        E2E.waitUntil(10, "the replica caught up and released the stream") { self.server.hub.current?.version == v2 && self.server.hub.heldForFreshness == 0 }
        XCTAssertNil(recording.firstMessage(timeout: 1), "the proxy already has v2: nothing older, nothing at all")
    }

    func testAProxyReportingTheServedVersionIsAnsweredAtOnce() throws {
        let served = try XCTUnwrap(server.hub.current?.groups["frontend"]).contentVersion(typeURL: Self.clusterType)
        store.setFailing(true)
        // Nothing to check: the proxy has exactly what this replica serves (even with the store unreadable).
        let recording = try reconnect(claiming: served)
        Thread.sleep(forTimeInterval: 1)
        XCTAssertEqual(server.hub.heldForFreshness, 0, "not held")
        XCTAssertNil(recording.status(timeout: 0.1), "the stream stays open")
    }
}

/// `serve` listens before its first read of the store has finished (a database may take seconds to answer). A proxy
/// connecting in that window is answered once the read settles, never refused because nothing is loaded *yet*.
final class StartupWindowTests: XCTestCase {
    var directory = ""
    var server: XDSServer!
    var store: QuietStore!
    let loops = EventLoopGroup(loopCount: 1)

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        _ = try DevelopmentCertificates.write(to: directory + "/certs", trustDomain: "mesh.local", proxies: ["frontend"])
        store = QuietStore(SnapshotStore(directory: directory + "/store"))
    }

    override func tearDown() {
        store.openGate()
        if let server { InProcessServer.stop(server) }
        loops.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }

    func startServer() throws {
        server = try startQuietServer(store: store, certs: directory + "/certs")
    }

    func connect() throws -> RecordingCall {
        try openFrontendStream(to: server, certs: directory + "/certs", on: loops.next())
    }

    func testAProxyConnectingBeforeTheFirstReadIsServedOnceTheSnapshotIsLoaded() throws {
        try E2E.publish([E2E.group("frontend", listenerPort: 10001, routeTo: "backend", clusters: ["backend": 19001],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
        store.closeGate()
        try startServer()
        XCTAssertNil(server.hub.current, "the first read has not finished")
        let recording = try connect()
        XCTAssertNil(recording.status(timeout: 1), "not refused while the first read is under way")
        XCTAssertNil(recording.firstMessage(timeout: 0.1))
        store.openGate()
        let response = try DiscoveryResponse(serialized: try XCTUnwrap(recording.firstMessage(timeout: 10), "answered once the snapshot is loaded"))
        XCTAssertEqual(response.resources.count, 1)
        XCTAssertNil(recording.status(timeout: 0.1), "the stream stays open")
    }

    func testProxiesWaitingLongAtStartUpAreReportedWithWhyUntilServed() throws {
        try E2E.publish([E2E.group("frontend", listenerPort: 10001, routeTo: "backend", clusters: ["backend": 19001],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
        store.closeGate()
        let lines = Locked<[String]>([])
        let log = ServerLog(format: .text, minimumLevel: .warning, write: { line in lines.withLock { $0.append(line) } })
        server = try startQuietServer(store: store, certs: directory + "/certs", log: log, startupWaitReportInterval: .milliseconds(200))
        Thread.sleep(forTimeInterval: 0.5)
        XCTAssertFalse(lines.withLock { $0 }.contains { $0.contains("startup.streams-waiting") }, "nothing to report while no proxy waits")
        let recording = try connect()
        E2E.waitUntil(10, "the waiting proxy reported") { lines.withLock { $0 }.contains { $0.contains("startup.streams-waiting") } }
        let report = try XCTUnwrap(lines.withLock { $0 }.first { $0.contains("startup.streams-waiting") })
        XCTAssertTrue(report.contains("streams=1"), report)
        XCTAssertTrue(report.contains("first read of the store has not finished"), report)
        store.openGate()
        XCTAssertNotNil(recording.firstMessage(timeout: 10), "answered once the snapshot is loaded")
        let reports = lines.withLock { $0 }.count { $0.contains("startup.streams-waiting") }
        Thread.sleep(forTimeInterval: 0.6)
        XCTAssertEqual(lines.withLock { $0 }.count { $0.contains("startup.streams-waiting") }, reports, "no more reports once serving")
    }

    func testAReplicaHoldingTheLiveSnapshotKeepsStreamsWaitingUntilItServes() throws {
        try E2E.publish([E2E.group("frontend", listenerPort: 10001, routeTo: "backend", clusters: ["backend": 19001],
                                   identities: ["spiffe://mesh.local/proxy/frontend"])], to: directory + "/store")
        // A follower that loaded the live version but holds it until the leader's plan is known serves nothing.
        let hub = SnapshotHub()
        let loaded = Locked<Snapshot?>(nil)
        let feed = SnapshotFeed(store: store, hub: hub, serve: { snapshot in loaded.withLock { $0 = snapshot }; return 0 }) { _ in }
        defer { feed.stop() }
        E2E.waitUntil(10, "the first read") { loaded.withLock { $0 } != nil }
        let released = Locked(false)
        hub.whenStarted(on: loops.next()) { released.withLock { $0 = true } }
        Thread.sleep(forTimeInterval: 0.3)
        XCTAssertTrue(hub.isStartingUp, "loaded but not served: streams wait")
        XCTAssertFalse(released.withLock { $0 })
        hub.serve(try XCTUnwrap(loaded.withLock { $0 }))
        E2E.waitUntil(5, "the waiting stream released once the replica serves") { released.withLock { $0 } }
        XCTAssertFalse(hub.isStartingUp)
    }

    func testAProxyConnectingToAnEmptyStoreIsToldWhyOnceTheFirstReadFindsNothing() throws {
        store.closeGate()
        try startServer()
        let recording = try connect()
        XCTAssertNil(recording.status(timeout: 1), "no verdict before the store was read")
        store.openGate()
        let status = try XCTUnwrap(recording.status(timeout: 10), "refused once the store was read")
        XCTAssertEqual(status.code, .unavailable)
        XCTAssertTrue(status.message.contains("publish one with meshctl compile"), status.message)
    }
}
