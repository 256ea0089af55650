// The one parser of a store argument (`--store`, `--out`, `--from`, `--to`): a path is a directory store,
// a postgres:// or postgresql:// URL a PostgreSQL store, anything else with a scheme is refused — so a URL
// with a typo can never be mistaken for a directory path and "published" into the working directory.
import Foundation
import SnapshotStorage

/// Where a store lives, as the operator named it.
public enum StoreArgument: Sendable, Equatable {
    case directory(String)
    case postgres(PostgresStoreURL)

    /// Parses a store argument. Throws `.invalidStoreArgument` for an unknown scheme or a malformed URL.
    public init(_ text: String) throws(SnapshotStoreError) {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { throw .invalidStoreArgument(argument: text, reason: "empty: give a directory path or a postgres:// URL") }
        if let scheme = Self.scheme(of: trimmed) {
            switch scheme.lowercased() {
            case "postgres", "postgresql":
                self = .postgres(try PostgresStoreURL(trimmed))
            case "file":
                guard let url = URL(string: trimmed), url.host == nil || url.host == "" || url.host == "localhost" else {
                    throw .invalidStoreArgument(argument: text, reason: "a file: URL must name a local path (file:///path)")
                }
                self = .directory(url.path)
            default:
                let shown = Self.redacted(trimmed)
                throw .invalidStoreArgument(
                    argument: shown,
                    reason: "unknown scheme \"\(scheme)\": a store is a directory path or a postgres://USER@HOST:PORT/DATABASE URL (for a directory whose name contains \"\(scheme):\" write ./\(shown))")
            }
        } else {
            self = .directory(trimmed)
        }
    }

    /// The scheme when the text looks like a URL (`letters:` followed by `//`, or a postgres: prefix
    /// without slashes, which is a typo of the URL form, not a directory name).
    static func scheme(of text: String) -> String? {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let scheme = text[..<colon]
        guard let first = scheme.first, first.isASCII, first.isLetter,
              scheme.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "-" || $0 == ".") }) else { return nil }
        let rest = text[text.index(after: colon)...]
        if rest.hasPrefix("//") { return String(scheme) }
        if scheme.lowercased().hasPrefix("postgres") {
            return String(scheme)
        }
        return nil
    }

    /// The text with any password replaced, for messages: the user-info's, and the value of any query
    /// parameter whose name mentions a password (a `password=` meshctl refuses still must not be echoed).
    static func redacted(_ text: String) -> String {
        var base = text
        var query: String?
        if let mark = text.firstIndex(of: "?") {
            base = String(text[..<mark])
            query = String(text[text.index(after: mark)...])
        }
        if let schemeEnd = base.range(of: "://"), let at = base[schemeEnd.upperBound...].firstIndex(of: "@"),
           let colon = base[schemeEnd.upperBound..<at].firstIndex(of: ":") {
            base = String(base[..<colon]) + ":REDACTED" + String(base[at...])
        }
        guard let query else { return base }
        let items = query.split(separator: "&", omittingEmptySubsequences: false).map { item -> String in
            guard let equals = item.firstIndex(of: "=") else { return String(item) }
            let key = item[..<equals].lowercased()
            return key.contains("password") && key != "password_file" ? String(item[..<equals]) + "=REDACTED" : String(item)
        }
        return base + "?" + items.joined(separator: "&")
    }

    /// How the store appears in logs and messages (never with a password).
    public var location: String {
        switch self {
        case .directory(let path): return path
        case .postgres(let url): return url.redactedDescription
        }
    }
}

