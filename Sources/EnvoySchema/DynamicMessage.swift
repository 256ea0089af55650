// A protobuf message of any type in the pool, held as field values: what the
// YAML/JSON reader builds, what the validator walks, what the wire encoder writes.

/// Where something stands in the user's text: 1-based line and column, and which text.
public struct SourceLocation: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var line: Int32
    public var column: Int32
    /// Which text the position is in, when one document is assembled from several (rendered
    /// templates, raw blocks from service files): 0 is the document's own file; a compiler
    /// maps other origins back to the user's file and line.
    public var origin: Int32

    public init(line: Int, column: Int, origin: Int32 = 0) {
        self.line = Int32(clamping: line)
        self.column = Int32(clamping: column)
        self.origin = origin
    }

    public var description: String { "\(line):\(column)" }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.origin, a.line, a.column) < (b.origin, b.line, b.column)
    }
}

/// A message value: its type and the fields that are set.
public struct DynamicMessage: Sendable {
    public let type: MessageID
    /// Set fields, at most one entry per field; a repeated or map field is one `.list` entry.
    public var fields: [FieldValue]
    /// Fields read from binary input that the schema does not know, kept as raw wire bytes.
    public var unknownFields: [UInt8]
    /// Where the message's text began (the `{` or first key), when read from text.
    public var location: SourceLocation?
    /// Fields present in the text whose values could not be read (already reported); their
    /// constraints are not checked, so one mistake is not reported twice.
    public var unreadableFields: [Int] = []
    /// Set on a message read from a flow collection written several times in the text (see
    /// `RepeatedCollections`): every copy carries the same ID, so a check that passed one copy in the same
    /// context passes them all. 0 for every other message.
    var repeatID: Int32 = 0

    public init(type: MessageID, location: SourceLocation? = nil) {
        self.type = type
        self.fields = []
        self.unknownFields = []
        self.location = location
    }

    /// The value of the field at `fieldIndex` in the type's descriptor, if set.
    public func value(at fieldIndex: Int) -> FieldValue? {
        fields.first { $0.fieldIndex == fieldIndex }
    }

    /// The value of the field named `name` (proto name), if set.
    public func value(named name: String, in pool: DescriptorPool) -> ProtoValue? {
        // Compares the names of the few set fields instead of hashing `name` into the type's
        // name table: rules call this for every field they read, on every resource.
        // Same answer as `fieldIndex(named:)`, which knows proto and JSON names.
        // Lengths first (O(1) for native strings): most set fields are not the one asked for, and a
        // full comparison of a descriptor's name with a literal is a call into the string runtime.
        let descriptors = pool.message(type).fields
        let length = name.utf8.count
        for entry in fields {
            let field = descriptors[entry.fieldIndex]
            if (field.name.utf8.count == length && field.name == name) || (field.jsonName.utf8.count == length && field.jsonName == name) {
                return entry.value
            }
        }
        return nil
    }

    /// Sets (replaces) a field's value.
    public mutating func set(_ fieldIndex: Int, _ value: ProtoValue, location: SourceLocation? = nil) {
        repeatID = 0  // no longer what the repeated text reads to
        if let at = fields.firstIndex(where: { $0.fieldIndex == fieldIndex }) {
            fields[at] = FieldValue(fieldIndex: fieldIndex, value: value, location: location ?? fields[at].location)
        } else {
            fields.append(FieldValue(fieldIndex: fieldIndex, value: value, location: location))
        }
    }

    /// Removes a field's value.
    public mutating func clear(_ fieldIndex: Int) {
        repeatID = 0
        fields.removeAll { $0.fieldIndex == fieldIndex }
    }
}

/// One set field of a message.
public struct FieldValue: Sendable {
    /// Index into the message descriptor's `fields`.
    public var fieldIndex: Int
    public var value: ProtoValue
    /// Where the field's key stood in the text.
    public var location: SourceLocation?
}

/// One element of a repeated or map field.
public struct ListElement: Sendable {
    public var value: ProtoValue
    public var location: SourceLocation?

    public init(_ value: ProtoValue, location: SourceLocation? = nil) {
        self.value = value
        self.location = location
    }
}

/// A field's value. Integers keep their full width; which wire form they take is the field's kind.
public enum ProtoValue: Sendable {
    case int(Int64)
    case uint(UInt64)
    case double(Double)
    case float(Float)
    case bool(Bool)
    case string(String)
    case bytes([UInt8])
    case enumNumber(Int32)
    /// A message, or (in a `bytes` field such as `Any.value`) a message to be serialized into the bytes.
    case message(DynamicMessage)
    /// A repeated field; a map field is a list of map-entry messages.
    case list([ListElement])

    /// True for the proto3 default of a scalar (what implicit presence omits).
    var isScalarDefault: Bool {
        switch self {
        case .int(let v): return v == 0
        case .uint(let v): return v == 0
        case .double(let v): return v.bitPattern == 0
        case .float(let v): return v.bitPattern == 0
        case .bool(let v): return !v
        case .string(let v): return v.isEmpty
        case .bytes(let v): return v.isEmpty
        case .enumNumber(let v): return v == 0
        case .message, .list: return false
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var messageValue: DynamicMessage? { if case .message(let m) = self { return m } else { return nil } }
    public var listValue: [ListElement]? { if case .list(let l) = self { return l } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
}
