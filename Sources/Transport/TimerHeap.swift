// Owns the binary min-heap that orders an event loop's timers by deadline.

/// A min-heap of (deadline, timer id); ties keep insertion order so timers fire deterministically.
struct TimerHeap {
    private var entries: [(deadline: ContinuousClock.Instant, sequence: UInt64)] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    func peek() -> (ContinuousClock.Instant, UInt64)? {
        entries.first.map { ($0.deadline, $0.sequence) }
    }

    mutating func push(deadline: ContinuousClock.Instant, id: UInt64) {
        entries.append((deadline, id))
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
        entries[a].deadline < entries[b].deadline
            || (entries[a].deadline == entries[b].deadline && entries[a].sequence < entries[b].sequence)
    }
}
