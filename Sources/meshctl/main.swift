// Entry point.
import Foundation

// Run on a thread with a large stack: inputs nest deeply (YAML allows 1000 levels)
// and recursion over them must never overflow the main thread's 8 MiB.
func runOnLargeStack() -> Never {
    let status = ExitStatus()
    let worker = Thread { status.set(runMain()) }
    worker.stackSize = 256 << 20
    worker.start()
    status.wait()
    exit(status.value)
}

final class ExitStatus: @unchecked Sendable {
    // @unchecked Sendable: `value` is written once before `done.signal()` and read only after `done.wait()`; the semaphore orders the two.
    private let done = DispatchSemaphore(value: 0)
    private(set) var value: Int32 = 2
    func set(_ v: Int32) { value = v; done.signal() }
    func wait() { done.wait() }
}

// First, before any thread exists: every thread created later inherits the blocked termination signals,
// and one thread receives them (ProcessSignals.swift).
ProcessSignals.takeOver()
runOnLargeStack()
