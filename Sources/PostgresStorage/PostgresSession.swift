// The synchronous `SnapshotStoring` over postgres-nio's event-loop API. Store calls come from plain
// threads (the CLI, the snapshot watcher) and sometimes from the admin endpoint's handlers, so:
// - the connections live on a dedicated one-thread EventLoopGroup (never the server's or Hummingbird's loops);
// - queries use the EventLoopFuture API and the caller waits on the future: the caller is never one of this
//   group's threads, so no event loop is ever blocked, and no Swift-concurrency thread is needed to finish;
// - connecting (async-only in postgres-nio) runs as a task on a private executor backed by its own queue,
//   so a caller that blocks on it cannot starve the cooperative pool the rest of the process uses.
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import SnapshotStorage

/// The event loops and task executor all PostgreSQL stores of the process share.
enum PostgresRuntime {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    static let executor = QueueTaskExecutor(label: "meshctl.postgres.connect")
    static let logger: Logger = {
        var logger = Logger(label: "meshctl.postgres")
        logger.logLevel = .critical
        return logger
    }()
}

/// A TaskExecutor on a serial dispatch queue: tasks started with it never occupy a cooperative-pool thread.
final class QueueTaskExecutor: TaskExecutor, @unchecked Sendable {
    // @unchecked Sendable: its only state is a serial DispatchQueue, which is thread-safe.
    private let queue: DispatchQueue

    init(label: String) { queue = DispatchQueue(label: label) }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// Runs `body` as a task on the private executor and waits for it on the calling thread, at most `seconds`
/// (nil when it has not finished by then; `abandoned` then receives its result whenever it comes).
func blockingAwait<T: Sendable>(seconds: Double, _ body: @escaping @Sendable () async throws -> T,
                                abandoned: @escaping @Sendable (Result<T, any Error>) -> Void = { _ in }) -> Result<T, any Error>? {
    let outcome = FirstResult<T>()
    Task(executorPreference: PostgresRuntime.executor) {
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        if !outcome.offer(result) { abandoned(result) }
    }
    return outcome.wait(seconds: seconds)
}

/// One connection, opened on first use and again after it broke (with backoff, so a replica whose database
/// is gone does not hammer it). Calls are serialized: a store object runs one transaction at a time.
final class PostgresSession: @unchecked Sendable {
    // @unchecked Sendable: `connection`, `lastFailure` and `schemaCheckedConnection` are only touched under `lock` (one transaction at a time); `url` and `password` are immutable.
    let url: PostgresStoreURL
    private let password: String?
    private let lock = NSLock()
    private var connection: PostgresConnection?
    private var lastFailure: (error: SnapshotStoreError, at: Date, delay: Double)?
    /// The connection whose schema version was checked (frequent writers check once per connection, not per call).
    /// Only touched inside `withConnection`, under `lock`.
    var schemaCheckedConnection: ObjectIdentifier?
    private static let nextID = NSLock()
    nonisolated(unsafe) private static var counter = 0

    init(url: PostgresStoreURL) throws(SnapshotStoreError) {
        self.url = url
        self.password = try url.resolvedPassword()
    }

    deinit {
        if let connection { closeKeepingAlive(connection) }
    }

    var location: String { url.redactedDescription }

    /// Runs `body` with the connection held; a connection-level failure drops the connection so the next call reconnects.
    func withConnection<T>(_ body: (PostgresConnection) throws(SnapshotStoreError) -> T) throws(SnapshotStoreError) -> T {
        lock.lock()
        defer { lock.unlock() }
        let connection = try connected()
        do {
            return try body(connection)
        } catch {
            if case .unreachable = error {
                closeKeepingAlive(connection)
                self.connection = nil
            }
            throw error
        }
    }

