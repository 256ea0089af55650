// Hot reload for the xDS server: notices when `current` moves (inotify on Linux, polling as
// a fallback and a safety net), loads the new snapshot, and hands it over. A snapshot that
// fails to load is refused with an error value; the previous one stays live.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Watches a store's live pointer and delivers each newly live snapshot, or why it was refused.
public final class SnapshotWatcher: @unchecked Sendable {
    // @unchecked Sendable: `stopped`, `live`, `worker`, `signal`, `confirmed` and the first-pass fields are only touched under `lock`; the callbacks are @Sendable.
    /// What the watcher reports.
    public enum Event: Sendable {
        /// A new live snapshot, fully loaded.
        case loaded(Snapshot)
        /// `current` moved to a version that cannot be loaded; the previously delivered snapshot stays live.
        /// `version` is "current" when the live pointer itself cannot be read (e.g. the database is unreachable).
        case refused(version: String, error: SnapshotStoreError)
        /// The live pointer can be read again after `.refused(version: "current", …)`.
        case storeReachable
    }

    /// Every event, in order. Only the newest few are buffered for a slow consumer (snapshots are large).
    public let events: AsyncStream<Event>

    private let continuation: AsyncStream<Event>.Continuation
    private let store: any SnapshotStoring
    private let handler: (@Sendable (Event) -> Void)?
    private var confirmed: (@Sendable (String) -> Void)?
    private var firstPassed: (@Sendable () -> Void)?
    private var firstPassDone = false
    private let pollMilliseconds: Int
    private let retryMilliseconds: Int
    private let check: LoadCheck
    // Guards the fields below.
    private let lock = NSLock()
    private var stopped = false
    private var live: Snapshot?
    private var worker: Thread?
    private var signal: (any StoreChangeSignal)?
    private let finished = DispatchSemaphore(value: 0)

    /// Starts watching at once; the live snapshot (if any) is the first event.
    /// - Parameters:
    ///   - pollMilliseconds: longest wait between pointer checks (inotify usually wakes the watcher sooner).
    ///   - retryMilliseconds: how often a refused version is tried again (it may be repaired by `verify` + publish).
    ///   - check: how much the loader checks (see `LoadCheck`).
    ///   - handler: called on the watcher's thread for each event, before it goes to `events`.
    public init(store: any SnapshotStoring, pollMilliseconds: Int = 50, retryMilliseconds: Int = 1000,
                check: LoadCheck = .sizes, handler: (@Sendable (Event) -> Void)? = nil) {
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .bufferingNewest(4))
        self.store = store
        self.handler = handler
        self.pollMilliseconds = max(1, pollMilliseconds)
        self.retryMilliseconds = max(1, retryMilliseconds)
        self.check = check
        let thread = Thread { [self] in self.run() }
        thread.name = "SnapshotWatcher"
        lock.withLock { worker = thread }
        thread.start()
    }

    /// The last snapshot delivered as `.loaded`.
    public var snapshot: Snapshot? { lock.withLock { live } }

    /// Stops watching and ends `events`. Waits for the watcher's thread unless called from it.
    public func stop() {
        let (wasStopped, thread, signal) = lock.withLock { () -> (Bool, Thread?, (any StoreChangeSignal)?) in
            defer { stopped = true }
            return (stopped, worker, self.signal)
        }
        guard !wasStopped else { return }
        signal?.wake()
        if Thread.current != thread { finished.wait() }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    /// Called after every read of the live pointer that found the version already delivered (the follower is
    /// up to date as of that read); set once, right after starting.
    public func onUpToDate(_ confirmed: @escaping @Sendable (String) -> Void) {
        lock.withLock { self.confirmed = confirmed }
    }

    /// Calls `done` once the first read of the live pointer (and the load of what it names, if anything) has
    /// finished, whatever its outcome — at once if that already happened. Until then a server cannot tell "no
    /// snapshot yet" from "not read yet".
    public func onFirstPass(_ done: @escaping @Sendable () -> Void) {
        let already = lock.withLock { () -> Bool in
            if !firstPassDone { firstPassed = done }
            return firstPassDone
        }
        if already { done() }
    }

    /// Reads the live pointer again now instead of at the end of the current wait.
    public func refresh() {
        lock.withLock { signal }?.wake()
    }

    private func emit(_ event: Event) {
        handler?(event)
        continuation.yield(event)
    }

    private func run() {
        defer {
            continuation.finish()
            finished.signal()
        }
        let signal = store.makeChangeSignal()
        // A stop() that raced ahead of this point finds the flag set; one after it wakes the signal.
        lock.withLock { self.signal = signal }
        var delivered: String?
        var failure: (version: String, at: Date)?
        var pointerError: SnapshotStoreError?
        while !isStopped {
            var pointer: String?
            do {
                pointer = try store.currentVersion()
                if pointerError != nil { emit(.storeReachable) }
                pointerError = nil
            } catch {
                if pointerError != error { emit(.refused(version: "current", error: error)) }
                pointerError = error
            }
            if let version = pointer, version != delivered {
                let due = failure.map { $0.version != version || Date().timeIntervalSince($0.at) * 1000 >= Double(retryMilliseconds) } ?? true
                if due {
                    do {
                        let snapshot = try store.load(version: version, check: check)
                        lock.withLock { live = snapshot }
                        delivered = version
                        failure = nil
                        emit(.loaded(snapshot))
                    } catch {
                        let reported: SnapshotStoreError
                        if case .versionNotFound = error { reported = .currentVersionMissing(version: version) } else { reported = error }
                        if failure?.version != version { emit(.refused(version: version, error: reported)) }
                        failure = (version, Date())
                    }
                }
            }
            // The pointer was read and its version is the one delivered: this follower is up to date as of this read.
            if let version = pointer, version == delivered, let confirmed = lock.withLock({ self.confirmed }) { confirmed(version) }
            let first = lock.withLock { () -> (@Sendable () -> Void)? in
                defer { firstPassDone = true; firstPassed = nil }
                return firstPassDone ? nil : firstPassed
            }
            first?()
            signal.wait(milliseconds: pollMilliseconds)
        }
    }
}

