// SIGTERM and SIGINT drain the *release* `meshctl serve` as an orchestrator runs it: started with an empty signal
// mask (like systemd or a container runtime), idle or with 1,000 and 5,000 simulated proxies (release
// `meshctl loadgen`). Every stream must end with UNAVAILABLE, and the process must exit 0 within the drain time
// plus a small bound. `make test` builds the release binary; timing-dependent behaviour is only real there.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class ReleaseSignalTests: XCTestCase {
    /// Drain grace given to serve, and what may come on top of it: the transport's close linger (2 s) for
    /// connections whose peer does not close first, plus process teardown.
    static let drainSeconds = 1.0
    static let exitBound = 4.0

    static var releaseBinary: String? {
        let configured = ProcessInfo.processInfo.environment["MESHCTL_RELEASE_BINARY"].flatMap { $0.isEmpty ? nil : $0 }
        let path = configured ?? E2E.root.appendingPathComponent(".build/release/meshctl").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    private var directory = ""

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        try E2E.publishFrontendMesh(in: directory)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func testIdleServeDrainsOnSIGTERM() throws { try drain(signal: SIGTERM, proxies: 0) }
    func testIdleServeDrainsOnSIGINT() throws { try drain(signal: SIGINT, proxies: 0) }
    func testServeWith1000ProxiesDrainsOnSIGTERM() throws { try drain(signal: SIGTERM, proxies: 1000) }
    func testServeWith1000ProxiesDrainsOnSIGINT() throws { try drain(signal: SIGINT, proxies: 1000) }
    func testServeWith5000ProxiesDrainsOnSIGTERM() throws { try drain(signal: SIGTERM, proxies: 5000) }

    /// An operator who does not want to wait for the drain sends the signal again: the process exits at once (1).
    func testSecondSignalExitsWithoutWaitingForTheDrain() throws {
        guard let (meshctl, server, port) = try startReleaseServe(drainSeconds: 60) else { return }
        defer { server.kill9() }
        let loadgen = try startLoadgen(meshctl, port: port, proxies: 10, duration: 120, json: nil)
        defer { loadgen.kill9() }
        E2E.waitUntil(30, "10 proxies configured") { FileManager.default.fileExists(atPath: self.directory + "/ready") }
        kill(server.pid, SIGTERM)
        E2E.waitUntil(10, "the drain to start") { server.output.contains("server.draining") }
        XCTAssertFalse(server.waitForExit(seconds: 1), "a 60 s drain with open streams is still running")
        kill(server.pid, SIGINT)
        XCTAssertTrue(server.waitForExit(seconds: 5), "the second signal ends the process at once")
        XCTAssertEqual(server.exitStatus, 1)
        XCTAssertTrue(server.output.contains("signal.again"), server.output)
    }

    /// Starts release serve, connects `proxies` simulated proxies, sends `signal`, and checks the drain.
    private func drain(signal: Int32, proxies: Int) throws {
        guard let (meshctl, server, port) = try startReleaseServe(drainSeconds: Int(Self.drainSeconds)) else { return }
        defer { server.kill9() }
        XCTAssertEqual(server.blockedSignals(thread: nil) & Self.mask([SIGTERM, SIGINT]), Self.mask([SIGTERM, SIGINT]),
                       "serve's main thread blocks the termination signals itself (it was started with none blocked)")

        var loadgen: SignalFreeChild?
        let report = directory + "/loadgen.json"
        let ready = directory + "/ready"
        if proxies > 0 {
            loadgen = try startLoadgen(meshctl, port: port, proxies: proxies, duration: 300, json: report)
            E2E.waitUntil(Double(proxies) / 50 + 30, "\(proxies) proxies configured") {
                FileManager.default.fileExists(atPath: ready) || loadgen?.isRunning == false
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: ready), "every proxy got its configuration: \(loadgen?.output.suffix(2000) ?? "")")
        }
        defer { loadgen?.kill9() }

        let signalled = Date()
        XCTAssertEqual(kill(server.pid, signal), 0)
        let exited = server.waitForExit(seconds: Self.drainSeconds + Self.exitBound)
        let elapsed = Date().timeIntervalSince(signalled)
        XCTAssertTrue(exited, "serve exits within \(Self.drainSeconds) s drain + \(Self.exitBound) s after \(signal == SIGTERM ? "SIGTERM" : "SIGINT") with \(proxies) proxies; log:\n\(server.output.suffix(3000))")
        guard exited else { return }
        print("serve (release, \(proxies) proxies) exited \(String(format: "%.2f", elapsed)) s after \(signal == SIGTERM ? "SIGTERM" : "SIGINT")")
        XCTAssertEqual(server.exitStatus, 0, "serve exits 0 after draining")
        let log = server.output
        XCTAssertTrue(log.contains("signal.received"), log)
        XCTAssertTrue(log.contains("server.draining"), log)
        XCTAssertTrue(log.contains("server.stopped"), log)
        XCTAssertFalse(log.contains("signals.not-blocked"), log)

        guard let loadgen else { return }
        XCTAssertTrue(loadgen.waitForExit(seconds: 30), "loadgen ends once every stream has ended")
        let data = try Data(contentsOf: URL(fileURLWithPath: report))
        let json = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
        let failures = json["failures"] as? [String: Int] ?? [:]
        let unavailable = failures.filter { $0.key.hasPrefix("unavailable") }.values.reduce(0, +)
        XCTAssertEqual(unavailable, proxies, "every stream ended UNAVAILABLE (so Envoy reconnects elsewhere): \(failures)")
    }

    /// The release `serve` on a free port with the test's store and certificates, once it listens (nil: no release build).
    private func startReleaseServe(drainSeconds: Int) throws -> (meshctl: String, server: SignalFreeChild, port: Int)? {
        guard let meshctl = Self.releaseBinary else {
            XCTFail("no release build of meshctl: `make test` builds it (swift build -c release --product meshctl), or set MESHCTL_RELEASE_BINARY")
            return nil
        }
        let certs = directory + "/certs"
        let port = E2E.freePort()
        let server = try SignalFreeChild(meshctl, ["serve", "--store", directory + "/store", "--listen", "127.0.0.1:\(port)", "--admin", "off",
                                                   "--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt",
                                                   "--drain-seconds", "\(drainSeconds)"], log: directory + "/serve.log")
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }
        return (meshctl, server, port)
    }

    /// Release `loadgen` with `proxies` frontend proxies against `port`; it touches DIR/ready once all are configured.
    private func startLoadgen(_ meshctl: String, port: Int, proxies: Int, duration: Int, json: String?) throws -> SignalFreeChild {
        let certs = directory + "/certs"
        return try SignalFreeChild(meshctl, ["loadgen", "--server", "127.0.0.1:\(port)", "--ca", certs + "/ca.crt", "--cert", certs + "/frontend.crt",
                                             "--key", certs + "/frontend.key", "--proxies", "\(proxies)", "--groups", "frontend",
                                             "--duration", "\(duration)", "--ready-file", directory + "/ready"] + (json.map { ["--json", $0] } ?? []),
                                   log: directory + "/loadgen.log")
    }

    static func mask(_ signals: [Int32]) -> UInt64 {
        signals.reduce(0) { $0 | (1 << UInt64($1 - 1)) }
    }
}

