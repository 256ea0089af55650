// DynamicMessage → proto3 JSON values → YAML or JSON text, with the original
// (snake_case) field names Envoy's own config dumps use. Output is deterministic:
// fields in field-number order, map entries by key.
import Foundation

/// A JSON value, as the proto3 JSON mapping prints a message.
public indirect enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    /// A number, as its literal text.
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }
}

public struct TextWriter {
    public let pool: DescriptorPool
    /// Replace values of `(udpa.annotations.sensitive)` fields (private keys, tokens) with a placeholder.
    public var redactSensitive: Bool

    public init(pool: DescriptorPool, redactSensitive: Bool = false) {
        self.pool = pool
        self.redactSensitive = redactSensitive
    }

    // MARK: Message → JSONValue

    public func json(_ message: DynamicMessage) -> JSONValue {
        let descriptor = pool.message(message.type)
        if let wellKnown = descriptor.wellKnownType { return wellKnownJSON(message, wellKnown) }
        return .object(fieldsJSON(message, descriptor: descriptor))
    }

    func fieldsJSON(_ message: DynamicMessage, descriptor: MessageDescriptor) -> [(String, JSONValue)] {
        var members: [(String, JSONValue)] = []
        for entry in message.fields.sorted(by: { $0.fieldIndex < $1.fieldIndex }) {
            let field = descriptor.fields[entry.fieldIndex]
            if !field.hasPresence && !field.isRepeated && entry.value.isScalarDefault { continue }
            if redactSensitive && field.isSensitive {
                members.append((field.name, .string("[redacted]")))
                continue
            }
            switch entry.value {
            case .list(let elements):
                if elements.isEmpty { continue }
                if let entryType = field.messageType, pool.message(entryType).isMapEntry {
                    members.append((field.name, mapJSON(elements, entryType: entryType)))
                } else {
                    members.append((field.name, .array(elements.map { valueJSON($0.value, field: field) })))
                }
            default:
                members.append((field.name, valueJSON(entry.value, field: field)))
            }
        }
        return members
    }

    func mapJSON(_ elements: [ListElement], entryType: MessageID) -> JSONValue {
        let entry = pool.message(entryType)
        var byKey: [MapKey: (String, JSONValue)] = [:]
        for element in elements {
            guard case .message(let pair) = element.value else { continue }
            let key = pair.value(at: 0)?.value ?? defaultValue(of: entry.fields[0])
            let value = pair.value(at: 1)?.value ?? defaultValue(of: entry.fields[1])
            let keyText: String
            switch key {
            case .string(let s): keyText = s
            case .int(let v): keyText = String(v)
            case .uint(let v): keyText = String(v)
            case .bool(let b): keyText = b ? "true" : "false"
            default: keyText = ""
            }
            byKey[MapKey(key)] = (keyText, valueJSON(value, field: entry.fields[1]))
        }
        return .object(byKey.sorted { $0.key < $1.key }.map(\.value))
    }

    func valueJSON(_ value: ProtoValue, field: FieldDescriptor) -> JSONValue {
        switch value {
        case .int(let v): return field.kind == .int64 || field.kind == .sint64 || field.kind == .sfixed64 ? .string(String(v)) : .number(String(v))
        case .uint(let v): return field.kind == .uint64 || field.kind == .fixed64 ? .string(String(v)) : .number(String(v))
        case .double(let v): return floatJSON(v)
        case .float(let v): return v.isFinite ? .number(String(describing: v)) : floatJSON(Double(v))
        case .bool(let b): return .bool(b)
        case .string(let s): return .string(s)
        case .bytes(let b):
            // An Any's value whose type we could not resolve stays base64.
            return .string(Base64.encode(b))
        case .enumNumber(let n):
            if let e = field.enumType, let name = pool.enumType(e).name(of: n) {
                return pool.enumType(e).fullName == "google.protobuf.NullValue" ? .null : .string(name)
            }
            return .number(String(n))
        case .message(let m): return json(m)
        case .list(let elements): return .array(elements.map { valueJSON($0.value, field: field) })
        }
    }

    func floatJSON(_ v: Double) -> JSONValue {
        if v.isNaN { return .string("NaN") }
        if v.isInfinite { return .string(v < 0 ? "-Infinity" : "Infinity") }
        if v == v.rounded(), abs(v) < 1e15 { return .number(String(Int64(v))) }
        return .number(String(describing: v))
    }

