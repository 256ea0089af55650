// The event loop's timer order: earliest deadline first, ties in the order they were scheduled, and deadlines kept
// to the nanosecond (never later than asked) whatever their distance.
@testable import Transport
import XCTest

final class TimerHeapTests: XCTestCase {
    func testTimersComeOutByDeadlineThenInTheOrderTheyWereScheduled() {
        var generator = SystemRandomNumberGenerator()
        let base = ContinuousClock.now
        var heap = TimerHeap()
        var expected: [(ContinuousClock.Instant, UInt64)] = []
        for id in UInt64(0)..<2_000 {
            // Few distinct deadlines, so that many timers tie.
            let deadline = base + .milliseconds(Int.random(in: 0..<50, using: &generator))
            heap.push(deadline: deadline, id: id)
            expected.append((deadline, id))
            if id % 7 == 0, let (_, first) = heap.peek() {
                // Popping while pushing keeps the order of what is left.
                heap.pop()
                let index = expected.sorted { ($0.0, $0.1) < ($1.0, $1.1) }.first!.1
                XCTAssertEqual(first, index)
                expected.removeAll { $0.1 == first }
            }
        }
        expected.sort { ($0.0, $0.1) < ($1.0, $1.1) }
        var popped: [UInt64] = []
        while let (deadline, id) = heap.peek() {
            let asked = expected[popped.count].0
            XCTAssertLessThanOrEqual(deadline, asked, "never later than the deadline asked for")
            XCTAssertLessThan(asked - deadline, .nanoseconds(1))
            popped.append(id)
            heap.pop()
        }
        XCTAssertEqual(popped, expected.map(\.1))
        XCTAssertTrue(heap.isEmpty)
    }

    func testFarDeadlinesAreClampedAndStillOrdered() {
        let now = ContinuousClock.now
        var heap = TimerHeap()
        heap.push(deadline: now + .seconds(Int64.max / 2), id: 1)
        heap.push(deadline: now + .seconds(1), id: 2)
        heap.push(deadline: now - .seconds(1), id: 3)
        XCTAssertEqual(heap.peek()?.1, 3)
        heap.pop()
        XCTAssertEqual(heap.peek()?.1, 2)
        heap.pop()
        XCTAssertEqual(heap.peek()?.1, 1)
        XCTAssertEqual(TimerHeap.key(now + .seconds(Int64.max / 2)), .max)
    }
}
