// TEST HOOK. A file system that counts the store's disk-changing steps and, at a chosen
// step, fails with an errno (ENOSPC, EROFS…), stops the process (SIGSTOP) or kills it
// (SIGKILL). Used by the tests and by the hidden `meshctl snapshot publish-fixture`
// to prove that a publish interrupted anywhere leaves the previous version live.
import Foundation
import SnapshotStorage
#if canImport(Glibc)
import Glibc
#endif

/// TEST HOOK: wraps a file system and injects one fault at the N-th disk-changing step (1-based).
public final class FaultInjectingFileSystem: StoreFileSystem, @unchecked Sendable {
    // @unchecked Sendable: `count` and `log` are read and written only under `lock`; the wrapped file system is Sendable.
    /// What happens at the chosen step.
    public enum Fault: Sendable, Equatable {
        /// Count steps only.
        case none
        /// Throw this errno from the step (a write first puts half its bytes on disk, as a real full disk does).
        case fail(errno: Int32, atStep: Int)
        /// Throw this errno from every step from the given one on.
        case failFrom(errno: Int32, step: Int)
        /// SIGKILL this process at the step (a write first puts half its bytes on disk).
        case crash(atStep: Int)
        /// SIGSTOP this process just before the step, so a parent can inspect or kill it.
        case pause(atStep: Int)
    }

    private let base: any StoreFileSystem
    private let fault: Fault
    private let lock = NSLock()
    private var count = 0
    private var log: [String] = []

    public init(base: any StoreFileSystem = PosixFileSystem(), fault: Fault) {
        self.base = base
        self.fault = fault
    }

    /// Disk-changing steps performed (or attempted) so far.
    public var steps: Int { lock.withLock { count } }

    /// One line per step: "N operation path".
    public var stepLog: [String] { lock.withLock { log } }

    private enum Action { case proceed, fail(Int32), crash, pause }

    private func step(_ operation: String, _ path: String) -> Action {
        let n: Int = lock.withLock {
            count += 1
            log.append("\(count) \(operation) \(path)")
            return count
        }
        switch fault {
        case .none: return .proceed
        case .fail(let code, let at): return n == at ? .fail(code) : .proceed
        case .failFrom(let code, let from): return n >= from ? .fail(code) : .proceed
        case .crash(let at): return n == at ? .crash : .proceed
        case .pause(let at): return n == at ? .pause : .proceed
        }
    }

    private func act(_ action: Action, operation: String, path: String, partial: (() -> Void)? = nil) throws(FileSystemError) {
        switch action {
        case .proceed: return
        case .fail(let code):
            partial?()
            throw FileSystemError(operation: operation, path: path, code: code)
        case .crash:
            partial?()
            kill(getpid(), SIGKILL)
            // SIGKILL cannot be caught; never reached.
            while true { pause() }
        case .pause:
            kill(getpid(), SIGSTOP)
        }
    }

    public func status(_ path: String) -> FileStatus? { base.status(path) }
    public func readFile(_ path: String, limit: Int?) throws(FileSystemError) -> [UInt8] { try base.readFile(path, limit: limit) }
    public func listDirectory(_ path: String) throws(FileSystemError) -> [String] { try base.listDirectory(path) }

    public func createDirectory(_ path: String) throws(FileSystemError) {
        try act(step("mkdir", path), operation: "mkdir", path: path)
        try base.createDirectory(path)
    }

    public func writeNewFile(_ path: String, _ bytes: [UInt8], sync: Bool) throws(FileSystemError) {
        let half = Array(bytes.prefix(bytes.count / 2))
        try act(step("write", path), operation: "write", path: path) { [base] in
            try? base.writeNewFile(path, half, sync: false)
        }
        try base.writeNewFile(path, bytes, sync: sync)
    }

    public func syncFile(_ path: String) throws(FileSystemError) {
        try act(step("fsync", path), operation: "fsync", path: path)
        try base.syncFile(path)
    }

    public func rename(_ from: String, _ to: String) throws(FileSystemError) {
        try act(step("rename", to), operation: "rename", path: to)
        try base.rename(from, to)
    }

    public func syncDirectory(_ path: String) throws(FileSystemError) {
        try act(step("fsync-dir", path), operation: "fsync", path: path)
        try base.syncDirectory(path)
    }

    public func syncFileSystem(containing path: String) throws(FileSystemError) {
        try act(step("syncfs", path), operation: "syncfs", path: path)
        try base.syncFileSystem(containing: path)
    }

    public func removeFile(_ path: String) throws(FileSystemError) {
        try act(step("unlink", path), operation: "unlink", path: path)
        try base.removeFile(path)
    }

    public func removeDirectory(_ path: String) throws(FileSystemError) {
        try act(step("rmdir", path), operation: "rmdir", path: path)
        try base.removeDirectory(path)
    }

    public func append(_ path: String, _ bytes: [UInt8]) throws(FileSystemError) {
        let half = Array(bytes.prefix(bytes.count / 2))
        try act(step("append", path), operation: "write", path: path) { [base] in
            try? base.append(path, half)
        }
        try base.append(path, bytes)
    }
}
