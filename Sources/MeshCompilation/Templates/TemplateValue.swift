// The values templates read (the template context) and their static types (the
// context schema every template is checked against before it renders).

/// A value a template can read: what `{{ service.name }}` or `{% for port in service.ports %}` see.
public indirect enum TemplateValue: Sendable {
    case null
    case string(String)
    case int(Int)
    case bool(Bool)
    case list([TemplateValue])
    case object(TemplateObject)

    /// Stencil's truthiness: empty strings and lists, zero and negative numbers, false and null are false.
    var isTruthy: Bool {
        switch self {
        case .null: return false
        case .string(let s): return !s.isEmpty
        case .int(let i): return i > 0
        case .bool(let b): return b
        case .list(let l): return !l.isEmpty
        case .object: return true
        }
    }

    var isNull: Bool { if case .null = self { return true } else { return false } }

    /// What a value is, for error messages.
    var kindName: String {
        switch self {
        case .null: return "null"
        case .string: return "a string"
        case .int: return "a number"
        case .bool: return "a boolean"
        case .list: return "a list"
        case .object(let o): return "an object (\(o.type.name))"
        }
    }
}

/// A record in the template context (a service, a port, a route …), read by member name.
public final class TemplateObject: Sendable {
    public let type: TemplateObjectType
    /// In the order of `type.names`.
    private let values: [TemplateValue]

    /// - Parameter fields: values for (a subset of) the type's fields; the rest read as null.
    public init(_ type: TemplateObjectType, _ fields: [String: TemplateValue]) {
        self.type = type
        // Each given field placed by a scan of the type's names, rather than every name of the type hashed into
        // `fields` (most objects set a few of their members; the contexts build ~20 objects per service).
        var values = [TemplateValue](repeating: .null, count: type.names.count)
        for (name, value) in fields {
            if let index = type.index(of: name) { values[index] = value }
        }
        self.values = values
    }

    public subscript(_ name: String) -> TemplateValue {
        guard let index = type.index(of: name) else { return .null }
        return values[index]
    }

    func value(at index: Int) -> TemplateValue { values[index] }
}

/// The static type of a context value.
public indirect enum TemplateType: Sendable {
    case string, int, bool
    /// Anything (no member checking below it).
    case any
    case list(TemplateType)
    case object(TemplateObjectType)

    var name: String {
        switch self {
        case .string: return "string"
        case .int: return "number"
        case .bool: return "boolean"
        case .any: return "value"
        case .list(let element): return "list of \(element.name)"
        case .object(let type): return type.name
        }
    }
}

/// A named record type with its members (documented in docs/CONFIG.md, "Template context").
public final class TemplateObjectType: @unchecked Sendable {
    // @unchecked Sendable: `fields` is set while the schema is built, before the type is shared, and only read afterwards.
    public let name: String
    /// Member name → type. Set once while the schema is built, read-only afterwards.
    public private(set) var fields: [String: TemplateType] = [:]
    /// Member names in a fixed order (values of objects are stored in this order).
    private(set) var names: [String] = []

    public init(_ name: String) { self.name = name }

    /// Adds members (only while the schema is being built, before any object or template uses it).
    package func define(_ members: [String: TemplateType]) {
        fields.merge(members) { _, new in new }
        names = fields.keys.sorted()
    }

    /// Where a member's value is stored. Member names are short (Swift small strings), so comparing
    /// them in a scan is cheaper than hashing for a dictionary lookup on every template access.
    /// Lengths are compared first (O(1)): most members scanned past differ in length, and comparing two
    /// different strings is a call into the string runtime.
    @inline(__always)
    func index(of member: String) -> Int? {
        let length = member.utf8.count
        return names.firstIndex { $0.utf8.count == length && $0 == member }
    }
}
