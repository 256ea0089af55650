// The store's writer lock: flock(2) on <store>/lock. The kernel drops it when the holder
// exits, however it exits (kill -9 included), so a crashed publisher never wedges the store.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive hold on a store's lock file; released when this object goes away.
final class StoreLock {
    private let fd: Int32

    /// Waits up to `timeout` seconds for the lock. The holder's pid and purpose are written into
    /// the file so a waiter can say who it is waiting for.
    init(path: String, timeout: Double, purpose: String) throws(SnapshotStoreError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SnapshotStore.mapped(FileSystemError(operation: "open lock", path: path, code: errno)) }
        let start = Date()
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EWOULDBLOCK || code == EINTR else {
                close(fd)
                throw SnapshotStore.mapped(FileSystemError(operation: "lock", path: path, code: code))
            }
            let waited = Date().timeIntervalSince(start)
            if waited >= timeout {
                let holder = StoreLock.holder(fd: fd)
                close(fd)
                throw .locked(path: path, holder: holder, waitedSeconds: waited)
            }
            usleep(10_000)
        }
        self.fd = fd
        let note = Array("pid \(getpid()) (\(purpose)) since \(Timestamp.text(Date()))\n".utf8)
        // The note is informational: failing to write it must not fail the operation.
        if ftruncate(fd, 0) == 0 {
            _ = note.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
    }

    deinit {
        _ = ftruncate(fd, 0)
        close(fd)
    }

    private static func holder(fd: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        let text = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : ""
        return text.isEmpty ? "another process" : text
    }
}
