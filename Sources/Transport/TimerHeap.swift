// Owns the binary min-heap that orders an event loop's timers by deadline.

/// A min-heap of (deadline, timer id); ties keep insertion order so timers fire deterministically.
///
/// Deadlines are kept as nanoseconds after a process-wide origin, not as `ContinuousClock.Instant`s: outside the
/// standard library an `Instant` is opaque, so every copy and comparison in the sift loops went through a call
/// (≈ 6,000 instructions per pop at 1,000 connections, 1.6 % of the server's instructions per config change; callgrind,
/// docs/BENCHMARKS.md session 12). Integers sift in a few instructions per level.
struct TimerHeap {
    private var entries: [(key: Int64, sequence: UInt64)] = []

    /// Where keys count from: any fixed instant will do.
    private static let origin = ContinuousClock.now

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// The earliest deadline (to the nanosecond, never later than the one pushed) and its timer.
    func peek() -> (ContinuousClock.Instant, UInt64)? {
        entries.first.map { (Self.instant($0.key), $0.sequence) }
    }

    mutating func push(deadline: ContinuousClock.Instant, id: UInt64) {
        entries.append((Self.key(deadline), id))
        var child = entries.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard less(child, parent) else { break }
            entries.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() {
        guard !entries.isEmpty else { return }
        entries.swapAt(0, entries.count - 1)
        entries.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < entries.count && less(left, smallest) { smallest = left }
            if right < entries.count && less(right, smallest) { smallest = right }
            if smallest == parent { break }
            entries.swapAt(parent, smallest)
            parent = smallest
        }
    }

    private func less(_ a: Int, _ b: Int) -> Bool {
        entries[a].key < entries[b].key || (entries[a].key == entries[b].key && entries[a].sequence < entries[b].sequence)
    }

    /// Nanoseconds from the origin to `deadline`, rounded down (so a timer never fires late), clamped to Int64's range
    /// (a deadline centuries away is as good as never).
    static func key(_ deadline: ContinuousClock.Instant) -> Int64 {
        let (seconds, attoseconds) = origin.duration(to: deadline).components
        let (nanoseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        let (sum, overflowed) = nanoseconds.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflowed ? (seconds < 0 ? .min : .max) : sum
    }

    static func instant(_ key: Int64) -> ContinuousClock.Instant { origin + .nanoseconds(key) }
}