    /// Opens a new connection outside the session (the LISTEN connection of a change signal).
    func openConnection() throws(SnapshotStoreError) -> PostgresConnection {
        let configuration = try makeConfiguration()
        let id = Self.nextID.withLock { () -> Int in Self.counter += 1; return Self.counter }
        let location = self.location
        let loop = PostgresRuntime.group.next()
        // connect_timeout bounds the TCP connect; the bound here also covers TLS and authentication with a server
        // that accepted the socket and then never answered.
        let bound = Double(url.connectTimeoutSeconds) * 2 + 5
        let result = blockingAwait(seconds: bound) {
            try await PostgresConnection.connect(on: loop, configuration: configuration, id: id, logger: PostgresRuntime.logger)
        } abandoned: { late in
            if case .success(let connection) = late { closeKeepingAlive(connection) }
        }
        switch result {
        case .success(let connection): return connection
        case .failure(let error): throw PostgresErrors.map(error, location: location, connecting: true)
        case nil: throw .unreachable(location: location, detail: "no connection within \(Int(bound)) s (the server accepted but did not finish the start-up)")
        }
    }

    private func connected() throws(SnapshotStoreError) -> PostgresConnection {
        if let connection, !connection.isClosed { return connection }
        connection = nil
        if let failure = lastFailure, Date().timeIntervalSince(failure.at) < failure.delay { throw failure.error }
        schemaCheckedConnection = nil
        do {
            let c = try openConnection()
            connection = c
            lastFailure = nil
            return c
        } catch {
            // Backoff only for "cannot reach": wrong credentials fail the same way every time anyway.
            let delay = min(5, max(0.25, (lastFailure?.delay ?? 0.125) * 2))
            lastFailure = (error, Date(), delay)
            throw error
        }
    }

    private func makeConfiguration() throws(SnapshotStoreError) -> PostgresConnection.Configuration {
        var configuration: PostgresConnection.Configuration
        if let directory = url.socketDirectory {
            configuration = .init(unixSocketPath: "\(directory)/.s.PGSQL.\(url.port)", username: url.user, password: password, database: url.database)
        } else {
            let tls: PostgresConnection.Configuration.TLS
            do {
                switch url.sslMode {
                case .disable: tls = .disable
                case .prefer, .require:
                    var c = TLSConfiguration.makeClientConfiguration()
                    c.certificateVerification = .none
                    let context = try NIOSSLContext(configuration: c)
                    tls = url.sslMode == .prefer ? .prefer(context) : .require(context)
                case .verifyCA, .verifyFull:
                    var c = TLSConfiguration.makeClientConfiguration()
                    c.certificateVerification = url.sslMode == .verifyFull ? .fullVerification : .noHostnameVerification
                    c.trustRoots = .file(url.sslRootCertificate!)
                    tls = .require(try NIOSSLContext(configuration: c))
                }
            } catch {
                throw .invalidStoreArgument(argument: location, reason: "TLS set-up failed (sslrootcert \(url.sslRootCertificate ?? "-")): \(error)")
            }
            configuration = .init(host: url.host ?? "localhost", port: url.port, username: url.user, password: password, database: url.database, tls: tls)
        }
        configuration.options.connectTimeout = .seconds(Int64(url.connectTimeoutSeconds))
        return configuration
    }
}

/// Closes a connection without waiting; the connection object lives until the close completes
/// (postgres-nio requires a connection to be closed before it is released).
func closeKeepingAlive(_ connection: PostgresConnection) {
    let closing: EventLoopFuture<Void> = connection.close()
    closing.whenComplete { _ in withExtendedLifetime(connection) {} }
}

extension PostgresConnection {
    /// The longest a store call waits for an answer on an open connection (a database host that vanished
    /// without closing the socket); a closed connection ends the wait at once.
    static let answerTimeoutSeconds = 120.0

