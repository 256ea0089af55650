// protoc-gen-validate's rules (validate.proto) as Swift values, read once from
// the descriptors' `(validate.rules)` field options when the pool loads.

/// Numeric bounds, `in` and `not_in` lists, for one numeric kind.
public struct NumericRules<Value: Comparable & Sendable>: Sendable {
    public var const_: Value?
    public var lt: Value?
    public var lte: Value?
    public var gt: Value?
    public var gte: Value?
    public var in_: [Value] = []
    public var notIn: [Value] = []
    public var ignoreEmpty = false
}

public enum WellKnownString: Sendable, Equatable {
    case email, hostname, ip, ipv4, ipv6, uri, uriRef, address, uuid
    case httpHeaderName, httpHeaderValue
}

public struct StringRules: Sendable {
    public var const_: String?
    public var len: UInt64?
    public var minLen: UInt64?
    public var maxLen: UInt64?
    public var lenBytes: UInt64?
    public var minBytes: UInt64?
    public var maxBytes: UInt64?
    public var pattern: CompiledRegex?
    public var prefix: String?
    public var suffix: String?
    public var contains: String?
    public var notContains: String?
    public var in_: [String] = []
    public var notIn: [String] = []
    public var wellKnown: WellKnownString?
    /// For the HTTP header rules: strict RFC 7230 characters (true) or only no NUL/CR/LF (false).
    public var strict = true
    public var ignoreEmpty = false
}

public struct BytesRules: Sendable {
    public var const_: [UInt8]?
    public var len: UInt64?
    public var minLen: UInt64?
    public var maxLen: UInt64?
    public var pattern: CompiledRegex?
    public var prefix: [UInt8]?
    public var suffix: [UInt8]?
    public var contains: [UInt8]?
    public var in_: [[UInt8]] = []
    public var notIn: [[UInt8]] = []
    public var wellKnown: WellKnownString?
    public var ignoreEmpty = false
}

public struct EnumRules: Sendable {
    public var const_: Int32?
    public var definedOnly = false
    public var in_: [Int32] = []
    public var notIn: [Int32] = []
}

public struct RepeatedRules: Sendable {
    public var minItems: UInt64?
    public var maxItems: UInt64?
    public var unique = false
    public var items: FieldRules?
    public var ignoreEmpty = false
}

public struct MapRules: Sendable {
    public var minPairs: UInt64?
    public var maxPairs: UInt64?
    public var noSparse = false
    public var keys: FieldRules?
    public var values: FieldRules?
    public var ignoreEmpty = false
}

public struct AnyRules: Sendable {
    public var required = false
    public var in_: [String] = []
    public var notIn: [String] = []
}

/// Duration and timestamp bounds, in nanoseconds.
public struct TimeRules: Sendable {
    public var required = false
    public var bounds = NumericRules<Int128>()
    public var ltNow = false
    public var gtNow = false
    public var within: Int128?
}

/// The rules of one field: an optional message rule plus at most one type rule.
public struct FieldRules: Sendable {
    public indirect enum TypeRules: Sendable {
        case float(NumericRules<Double>)
        case integer(NumericRules<Int128>)
        case bool(const: Bool?)
        case string(StringRules)
        case bytes(BytesRules)
        case `enum`(EnumRules)
        case repeated(RepeatedRules)
        case map(MapRules)
        case any(AnyRules)
        case duration(TimeRules)
        case timestamp(TimeRules)
    }

    /// `message.skip`: do not validate inside this field.
    public var skip = false
    /// `message.required`: the field must be set.
    public var required = false
    public var type: TypeRules?
}

// MARK: - Reading validate.FieldRules

