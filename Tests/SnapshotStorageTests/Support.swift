// Shared test support: temporary stores, small snapshots, the built meshctl binary.
import Foundation
@testable import SnapshotStorage
import XCTest

enum StoreTestSupport {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The meshctl binary built next to this test executable (whatever the scratch path).
    static var meshctl: String {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let bundle = Bundle.main.bundleURL
        for candidate in [executable, bundle, bundle.deletingLastPathComponent()].map({ $0.appendingPathComponent("meshctl") })
            where FileManager.default.isExecutableFile(atPath: candidate.path) {
            return candidate.path
        }
        return executable.appendingPathComponent("meshctl").path
    }

    /// A fresh directory path under the system temporary directory (not created).
    static func temporaryPath(_ label: String) -> String {
        NSTemporaryDirectory() + "snapshot-store-tests-\(getpid())-\(label)-\(UUID().uuidString.prefix(8))"
    }

    static func cluster(_ name: String, _ body: String) -> Resource {
        Resource(typeURL: SyntheticSnapshot.clusterType, name: name, body: Array(body.utf8))
    }

    static func endpoint(_ name: String, _ body: String) -> Resource {
        Resource(typeURL: SyntheticSnapshot.endpointType, name: name, body: Array(body.utf8))
    }

    /// A snapshot with one group holding `resources`.
    static func snapshot(_ resources: [Resource], group: String = "web", message: String? = nil, source: String? = nil) -> Snapshot {
        // Only throws for misfiled resources, which these helpers never build.
        try! Snapshot.make(groups: [ProxyGroupResources(group: group, resources: resources)], sourceRevision: source,
                           author: "tester", message: message, compilerVersion: "test")
    }

    static func synthetic(services: Int, seed: UInt64 = 1, revisions: [Int: Int] = [:]) -> Snapshot {
        try! Snapshot.make(groups: SyntheticSnapshot.groups(services: services, seed: seed, revisions: revisions), compilerVersion: "test")
    }

    /// Every file under `objects/`.
    static func objectFiles(_ store: String) -> [String] {
        let base = store + "/objects"
        let fanouts = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return fanouts.flatMap { f in ((try? FileManager.default.contentsOfDirectory(atPath: base + "/" + f)) ?? []).map { base + "/" + f + "/" + $0 } }
    }

    static func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    static func write(_ text: String, to path: String) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }

    /// Runs a process with a deadline; returns how it ended and its output.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> (status: Int32, signaled: Bool, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Drain both pipes while waiting so a chatty child cannot block on a full pipe.
        let collected = OutputCollector()
        let group = DispatchGroup()
        for (pipe, isOut) in [(out, true), (err, false)] {
            group.enter()
            DispatchQueue.global().async {
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                collected.set(data, stdout: isOut)
                group.leave()
            }
        }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            _ = group.wait(timeout: .now() + 5)
            throw TestFailure("\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout) s")
        }
        process.waitUntilExit()
        _ = group.wait(timeout: .now() + 5)
        return (process.terminationStatus, process.terminationReason == .uncaughtSignal, collected.stdout, collected.stderr)
    }
}

final class OutputCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var out = Data(), err = Data()
    func set(_ data: Data, stdout: Bool) { lock.withLock { if stdout { out = data } else { err = data } } }
    var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
    var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A temporary store directory removed when the test ends.
final class TemporaryStore {
    let path: String
    init(_ label: String, create: Bool = true) {
        path = StoreTestSupport.temporaryPath(label)
        if create { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    func store(fileSystem: any StoreFileSystem = PosixFileSystem(), lockTimeout: Double = 30, create: Bool = true) -> SnapshotStore {
        SnapshotStore(directory: path, createIfMissing: create, lockTimeout: lockTimeout, fileSystem: fileSystem)
    }
}
