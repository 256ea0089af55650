// Independent work items spread over every core, results kept in input order.
import Foundation

enum Parallel {
    /// `body(i)` for every i in 0..<count, on all cores; the results in index order.
    static func map<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        guard count > 1 else { return (0..<count).map(body) }
        let slots = Slots<T>(count: count)
        DispatchQueue.concurrentPerform(iterations: count) { i in slots.set(i, body(i)) }
        return slots.values
    }
}

/// One write-once slot per index; each index is written by exactly one worker.
private final class Slots<T>: @unchecked Sendable {
    // @unchecked Sendable: each slot is written by exactly one worker and read only after all workers have finished.
    private let storage: UnsafeMutablePointer<T?>
    private let count: Int

    init(count: Int) {
        self.count = count
        storage = UnsafeMutablePointer<T?>.allocate(capacity: count)
        storage.initialize(repeating: nil, count: count)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    func set(_ index: Int, _ value: T) { storage[index] = value }

    var values: [T] { (0..<count).map { storage[$0]! } }
}