/// A parsed postgres:// URL: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…&sslrootcert=…&host=/socket/dir&passfile=…&password_file=…&connect_timeout=…&poll_interval=…]`.
/// HOST may be a percent-encoded socket directory (`%2Fvar%2Frun%2Fpostgresql`), as may the `host` parameter.
public struct PostgresStoreURL: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, Equatable {
        case disable, prefer, require
        case verifyCA = "verify-ca"
        case verifyFull = "verify-full"
    }

    public var user: String
    /// From the URL only; `resolvedPassword()` also consults PGPASSWORD, a password file and .pgpass.
    var urlPassword: String?
    /// A TCP host name or address; nil when `socketDirectory` is used.
    public var host: String?
    public var port: Int
    /// The directory holding the server's `.s.PGSQL.PORT` socket.
    public var socketDirectory: String?
    public var database: String
    public var sslMode: SSLMode
    public var sslRootCertificate: String?
    public var passFile: String?
    public var passwordFile: String?
    public var connectTimeoutSeconds: Int
    /// The followers' backstop poll interval (LISTEN/NOTIFY is the prompt path).
    public var pollIntervalMilliseconds: Int

    static let knownParameters: Set<String> = ["sslmode", "sslrootcert", "host", "port", "user", "passfile", "password_file",
                                                "connect_timeout", "poll_interval", "dbname", "application_name"]

    public init(_ text: String) throws(SnapshotStoreError) {
        let shown = StoreArgument.redacted(text)
        func bad(_ reason: String) -> SnapshotStoreError { .invalidStoreArgument(argument: shown, reason: reason) }
        guard let schemeEnd = text.range(of: "://") else {
            throw bad("a PostgreSQL store is written postgres://USER@HOST:PORT/DATABASE (the \"//\" is missing)")
        }
        guard let components = URLComponents(string: text) else {
            throw bad("not a valid URL (percent-encode special characters in the user, password or path)")
        }
        _ = schemeEnd
        let environment = ProcessInfo.processInfo.environment
        var parameters: [String: String] = [:]
        for item in components.queryItems ?? [] {
            guard Self.knownParameters.contains(item.name) else {
                throw bad("unknown parameter \"\(item.name)\"; known: \(Self.knownParameters.sorted().joined(separator: ", "))")
            }
            parameters[item.name] = item.value ?? ""
        }
        user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding } ?? parameters["user"] ?? environment["PGUSER"] ?? environment["USER"] ?? "postgres"
        urlPassword = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        let hostText = (components.percentEncodedHost.flatMap { $0.removingPercentEncoding }).flatMap { $0.isEmpty ? nil : $0 }
            ?? parameters["host"] ?? environment["PGHOST"]
        if let portText = parameters["port"] ?? components.port.map(String.init) ?? environment["PGPORT"] {
            guard let p = Int(portText), (1...65535).contains(p) else { throw bad("port \"\(portText)\" is not a number from 1 to 65535") }
            port = p
        } else {
            port = 5432
        }
        if let hostText, hostText.hasPrefix("/") {
            socketDirectory = hostText
            host = nil
        } else {
            host = hostText ?? "localhost"
            socketDirectory = nil
        }
        var path = components.path
        while path.hasPrefix("/") { path.removeFirst() }
        let db = path.isEmpty ? (parameters["dbname"] ?? user) : path
        guard !db.contains("/") else { throw bad("the database name \"\(db)\" contains \"/\": the URL path is just the database name") }
        database = db
        let mode = parameters["sslmode"] ?? environment["PGSSLMODE"] ?? (socketDirectory != nil ? "disable" : "prefer")
        guard let parsed = SSLMode(rawValue: mode) else {
            throw bad("sslmode \"\(mode)\" is not one of disable, prefer, require, verify-ca, verify-full")
        }
        sslMode = parsed
        sslRootCertificate = parameters["sslrootcert"] ?? environment["PGSSLROOTCERT"]
        if (sslMode == .verifyCA || sslMode == .verifyFull), sslRootCertificate == nil {
            throw bad("sslmode=\(mode) needs sslrootcert=PATH (the CA bundle the server's certificate must chain to)")
        }
        passFile = parameters["passfile"] ?? environment["PGPASSFILE"]
        passwordFile = parameters["password_file"]
        let timeout = parameters["connect_timeout"] ?? environment["PGCONNECT_TIMEOUT"] ?? "5"
        guard let t = Int(timeout), (1...600).contains(t) else { throw bad("connect_timeout \"\(timeout)\" must be 1-600 seconds") }
        connectTimeoutSeconds = t
        let poll = parameters["poll_interval"] ?? "2000"
        guard let p = Int(poll), (10...3_600_000).contains(p) else { throw bad("poll_interval \"\(poll)\" must be 10-3600000 milliseconds") }
        pollIntervalMilliseconds = p
    }

    /// `postgres://USER@HOST:PORT/DATABASE` (or the socket directory) — never the password.
    public var redactedDescription: String {
        let endpoint = socketDirectory.map { "[\($0)]:\(port)" } ?? "\(host ?? "localhost"):\(port)"
        return "postgres://\(user)@\(endpoint)/\(database)"
    }

    public var description: String { redactedDescription }

    /// The password: the URL's, else PGPASSWORD, else the `password_file`, else the matching line of the
    /// pgpass file (`passfile`, PGPASSFILE or ~/.pgpass). Nil when there is none (trust or peer authentication).
    func resolvedPassword() throws(SnapshotStoreError) -> String? {
        if let urlPassword { return urlPassword }
        let environment = ProcessInfo.processInfo.environment
        if let password = environment["PGPASSWORD"] { return password }
        if let passwordFile {
            guard let data = FileManager.default.contents(atPath: passwordFile) else {
                throw .invalidStoreArgument(argument: redactedDescription, reason: "password_file \(passwordFile) cannot be read")
            }
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
        }
        let file = passFile ?? environment["HOME"].map { $0 + "/.pgpass" }
        guard let file, let data = FileManager.default.contents(atPath: file) else { return nil }
        let hostName = socketDirectory != nil ? "localhost" : (host ?? "localhost")
        for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) where !line.hasPrefix("#") {
            let fields = Self.pgpassFields(String(line))
            guard fields.count == 5 else { continue }
            let wanted = [hostName, String(port), database, user]
            if zip(fields.prefix(4), wanted).allSatisfy({ $0 == "*" || $0 == $1 }) { return fields[4] }
        }
        return nil
    }

    /// Splits a pgpass line on unescaped colons (`\:` and `\\` are escapes).
    static func pgpassFields(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var escaped = false
        for c in line {
            if escaped { current.append(c); escaped = false }
            else if c == "\\" { escaped = true }
            else if c == ":" { fields.append(current); current = "" }
            else { current.append(c) }
        }
        fields.append(current)
        return fields
    }
}