extension FieldRules {
    init(_ rules: DynamicMessage, pool: DescriptorPool) throws(RulesDecodingError) {
        let r = RulesReader(message: rules, pool: pool)
        if let message = r.message("message") {
            skip = message.bool("skip") ?? false
            required = message.bool("required") ?? false
        }
        for name in ["float", "double"] {
            if let n = r.message(name) { type = .float(n.numericRules(RulesReader.double)) }
        }
        for name in ["int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64"] {
            if let n = r.message(name) { type = .integer(n.numericRules(RulesReader.integer)) }
        }
        if let b = r.message("bool") { type = .bool(const: b.bool("const")) }
        if let s = r.message("string") { type = .string(try Self.stringRules(s)) }
        if let b = r.message("bytes") { type = .bytes(try Self.bytesRules(b)) }
        if let e = r.message("enum") {
            type = .enum(EnumRules(const_: e.integer("const").map { Int32(truncatingIfNeeded: $0) }, definedOnly: e.bool("defined_only") ?? false,
                                   in_: e.integers("in").map { Int32(truncatingIfNeeded: $0) }, notIn: e.integers("not_in").map { Int32(truncatingIfNeeded: $0) }))
        }
        if let rep = r.message("repeated") {
            type = .repeated(RepeatedRules(minItems: rep.unsigned("min_items"), maxItems: rep.unsigned("max_items"), unique: rep.bool("unique") ?? false,
                                           items: try rep.message("items").map { m throws(RulesDecodingError) in try FieldRules(m.message, pool: pool) },
                                           ignoreEmpty: rep.bool("ignore_empty") ?? false))
        }
        if let m = r.message("map") {
            type = .map(MapRules(minPairs: m.unsigned("min_pairs"), maxPairs: m.unsigned("max_pairs"), noSparse: m.bool("no_sparse") ?? false,
                                 keys: try m.message("keys").map { k throws(RulesDecodingError) in try FieldRules(k.message, pool: pool) },
                                 values: try m.message("values").map { v throws(RulesDecodingError) in try FieldRules(v.message, pool: pool) },
                                 ignoreEmpty: m.bool("ignore_empty") ?? false))
        }
        if let a = r.message("any") {
            type = .any(AnyRules(required: a.bool("required") ?? false, in_: a.strings("in"), notIn: a.strings("not_in")))
        }
        if let d = r.message("duration") { type = .duration(d.timeRules()) }
        if let t = r.message("timestamp") { type = .timestamp(t.timeRules()) }
    }

    private static func wellKnown(_ r: RulesReader) -> (WellKnownString?, Bool) {
        let flags: [(String, WellKnownString)] = [("email", .email), ("hostname", .hostname), ("ip", .ip), ("ipv4", .ipv4), ("ipv6", .ipv6),
                                                 ("uri", .uri), ("uri_ref", .uriRef), ("address", .address), ("uuid", .uuid)]
        for (name, kind) in flags where r.bool(name) == true { return (kind, true) }
        switch r.integer("well_known_regex") {
        case 1: return (.httpHeaderName, r.bool("strict") ?? true)
        case 2: return (.httpHeaderValue, r.bool("strict") ?? true)
        default: return (nil, true)
        }
    }

    private static func stringRules(_ s: RulesReader) throws(RulesDecodingError) -> StringRules {
        var rules = StringRules()
        rules.const_ = s.string("const")
        rules.len = s.unsigned("len")
        rules.minLen = s.unsigned("min_len")
        rules.maxLen = s.unsigned("max_len")
        rules.lenBytes = s.unsigned("len_bytes")
        rules.minBytes = s.unsigned("min_bytes")
        rules.maxBytes = s.unsigned("max_bytes")
        if let pattern = s.string("pattern") { rules.pattern = try compile(pattern) }
        rules.prefix = s.string("prefix")
        rules.suffix = s.string("suffix")
        rules.contains = s.string("contains")
        rules.notContains = s.string("not_contains")
        rules.in_ = s.strings("in")
        rules.notIn = s.strings("not_in")
        (rules.wellKnown, rules.strict) = wellKnown(s)
        rules.ignoreEmpty = s.bool("ignore_empty") ?? false
        return rules
    }

