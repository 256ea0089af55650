// The store's only door to the disk: a small set of POSIX operations behind a protocol,
// so tests can inject faults (ENOSPC, read-only, a crash at step N) without a special mount.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A file-system operation failed with `errno`.
public struct FileSystemError: Error, Equatable, Sendable {
    public let operation: String
    public let path: String
    public let code: Int32

    public init(operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var detail: String { String(cString: strerror(code)) }
}

/// What `status` knows about a path.
public struct FileStatus: Equatable, Sendable {
    public enum Kind: Sendable { case file, directory, other }
    public let kind: Kind
    public let size: Int
    /// Identity of the file (device, inode, change time): a rename over the path changes it.
    public let identity: [Int]
}

/// The file operations the store performs. Every method that changes the disk is one "step"
/// for fault injection; reads are not steps.
public protocol StoreFileSystem: Sendable {
    func status(_ path: String) -> FileStatus?
    func readFile(_ path: String, limit: Int?) throws(FileSystemError) -> [UInt8]
    func listDirectory(_ path: String) throws(FileSystemError) -> [String]

    /// mkdir; an existing directory is fine.
    func createDirectory(_ path: String) throws(FileSystemError)
    /// Creates `path` (which must not exist) holding `bytes`; with `sync`, fsyncs it before returning.
    func writeNewFile(_ path: String, _ bytes: [UInt8], sync: Bool) throws(FileSystemError)
    func syncFile(_ path: String) throws(FileSystemError)
    /// Atomically replaces `to` with `from`.
    func rename(_ from: String, _ to: String) throws(FileSystemError)
    func syncDirectory(_ path: String) throws(FileSystemError)
    /// Flushes the whole file system holding `path` (cheaper than thousands of fsyncs).
    func syncFileSystem(containing path: String) throws(FileSystemError)
    /// unlink; a missing file is fine.
    func removeFile(_ path: String) throws(FileSystemError)
    /// rmdir; a missing or non-empty directory is fine (left alone).
    func removeDirectory(_ path: String) throws(FileSystemError)
    /// Appends `bytes` with O_APPEND and fsyncs, creating the file if needed.
    func append(_ path: String, _ bytes: [UInt8]) throws(FileSystemError)
}

/// The real file system, through POSIX calls.
public struct PosixFileSystem: StoreFileSystem {
    public init() {}

    public func status(_ path: String) -> FileStatus? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        let kind: FileStatus.Kind
        switch st.st_mode & S_IFMT {
        case S_IFREG: kind = .file
        case S_IFDIR: kind = .directory
        default: kind = .other
        }
        return FileStatus(kind: kind, size: Int(st.st_size),
                          identity: [Int(st.st_dev), Int(st.st_ino), Int(st.st_ctim.tv_sec), Int(st.st_ctim.tv_nsec)])
    }

    /// Reads the whole file; with `limit`, reads at most `limit + 1` bytes in one call so a caller
    /// that knows the size learns of a mismatch without a stat.
    public func readFile(_ path: String, limit: Int?) throws(FileSystemError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        if let limit {
            let want = limit + 1
            var failure: Int32 = 0
            var total = 0
            let bytes = [UInt8](unsafeUninitializedCapacity: want) { buffer, count in
                while total < want {
                    let n = read(fd, buffer.baseAddress! + total, want - total)
                    if n < 0 {
                        if errno == EINTR { continue }
                        failure = errno
                        break
                    }
                    if n == 0 { break }
                    total += n
                }
                count = total
            }
            if failure != 0 { throw FileSystemError(operation: "read", path: path, code: failure) }
            return bytes
        }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileSystemError(operation: "read", path: path, code: errno)
            }
            if n == 0 { break }
            result.append(contentsOf: chunk[0..<n])
        }
        return result
    }

    public func listDirectory(_ path: String) throws(FileSystemError) -> [String] {
        guard let dir = opendir(path) else { throw FileSystemError(operation: "opendir", path: path, code: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func createDirectory(_ path: String) throws(FileSystemError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw FileSystemError(operation: "mkdir", path: path, code: errno)
        }
    }

    public func writeNewFile(_ path: String, _ bytes: [UInt8], sync: Bool) throws(FileSystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystemError(operation: "create", path: path, code: errno) }
        var closed = false
        defer { if !closed { close(fd) } }
        try writeAll(fd, bytes, path: path)
        if sync && fsync(fd) != 0 { throw FileSystemError(operation: "fsync", path: path, code: errno) }
        closed = true
        if close(fd) != 0 { throw FileSystemError(operation: "close", path: path, code: errno) }
    }

    func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(FileSystemError) {
        var failure: Int32 = 0
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = errno
                    return
                }
                offset += n
            }
        }
        if failure != 0 { throw FileSystemError(operation: "write", path: path, code: failure) }
    }

    public func syncFile(_ path: String) throws(FileSystemError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw FileSystemError(operation: "fsync", path: path, code: errno) }
    }

    public func rename(_ from: String, _ to: String) throws(FileSystemError) {
        if Glibc.rename(from, to) != 0 { throw FileSystemError(operation: "rename", path: to, code: errno) }
    }

    public func syncDirectory(_ path: String) throws(FileSystemError) {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw FileSystemError(operation: "fsync", path: path, code: errno) }
    }

    public func syncFileSystem(containing path: String) throws(FileSystemError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        if linuxSyncfs(fd) != 0 { throw FileSystemError(operation: "syncfs", path: path, code: errno) }
    }

    public func removeFile(_ path: String) throws(FileSystemError) {
        if unlink(path) != 0 && errno != ENOENT { throw FileSystemError(operation: "unlink", path: path, code: errno) }
    }

    public func removeDirectory(_ path: String) throws(FileSystemError) {
        if rmdir(path) != 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST {
            throw FileSystemError(operation: "rmdir", path: path, code: errno)
        }
    }

    public func append(_ path: String, _ bytes: [UInt8]) throws(FileSystemError) {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FileSystemError(operation: "open", path: path, code: errno) }
        defer { close(fd) }
        try writeAll(fd, bytes, path: path)
        if fsync(fd) != 0 { throw FileSystemError(operation: "fsync", path: path, code: errno) }
    }
}

// syncfs(2) is declared only under _GNU_SOURCE, which the Glibc module does not set; its ABI is
// plain `int syncfs(int)`.
@_silgen_name("syncfs")
private func linuxSyncfs(_ fd: Int32) -> Int32
