// Everything that can go wrong in the store, each case saying what is wrong and what to do.
import Foundation

/// A store operation failed; `description` tells the operator what is wrong and what to do about it.
public enum SnapshotStoreError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The store directory does not exist.
    case storeMissing(path: String)
    /// The store path exists but is not a directory, or is a non-empty directory that is not a store.
    case notAStore(path: String, reason: String)
    /// The store cannot be written (permissions, read-only file system).
    case unwritable(path: String, detail: String)
    /// The disk filled up (ENOSPC/EDQUOT) while writing.
    case diskFull(path: String)
    /// Another I/O failure.
    case io(operation: String, path: String, detail: String)
    /// Another process holds the store lock.
    case locked(path: String, holder: String, waitedSeconds: Double)
    /// No stored version matches the reference.
    case versionNotFound(reference: String)
    /// More than one version starts with the prefix.
    case ambiguousVersion(prefix: String, matches: [String])
    /// The version existed but `gc` deleted it.
    case versionGarbageCollected(version: String, removedAt: Date, sourceRevision: String?)
    /// `current` names a version whose manifest is missing.
    case currentVersionMissing(version: String)
    /// The `current` pointer file cannot be understood.
    case currentPointerCorrupt(path: String, detail: String)
    /// The store has no live version yet.
    case noCurrentVersion
    /// An object a version needs is absent.
    case objectMissing(hash: String, version: String)
    /// An object's size or hash differs from what its parent records.
    case objectCorrupt(hash: String, version: String, detail: String)
    /// A version manifest cannot be parsed or does not match its name.
    case manifestCorrupt(version: String, detail: String)
    /// The snapshot handed to publish is inconsistent (bad version, misfiled resource, body/hash mismatch).
    case invalidSnapshot(reason: String)
    /// The store was written by a newer meshctl.
    case unsupportedFormat(path: String, found: String)
    /// A remote store (a database) cannot be reached, or the connection to it broke; nothing was changed.
    case unreachable(location: String, detail: String)
    /// A remote store refused the credentials or the database does not exist.
    case accessDenied(location: String, detail: String)
    /// A store argument that is neither a directory path nor a URL of a backend meshctl knows.
    case invalidStoreArgument(argument: String, reason: String)
    /// Concurrent publishers kept moving the live pointer; this publish gave up after `attempts` tries.
    case publishConflict(location: String, attempts: Int)
    /// A remote store reported an error meshctl does not classify (SQLSTATE and message).
    case database(location: String, detail: String)

    public var description: String {
        switch self {
        case .storeMissing(let path):
            return "snapshot store \(path) does not exist: check --store, or publish once with store creation enabled (`meshctl compile` creates it)"
        case .notAStore(let path, let reason):
            return "\(path) is not a snapshot store (\(reason)): point --store at a store directory or at a new, empty one"
        case .unwritable(let path, let detail):
            return "cannot write to snapshot store at \(path) (\(detail)): fix its permissions or mount; the live version is unchanged"
        case .diskFull(let path):
            return "disk full while writing \(path): free space (e.g. `meshctl snapshot gc --keep N`) and publish again; the live version is unchanged"
        case .io(let operation, let path, let detail):
            return "\(operation) \(path) failed: \(detail); the live version is unchanged"
        case .locked(let path, let holder, let waited):
            return "snapshot store is locked by another publisher (\(holder)); gave up after \(String(format: "%.1f", waited)) s. Wait for it to finish and retry (lock file \(path))"
        case .versionNotFound(let reference):
            return "no version \"\(reference)\" in the store: `meshctl snapshot list` shows the versions there are"
        case .ambiguousVersion(let prefix, let matches):
            let shown = matches.prefix(5).map { String($0.prefix(16)) }.joined(separator: ", ")
            return "version prefix \"\(prefix)\" matches \(matches.count) versions (\(shown)\(matches.count > 5 ? ", …" : "")): give more characters"
        case .versionGarbageCollected(let version, let removedAt, let sourceRevision):
            let rev = sourceRevision.map { "; recompile source revision \($0) to recreate it" } ?? ""
            return "version \(version) was deleted by `snapshot gc` at \(Timestamp.text(removedAt))\(rev)"
        case .currentVersionMissing(let version):
            return "`current` names version \(version), which is not in the store: pick a version from `meshctl snapshot list` and `meshctl snapshot rollback` to it, or publish"
        case .currentPointerCorrupt(let path, let detail):
            return "\(path) is damaged (\(detail)): `meshctl snapshot rollback VERSION` rewrites it"
        case .noCurrentVersion:
            return "the store has no live version yet: publish one first (`meshctl compile`)"
        case .objectMissing(let hash, let version):
            return "version \(version.prefix(12)) needs object \(hash), which is missing: run `meshctl snapshot verify`, then publish the same configuration again to rewrite it, or roll back"
        case .objectCorrupt(let hash, let version, let detail):
            return "object \(hash) of version \(version.prefix(12)) is damaged (\(detail)): run `meshctl snapshot verify` (it removes damaged objects), then publish again to rewrite it, or roll back"
        case .manifestCorrupt(let version, let detail):
            return "manifest of version \(version) is damaged (\(detail)): roll back to another version, or publish again"
        case .invalidSnapshot(let reason):
            return "refusing to publish an inconsistent snapshot: \(reason)"
        case .unsupportedFormat(let path, let found):
            return "\(path) was written by a newer meshctl (format \"\(found)\"): use that meshctl"
        case .unreachable(let location, let detail):
            return "cannot reach the snapshot store at \(location) (\(detail)): check the host, port and that the database is running; nothing was changed"
        case .accessDenied(let location, let detail):
            return "the snapshot store at \(location) refused access (\(detail)): check the user, the password (in the URL, PGPASSWORD, ~/.pgpass, or password_file=PATH) and the database name; nothing was changed"
        case .invalidStoreArgument(let argument, let reason):
            return "store \"\(argument)\": \(reason)"
        case .publishConflict(let location, let attempts):
            return "other publishers kept moving the live version of \(location); gave up after \(attempts) attempts: publish again"
        case .database(let location, let detail):
            return "the snapshot store at \(location) failed: \(detail); nothing was changed"
        }
    }
}

/// The one way the store writes times for people and in its files: UTC ISO 8601 with milliseconds.
enum Timestamp {
    static func text(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded())
        let seconds = ms >= 0 ? ms / 1000 : (ms - 999) / 1000
        let millis = Int(ms - seconds * 1000)
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), millis)
    }

    static func parse(_ text: String) -> Date? {
        // yyyy-mm-ddThh:mm:ss.mmmZ
        let u = Array(text.utf8)
        guard u.count == 24, u[4] == 45, u[7] == 45, u[10] == 84, u[13] == 58, u[16] == 58, u[19] == 46, u[23] == 90 else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for i in r {
                guard u[i] >= 48 && u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13), let mi = num(14..<16),
              let s = num(17..<19), let ms = num(20..<23) else { return nil }
        var parts = tm()
        parts.tm_year = Int32(y - 1900)
        parts.tm_mon = Int32(mo - 1)
        parts.tm_mday = Int32(d)
        parts.tm_hour = Int32(h)
        parts.tm_min = Int32(mi)
        parts.tm_sec = Int32(s)
        let seconds = timegm(&parts)
        return Date(timeIntervalSince1970: Double(Int64(seconds) * 1000 + Int64(ms)) / 1000)
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(text(date))
        }
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let c = try decoder.singleValueContainer()
            let s = try c.decode(String.self)
            guard let date = parse(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a timestamp: \(s)")
            }
            return date
        }
        return d
    }()
}
