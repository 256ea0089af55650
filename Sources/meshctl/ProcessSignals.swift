// Owns the process's termination signals (SIGTERM, SIGINT, SIGHUP): blocked in every thread from the
// first instruction of main, and received in exactly one place, a thread that waits for them with sigwait(2).
//
// Why: a signal sent to a process is delivered to *any* thread that does not block it. Handlers installed
// after the server's threads exist (libdispatch signal sources, which on Linux read a signalfd from their
// own manager thread) see only signals that land on a thread blocking them; the event loops and the main
// thread did not, so a release `serve` silently lost every SIGTERM. Blocking before the first thread is
// created makes every later thread inherit the mask, so the one sigwait thread is the only receiver.
import Locking
import Foundation

enum ProcessSignals {
    /// The signals received here; any other signal keeps its default behaviour.
    static let handled: [Int32] = [SIGTERM, SIGINT, SIGHUP]

    private static let handler = Locked<(@Sendable (Int32) -> Void)?>(nil)
    /// The receiving thread's id (its /proc/self/task entry): while it sits in sigwait the kernel shows the
    /// signals as unblocked there.
    private static let receiverThreadID = Locked<String?>(nil)

    private static var handledSet: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in handled { sigaddset(&set, signal) }
        return set
    }

    /// Blocks the handled signals in the calling thread (call it from main before any thread starts) and
    /// starts the receiving thread. Until a command installs a handler, a signal has its default effect.
    static func takeOver() {
        var set = handledSet
        pthread_sigmask(SIG_BLOCK, &set, nil)
        let receiver = Thread {
            let threadSelf = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/thread-self")) ?? ""
            ProcessSignals.receiverThreadID.withLock { $0 = threadSelf.split(separator: "/").last.map(String.init) }
            var set = ProcessSignals.handledSet
            while true {
                var signal: Int32 = 0
                guard sigwait(&set, &signal) == 0 else { continue }
                if let handler = ProcessSignals.handler.withLock({ $0 }) {
                    handler(signal)
                } else {
                    ProcessSignals.actAsDefault(signal)
                }
            }
        }
        receiver.stackSize = 256 << 10
        receiver.start()
    }

    /// Routes every later handled signal to `body`, called on the signal thread (keep it short).
    static func handle(_ body: @escaping @Sendable (Int32) -> Void) {
        handler.withLock { $0 = body }
    }

    /// The signal's default disposition (terminate), so commands other than `serve` stop as before and a
    /// shell sees "killed by SIGINT".
    private static func actAsDefault(_ signal: Int32) -> Never {
        Glibc.signal(signal, SIG_DFL)
        var only = sigset_t()
        sigemptyset(&only)
        sigaddset(&only, signal)
        pthread_sigmask(SIG_UNBLOCK, &only, nil)
        raise(signal)
        _exit(128 + signal)  // not reached: the default action terminated the process
    }

    /// Threads of this process that do not block `signal` (read from /proc): the serve command checks that
    /// there are none once its threads are running, so a regression of the above is reported, not silent.
    static func threadsNotBlocking(_ signal: Int32) -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { task in
            guard task != receiverThreadID.withLock({ $0 }) else { return false }
            guard let status = try? String(contentsOfFile: "/proc/self/task/\(task)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigBlk:") }),
                  let mask = UInt64(line.dropFirst("SigBlk:".count).trimmingCharacters(in: .whitespaces), radix: 16) else { return false }
            return mask & (1 << UInt64(signal - 1)) == 0
        }.sorted()
    }
}
