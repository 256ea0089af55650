// A publish moves `current`, then renames the version's pending manifest to its final name. A reader woken by the
// first rename (the server's watcher is, through inotify) can look for the final name just before the second rename
// and for the pending name just after it: the live version must still load, not be refused as missing (the server
// would serve it only on its retry, a second later).
import Foundation
import MeshTestSupport
@testable import SnapshotStorage
import XCTest

final class ManifestRaceTests: XCTestCase {
    typealias S = StoreTestSupport

    /// Reads through to the real file system, but the first time the pending manifest is asked for, the publisher's
    /// last rename happens first — exactly between the reader's look at the final name and at the pending one.
    final class RenameBetweenReads: StoreFileSystem, @unchecked Sendable {
        // @unchecked Sendable: `landed` is only touched by the test's single reader thread.
        let base = PosixFileSystem()
        let pending: String
        let final: String
        var landed = false
        init(pending: String, final: String) { (self.pending, self.final) = (pending, final) }

        func readFile(_ path: String, limit: Int?) throws(FileSystemError) -> [UInt8] {
            if path == pending && !landed {
                landed = true
                try base.rename(pending, final)
            }
            return try base.readFile(path, limit: limit)
        }
        func status(_ path: String) -> FileStatus? { base.status(path) }
        func listDirectory(_ path: String) throws(FileSystemError) -> [String] { try base.listDirectory(path) }
        func createDirectory(_ path: String) throws(FileSystemError) { try base.createDirectory(path) }
        func writeNewFile(_ path: String, _ bytes: [UInt8], sync: Bool) throws(FileSystemError) { try base.writeNewFile(path, bytes, sync: sync) }
        func syncFile(_ path: String) throws(FileSystemError) { try base.syncFile(path) }
        func rename(_ from: String, _ to: String) throws(FileSystemError) { try base.rename(from, to) }
        func syncDirectory(_ path: String) throws(FileSystemError) { try base.syncDirectory(path) }
        func syncFileSystem(containing path: String) throws(FileSystemError) { try base.syncFileSystem(containing: path) }
        func removeFile(_ path: String) throws(FileSystemError) { try base.removeFile(path) }
        func removeDirectory(_ path: String) throws(FileSystemError) { try base.removeDirectory(path) }
        func append(_ path: String, _ bytes: [UInt8]) throws(FileSystemError) { try base.append(path, bytes) }
    }

    func testTheLiveVersionLoadsWhenItsManifestIsRenamedBetweenTheReadersTwoLooks() throws {
        let dir = TemporaryStore("manifest-race")
        let store = dir.store()
        _ = try store.publish(S.snapshot([S.cluster("a", "one")]))
        let second = S.snapshot([S.cluster("a", "two")])
        _ = try store.publish(second)
        let version = second.metadata.version
        // The state between the publish's last two steps: `current` names the version, its manifest is still pending.
        try FileManager.default.moveItem(atPath: store.manifestPath(version), toPath: store.pendingManifestPath(version))
        XCTAssertEqual(try store.currentVersion(), version)

        let racing = RenameBetweenReads(pending: store.pendingManifestPath(version), final: store.manifestPath(version))
        let reader = dir.store(fileSystem: racing, create: false)
        let loaded = try reader.load(version: "current")
        XCTAssertTrue(racing.landed, "the rename happened between the two reads")
        XCTAssertEqual(loaded.metadata.version, version)
        XCTAssertEqual(loaded.groups["web"]?.resources, second.groups["web"]?.resources)
    }
}
