// Reading Configs/ YAML into typed values: every unknown key, wrong type, missing key and
// bad value is a Diagnostic at the user's line and column, and reading continues past
// it so one run reports everything.
import EnvoySchema

/// A value with the position of the YAML node it was read from.
struct Located<Value: Sendable>: Sendable {
    var value: Value
    var location: SourceLocation
}

/// A duration as written and in milliseconds (for comparisons).
struct ConfigDuration: Sendable, Equatable {
    let milliseconds: Int64
    /// Envoy's JSON form: seconds with up to 9 fractional digits and an "s" ("0.250s").
    var envoy: String {
        let seconds = milliseconds / 1000, rest = milliseconds % 1000
        return rest == 0 ? "\(seconds)s" : "\(seconds).\(String(format: "%03d", rest))s"
    }
}

/// One mapping's keys, after unknown keys were reported.
struct ConfigFields {
    let node: YAMLNode
    let path: String
    let pairs: [(key: YAMLNode, value: YAMLNode)]

    subscript(_ key: String) -> YAMLNode? { pairs.first { $0.key.scalarText == key }?.value }
    func keyLocation(_ key: String) -> SourceLocation? { pairs.first { $0.key.scalarText == key }?.key.location }
    func has(_ key: String) -> Bool { self[key] != nil }
    func path(_ key: String) -> String { path.isEmpty ? key : path + "." + key }
}

struct ConfigReader {
    let file: String
    var diagnostics: [Diagnostic] = []

    init(file: String) { self.file = file }

    mutating func report(_ rule: String, _ message: String, path: String, at location: SourceLocation?, severity: Diagnostic.Severity = .error) {
        diagnostics.append(Diagnostic(severity, rule: rule, message: message, path: path, file: file, location: location))
    }