/// A child process started with posix_spawn and an *empty* signal mask and default dispositions, as an
/// orchestrator starts a service — whatever the test runner's own threads block (a child inherits its parent
/// thread's mask across exec, which is how a test can hide a process that never unblocks, or never blocks).
final class SignalFreeChild {
    let pid: pid_t
    let logPath: String
    private(set) var exitStatus: Int32?

    init(_ executable: String, _ arguments: [String], log: String) throws {
        logPath = log
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_APPEND, 0)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else { throw NSError(domain: "SignalFreeChild", code: Int(rc), userInfo: [NSLocalizedDescriptionKey: "posix_spawn \(executable): \(String(cString: strerror(rc)))"]) }
        pid = child
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid { exitStatus = Self.decode(status); return false }
        return rc == 0
    }

    /// Waits up to `seconds` for the process to exit; true if it did.
    func waitForExit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if !isRunning { return true }
            usleep(10_000)
        }
        return !isRunning
    }

    /// The SigBlk mask of a thread (nil: the main thread).
    func blockedSignals(thread: Int32?) -> UInt64 {
        let path = "/proc/\(pid)/task/\(thread ?? pid)/status"
        guard let status = try? String(contentsOfFile: path, encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }) else { return 0 }
        return UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16) ?? 0
    }

    func kill9() {
        guard isRunning else { return }
        kill(pid, SIGKILL)
        _ = waitForExit(seconds: 10)
    }

    /// Exit code, or 128 + signal when killed by one.
    private static func decode(_ status: Int32) -> Int32 {
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    deinit { kill9() }
}
