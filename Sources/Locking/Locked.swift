// The one way meshctl shares mutable state between threads: a value behind a lock.
//
// Why NSLock (a pthread mutex) and not Synchronization.Mutex: on Linux, Mutex parks on a
// futex that ThreadSanitizer does not model, so every `make test-sanitize` run reported
// false races on state that Mutex guarded correctly (docs/HARDENING.md has the minimal
// program). NSLock is as cheap for our uncontended cases and TSan understands it, so a
// TSan report is always worth reading. Lone counters and flags use `Atomic`; state owned
// by one event loop takes no lock (its owner asserts it runs on that loop).
import Foundation

/// A value that several threads read and write, always under its lock.
public final class Locked<Value>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only read or written inside `lock`, in `withLock`.
    @usableFromInline let lock = NSLock()
    @usableFromInline var value: Value

    public init(_ value: Value) { self.value = value }

    /// Runs `body` with exclusive access to the value. Keep `body` short and never block in it.
    @inlinable
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
