// Rollback: make a stored version live again, recording who and why.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

extension SnapshotStore {
    // MARK: Rollback

    /// Makes an older version live again. The target is loaded and every object hash-checked first;
    /// a damaged or missing target leaves `current` untouched.
    public func rollback(to reference: String, reason: String?, author: String?) throws(SnapshotStoreError) -> RollbackOutcome {
        let lock = try lockForWriting(purpose: "rollback")
        defer { withExtendedLifetime(lock) {} }
        guard try checkReadable() else { throw .versionNotFound(reference: reference) }
        let target = try resolve(reference)
        let previous = try? readPointer()
        if previous == target { return .alreadyCurrent(version: target) }
        let snapshot = try loadResolved(target, check: .hashes)
        let session = WriteSession()
        try removeDebris(session: session, report: nil)
        try movePointer(to: target, session: session)
        // The rollback is live; a history record lost to a full disk is restored by `verify` as "recovered".
        try? appendHistory(HistoryEvent(kind: .rollback, time: Date(), version: target, previous: previous ?? nil,
                                       author: author, reason: reason, sourceRevision: snapshot.metadata.sourceRevision),
                          session: session)
        return .rolledBack(from: previous ?? nil, to: target)
    }
}
