// YAML/JSON text → DynamicMessage, following the proto3 JSON mapping the way
// Envoy applies it to its own YAML: Envoy turns YAML into JSON first (plain
// scalars that read as booleans or integers become JSON booleans and numbers,
// everything else a string) and then parses that JSON into the proto. Every
// problem is collected with its field path and position; reading goes on
// after an error so that one run reports them all.
import Foundation

/// The syntax of a configuration file.
public enum InputSyntax: Sendable {
    case yaml, json

    /// JSON for `.json` files, YAML for everything else (as Envoy decides).
    public init(fileName: String) {
        self = fileName.lowercased().hasSuffix(".json") ? .json : .yaml
    }
}

/// What a scalar is once Envoy's YAML-to-JSON step has read it.
enum JSONScalar {
    case null
    case bool(Bool)
    /// An integer literal, as decimal text.
    case integer(String)
    /// A non-integer JSON number literal (JSON input only: in YAML it stays a string).
    case number(String)
    case string(String)

    var describe: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return "the boolean \(b)"
        case .integer(let t), .number(let t): return "the number \(t)"
        case .string(let s): return "the string \"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        }
    }
}

/// Reads one document of text into a message of a given type.
public struct TextReader: Sendable {
    public let pool: DescriptorPool
    public let syntax: InputSyntax
    public let file: String?
    public private(set) var diagnostics: [Diagnostic] = []
    var path = FieldPath()
    /// Whether a long list of messages is read in two halves on two threads: true until a half is
    /// being read (the halves do not split again).
    var splitsLongLists = true
    // The fields and oneofs set so far in each message being read, stacked (a nested message
    // pushes above its parent's entries and pops back): two arrays per message were two
    // allocations per message.
    private var seenFieldStack: [(index: Int, key: String)] = []
    private var setOneofStack: [(oneof: Int, field: String)] = []
    /// Which mappings of the document are shared copies of one text (see `RepeatedCollections`), and the
    /// messages read from them without a problem.
    var repeats = RepeatedCollections()
    private var readRepeats: [ReadRepeat: DynamicMessage] = [:]

    private struct ReadRepeat: Hashable {
        let id: Int32
        let type: MessageID
        let depth: Int
    }

    public init(pool: DescriptorPool, syntax: InputSyntax, file: String?) {
        self.pool = pool
        self.syntax = syntax
        self.file = file
    }

    // MARK: Diagnostics

    mutating func report(_ rule: String, _ message: String, at node: YAMLNode?, severity: Diagnostic.Severity = .error) {
        diagnostics.append(Diagnostic(severity, rule: rule, message: message, path: path.rendered, file: file, location: node.flatMap(location)))
    }

    func location(_ node: YAMLNode) -> SourceLocation? { node.location }

    // MARK: Scalars

