// Structured server events through swift-log: one line per event, key=value fields
// (text) or one JSON object (json), never a private key or certificate body.
// Repeated identical warnings are rate-limited: a storm of the same NACK or
// handshake failure prints a few lines, then one line carrying how many were
// suppressed.
import Foundation
import Logging

/// Where the server's events go.
public struct ServerLog: Sendable {
    public enum Format: String, Sendable { case text, json }
    public enum Level: Int, Sendable, Comparable, CaseIterable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }

        public init?(name: String) {
            guard let level = Self.allCases.first(where: { "\($0)" == name }) else { return nil }
            self = level
        }

        var swiftLog: Logger.Level {
            switch self {
            case .debug: .debug
            case .info: .info
            case .warning: .warning
            case .error: .error
            }
        }
    }

    public var format: Format
    public var minimumLevel: Level
    private let logger: Logger
    private let limiter: LogRateLimiter

    /// Fields that differ between otherwise identical events (ports, connection numbers): not part of "identical".
    static let volatileFields: Set<String> = ["peer", "conn", "time"]

    public init(format: Format = .text, minimumLevel: Level = .info, rateLimit: LogRateLimiter.Policy = .init(),
                write: @escaping @Sendable (String) -> Void = { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }) {
        self.format = format
        self.minimumLevel = minimumLevel
        var logger = Logger(label: "meshctl") { _ in LineLogHandler(format: format, write: write) }
        logger.logLevel = minimumLevel.swiftLog
        self.logger = logger
        self.limiter = LogRateLimiter(policy: rateLimit)
    }

    public func debug(_ event: String, _ fields: [String: String] = [:], rateLimitKey: String? = nil) { emit(.debug, event, fields, rateLimitKey) }
    public func info(_ event: String, _ fields: [String: String] = [:], rateLimitKey: String? = nil) { emit(.info, event, fields, rateLimitKey) }
    public func warning(_ event: String, _ fields: [String: String] = [:], rateLimitKey: String? = nil) { emit(.warning, event, fields, rateLimitKey) }
    public func error(_ event: String, _ fields: [String: String] = [:], rateLimitKey: String? = nil) { emit(.error, event, fields, rateLimitKey) }

    /// Warnings and errors are rate-limited by `rateLimitKey`, or else by the event and its non-volatile fields.
    func emit(_ level: Level, _ event: String, _ fields: [String: String], _ rateLimitKey: String?) {
        guard level >= minimumLevel else { return }
        var fields = fields
        if level >= .warning {
            let key = rateLimitKey ?? ([event] + fields.filter { !Self.volatileFields.contains($0.key) }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }).joined(separator: "|")
            switch limiter.admit(key) {
            case .suppress: return
            case .emit(let suppressed): if suppressed > 0 { fields["suppressed_since_last"] = "\(suppressed)" }
            }
        }
        logger.log(level: level.swiftLog, Logger.Message(stringLiteral: event), metadata: fields.mapValues { .string($0) })
    }
}

/// Lets the first few occurrences of an event through per window, then counts the rest
/// and reports the count on the next occurrence that is let through. Thread-safe, bounded.
public final class LogRateLimiter: @unchecked Sendable {
    // @unchecked Sendable: the per-key windows are only touched under `lock`.
    public struct Policy: Sendable {
        /// Occurrences of one key printed per window.
        public var burst: Int
        public var window: Duration
        /// Distinct keys remembered; beyond it the oldest windows are forgotten.
        public var maxKeys: Int

        public init(burst: Int = 5, window: Duration = .seconds(10), maxKeys: Int = 4096) {
            self.burst = burst
            self.window = window
            self.maxKeys = maxKeys
        }
    }

    enum Decision: Equatable {
        /// Print it; `suppressed` identical events were dropped since the last one printed.
        case emit(suppressed: Int)
        case suppress
    }

    private struct Window {
        var start: ContinuousClock.Instant
        var printed: Int
        var suppressed: Int
    }

    private let policy: Policy
    private let clock: @Sendable () -> ContinuousClock.Instant
    private let lock = NSLock()
    private var windows: [String: Window] = [:]

    init(policy: Policy, clock: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.policy = policy
        self.clock = clock
    }

    func admit(_ key: String) -> Decision {
        let now = clock()
        return lock.withLock {
            if var w = windows[key] {
                if now - w.start >= policy.window {
                    let suppressed = w.suppressed
                    w = Window(start: now, printed: 1, suppressed: 0)
                    windows[key] = w
                    return .emit(suppressed: suppressed)
                }
                if w.printed < policy.burst {
                    w.printed += 1
                    let suppressed = w.suppressed
                    w.suppressed = 0
                    windows[key] = w
                    return .emit(suppressed: suppressed)
                }
                w.suppressed += 1
                windows[key] = w
                return .suppress
            }
            if windows.count >= policy.maxKeys {
                windows = windows.filter { now - $0.value.start < policy.window }
                if windows.count >= policy.maxKeys { windows.removeAll(keepingCapacity: true) }
            }
            windows[key] = Window(start: now, printed: 1, suppressed: 0)
            return .emit(suppressed: 0)
        }
    }
}

/// A swift-log handler writing one line per event: `TIME LEVEL EVENT k=v …` or a JSON object.
struct LineLogHandler: LogHandler {
    let format: ServerLog.Format
    let write: @Sendable (String) -> Void
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?
    var logLevel: Logger.Level = .info

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    private static let timeFormat: Date.ISO8601FormatStyle = .iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)

    func log(event: LogEvent) {
        var fields: [String: String] = [:]
        for (key, value) in metadata { fields[key] = "\(value)" }
        for (key, value) in event.metadata ?? [:] { fields[key] = "\(value)" }
        let time = Date().formatted(Self.timeFormat)
        let level = Self.name(event.level)
        let name = event.message.description
        switch format {
        case .text:
            let rendered = fields.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.quote($0.value))" }.joined(separator: " ")
            write("\(time) \(level) \(name)\(rendered.isEmpty ? "" : " " + rendered)")
        case .json:
            var object = fields
            object["time"] = time
            object["level"] = level
            object["event"] = name
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            write(String(decoding: data, as: UTF8.self))
        }
    }

    static func name(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: "debug"
        case .info, .notice: "info"
        case .warning: "warning"
        case .error, .critical: "error"
        }
    }

    /// Values with spaces, quotes, '=' or line breaks are quoted so one event stays one parseable line.
    static func quote(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) else { return value }
        let escaped = value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
        return "\"" + escaped + "\""
    }
}
