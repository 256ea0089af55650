// Caches of what the validators derive from a descriptor pool.
import Foundation

/// Values derived once per descriptor pool (the compiler makes a validator per resource; resolving names and
/// indexes for each would be paid tens of thousands of times). Each entry holds its pool, so an entry never
/// outlives its pool and is never found for another pool allocated at the same address.
final class PerPoolCache<Value>: @unchecked Sendable {
    // @unchecked Sendable: `entries` is only touched under `lock`; values are immutable once stored.
    private let lock = NSLock()
    private var entries: [ObjectIdentifier: (pool: DescriptorPool, value: Value)] = [:]

    /// The value for `pool`, made by `make` the first time (under the lock, so it is made once).
    func value(for pool: DescriptorPool, make: () -> Value) -> Value {
        lock.lock()
        defer { lock.unlock() }
        if let entry = entries[ObjectIdentifier(pool)] { return entry.value }
        let value = make()
        entries[ObjectIdentifier(pool)] = (pool, value)
        return value
    }
}
