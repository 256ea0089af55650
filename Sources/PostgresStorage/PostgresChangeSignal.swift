// A follower's prompt path: a dedicated connection that LISTENs on meshctl_live (publishers NOTIFY in
// their transaction, payload = the new version). Every (re)connect counts as a change, so the waiter
// re-reads the live pointer and nothing committed while the connection was down is missed; the waiter's
// own timed wait is the poll backstop. A lost connection is opened again with backoff.
import Foundation
import NIOCore
import PostgresNIO
import SnapshotStorage

final class PostgresChangeSignal: StoreChangeSignal, @unchecked Sendable {
    // @unchecked Sendable: `pending`, `connection`, `nextAttempt` and `backoff` are only touched while holding `condition`; `session` is Sendable in its own right.
    private let session: PostgresSession
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var pending = false
    private var connection: PostgresConnection?
    private var nextAttempt = Date.distantPast
    private var backoff = 0.25

    init(session: PostgresSession) { self.session = session }

    deinit { if let connection { closeKeepingAlive(connection) } }

    /// True while the LISTEN connection is up (for readiness and metrics).
    var isListening: Bool { condition.withLock { connection.map { !$0.isClosed } ?? false } }

    func wake() {
        condition.withLock {
            pending = true
            condition.signal()
        }
    }

    func wait(milliseconds: Int) {
        listenIfNeeded()
        let deadline = Date().addingTimeInterval(Double(milliseconds) / 1000)
        condition.lock()
        while !pending && condition.wait(until: deadline) {}
        pending = false
        condition.unlock()
    }

    private func listenIfNeeded() {
        let due = condition.withLock { () -> Bool in
            if let connection, !connection.isClosed { return false }
            connection = nil
            return Date() >= nextAttempt
        }
        guard due else { return }
        do {
            let c = try session.openConnection()
            c.addListener(channel: PostgresSnapshotStore.channel) { [weak self] _, _ in self?.wake() }
            _ = try c.run("LISTEN \(unescaped: PostgresSnapshotStore.channel)", location: session.location)
            c.closeFuture.whenComplete { [weak self] _ in self?.wake() }
            condition.withLock {
                connection = c
                backoff = 0.25
                // A (re)connect may have missed notifications: have the waiter re-read the pointer.
                pending = true
            }
        } catch {
            condition.withLock {
                nextAttempt = Date().addingTimeInterval(backoff)
                backoff = min(backoff * 2, 5)
            }
        }
    }
}