    func wellKnownJSON(_ message: DynamicMessage, _ kind: WellKnownType) -> JSONValue {
        func int(_ index: Int) -> Int64 { if case .int(let v)? = message.value(at: index)?.value { return v } else { return 0 } }
        switch kind {
        case .any:
            let url = message.value(at: 0)?.value.stringValue ?? ""
            var payload = message.value(at: 1)?.value
            if case .bytes(let bytes)? = payload, let type = pool.messageID(typeURL: url),
               let decoded = try? DynamicMessage(serialized: bytes, type: type, pool: pool) {
                payload = .message(decoded)
            }
            if url.isEmpty && payload == nil { return .object([]) }
            var members: [(String, JSONValue)] = [("@type", .string(url))]
            switch payload {
            case .message(let inner)?:
                if pool.message(inner.type).wellKnownType != nil {
                    members.append(("value", json(inner)))
                } else if case .object(let fields) = json(inner) {
                    members.append(contentsOf: fields)
                }
            case .bytes(let b)?:
                members.append(("value", .string(Base64.encode(b))))
            default: break
            }
            return .object(members)
        case .duration: return .string(TimeText.formatDuration(seconds: int(0), nanos: Int32(truncatingIfNeeded: int(1))))
        case .timestamp: return .string(TimeText.formatTimestamp(seconds: int(0), nanos: Int32(truncatingIfNeeded: int(1))))
        case .fieldMask:
            let paths = message.value(at: 0)?.value.listValue?.compactMap { $0.value.stringValue } ?? []
            return .string(paths.map(camelCase).joined(separator: ","))
        case .wrapper(let kind):
            let value = message.value(at: 0)?.value ?? defaultValue(of: .scalar(kind))
            return valueJSON(value, field: .scalar(kind))
        case .empty: return .object([])
        case .struct:
            guard let entries = message.value(at: 0)?.value.listValue else { return .object([]) }
            let entryType = pool.message(message.type).fields[0].messageType!
            return mapJSON(entries, entryType: entryType)
        case .listValue:
            return .array((message.value(at: 0)?.value.listValue ?? []).map { element in
                element.value.messageValue.map(json) ?? .null
            })
        case .value:
            guard let entry = message.fields.first else { return .null }
            let field = pool.message(message.type).fields[entry.fieldIndex]
            switch (field.name, entry.value) {
            case ("number_value", .double(let d)): return floatJSON(d)
            case ("string_value", .string(let s)): return .string(s)
            case ("bool_value", .bool(let b)): return .bool(b)
            case (_, .message(let m)): return json(m)
            default: return .null
            }
        case .nullValue: return .null
        }
    }

    func camelCase(_ path: String) -> String {
        var out = ""
        var upper = false
        for ch in path {
            if ch == "_" { upper = true; continue }
            out += upper ? ch.uppercased() : String(ch)
            upper = false
        }
        return out
    }

    // MARK: JSONValue → text

    public func yaml(_ message: DynamicMessage) -> String { Self.yaml(json(message)) }

    /// A JSON value (e.g. a message's JSON, rearranged) as block YAML, in the same style as `yaml(_:)`.
    public static func yaml(_ value: JSONValue) -> String {
        var out = ""
        YAMLRendering.render(value, indent: 0, into: &out, context: .root)
        if !out.hasSuffix("\n") { out += "\n" }
        return out
    }

    public func jsonText(_ message: DynamicMessage, pretty: Bool = true) -> String {
        var out = ""
        JSONRendering.render(json(message), indent: pretty ? 0 : nil, into: &out)
        return out + "\n"
    }
}

/// Quoting for the text meshctl writes (one implementation for every writer).
public enum TextQuoting {
    /// A JSON string literal (also a valid double-quoted YAML scalar).
    public static func json(_ s: String) -> String { JSONRendering.quote(s) }
    /// A YAML scalar: plain when every YAML reader (Envoy's included) reads it back as the same string.
    public static func yamlScalar(_ s: String) -> String { YAMLRendering.scalarText(s) }
}

