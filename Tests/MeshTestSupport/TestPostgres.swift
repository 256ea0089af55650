// A throwaway PostgreSQL server for tests: initdb into a temporary directory, listening on a Unix socket in
// that directory and on 127.0.0.1 at a free port, stopped and removed at the end. PostgreSQL refuses to run
// as root (CI runs as root), so as root the cluster belongs to an unprivileged user (`nobody`) and every
// server command runs through `setpriv` (which execs, so the server is this process's own child and a signal
// reaches it directly); as anyone else it runs as that user. The server runs in the foreground as a child
// (not through `pg_ctl start`, whose daemonized server outlives a killed test run unnoticed).
import Foundation

public final class TestPostgres: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// The temporary directory holding the data directory, the socket and the log.
    public let directory: String
    public let port: Int
    /// Superuser, trusted on the socket and over TCP from 127.0.0.1 (tests only).
    public let superuser = "meshctl"
    let binaries: String
    let runAs: String?
    private let lock = NSLock()
    private var server: ChildProcess?

    public var dataDirectory: String { directory + "/data" }
    public var socketDirectory: String { directory + "/socket" }
    public var logPath: String { directory + "/postgres.log" }

    /// The binaries of the installed PostgreSQL (Debian puts them in /usr/lib/postgresql/N/bin).
    public static func binaryDirectory() -> String? {
        if let configured = ProcessInfo.processInfo.environment["MESHCTL_PG_BIN"], !configured.isEmpty { return configured }
        let base = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).compactMap(Int.init).sorted(by: >)
        for version in versions where FileManager.default.isExecutableFile(atPath: "\(base)/\(version)/bin/initdb") {
            return "\(base)/\(version)/bin"
        }
        return nil
    }

    /// Creates and starts a server (bounded waits: initdb 120 s, start 60 s).
    public init() throws {
        guard let binaries = Self.binaryDirectory() else {
            throw Failure(description: "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run `make deps` (installs the Debian postgresql package)")
        }
        self.binaries = binaries
        runAs = getuid() == 0 ? "nobody" : nil
        // Short: the socket path (directory + /socket/.s.PGSQL.PORT) must fit in 107 bytes.
        directory = "/tmp/mpg-\(UUID().uuidString.prefix(8))"
        port = E2E.freePort()
        try FileManager.default.createDirectory(atPath: socketDirectory, withIntermediateDirectories: true)
        if runAs != nil {
            try Self.check(ProcessRunner.run("/bin/chown", ["-R", "nobody:nogroup", directory], timeout: 30), "chown")
        }
        chmod(directory, 0o755)
        chmod(socketDirectory, 0o755)
        try Self.check(command("initdb", ["-D", dataDirectory, "-U", superuser, "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-sync", "--locale=C"], timeout: 120), "initdb")
        // fsync off: a test server never survives a machine crash anyway, and fsync is the slow part.
        let settings = """

            listen_addresses = '127.0.0.1'
            port = \(port)
            unix_socket_directories = '\(socketDirectory)'
            fsync = off
            synchronous_commit = off
            full_page_writes = off
            max_connections = 100
            """
        if let handle = FileHandle(forWritingAtPath: dataDirectory + "/postgresql.conf") {
            handle.seekToEndOfFile()
            handle.write(Data(settings.utf8))
            handle.closeFile()
        }
        try start()
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Starts (or restarts) the server on the same port and data; waits up to 60 s until it accepts connections.
    public func start() throws {
        let (executable, arguments) = invocation("postgres", ["-D", dataDirectory])
        let child = try ChildProcess(executable, arguments, log: logPath + ".\(UUID().uuidString.prefix(4))")
        lock.withLock { server = child }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            guard child.process.isRunning else { break }
            if let probe = try? command("pg_isready", ["-h", socketDirectory, "-p", String(port), "-U", superuser], timeout: 10), probe.status == 0 { return }
            usleep(100_000)
        }
        stop()
        throw Failure(description: "PostgreSQL did not accept connections within 60 s:\n\(String(child.output.suffix(3000)))")
    }

    /// Stops the server (fast shutdown: SIGINT, open connections are closed; SIGKILL after 30 s); a no-op when stopped.
    public func stop() {
        guard let child = lock.withLock({ () -> ChildProcess? in defer { server = nil }; return server }) else { return }
        guard child.process.isRunning else { return }
        kill(child.process.processIdentifier, SIGINT)
        let deadline = Date().addingTimeInterval(30)
        while child.process.isRunning && Date() < deadline { usleep(20_000) }
        child.kill9()
    }

    /// A store URL for `database` over the Unix socket (`user` defaults to the superuser).
    public func url(database: String, user: String? = nil, password: String? = nil) -> String {
        let socket = socketDirectory.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? socketDirectory
        let credentials = (user ?? superuser) + (password.map { ":" + $0 } ?? "")
        return "postgres://\(credentials)@\(socket):\(port)/\(database)"
    }

    /// A store URL for `database` over TCP on 127.0.0.1.
    public func tcpURL(database: String, user: String? = nil, password: String? = nil) -> String {
        let credentials = (user ?? superuser) + (password.map { ":" + $0 } ?? "")
        return "postgres://\(credentials)@127.0.0.1:\(port)/\(database)?sslmode=disable"
    }

    /// Creates a database and returns its socket URL.
    @discardableResult
    public func createDatabase(_ name: String) throws -> String {
        try sql("CREATE DATABASE \"\(name)\"")
        return url(database: name)
    }

    /// Runs SQL through psql as the superuser; returns its output (unaligned, tuples only).
    @discardableResult
    public func sql(_ statement: String, database: String = "postgres") throws -> String {
        let result = try command("psql", ["-h", socketDirectory, "-p", String(port), "-U", superuser, "-d", database,
                                          "-v", "ON_ERROR_STOP=1", "-At", "-c", statement], timeout: 60)
        guard result.status == 0 else { throw Failure(description: "psql \(statement): \(result.stderrText)") }
        return result.stdoutText.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs SQL in one psql session in the background (e.g. to hold a lock while sleeping); stop it when done.
    public func sqlSession(_ statements: String, database: String) throws -> ChildProcess {
        let (executable, arguments) = invocation("psql", ["-h", socketDirectory, "-p", String(port), "-U", superuser, "-d", database,
                                                          "-v", "ON_ERROR_STOP=1", "-At", "-c", statements])
        return try ChildProcess(executable, arguments, log: directory + "/session-\(UUID().uuidString.prefix(6)).log")
    }

    /// The running server's log so far (for failure messages).
    public func log() -> String {
        lock.withLock { server }.map { String($0.output.suffix(4000)) } ?? ""
    }

    /// The command line that runs a PostgreSQL program as the cluster's owner.
    private func invocation(_ name: String, _ arguments: [String]) -> (String, [String]) {
        guard let runAs else { return ("\(binaries)/\(name)", arguments) }
        return ("/usr/bin/setpriv", ["--reuid=\(runAs)", "--regid=nogroup", "--clear-groups", "--reset-env", "\(binaries)/\(name)"] + arguments)
    }

    private func command(_ name: String, _ arguments: [String], timeout: Double) throws -> ProcessOutput {
        let (executable, full) = invocation(name, arguments)
        return try ProcessRunner.run(executable, full, in: URL(fileURLWithPath: "/tmp"), timeout: timeout)
    }

    private static func check(_ result: ProcessOutput, _ what: String) throws {
        guard result.status == 0 else { throw Failure(description: "\(what) failed (\(result.status)): \(result.stderrText)\(result.stdoutText)") }
    }
}