    /// Runs one query and waits for all its rows — or until the connection closes, whichever comes first.
    ///
    /// The close is watched as well because postgres-nio (1.33.2) drops a query written to a channel that is
    /// closing: its handlers are already gone, the write fails with no promise to fail, and the query's future
    /// never completes. A caller waiting on that future alone hangs for good; a replica's snapshot watcher did
    /// exactly that once during a database shutdown (PostgresConnectionLossTests reproduces it).
    func run(_ query: PostgresQuery, location: String) throws(SnapshotStoreError) -> PostgresQueryResult {
        let outcome = FirstResult<PostgresQueryResult>()
        self.query(query, logger: PostgresRuntime.logger).whenComplete { outcome.offer($0) }
        closeFuture.whenComplete { _ in
            outcome.offer(.failure(SnapshotStoreError.unreachable(location: location, detail: "the connection to the database closed")))
        }
        guard let result = outcome.wait(seconds: Self.answerTimeoutSeconds) else {
            closeKeepingAlive(self)
            throw .unreachable(location: location, detail: "no answer from the database within \(Int(Self.answerTimeoutSeconds)) s; the connection was closed")
        }
        switch result {
        case .success(let rows): return rows
        case .failure(let error): throw PostgresErrors.map(error, location: location, connecting: false)
        }
    }
}

/// The first of several competing outcomes (an answer, a close, a timeout), waited for on a plain thread.
final class FirstResult<T: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only touched under `lock`; the semaphore is thread-safe.
    private let lock = NSLock()
    private var value: Result<T, any Error>?
    private var abandoned = false
    private let settled = DispatchSemaphore(value: 0)

    /// Keeps `result` unless an outcome was offered before; true when it was kept.
    @discardableResult
    func offer(_ result: Result<T, any Error>) -> Bool {
        let first = lock.withLock { () -> Bool in
            guard value == nil, !abandoned else { return false }
            value = result
            return true
        }
        if first { settled.signal() }
        return first
    }

    /// The first outcome, or nil when none came within `seconds` (a later offer is then refused: its owner
    /// must dispose of it).
    func wait(seconds: Double) -> Result<T, any Error>? {
        _ = settled.wait(timeout: .now() + seconds)
        return lock.withLock {
            if value == nil { abandoned = true }
            return value
        }
    }
}

/// postgres-nio errors → store errors, each one line saying what is wrong.
enum PostgresErrors {
    /// The connection failure in a few words (NIO's descriptions nest every attempt's details).
    static func connectionCause(_ error: PSQLError) -> String {
        let text = error.underlying.map { "\($0)" } ?? "\(error.code)"
        let lower = text.lowercased()
        if lower.contains("connection refused") { return "connection refused" }
        if lower.contains("timeout") || lower.contains("timed out") { return "connection timed out" }
        if lower.contains("no such file") { return "no server socket there" }
        if lower.contains("name or service not known") || lower.contains("nodename nor servname") || lower.contains("unknown host") { return "unknown host" }
        if error.code == .serverClosedConnection || error.code == .uncleanShutdown { return "the server closed the connection" }
        if error.code == .clientClosedConnection { return "the connection was closed" }
        // A nested PSQLError describes itself only generically (to keep query data out of logs): name its code.
        if let nested = error.underlying as? PSQLError { return "\(nested.code)" }
        return text
    }

    static func map(_ error: any Error, location: String, connecting: Bool) -> SnapshotStoreError {
        if let error = error as? SnapshotStoreError { return error }
        guard let psql = error as? PSQLError else {
            return connecting ? .unreachable(location: location, detail: "\(error)") : .database(location: location, detail: "\(error)")
        }
        if let info = psql.serverInfo {
            let state = info[.sqlState] ?? ""
            let message = info[.message] ?? "error"
            switch state {
            case "28P01", "28000": return .accessDenied(location: location, detail: message)
            case "3D000": return .accessDenied(location: location, detail: message)
            case "57P01", "57P02", "57P03", "08000", "08003", "08006":
                return .unreachable(location: location, detail: message)
            default: return .database(location: location, detail: "\(message) (SQLSTATE \(state))")
            }
        }
        switch psql.code {
        case .authMechanismRequiresPassword:
            return .accessDenied(location: location, detail: "the server asks for a password and none was given")
        case .unsupportedAuthMechanism, .saslError:
            return .accessDenied(location: location, detail: "authentication failed (\(psql.code))")
        case .sslUnsupported:
            return .unreachable(location: location, detail: "the server does not offer TLS (sslmode requires it)")
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection:
            return .unreachable(location: location, detail: connectionCause(psql))
        default:
            return connecting ? .unreachable(location: location, detail: "\(psql.code)") : .database(location: location, detail: "\(psql.code)")
        }
    }
}