/// inotify on the store directory: `current` is replaced by rename, which inotify reports at once.
/// Without inotify (or before the directory exists) it degrades to a timed wait, i.e. polling.
/// A pipe lets `wake()` end a wait early.
final class DirectoryChangeSignal: StoreChangeSignal, @unchecked Sendable {
    // @unchecked Sendable: `watch` and the inotify reads are only touched under `lock`; the file descriptors are fixed at init and `wake()` only writes to the pipe, which is thread-safe.
    private let directory: String
    private let fd: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    // Guards `watch`; one waiter at a time.
    private let lock = NSLock()
    private var watch: Int32 = -1
    private static let mask = UInt32(IN_MOVED_TO) | UInt32(IN_CLOSE_WRITE) | UInt32(IN_CREATE) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)

    init(directory: String) {
        self.directory = directory
        fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        // Watch from the start, so a change between the waiter's first read and first wait is queued.
        if fd >= 0 { watch = inotify_add_watch(fd, directory, Self.mask) }
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for end in ends {
                _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
                _ = fcntl(end, F_SETFD, FD_CLOEXEC)
            }
        } else {
            ends = [-1, -1]
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    deinit {
        for descriptor in [fd, wakeRead, wakeWrite] where descriptor >= 0 { close(descriptor) }
    }

    func wake() {
        guard wakeWrite >= 0 else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    func wait(milliseconds: Int) {
        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 && watch < 0 { watch = inotify_add_watch(fd, directory, Self.mask) }
        var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                           pollfd(fd: fd >= 0 && watch >= 0 ? fd : -1, events: Int16(POLLIN), revents: 0)]
        guard poll(&descriptors, 2, Int32(milliseconds)) > 0 else { return }
        if descriptors[0].revents != 0 {
            var buffer = [UInt8](repeating: 0, count: 64)
            _ = buffer.withUnsafeMutableBytes { read(wakeRead, $0.baseAddress, $0.count) }
        }
        if descriptors[1].revents != 0 { drain() }
    }

    /// Consumes pending events; a removed watch (directory deleted or moved) is re-added on the next wait.
    private func drain() {
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { return }
            var offset = 0
            while offset + 16 <= n {
                let eventMask = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self) }
                let nameLength = buffer.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self) }
                if eventMask & (UInt32(IN_IGNORED) | UInt32(IN_DELETE_SELF) | UInt32(IN_MOVE_SELF)) != 0 {
                    if watch >= 0 { inotify_rm_watch(fd, watch) }
                    watch = -1
                }
                offset += 16 + Int(nameLength)
            }
        }
    }
}
