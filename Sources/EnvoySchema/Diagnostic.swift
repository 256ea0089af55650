// Problems found in a user's configuration, as values: what is wrong, where
// (file, line, column and field path), and which rule found it.

/// One problem found in a configuration.
public struct Diagnostic: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public enum Severity: String, Sendable, Comparable {
        case error, warning, info

        private var rank: Int { self == .error ? 0 : self == .warning ? 1 : 2 }
        public static func < (a: Severity, b: Severity) -> Bool { a.rank < b.rank }
    }

    public var severity: Severity
    /// Stable rule id, e.g. `schema.unknown-field`, `pgv.string.min_len`, `xref.route-cluster`.
    public var rule: String
    /// What is wrong and what to do about it.
    public var message: String
    /// Field path from the document root, e.g. `static_resources.clusters[0].name`.
    public var path: String
    public var file: String?
    public var location: SourceLocation?

    public init(_ severity: Severity = .error, rule: String, message: String, path: String, file: String? = nil, location: SourceLocation? = nil) {
        self.severity = severity
        self.rule = rule
        self.message = message
        self.path = path
        self.file = file
        self.location = location
    }

    /// `file:line:column: error: path: message [rule]`
    public var description: String {
        var prefix = file ?? "<input>"
        if let location { prefix += ":\(location.line):\(location.column)" }
        let at = path.isEmpty ? "" : "\(path): "
        return "\(prefix): \(severity.rawValue): \(at)\(message) [\(rule)]"
    }

    /// Order for reports: file, then position, then path.
    public static func reportOrder(_ a: Diagnostic, _ b: Diagnostic) -> Bool {
        if (a.file ?? "") != (b.file ?? "") { return (a.file ?? "") < (b.file ?? "") }
        let la = a.location ?? SourceLocation(line: Int.max, column: 0)
        let lb = b.location ?? SourceLocation(line: Int.max, column: 0)
        if la != lb { return la < lb }
        if a.path != b.path { return a.path < b.path }
        return a.message < b.message
    }
}

/// One step of a field path.
enum PathComponent: Sendable {
    case field(String)
    case index(Int)
    case key(String)
    /// The message packed inside an `Any` (shown as `[type.googleapis.com/...]`).
    case anyType(String)
}

/// A path from the document root, rendered the way Envoy prints field paths.
struct FieldPath: Sendable {
    var components: [PathComponent] = []

    mutating func push(_ c: PathComponent) { components.append(c) }
    mutating func pop() { components.removeLast() }

    var rendered: String {
        var out = ""
        for component in components {
            switch component {
            case .field(let name):
                if !out.isEmpty { out += "." }
                out += name
            case .index(let i): out += "[\(i)]"
            case .key(let k): out += "[\"\(k)\"]"
            case .anyType: break  // the path runs straight through typed_config into the packed message
            }
        }
        return out
    }
}