    static func describe(_ node: YAMLNode) -> String {
        switch node.kind {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s):
            if s.style == .plain && ["", "~", "null", "Null", "NULL"].contains(s.string) { return "null" }
            return "the scalar '\(s.string.count > 40 ? String(s.string.prefix(40)) + "…" : s.string)'"
        }
    }

    /// A mapping whose keys must be among `known`; `required` keys missing are reported at the mapping.
    mutating func fields(_ node: YAMLNode, path: String, what: String, known: [String], required: [String] = []) -> ConfigFields? {
        guard case .mapping(let pairs) = node.kind else {
            report("config.type", "\(what) must be a mapping (key: value lines), got \(Self.describe(node))", path: path, at: node.location)
            return nil
        }
        var kept: [(key: YAMLNode, value: YAMLNode)] = []
        for pair in pairs {
            guard let key = pair.key.scalarText else {
                report("config.type", "keys must be plain names, got \(Self.describe(pair.key))", path: path, at: pair.key.location)
                continue
            }
            guard known.contains(key) else {
                let hint = closestName(key, known).map { "did you mean '\($0)'? " } ?? ""
                report("config.unknown-key", "unknown key '\(key)' in \(what); \(hint)known keys: \(known.joined(separator: ", "))", path: path.isEmpty ? key : path + "." + key, at: pair.key.location)
                continue
            }
            kept.append(pair)
        }
        let fields = ConfigFields(node: node, path: path, pairs: kept)
        for key in required where !fields.has(key) {
            report("config.missing-key", "\(what) needs '\(key)'; add it", path: fields.path(key), at: node.location)
        }
        return fields
    }

    func isNull(_ node: YAMLNode) -> Bool {
        guard case .scalar(let s) = node.kind, s.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.string)
    }

    mutating func string(_ node: YAMLNode?, path: String, what: String? = nil) -> Located<String>? {
        guard let node else { return nil }
        guard case .scalar(let s) = node.kind, !isNull(node) else {
            report("config.type", "\(what ?? "'\(path)'") must be a string, got \(Self.describe(node))", path: path, at: node.location)
            return nil
        }
        return Located(value: s.string, location: node.location)
    }

    /// A string matching `pattern` (described as `rule` in the message).
    mutating func name(_ node: YAMLNode?, path: String, what: String) -> Located<String>? {
        guard let value = string(node, path: path, what: what) else { return nil }
        guard Self.isName(value.value) else {
            report("config.value", "\(what) '\(value.value)' is not a valid name; use lowercase letters, digits and '-' (start with a letter, at most 63 characters)", path: path, at: value.location)
            return nil
        }
        return value
    }

    static func isName(_ s: String) -> Bool {
        guard let first = s.utf8.first, s.utf8.count <= 63, first >= UInt8(ascii: "a") && first <= UInt8(ascii: "z") else { return false }
        return s.utf8.allSatisfy { ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "-") }
            && !s.hasSuffix("-")
    }

    mutating func int(_ node: YAMLNode?, path: String, range: ClosedRange<Int>, what: String? = nil) -> Located<Int>? {
        guard let node else { return nil }
        guard case .scalar(let s) = node.kind, s.style == .plain, let value = Int(s.string) else {
            report("config.type", "\(what ?? "'\(path)'") must be a whole number, got \(Self.describe(node))", path: path, at: node.location)
            return nil
        }
        guard range.contains(value) else {
            report("config.value", "\(what ?? "'\(path)'") must be between \(range.lowerBound) and \(range.upperBound), got \(value)", path: path, at: node.location)
            return nil
        }
        return Located(value: value, location: node.location)
    }

    mutating func port(_ node: YAMLNode?, path: String, what: String) -> Located<Int>? {
        int(node, path: path, range: 1...65535, what: what)
    }

    mutating func bool(_ node: YAMLNode?, path: String) -> Located<Bool>? {
        guard let node else { return nil }
        guard case .scalar(let s) = node.kind, s.style == .plain, s.string == "true" || s.string == "false" else {
            report("config.type", "'\(path)' must be true or false, got \(Self.describe(node))", path: path, at: node.location)
            return nil
        }
        return Located(value: s.string == "true", location: node.location)
    }

    /// `250ms`, `1s`, `1.5s`, `2m`, `1h`.
    mutating func duration(_ node: YAMLNode?, path: String) -> Located<ConfigDuration>? {
        guard let text = string(node, path: path) else { return nil }
        guard let duration = Self.parseDuration(text.value) else {
            report("config.value", "'\(text.value)' is not a duration; write e.g. 250ms, 2s, 1.5s or 1m", path: path, at: text.location)
            return nil
        }
        return Located(value: duration, location: text.location)
    }

    static func parseDuration(_ text: String) -> ConfigDuration? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            guard !number.isEmpty, number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let value = Double(number) else { return nil }
            let ms = value * scale
            guard ms >= 0, ms < 315_576_000_000_000, ms == ms.rounded() else { return nil }
            return ConfigDuration(milliseconds: Int64(ms))
        }
        return nil
    }

    mutating func list(_ node: YAMLNode?, path: String, what: String? = nil) -> [YAMLNode]? {
        guard let node else { return nil }
        guard case .sequence(let items) = node.kind else {
            report("config.type", "\(what ?? "'\(path)'") must be a list (one '- ' item per entry), got \(Self.describe(node))", path: path, at: node.location)
            return nil
        }
        return items
    }

    mutating func strings(_ node: YAMLNode?, path: String, what: String? = nil) -> [Located<String>] {
        guard let items = list(node, path: path, what: what) else { return [] }
        return items.enumerated().compactMap { i, item in string(item, path: "\(path)[\(i)]") }
    }

    /// One of `allowed`.
    mutating func choice(_ node: YAMLNode?, path: String, allowed: [String]) -> Located<String>? {
        guard let value = string(node, path: path) else { return nil }
        guard allowed.contains(value.value) else {
            let hint = closestName(value.value, allowed).map { "did you mean '\($0)'? " } ?? ""
            report("config.value", "'\(value.value)' is not allowed for '\(path)'; \(hint)use one of: \(allowed.joined(separator: ", "))", path: path, at: value.location)
            return nil
        }
        return value
    }
}
