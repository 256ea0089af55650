// Owns the epoll event loops: one thread per loop, the fd registrations, the
// timer heap, and the queue through which other threads hand work to a loop.
internal import CTransportShims
import Locking
import Glibc
import Synchronization

/// An I/O source registered with an event loop; called on the loop thread.
protocol EventLoopSelectable: AnyObject {
    func handleEvent(readable: Bool, writable: Bool, hangup: Bool)
}

/// A handle to a timer scheduled on an `EventLoop`, used to cancel it.
public struct ScheduledTimer: Sendable, Hashable {
    let id: UInt64

    /// No timer (ids start at 1; cancelling it does nothing): a slot for a timer that may be pending, in 8 bytes
    /// where an optional takes 16, for objects kept per connection.
    static let none = ScheduledTimer(id: 0)
}

/// A single-threaded epoll event loop: every connection, stream and timer assigned to it runs on its thread.
///
/// Thread rules: `execute(_:)`, `inEventLoop` and `index` may be used from any thread;
/// everything else (`schedule`, `cancel`, and all objects bound to this loop) only on the loop thread.
public final class EventLoop: @unchecked Sendable {
    // @unchecked Sendable: `registrations`, `timers`, `timerActions` and `deferred` are only touched
    // on the loop thread (guarded by `assertInEventLoop`); `crossThread` is behind a Locked (NSLock); the file
    // descriptors and `index` are immutable after init.
    public let index: Int
    private let epollFD: Int32
    private let wakeFD: Int32
    private let crossThread = Locked(CrossThreadState())
    private let threadID = Atomic<UInt>(0)
    private var thread = pthread_t()

    private var registrations: [UInt64: EventLoopSelectable] = [:]
    private var nextRegistration: UInt64 = 1
    private var timers = TimerHeap()
    private var timerActions: [UInt64: () -> Void] = [:]
    private var nextTimerID: UInt64 = 1
    private var deferred: [() -> Void] = []

    /// Scratch space every connection on this loop reads into, so idle connections hold no read buffer.
    let readBuffer: UnsafeMutableRawBufferPointer

    private static let wakeRegistration: UInt64 = 0

    private struct CrossThreadState {
        var tasks: [@Sendable () -> Void] = []
        var stopRequested = false
    }

    init(index: Int) {
        self.index = index
        epollFD = transport_epoll_create()
        wakeFD = transport_eventfd()
        precondition(epollFD >= 0 && wakeFD >= 0, "epoll/eventfd creation failed: errno \(errno)")
        _ = transport_epoll_ctl(epollFD, transport_epoll_ctl_add(), wakeFD, transport_epollin(), Self.wakeRegistration)
        readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        readBuffer.deallocate()
        close(epollFD)
        close(wakeFD)
    }

    /// True when called on this loop's thread.
    public var inEventLoop: Bool {
        threadID.load(ordering: .acquiring) == pthread_self()
    }

    func assertInEventLoop(_ file: StaticString = #fileID, _ line: UInt = #line) {
        precondition(inEventLoop, "must be called on event loop \(index)", file: file, line: line)
    }

