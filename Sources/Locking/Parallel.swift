// Results of work spread over every core, without a lock: each slot is written by
// exactly one worker and read only after all of them have finished (rule 3 of
// ARCHITECTURE's "Sharing state between threads": the hand-over is concurrentPerform's return).
import Foundation

/// One write-once slot per index for the workers of a `DispatchQueue.concurrentPerform`.
public final class WriteOnceSlots<Value>: @unchecked Sendable {
    // @unchecked Sendable: each slot is written by exactly one worker and read only after `concurrentPerform` returns.
    private let buffer: UnsafeMutableBufferPointer<Value?>

    public init(count: Int) {
        buffer = .allocate(capacity: max(count, 1))
        buffer.initialize(repeating: nil)
    }

    deinit {
        _ = buffer.deinitialize()
        buffer.deallocate()
    }

    /// Fills slot `index` (once, from the one worker that owns it).
    public func set(_ index: Int, _ value: Value) { buffer[index] = value }

    /// Every slot, in index order (nil where no worker wrote).
    public var values: [Value?] { Array(buffer) }
}

/// Independent work items spread over every core, results kept in input order.
public enum Parallel {
    /// `body(i)` for every i in 0..<count, on all cores; the results in index order.
    public static func map<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        guard count > 1 else { return (0..<count).map(body) }
        let slots = WriteOnceSlots<T>(count: count)
        DispatchQueue.concurrentPerform(iterations: count) { i in slots.set(i, body(i)) }
        return slots.values.map { $0! }
    }
}
