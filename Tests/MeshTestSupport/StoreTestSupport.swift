// Store test support, shared by the store's tests and the system tests that run `meshctl snapshot`:
// temporary stores, small snapshots, the store's files on disk, the built meshctl binary.
import Foundation
import MeshFixtures
import SnapshotStorage
import XCTest

public enum StoreTestSupport {
    public static var root: URL { TestPaths.root }

    /// The meshctl binary built next to this test executable (whatever the scratch path).
    public static var meshctl: String { TestPaths.meshctl }

    /// A fresh directory path under the system temporary directory (not created).
    public static func temporaryPath(_ label: String) -> String {
        NSTemporaryDirectory() + "snapshot-store-tests-\(getpid())-\(label)-\(UUID().uuidString.prefix(8))"
    }

    public static func cluster(_ name: String, _ body: String) -> Resource {
        Resource(typeURL: SyntheticSnapshot.clusterType, name: name, body: Array(body.utf8))
    }

    public static func endpoint(_ name: String, _ body: String) -> Resource {
        Resource(typeURL: SyntheticSnapshot.endpointType, name: name, body: Array(body.utf8))
    }

    /// A snapshot with one group holding `resources`.
    public static func snapshot(_ resources: [Resource], group: String = "web", message: String? = nil, source: String? = nil) -> Snapshot {
        // Only throws for misfiled resources, which these helpers never build.
        try! Snapshot.make(groups: [ProxyGroupResources(group: group, resources: resources)], sourceRevision: source,
                           author: "tester", message: message, compilerVersion: "test")
    }

    public static func synthetic(services: Int, seed: UInt64 = 1, revisions: [Int: Int] = [:]) -> Snapshot {
        try! Snapshot.make(groups: SyntheticSnapshot.groups(services: services, seed: seed, revisions: revisions), compilerVersion: "test")
    }

    /// Every file under `objects/`.
    public static func objectFiles(_ store: String) -> [String] {
        let base = store + "/objects"
        let fanouts = (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []
        return fanouts.flatMap { f in ((try? FileManager.default.contentsOfDirectory(atPath: base + "/" + f)) ?? []).map { base + "/" + f + "/" + $0 } }
    }

    public static func files(in directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
    }

    public static func write(_ text: String, to path: String) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }

    /// Runs a process with a deadline (SIGKILL when it passes); returns how it ended and its output.
    @discardableResult
    public static func run(_ executable: String, _ arguments: [String], timeout: TimeInterval = 60) throws -> (status: Int32, signaled: Bool, stdout: String, stderr: String) {
        do {
            let result = try ProcessRunner.run(executable, arguments, timeout: timeout, kill: SIGKILL)
            return (result.status, result.signaled, result.stdoutText, result.stderrText)
        } catch let timeout as ProcessTimeout {
            throw TestFailure(timeout.description)
        }
    }
}

public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A temporary store directory removed when the test ends.
public final class TemporaryStore {
    public let path: String
    public init(_ label: String, create: Bool = true) {
        path = StoreTestSupport.temporaryPath(label)
        if create { try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func store(fileSystem: any StoreFileSystem = PosixFileSystem(), lockTimeout: Double = 30, create: Bool = true) -> SnapshotStore {
        SnapshotStore(directory: path, createIfMissing: create, lockTimeout: lockTimeout, fileSystem: fileSystem)
    }
}