    /// Runs `task` on the loop thread soon; callable from any thread.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        crossThread.withLock { $0.tasks.append(task) }
        _ = transport_eventfd_signal(wakeFD)
    }

    /// Runs `body` on the loop thread after `delay`; call on the loop thread only.
    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping () -> Void) -> ScheduledTimer {
        schedule(at: .now + delay, body)
    }

    /// Runs `body` on the loop thread at `deadline`; call on the loop thread only.
    @discardableResult
    public func schedule(at deadline: ContinuousClock.Instant, _ body: @escaping () -> Void) -> ScheduledTimer {
        assertInEventLoop()
        let id = nextTimerID
        nextTimerID += 1
        timerActions[id] = body
        timers.push(deadline: deadline, id: id)
        return ScheduledTimer(id: id)
    }

    /// Cancels a timer that has not fired yet; call on the loop thread only.
    public func cancel(_ timer: ScheduledTimer) {
        assertInEventLoop()
        timerActions[timer.id] = nil
    }

    /// Runs `body` on this loop after the current event has been handled (on-loop only), e.g. to
    /// coalesce many sends into one flush or to free an object outside a C callback.
    func deferOnLoop(_ body: @escaping () -> Void) {
        deferred.append(body)
    }

    // MARK: registrations

    func register(fd: Int32, handler: EventLoopSelectable, events: UInt32) -> UInt64 {
        assertInEventLoop()
        let token = nextRegistration
        nextRegistration += 1
        registrations[token] = handler
        if transport_epoll_ctl(epollFD, transport_epoll_ctl_add(), fd, events, token) != 0 {
            registrations[token] = nil
            return 0
        }
        return token
    }

    func modify(fd: Int32, token: UInt64, events: UInt32) {
        _ = transport_epoll_ctl(epollFD, transport_epoll_ctl_mod(), fd, events, token)
    }

    func unregister(fd: Int32, token: UInt64) {
        assertInEventLoop()
        registrations[token] = nil
        _ = transport_epoll_ctl(epollFD, transport_epoll_ctl_del(), fd, 0, 0)
    }

    // MARK: running

    func start() {
        let box = Unmanaged.passRetained(ThreadEntry { [self] in self.run() })
        let rc = pthread_create(&thread, nil, { argument in
            let entry = Unmanaged<ThreadEntry>.fromOpaque(argument!).takeRetainedValue()
            entry.body()
            return nil
        }, box.toOpaque())
        precondition(rc == 0, "pthread_create failed: \(rc)")
    }

    /// Stops the loop after the tasks already queued, and waits for its thread to end.
    func stopAndJoin() {
        precondition(!inEventLoop, "an event loop cannot join itself")
        crossThread.withLock { $0.stopRequested = true }
        _ = transport_eventfd_signal(wakeFD)
        pthread_join(thread, nil)
    }

    private func run() {
        threadID.store(pthread_self(), ordering: .releasing)
        let capacity = 256
        let events = UnsafeMutablePointer<transport_epoll_event>.allocate(capacity: capacity)
        defer { events.deallocate() }
        let readable = transport_epollin(), writable = transport_epollout()
        let hangup = transport_epollhup() | transport_epollerr() | transport_epollrdhup()
        while true {
            runDeferred()
            let count = transport_epoll_wait(epollFD, events, Int32(capacity), deferred.isEmpty ? timeoutMilliseconds() : 0)
            if count < 0 && errno != EINTR {
                fatalError("epoll_wait failed: errno \(errno)")
            }
            for i in 0..<Int(max(count, 0)) {
                let event = events[i]
                if event.data == Self.wakeRegistration {
                    _ = transport_eventfd_drain(wakeFD)
                    continue
                }
                // A registration removed earlier in this batch (its fd may already be reused) is skipped.
                guard let handler = registrations[event.data] else { continue }
                handler.handleEvent(
                    readable: event.events & readable != 0,
                    writable: event.events & writable != 0,
                    hangup: event.events & hangup != 0)
                runDeferred()
            }
            runDueTimers()
            let (tasks, stop) = crossThread.withLock { state in
                let tasks = state.tasks
                state.tasks.removeAll()
                return (tasks, state.stopRequested)
            }
            for task in tasks { task() }
            if stop && tasks.isEmpty {
                runDeferred()
                break
            }
        }
        registrations.removeAll()
        timerActions.removeAll()
    }

    private func runDeferred() {
        while !deferred.isEmpty {
            let batch = deferred
            deferred.removeAll()
            for body in batch { body() }
        }
    }

    private func runDueTimers() {
        let now = ContinuousClock.now
        while let (deadline, id) = timers.peek(), deadline <= now {
            timers.pop()
            if let action = timerActions.removeValue(forKey: id) {
                action()
                runDeferred()
            }
        }
    }

    private func timeoutMilliseconds() -> Int32 {
        if crossThread.withLock({ !$0.tasks.isEmpty || $0.stopRequested }) { return 0 }
        // Cancelled timers stay in the heap until their deadline; drop them so they do not wake us.
        while let (_, id) = timers.peek(), timerActions[id] == nil { timers.pop() }
        guard let (deadline, _) = timers.peek() else { return -1 }
        let remaining = ContinuousClock.now.duration(to: deadline)
        if remaining <= .zero { return 0 }
        let (seconds, attoseconds) = remaining.components
        let milliseconds = seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
        return Int32(clamping: milliseconds)
    }
}

/// The closure a loop thread runs; boxed to cross the pthread_create boundary.
private final class ThreadEntry: @unchecked Sendable {
    // @unchecked Sendable: created by the starting thread and consumed once by the new thread.
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A fixed set of event loops, one thread each; connections are spread across them round-robin.
public final class EventLoopGroup: Sendable {
    /// The loops of this group, in index order.
    public let loops: [EventLoop]
    private let cursor = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// Starts `loopCount` loops (default: one per online CPU).
    public init(loopCount: Int = EventLoopGroup.onlineCPUCount) {
        // Writes to a closed peer must surface as EPIPE, not kill the process (OpenSSL writes with write(2)).
        signal(SIGPIPE, SIG_IGN)
        loops = (0..<max(1, loopCount)).map { EventLoop(index: $0) }
        for loop in loops { loop.start() }
    }

    /// The number of CPUs online, the default loop count.
    public static var onlineCPUCount: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// The next loop in round-robin order.
    public func next() -> EventLoop {
        loops[cursor.wrappingAdd(1, ordering: .relaxed).oldValue % loops.count]
    }

    /// Stops every loop and joins its thread; must not be called on a loop thread. Idempotent.
    public func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        for loop in loops { loop.stopAndJoin() }
    }
}