enum JSONRendering {
    static func render(_ value: JSONValue, indent: Int?, into out: inout String) {
        let newline = indent == nil ? "" : "\n"
        let pad = { (n: Int) in indent == nil ? "" : String(repeating: "  ", count: n) }
        switch value {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): out += quote(s)
        case .array(let items):
            if items.isEmpty { out += "[]"; return }
            out += "[" + newline
            for (i, item) in items.enumerated() {
                out += pad((indent ?? 0) + 1)
                render(item, indent: indent.map { $0 + 1 }, into: &out)
                out += (i + 1 < items.count ? "," : "") + newline
            }
            out += pad(indent ?? 0) + "]"
        case .object(let members):
            if members.isEmpty { out += "{}"; return }
            out += "{" + newline
            for (i, (key, item)) in members.enumerated() {
                out += pad((indent ?? 0) + 1) + quote(key) + (indent == nil ? ":" : ": ")
                render(item, indent: indent.map { $0 + 1 }, into: &out)
                out += (i + 1 < members.count ? "," : "") + newline
            }
            out += pad(indent ?? 0) + "}"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    out += String(format: "\\u%04x", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

enum YAMLRendering {
    enum Context { case root, mappingValue, sequenceItem }

    static func render(_ value: JSONValue, indent: Int, into out: inout String, context: Context) {
        let pad = String(repeating: "  ", count: indent)
        switch value {
        case .object(let members) where !members.isEmpty:
            for (i, (key, item)) in members.enumerated() {
                if !(context == .sequenceItem && i == 0) {
                    if context == .mappingValue || i > 0 || context == .sequenceItem { out += "\n" }
                    out += pad
                }
                out += scalarText(key) + ":"
                renderNested(item, indent: indent + 1, into: &out)
            }
        case .array(let items) where !items.isEmpty:
            for (i, item) in items.enumerated() {
                if context != .root || i > 0 { out += "\n" }
                // Lists under a key sit at the key's indentation, as is customary in Envoy configs.
                let itemPad = context == .mappingValue ? String(repeating: "  ", count: max(0, indent - 1)) : pad
                out += itemPad + "- "
                switch item {
                case .object(let m) where !m.isEmpty:
                    render(item, indent: (context == .mappingValue ? indent : indent + 1), into: &out, context: .sequenceItem)
                case .array(let a) where !a.isEmpty:
                    render(item, indent: indent + 1, into: &out, context: .sequenceItem)
                default:
                    out += inline(item)
                }
            }
        default:
            if context == .mappingValue { out += " " }
            out += inline(value)
        }
    }

    static func renderNested(_ value: JSONValue, indent: Int, into out: inout String) {
        switch value {
        case .object(let m) where !m.isEmpty: render(value, indent: indent, into: &out, context: .mappingValue)
        case .array(let a) where !a.isEmpty: render(value, indent: indent, into: &out, context: .mappingValue)
        default: out += " " + inline(value)
        }
    }

    static func inline(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return scalarText(s)
        case .array: return "[]"
        case .object: return "{}"
        }
    }

    /// A string as a YAML scalar: plain when every YAML reader (Envoy's included) reads it back as
    /// the same string, double-quoted otherwise.
    static func scalarText(_ s: String) -> String {
        if isPlainSafe(s) { return s }
        return JSONRendering.quote(s)
    }

    static func isPlainSafe(_ s: String) -> Bool {
        guard let first = s.first, let last = s.last, first != " ", last != " " else { return false }
        if "-?:,[]{}#&*!|>'\"%@`=~".contains(first) { return false }
        if s.contains(": ") || s.contains(" #") || s.hasSuffix(":") { return false }
        if s.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || $0 == "\u{FEFF}" }) { return false }
        if TextReader.yamlBool(s) != nil || TextReader.yamlInteger(s) != nil { return false }
        if ["null", "Null", "NULL", "~"].contains(s) { return false }
        if Double(s) != nil || s.lowercased().hasPrefix(".inf") || s.lowercased() == ".nan" || s.lowercased().hasPrefix("-.inf") { return false }
        // YAML 1.1 readers also take these as booleans or dates.
        if ["y", "n"].contains(s.lowercased()) { return false }
        if s.range(of: #"^\d{4}-\d{2}-\d{2}"#, options: .regularExpression) != nil { return false }
        if s.range(of: #"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?$"#, options: .regularExpression) != nil { return false }
        return true
    }
}
