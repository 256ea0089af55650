// Structured server events: one line per event, key=value fields (or JSON),
// never a private key or certificate body.
import Foundation

/// Where the server's events go.
public struct ServerLog: Sendable {
    public enum Format: String, Sendable { case text, json }
    public enum Level: Int, Sendable, Comparable {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
    }

    public var format: Format
    public var minimumLevel: Level
    private let write: @Sendable (String) -> Void

    public init(format: Format = .text, minimumLevel: Level = .info, write: @escaping @Sendable (String) -> Void = { line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }) {
        self.format = format
        self.minimumLevel = minimumLevel
        self.write = write
    }

    public func debug(_ event: String, _ fields: [String: String] = [:]) { emit(.debug, event, fields) }
    public func info(_ event: String, _ fields: [String: String] = [:]) { emit(.info, event, fields) }
    public func warning(_ event: String, _ fields: [String: String] = [:]) { emit(.warning, event, fields) }
    public func error(_ event: String, _ fields: [String: String] = [:]) { emit(.error, event, fields) }

    func emit(_ level: Level, _ event: String, _ fields: [String: String]) {
        guard level >= minimumLevel else { return }
        let time = ISO8601DateFormatter().string(from: Date())
        switch format {
        case .text:
            let rendered = fields.sorted { $0.key < $1.key }.map { "\($0.key)=\(quote($0.value))" }.joined(separator: " ")
            write("\(time) \(level) \(event)\(rendered.isEmpty ? "" : " " + rendered)")
        case .json:
            var object: [String: String] = fields
            object["time"] = time
            object["level"] = "\(level)"
            object["event"] = event
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            write(String(decoding: data, as: UTF8.self))
        }
    }

    private func quote(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) || value.isEmpty
            ? "\"" + value.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : value
    }
}