/// Opens the store an argument names.
/// - Parameter createIfMissing: a directory store may be created by a publish; a PostgreSQL store's tables are
///   created by a publish when the database is empty.
public func openSnapshotStore(_ argument: String, createIfMissing: Bool = false) throws(SnapshotStoreError) -> any SnapshotStoring {
    switch try StoreArgument(argument) {
    case .directory(let path): return SnapshotStore(directory: path, createIfMissing: createIfMissing)
    case .postgres(let url): return try PostgresSnapshotStore(url: url, createIfMissing: createIfMissing)
    }
}

extension StoreArgument {
    /// How a store argument is shown in output: the location without a password, or (for an argument
    /// that does not parse) the text with any password replaced.
    public static func displayed(_ text: String) -> String {
        (try? StoreArgument(text).location) ?? redacted(text)
    }
}

/// Opens the store a publisher writes to: a directory store is created (its path made absolute, since the
/// store creates missing directories from the root down); a PostgreSQL store gets its tables in an empty database.
public func openPublishTarget(_ argument: String) throws(SnapshotStoreError) -> any SnapshotStoring {
    switch try StoreArgument(argument) {
    case .directory(let path):
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return SnapshotStore(directory: absolute, createIfMissing: true)
    case .postgres(let url):
        return try PostgresSnapshotStore(url: url, createIfMissing: true)
    }
}
