// Shared test support: temporary stores, small snapshots, the built meshctl binary.
import Foundation
import MeshFixtures
import MeshTestSupport
@testable import SnapshotStorage
import XCTest

enum StoreTestSupport {
    static var root: URL { TestPaths.root }

    /// The meshctl binary built next to this test executable (whatever the scratch path).
    static var meshctl: String { TestPaths.meshctl }

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

    /// Runs a process with a deadline (SIGKILL when it passes); returns how it ended and its output.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> (status: Int32, signaled: Bool, stdout: String, stderr: String) {
        do {
            let result = try ProcessRunner.run(executable, arguments, timeout: timeout, kill: SIGKILL)
            return (result.status, result.signaled, result.stdoutText, result.stderrText)
        } catch let timeout as ProcessTimeout {
            throw TestFailure(timeout.description)
        }
    }
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
