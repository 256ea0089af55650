// kill -9 in the middle of a publish, at every disk-changing step, in a real meshctl process
// (the hidden `meshctl snapshot publish-fixture` test hook): the store keeps serving the old
// version (or, past the commit, the complete new one), and `verify` cleans the debris.
import Foundation
import MeshTestSupport
import SnapshotStorage
import XCTest

final class PublishCrashTests: XCTestCase {
    typealias S = StoreTestSupport

    func meshctl() throws -> String {
        let path = S.meshctl
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestFailure("meshctl is not built at \(path): run `swift build` first")
        }
        return path
    }

    func fixture(_ store: String, _ extra: [String]) throws -> (status: Int32, signaled: Bool, stdout: String, stderr: String) {
        try S.run(try meshctl(), ["snapshot", "publish-fixture", "--store", store] + extra, timeout: 60)
    }

    /// Crashes `publish-fixture <changes>` at every step over a store holding `base`, checking each outcome.
    func crashAtEveryStep(label: String, base: [String], change: [String]) throws {
        let pristine = TemporaryStore("\(label)-pristine", create: false)
        let first = try fixture(pristine.path, base)
        XCTAssertEqual(first.status, 0, first.stderr)
        let old = try XCTUnwrap(try SnapshotStore(directory: pristine.path).currentVersion())

        // A clean run over a copy tells how many steps the publish takes and which version it makes.
        let probe = TemporaryStore("\(label)-probe", create: false)
        try FileManager.default.copyItem(atPath: pristine.path, toPath: probe.path)
        let clean = try fixture(probe.path, change)
        XCTAssertEqual(clean.status, 0, clean.stderr)
        let words = clean.stdout.split(separator: " ")
        let steps = try XCTUnwrap(Int(words.last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""), clean.stdout)
        let new = String(words[1])
        XCTAssertNotEqual(old, new)
        XCTAssertGreaterThan(steps, 5)

        var sawNew = false
        for step in 1...steps {
            let work = TemporaryStore("\(label)-crash-\(step)", create: false)
            try FileManager.default.copyItem(atPath: pristine.path, toPath: work.path)
            let run = try fixture(work.path, change + ["--crash-at-step", String(step)])
            XCTAssertTrue(run.signaled && run.status == SIGKILL, "step \(step): expected death by SIGKILL, got status \(run.status): \(run.stdout) \(run.stderr)")

            let store = SnapshotStore(directory: work.path)
            let live = try store.currentVersion()
            XCTAssertTrue(live == old || live == new, "step \(step): live version is \(live ?? "none")")
            if live == new { sawNew = true } else { XCTAssertFalse(sawNew, "step \(step): the old version came back after the new one was live") }
            // Whatever is live loads completely, with every hash right.
            XCTAssertNoThrow(try store.load(version: "current", check: .hashes), "step \(step)")
            XCTAssertNoThrow(try store.load(version: old, check: .hashes), "step \(step): the old version is intact")

            let report = store.verify()
            XCTAssertTrue(report.isHealthy, "step \(step): \(report.problems)")
            XCTAssertEqual(S.files(in: work.path + "/tmp"), [], "step \(step): temporary files cleaned")
            XCTAssertEqual(S.files(in: work.path + "/versions").filter { $0.hasSuffix(".pending") }, [], "step \(step): pending manifests cleaned")
            XCTAssertEqual(try store.currentVersion(), live, "step \(step): verify does not move current")
            XCTAssertTrue(store.verify().debrisRemoved.isEmpty, "step \(step): a second verify finds nothing to clean")

            // The interrupted publish can simply be run again.
            let again = try fixture(work.path, change)
            XCTAssertEqual(again.status, 0, "step \(step): \(again.stderr)")
            XCTAssertEqual(try store.currentVersion(), new, "step \(step)")
            XCTAssertNoThrow(try store.load(version: "current", check: .hashes), "step \(step)")
        }
        XCTAssertTrue(sawNew, "a crash after the last step leaves the new version live")
    }

    func testKillDuringAFirstLargePublishAtEveryStep() throws {
        // 12 services: 29 objects, so objects are flushed with one syncfs (the bulk path).
        try crashAtEveryStep(label: "bulk", base: ["--services", "12", "--seed", "1"], change: ["--services", "12", "--seed", "2"])
    }

    func testKillDuringAOneResourceChangeAtEveryStep() throws {
        // Three new objects (body, one of two cluster shards, index): each fsynced on its own (the small path).
        try crashAtEveryStep(label: "small", base: ["--services", "70"], change: ["--services", "70", "--changed", "1"])
    }

    func testKillDuringTheVeryFirstPublishLeavesNoVersion() throws {
        let probe = TemporaryStore("first-probe", create: false)
        let clean = try fixture(probe.path, ["--services", "3"])
        XCTAssertEqual(clean.status, 0, clean.stderr)
        let steps = try XCTUnwrap(Int(clean.stdout.split(separator: " ").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""))
        for step in stride(from: 1, through: steps, by: max(1, steps / 15)) {
            let work = TemporaryStore("first-\(step)", create: false)
            let run = try fixture(work.path, ["--services", "3", "--crash-at-step", String(step)])
            XCTAssertTrue(run.signaled, "step \(step)")
            let store = SnapshotStore(directory: work.path)
            // A crash before the directory itself was created leaves nothing at all.
            if FileManager.default.fileExists(atPath: work.path) {
                if let live = try store.currentVersion() { XCTAssertNoThrow(try store.load(version: live, check: .hashes), "step \(step)") }
                else { XCTAssertEqual(try store.list(), [], "step \(step): nothing is listed before the first publish completes") }
                XCTAssertTrue(store.verify().isHealthy, "step \(step)")
            }
            XCTAssertEqual(try fixture(work.path, ["--services", "3"]).status, 0, "step \(step)")
        }
    }

    func testAPublisherStoppedHoldingTheLockBlocksOthersUntilKilled() throws {
        let dir = TemporaryStore("paused", create: false)
        XCTAssertEqual(try fixture(dir.path, ["--services", "5"]).status, 0)
        let store = SnapshotStore(directory: dir.path, lockTimeout: 0.3)
        let old = try store.currentVersion()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try meshctl())
        process.arguments = ["snapshot", "publish-fixture", "--store", dir.path, "--services", "5", "--seed", "9", "--pause-at-step", "3"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() } }
        // Wait (bounded) until the child holds the lock: it writes its pid into the lock file.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let holder = (try? String(contentsOfFile: dir.path + "/lock", encoding: .utf8)) ?? ""
            if holder.contains("pid \(process.processIdentifier) ") { break }
            usleep(10_000)
        }
        XCTAssertThrowsError(try store.publish(S.snapshot([S.cluster("x", "y")]))) { error in
            guard case .locked(_, let holder, _)? = error as? SnapshotStoreError else { return XCTFail("\(error)") }
            XCTAssertTrue(holder.contains("pid \(process.processIdentifier)"), holder)
        }
        XCTAssertEqual(try store.currentVersion(), old)

        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        let next = S.snapshot([S.cluster("x", "y")])
        XCTAssertEqual(try store.publish(next).version, next.metadata.version, "the kernel released the dead publisher's lock")
        XCTAssertTrue(store.verify().isHealthy)
    }

    func testFixtureHookReportsDiskFull() throws {
        let dir = TemporaryStore("fixture-enospc", create: false)
        XCTAssertEqual(try fixture(dir.path, ["--services", "5"]).status, 0)
        let old = try SnapshotStore(directory: dir.path).currentVersion()
        let run = try fixture(dir.path, ["--services", "5", "--seed", "3", "--enospc-at-step", "2"])
        XCTAssertEqual(run.status, 2)
        XCTAssertTrue(run.stderr.contains("disk full"), run.stderr)
        XCTAssertEqual(try SnapshotStore(directory: dir.path).currentVersion(), old)
    }
}