    /// Envoy's reading of a YAML scalar (yaml-cpp conversions), or JSON's.
    func classify(_ scalar: YAMLScalar) -> JSONScalar {
        let text = scalar.string
        switch syntax {
        case .json:
            if scalar.style != .plain { return .string(text) }
            switch text {
            case "null": return .null
            case "true": return .bool(true)
            case "false": return .bool(false)
            default:
                if text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }) { return .integer(text) }
                return .number(text)
            }
        case .yaml:
            let explicitTag = scalar.tag ?? ""
            // Envoy's yaml-cpp honours only the non-specific "!" tag: `!!str 8080` is still an integer.
            if scalar.style != .plain || explicitTag == "!" { return .string(text) }
            // Most plain scalars are names and paths: only these first bytes can start a null, a
            // boolean or an integer, so the others skip the comparisons below.
            if let first = text.utf8.first, !Self.mayStartNonString(first) { return .string(text) }
            switch text {
            case "", "~", "null", "Null", "NULL": return .null
            default: break
            }
            if let b = Self.yamlBool(text) { return .bool(b) }
            if let i = Self.yamlInteger(text) {
                // Envoy emits integers outside int32 as JSON strings (an int64 field still takes them).
                return Int32(exactly: i) != nil ? .integer(String(i)) : .string(String(i))
            }
            return .string(text)
        }
    }

    /// The first bytes of yaml-cpp's nulls (~, null), booleans (y, n, true, on, off, false …) and
    /// integers (digits, sign).
    static func mayStartNonString(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "~"), UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "y"), UInt8(ascii: "Y"),
             UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "o"), UInt8(ascii: "O"), UInt8(ascii: "f"), UInt8(ascii: "F"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"):
            return true
        default:
            return false
        }
    }

    /// yaml-cpp's boolean spellings, in lower, UPPER or Capitalized case.
    static func yamlBool(_ text: String) -> Bool? {
        guard text.utf8.count <= 5 else { return nil }
        switch text {
        case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON": return true
        case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF": return false
        default: return nil
        }
    }

    /// yaml-cpp's integer reading (a C++ stream with base detection): decimal,
    /// 0x hexadecimal, leading-0 octal, trailing blanks allowed; out-of-range values
    /// do not count as integers.
    static func yamlInteger(_ text: String) -> Int64? {
        let bytes = text.utf8
        var end = bytes.endIndex
        while end > bytes.startIndex, case let b = bytes[bytes.index(before: end)], b == 0x20 || b == 0x09 { end = bytes.index(before: end) }
        var i = bytes.startIndex
        guard i < end else { return nil }
        var negative = false
        if bytes[i] == 0x2D || bytes[i] == 0x2B {  // - +
            negative = bytes[i] == 0x2D
            i = bytes.index(after: i)
        }
        guard i < end, bytes[i] >= 0x30 && bytes[i] <= 0x39 else { return nil }
        var radix: UInt64 = 10
        let next = bytes.index(after: i)
        if bytes[i] == 0x30 && next < end {
            if bytes[next] == 0x78 || bytes[next] == 0x58 {  // 0x
                radix = 16
                i = bytes.index(after: next)
                guard i < end else { return nil }
            } else {
                radix = 8
                i = next
            }
        }
        var magnitude: UInt64 = 0
        while i < end {
            let b = bytes[i]
            let digit: UInt64
            switch b {
            case 0x30...0x39: digit = UInt64(b - 0x30)
            case 0x61...0x66: digit = UInt64(b - 0x61 + 10)
            case 0x41...0x46: digit = UInt64(b - 0x41 + 10)
            default: return nil
            }
            guard digit < radix else { return nil }
            let (scaled, o1) = magnitude.multipliedReportingOverflow(by: radix)
            let (sum, o2) = scaled.addingReportingOverflow(digit)
            guard !o1 && !o2 else { return nil }
            magnitude = sum
            i = bytes.index(after: i)
        }
        if negative {
            guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
            return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
        }
        guard magnitude <= UInt64(Int64.max) else { return nil }
        return Int64(magnitude)
    }

    // MARK: Messages

    /// Reads `node` as a message of type `type`. Returns nil only when nothing usable was read.
    public mutating func readMessage(_ node: YAMLNode, type: MessageID) -> DynamicMessage? {
        readMessage(node, type: type, depth: 0)
    }

    mutating func readMessage(_ node: YAMLNode, type: MessageID, depth: Int) -> DynamicMessage? {
        guard repeats.sharesAny, case .mapping(let mapping) = node.kind, let id = repeats.id(of: mapping) else {
            return readMessageOnce(node, type: type, depth: depth)
        }
        // A copy of a text already read as this type, at this depth, reads to the same message.
        let key = ReadRepeat(id: id, type: type, depth: depth)
        if let message = readRepeats[key] { return message }
        let problemsBefore = diagnostics.count
        guard var message = readMessageOnce(node, type: type, depth: depth) else { return nil }
        if diagnostics.count == problemsBefore {
            message.repeatID = id
            readRepeats[key] = message
        }
        return message
    }

    private mutating func readMessageOnce(_ node: YAMLNode, type: MessageID, depth: Int) -> DynamicMessage? {
        guard depth < maximumMessageDepth else {
            report("schema.too-deep", "messages are nested more than \(maximumMessageDepth) levels deep; flatten the configuration", at: node)
            return nil
        }
        let descriptor = pool.message(type)
        if let wellKnown = descriptor.wellKnownType {
            return readWellKnown(node, type: type, kind: wellKnown, depth: depth)
        }
        guard case .mapping(let mapping) = node.kind else {
            if case .scalar(let s) = node.kind, case .null = classify(s) { return nil }
            report("schema.type-mismatch", "expected an object (\(descriptor.fullName)), got \(describe(node))", at: node)
            return nil
        }
        var message = DynamicMessage(type: type, location: location(node))
        readFields(mapping, into: &message, descriptor: descriptor, skipping: nil, depth: depth)
        return message
    }

    /// Key/value pairs of a mapping. YAML merge keys (`<<: *anchor`) are not applied: Envoy's
    /// YAML reader does not support them, so they are reported where a field name is expected.
    func pairs(_ mapping: [(key: YAMLNode, value: YAMLNode)]) -> [(key: YAMLNode, value: YAMLNode)] {
        Array(mapping)
    }

    mutating func readFields(_ mapping: [(key: YAMLNode, value: YAMLNode)], into message: inout DynamicMessage, descriptor: MessageDescriptor, skipping skippedKey: String?, depth: Int) {
        let fields = descriptor.fields  // one read of the class property, not one per key
        message.fields.reserveCapacity(message.fields.count + mapping.count)  // one allocation, not one per doubling
        let seenBase = seenFieldStack.count, oneofBase = setOneofStack.count
        defer {
            seenFieldStack.removeSubrange(seenBase...)
            setOneofStack.removeSubrange(oneofBase...)
        }
        for (keyNode, valueNode) in pairs(mapping) {
            guard case .scalar(let keyScalar) = keyNode.kind else {
                report("schema.type-mismatch", "object keys must be field names, got \(describe(keyNode))", at: keyNode)
                continue
            }
            let key = keyScalar.string
            if key == skippedKey { continue }
            guard let index = descriptor.fieldIndex(named: key) else {
                path.push(.field(key))
                if key == "<<" && keyScalar.style == .plain && syntax == .yaml {
                    report("schema.yaml-merge-key", "YAML merge keys (<<) are not supported by Envoy; write the fields out (anchors and aliases for whole values are fine)", at: keyNode)
                } else {
                    report("schema.unknown-field", unknownFieldMessage(key, in: descriptor), at: keyNode)
                }
                path.pop()
                continue
            }
            let field = fields[index]
            path.push(.field(field.name))
            defer { path.pop() }
            if let earlier = seenFieldStack[seenBase...].first(where: { $0.index == index })?.key {
                report("schema.duplicate-field", "field set twice (as '\(earlier)' and as '\(key)'); keep one", at: keyNode)
                continue
            }
            seenFieldStack.append((index, key))
            if isNull(valueNode) && !(field.messageType.map { pool.message($0).wellKnownType.map(isValueType) ?? false } ?? false) {
                continue  // null means "not set" (proto3 JSON), except for google.protobuf.Value
            }
            if let oneof = field.oneofIndex, !descriptor.oneofs[oneof].isSynthetic {
                if let other = setOneofStack[oneofBase...].first(where: { $0.oneof == oneof })?.field {
                    report("schema.oneof-conflict", "'\(field.name)' and '\(other)' are both set, but only one member of oneof '\(descriptor.oneofs[oneof].name)' may be; remove one of them", at: keyNode)
                    continue
                }
                setOneofStack.append((oneof, field.name))
            }
            if field.isDisallowedByDefault {
                report("schema.disallowed-field", "'\(field.name)' is deprecated and disallowed by default in Envoy; use its replacement (see the field's documentation)", at: keyNode)
            } else if field.isDeprecated {
                report("schema.deprecated-field", "'\(field.name)' is deprecated in the Envoy API and may be removed; move to its replacement", at: keyNode, severity: .warning)
            }
            let problemsBefore = diagnostics.count
            if let value = readFieldValue(valueNode, field: field, depth: depth) {
                message.fields.append(FieldValue(fieldIndex: index, value: value, location: location(keyNode)))
            } else if diagnostics.count > problemsBefore {
                message.unreadableFields.append(index)
            }
        }
    }

    private func isValueType(_ kind: WellKnownType) -> Bool {
        if case .value = kind { return true }
        return false
    }

    func isNull(_ node: YAMLNode) -> Bool {
        guard case .scalar(let s) = node.kind else { return false }
        switch syntax {
        case .json: return s.style == .plain && s.string == "null"
        case .yaml:
            guard s.style == .plain, s.tag != "!" else { return false }
            if let first = s.string.utf8.first, first != UInt8(ascii: "~") && first != UInt8(ascii: "n") && first != UInt8(ascii: "N") { return false }
            switch s.string {
            case "", "~", "null", "Null", "NULL": return true
            default: return false
            }
        }
    }

    mutating func readFieldValue(_ node: YAMLNode, field: FieldDescriptor, depth: Int) -> ProtoValue? {
        if field.isRepeated {
            if let entryType = field.messageType, pool.message(entryType).isMapEntry {
                return readMap(node, entryType: entryType, depth: depth)
            }
            guard case .sequence(let sequence) = node.kind else {
                if case .scalar = node.kind, field.kind != .message {
                    // Envoy's parser takes a lone value as a one-element list.
                    report("schema.scalar-for-list", "'\(field.name)' is a list; write [\(describe(node).replacingOccurrences(of: "the string ", with: ""))] (a lone value is read as a one-element list)", at: node, severity: .warning)
                    return readSingular(node, field: field, depth: depth).map { .list([ListElement($0, location: location(node))]) }
                }
                report("schema.type-mismatch", "expected a list, got \(describe(node)); write it as a YAML list (one '- ' item per element)", at: node)
                return nil
            }
            if field.kind == .message && sequence.count >= Self.parallelListThreshold && splitsLongLists {
                return .list(readElementsInParallel(sequence, field: field, depth: depth))
            }
            return .list(readElements(sequence[...], field: field, depth: depth))
        }
        return readSingular(node, field: field, depth: depth)
    }

    /// Lists at least this long are read in two halves on two threads, wherever the first such list
    /// sits (a route table's virtual hosts are nine messages deep, inside an Any).
    static let parallelListThreshold = 512

    /// Both halves read with their own reader; elements and diagnostics are joined in order.
    mutating func readElementsInParallel(_ sequence: [YAMLNode], field: FieldDescriptor, depth: Int) -> [ListElement] {
        let middle = sequence.count / 2
        let (first, second) = (self.forked(), self.forked())
        let halves = ParallelPair.run({ () -> ([ListElement], [Diagnostic]) in
            var reader = first
            return (reader.readElements(sequence[..<middle], field: field, depth: depth), reader.diagnostics)
        }, { () -> ([ListElement], [Diagnostic]) in
            var reader = second
            return (reader.readElements(sequence[middle...], field: field, depth: depth), reader.diagnostics)
        })
        diagnostics += halves.0.1 + halves.1.1
        return halves.0.0 + halves.1.0
    }

    /// A reader at the same path with no diagnostics yet.
    func forked() -> TextReader {
        var reader = self
        reader.diagnostics = []
        reader.splitsLongLists = false
        return reader
    }

    mutating func readElements(_ sequence: ArraySlice<YAMLNode>, field: FieldDescriptor, depth: Int) -> [ListElement] {
            var elements: [ListElement] = []
            elements.reserveCapacity(sequence.count)
            for (i, element) in zip(sequence.indices, sequence) {
                path.push(.index(i))
                if case .sequence = element.kind, field.kind != .message {
                    report("schema.type-mismatch", "lists of lists are not allowed here; expected \(describeKind(field))", at: element)
                } else if isNull(element) && field.kind != .message {
                    // Envoy's parser turns a null element into the default value ("" or 0).
                    report("schema.null-element", "null list element is read as \(field.kind == .string ? "an empty string" : "the default value"); remove it or give it a value", at: element, severity: .warning)
                    elements.append(ListElement(defaultValue(of: field), location: location(element)))
                } else if isNull(element), let type = field.messageType, pool.message(type).wellKnownType == nil {
                    // protobuf's JSON parser turns a null message element into a default message.
                    elements.append(ListElement(.message(DynamicMessage(type: type, location: location(element))), location: location(element)))
                } else if let value = readSingular(element, field: field, depth: depth) {
                    elements.append(ListElement(value, location: location(element)))
                }
                path.pop()
            }
            return elements
    }

    mutating func readSingular(_ node: YAMLNode, field: FieldDescriptor, depth: Int) -> ProtoValue? {
        if field.kind == .message || field.kind == .group {
            return readMessage(node, type: field.messageType!, depth: depth + 1).map { .message($0) }
        }
        guard case .scalar(let scalar) = node.kind else {
            report("schema.type-mismatch", "expected \(describeKind(field)), got \(describe(node))", at: node)
            return nil
        }
        let value = classify(scalar)
        switch convertScalar(value, kind: field.kind, enumType: field.enumType) {
        case .success(let v): return v
        case .failure(let problem):
            report(problem.rule, problem.message, at: node)
            return nil
        }
    }

    struct ScalarProblem: Error {
        let rule: String
        let message: String
        static func mismatch(_ expected: String, _ got: JSONScalar, hint: String = "") -> ScalarProblem {
            ScalarProblem(rule: "schema.type-mismatch", message: "expected \(expected), got \(got.describe)\(hint)")
        }
    }

    /// A scalar for a field of `kind`, per the proto3 JSON mapping.
    func convertScalar(_ value: JSONScalar, kind: FieldKind, enumType: EnumID?) -> Result<ProtoValue, ScalarProblem> {
        switch kind {
        case .string:
            if case .string(let s) = value { return .success(.string(s)) }
            let hint: String
            switch value {
            case .integer(let t), .number(let t): hint = "; quote it (\"\(t)\") if a string is meant"
            case .bool: hint = "; quote it if a string is meant (YAML reads yes/no/on/off/true/false unquoted as booleans)"
            default: hint = ""
            }
            return .failure(.mismatch("a string", value, hint: hint))
        case .bytes:
            guard case .string(let s) = value else { return .failure(.mismatch("base64-encoded bytes (a string)", value)) }
            guard let bytes = Base64.decode(s) else {
                return .failure(ScalarProblem(rule: "schema.invalid-bytes", message: "\"\(s.prefix(40))\" is not valid base64; bytes fields take base64 text"))
            }
            return .success(.bytes(bytes))
        case .bool:
            if case .bool(let b) = value { return .success(.bool(b)) }
            // Envoy's JSON parser also takes these words as booleans (absl::SimpleAtob).
            if case .string(let word) = value {
                switch word.lowercased() {
                case "true", "t", "yes", "y", "1": return .success(.bool(true))
                case "false", "f", "no", "n", "0": return .success(.bool(false))
                default: break
                }
            }
            return .failure(.mismatch("a boolean (true or false)", value))
        case .enum:
            let descriptor = pool.enumType(enumType!)
            switch value {
            case .string(let name):
                if let number = descriptor.number(named: name) { return .success(.enumNumber(number)) }
                // Envoy parses enum names case-insensitively.
                if let match = descriptor.values.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame }) {
                    return .success(.enumNumber(match.number))
                }
                let names = descriptor.values.map(\.name)
                let suggestion = closest(name, among: names).map { "; did you mean \($0)?" } ?? "; valid values: \(names.prefix(12).joined(separator: ", "))\(names.count > 12 ? ", …" : "")"
                return .failure(ScalarProblem(rule: "schema.unknown-enum", message: "\"\(name)\" is not a value of enum \(descriptor.fullName)\(suggestion)"))
            case .integer(let text):
                guard let number = Int32(text) else {
                    return .failure(ScalarProblem(rule: "schema.out-of-range", message: "enum number \(text) is out of range for a 32-bit enum"))
                }
                if descriptor.isClosed && descriptor.name(of: number) == nil {
                    return .failure(ScalarProblem(rule: "schema.unknown-enum", message: "\(number) is not a value of enum \(descriptor.fullName)"))
                }
                return .success(.enumNumber(number))
            default:
                return .failure(.mismatch("an enum value name of \(descriptor.fullName)", value))
            }
        case .double, .float:
            let text: String
            switch value {
            case .integer(let t), .number(let t): text = t
            case .string(let s):
                switch s {
                case "NaN": return .success(kind == .double ? .double(.nan) : .float(.nan))
                case "Infinity": return .success(kind == .double ? .double(.infinity) : .float(.infinity))
                case "-Infinity": return .success(kind == .double ? .double(-.infinity) : .float(-.infinity))
                default: text = s
                }
            default: return .failure(.mismatch("a number", value))
            }
            guard let d = Self.parseJSONNumber(text) else {
                return .failure(.mismatch("a number", value))
            }
            if kind == .double { return .success(.double(d)) }
            guard d.isNaN || d.isInfinite || abs(d) <= Double(Float.greatestFiniteMagnitude) else {
                return .failure(ScalarProblem(rule: "schema.out-of-range", message: "\(text) is out of range for a 32-bit float"))
            }
            return .success(.float(Float(d)))
        default:
            return convertInteger(value, kind: kind)
        }
    }

    /// A JSON number literal (no leading '+', no hex, no surrounding space), as protobuf accepts it.
    static func parseJSONNumber(_ text: String) -> Double? {
        guard let first = text.first, first == "-" || first == "." || first.isNumber,
              text.allSatisfy({ $0.isASCII && ($0.isNumber || "+-.eE".contains($0)) }) else { return nil }
        return Double(text)
    }

    func convertInteger(_ value: JSONScalar, kind: FieldKind) -> Result<ProtoValue, ScalarProblem> {
        let text: String
        switch value {
        case .integer(let t), .number(let t), .string(let t): text = t
        default: return .failure(.mismatch("an integer", value))
        }
        let range: ClosedRange<Int128>
        switch kind {
        case .int32, .sint32, .sfixed32: range = Int128(Int32.min)...Int128(Int32.max)
        case .uint32, .fixed32: range = 0...Int128(UInt32.max)
        case .uint64, .fixed64: range = 0...Int128(UInt64.max)
        default: range = Int128(Int64.min)...Int128(Int64.max)
        }
        var parsed: Int128?
        if let exact = Int128(text) {
            parsed = exact
        } else if case .string = value, let hex = Self.hexInteger(text) {
            parsed = hex
        } else if let d = Self.parseJSONNumber(text), d.isFinite, d.rounded() == d, abs(d) < 1.9e19 {
            // 1e3 or 80.0: an integral value written as a float is accepted, as protobuf does.
            parsed = Int128(d)
        }
        guard let number = parsed else {
            if case .string = value { return .failure(.mismatch("an integer", value)) }
            return .failure(ScalarProblem(rule: "schema.type-mismatch", message: "expected an integer, got \(value.describe) (not a whole number)"))
        }
        guard range.contains(number) else {
            return .failure(ScalarProblem(rule: "schema.out-of-range", message: "\(text) is out of range for \(kind) (\(range.lowerBound)...\(range.upperBound))"))
        }
        return .success(kind.isUnsignedInteger ? .uint(UInt64(number)) : .int(Int64(number)))
    }

    /// "0x1F90" and "-0x10", which Envoy's parser accepts in quoted integers.
    static func hexInteger(_ text: String) -> Int128? {
        var body = Substring(text)
        let negative = body.hasPrefix("-")
        if negative { body = body.dropFirst() }
        guard body.hasPrefix("0x") || body.hasPrefix("0X"), let magnitude = UInt64(body.dropFirst(2), radix: 16) else { return nil }
        return negative ? -Int128(magnitude) : Int128(magnitude)
    }

    // MARK: Maps

    mutating func readMap(_ node: YAMLNode, entryType: MessageID, depth: Int) -> ProtoValue? {
        guard case .mapping(let mapping) = node.kind else {
            report("schema.type-mismatch", "expected an object (a map), got \(describe(node))", at: node)
            return nil
        }
        let entry = pool.message(entryType)
        let keyField = entry.fields[0], valueField = entry.fields[1]
        var elements: [ListElement] = []
        for (keyNode, valueNode) in pairs(mapping) {
            guard case .scalar(let keyScalar) = keyNode.kind else {
                report("schema.type-mismatch", "map keys must be scalars, got \(describe(keyNode))", at: keyNode)
                continue
            }
            let keyText = keyScalar.string
            path.push(.key(keyText))
            defer { path.pop() }
            let key: ProtoValue
            switch keyField.kind {
            case .string: key = .string(keyText)
            case .bool:
                guard keyText == "true" || keyText == "false" else {
                    report("schema.type-mismatch", "map key \"\(keyText)\" must be true or false", at: keyNode)
                    continue
                }
                key = .bool(keyText == "true")
            default:
                switch convertInteger(.string(keyText), kind: keyField.kind) {
                case .success(let v): key = v
                case .failure(let problem):
                    report(problem.rule, "map key: \(problem.message)", at: keyNode)
                    continue
                }
            }
            if isNull(valueNode) && !(valueField.messageType.map { pool.message($0).wellKnownType.map(isValueType) ?? false } ?? false) {
                report("schema.type-mismatch", "map values cannot be null; remove the entry or give it a value", at: valueNode)
                continue
            }
            guard let value = readSingular(valueNode, field: valueField, depth: depth) else { continue }
            var entryMessage = DynamicMessage(type: entryType, location: location(keyNode))
            entryMessage.fields = [FieldValue(fieldIndex: 0, value: key, location: location(keyNode)),
                                   FieldValue(fieldIndex: 1, value: value, location: location(valueNode))]
            elements.append(ListElement(.message(entryMessage), location: location(keyNode)))
        }
        return .list(elements)
    }

    // MARK: Helpers

    func describe(_ node: YAMLNode) -> String {
        switch node.kind {
        case .scalar(let s): return classify(s).describe
        case .mapping: return "an object"
        case .sequence: return "a list"
        }
    }

    func describeKind(_ field: FieldDescriptor) -> String {
        switch field.kind {
        case .string: return "a string"
        case .bytes: return "base64-encoded bytes"
        case .bool: return "a boolean"
        case .enum: return "an enum value of \(pool.enumType(field.enumType!).fullName)"
        case .double, .float: return "a number"
        case .message, .group: return "an object (\(pool.message(field.messageType!).fullName))"
        default: return "an integer"
        }
    }

    func unknownFieldMessage(_ key: String, in descriptor: MessageDescriptor) -> String {
        var names: [String] = []
        for field in descriptor.fields { names.append(field.name) }
        if let guess = closest(key, among: names) {
            return "unknown field '\(key)' in \(descriptor.fullName); did you mean '\(guess)'?"
        }
        return "unknown field '\(key)' in \(descriptor.fullName); it has no such field (check the spelling and the API version)"
    }
}

/// The candidate nearest to `word` by edit distance, if it is plausibly a typo of it.
func closest(_ word: String, among candidates: [String]) -> String? {
    let target = Array(word.lowercased().replacingOccurrences(of: "_", with: ""))
    var best: (String, Int)?
    for candidate in candidates {
        let c = Array(candidate.lowercased().replacingOccurrences(of: "_", with: ""))
        let d = editDistance(target, c)
        if best == nil || d < best!.1 { best = (candidate, d) }
    }
    guard let (name, distance) = best, distance <= max(1, min(3, target.count / 3)) else { return nil }
    return name
}

func editDistance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}

/// Base64 as the proto3 JSON mapping accepts it: standard or URL-safe alphabet, padding optional.
enum Base64 {
    static func decode(_ text: String) -> [UInt8]? {
        var s = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        s = s.filter { !$0.isWhitespace }
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map { Array($0) }
    }

    static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
}