    private static func bytesRules(_ b: RulesReader) throws(RulesDecodingError) -> BytesRules {
        var rules = BytesRules()
        rules.const_ = b.bytes("const")
        rules.len = b.unsigned("len")
        rules.minLen = b.unsigned("min_len")
        rules.maxLen = b.unsigned("max_len")
        if let pattern = b.string("pattern") { rules.pattern = try compile(pattern) }
        rules.prefix = b.bytes("prefix")
        rules.suffix = b.bytes("suffix")
        rules.contains = b.bytes("contains")
        rules.in_ = b.list("in").compactMap { if case .bytes(let v) = $0 { return v } else { return nil } }
        rules.notIn = b.list("not_in").compactMap { if case .bytes(let v) = $0 { return v } else { return nil } }
        rules.wellKnown = wellKnown(b).0
        rules.ignoreEmpty = b.bool("ignore_empty") ?? false
        return rules
    }

    private static func compile(_ pattern: String) throws(RulesDecodingError) -> CompiledRegex {
        switch CompiledRegex.compile(pattern) {
        case .success(let regex): return regex
        case .failure(let error): throw RulesDecodingError(description: "pattern \(pattern): \(error.message)")
        }
    }
}

struct RulesDecodingError: Error, CustomStringConvertible {
    let description: String
}

/// Field access by name over a decoded validate.* message.
private struct RulesReader {
    let message: DynamicMessage
    let pool: DescriptorPool

    func value(_ name: String) -> ProtoValue? { message.value(named: name, in: pool) }
    func message(_ name: String) -> RulesReader? { value(name)?.messageValue.map { RulesReader(message: $0, pool: pool) } }
    func bool(_ name: String) -> Bool? { value(name)?.boolValue }
    func string(_ name: String) -> String? { value(name)?.stringValue }
    func bytes(_ name: String) -> [UInt8]? { if case .bytes(let b)? = value(name) { return b } else { return nil } }
    func list(_ name: String) -> [ProtoValue] { value(name)?.listValue?.map(\.value) ?? [] }
    func strings(_ name: String) -> [String] { list(name).compactMap(\.stringValue) }
    func unsigned(_ name: String) -> UInt64? { if case .uint(let v)? = value(name) { return v } else { return nil } }

    func integer(_ name: String) -> Int128? { value(name).flatMap(Self.integer) }
    func integers(_ name: String) -> [Int128] { list(name).compactMap(Self.integer) }
    static func integer(_ value: ProtoValue) -> Int128? {
        switch value {
        case .int(let v): return Int128(v)
        case .uint(let v): return Int128(v)
        case .enumNumber(let v): return Int128(v)
        default: return nil
        }
    }
    static func double(_ value: ProtoValue) -> Double? {
        switch value {
        case .double(let v): return v
        case .float(let v): return Double(v)
        default: return nil
        }
    }

    func numericRules<T>(_ convert: (ProtoValue) -> T?) -> NumericRules<T> {
        var rules = NumericRules<T>()
        rules.const_ = value("const").flatMap(convert)
        rules.lt = value("lt").flatMap(convert)
        rules.lte = value("lte").flatMap(convert)
        rules.gt = value("gt").flatMap(convert)
        rules.gte = value("gte").flatMap(convert)
        rules.in_ = list("in").compactMap(convert)
        rules.notIn = list("not_in").compactMap(convert)
        rules.ignoreEmpty = bool("ignore_empty") ?? false
        return rules
    }

    func timeRules() -> TimeRules {
        var rules = TimeRules()
        rules.required = bool("required") ?? false
        rules.bounds = numericRules { value in value.messageValue.map { RulesReader(message: $0, pool: pool).nanoseconds } }
        rules.ltNow = bool("lt_now") ?? false
        rules.gtNow = bool("gt_now") ?? false
        rules.within = value("within")?.messageValue.map { RulesReader(message: $0, pool: pool).nanoseconds }
        return rules
    }

    /// A Duration or Timestamp message as nanoseconds.
    var nanoseconds: Int128 {
        Int128(integer("seconds") ?? 0) * 1_000_000_000 + (integer("nanos") ?? 0)
    }
}
