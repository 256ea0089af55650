// The Envoy v3 API as data: every message, field and enum of the pinned
// Envoy descriptor set (extracted from the pinned Envoy binary), with the validation rules (protoc-gen-validate) and
// Envoy annotations each field carries. Immutable once built, shared by all threads.

/// How a field is encoded on the wire and represented in JSON.
public enum FieldKind: Int, Sendable {
    case double = 1, float, int64, uint64, int32, fixed64, fixed32, bool, string, group, message, bytes, uint32, `enum`, sfixed32, sfixed64, sint32, sint64

    /// Wire type of one (unpacked) value of this kind.
    var wireType: WireType {
        switch self {
        case .double, .fixed64, .sfixed64: return .fixed64
        case .float, .fixed32, .sfixed32: return .fixed32
        case .string, .bytes, .message: return .lengthDelimited
        case .group: return .startGroup
        default: return .varint
        }
    }

    /// Kinds that proto3 packs when repeated.
    var isPackable: Bool { wireType != .lengthDelimited && wireType != .startGroup }

    var isSignedInteger: Bool { self == .int32 || self == .int64 || self == .sint32 || self == .sint64 || self == .sfixed32 || self == .sfixed64 }
    var isUnsignedInteger: Bool { self == .uint32 || self == .uint64 || self == .fixed32 || self == .fixed64 }
    var is32Bit: Bool { self == .int32 || self == .sint32 || self == .sfixed32 || self == .uint32 || self == .fixed32 }
}

/// Index of a message type in `DescriptorPool.messages`.
public typealias MessageID = Int32
/// Index of an enum type in `DescriptorPool.enums`.
public typealias EnumID = Int32

/// One field of a message type. A class so the hot paths pass references, not copies; its
/// `var`s are written only while the pool loads, before the pool is shared.
public final class FieldDescriptor: @unchecked Sendable {
    // @unchecked Sendable: its `var`s are written only while the pool loads, before the pool is shared (see the doc comment).
    public let name: String
    public let jsonName: String
    public let number: Int32
    public let kind: FieldKind
    public let isRepeated: Bool
    /// Packed encoding when repeated (proto3 default for scalar kinds).
    public let isPacked: Bool
    /// Explicit presence: a default value that was set is still written.
    public let hasPresence: Bool
    /// Index into the owning message's `oneofs`.
    public let oneofIndex: Int?
    /// For `.message` fields, the message type.
    public let messageType: MessageID?
    /// For `.enum` fields, the enum type.
    public let enumType: EnumID?
    /// protoc-gen-validate rules from `(validate.rules)`.
    // `@exclusivity(unchecked)` on these `var`s: written only while the pool loads, then read for every field
    // of every message read or validated, where the runtime's exclusivity check was 2% of a large validate.
    @exclusivity(unchecked) public internal(set) var rules: FieldRules?
    /// `[deprecated = true]`.
    public let isDeprecated: Bool
    /// `(envoy.annotations.disallowed_by_default)`: Envoy refuses the field unless a runtime flag re-enables it.
    @exclusivity(unchecked) public internal(set) var isDisallowedByDefault: Bool
    /// `(udpa.annotations.sensitive)`: the value is a secret and must never be printed.
    @exclusivity(unchecked) public internal(set) var isSensitive: Bool

    init(name: String, jsonName: String, number: Int32, kind: FieldKind, isRepeated: Bool, isPacked: Bool, hasPresence: Bool,
         oneofIndex: Int?, messageType: MessageID?, enumType: EnumID?, rules: FieldRules?, isDeprecated: Bool,
         isDisallowedByDefault: Bool, isSensitive: Bool) {
        self.name = name
        self.jsonName = jsonName
        self.number = number
        self.kind = kind
        self.isRepeated = isRepeated
        self.isPacked = isPacked
        self.hasPresence = hasPresence
        self.oneofIndex = oneofIndex
        self.messageType = messageType
        self.enumType = enumType
        self.rules = rules
        self.isDeprecated = isDeprecated
        self.isDisallowedByDefault = isDisallowedByDefault
        self.isSensitive = isSensitive
    }
}

/// A field the constraint validator visits, and whether it has rules: a message field without rules is
/// visited only when set, which this decides without reading the descriptor (a class `var`, so an
/// exclusivity check and a copy of its rules per field of every message validated).
struct CheckedField: Sendable {
    let index: Int
    let hasRules: Bool
}

/// A oneof group of a message type.
public struct OneofDescriptor: Sendable {
    public let name: String
    /// Field indexes (into the owning message's `fields`) of the members.
    public internal(set) var memberFields: [Int]
    /// `(validate.required)`: exactly one member must be set.
    public internal(set) var isRequired: Bool
    /// A proto3 `optional` field's synthetic oneof, not a user-visible group.
    public let isSynthetic: Bool
}

/// Message types whose JSON form is not an object of fields (the proto3 JSON mapping's special cases).
public enum WellKnownType: Sendable {
    case any, duration, timestamp, fieldMask, `struct`, value, listValue, nullValue, empty
    case wrapper(FieldKind)
}

/// A message type. A class so the hot paths pass references, not copies; its `var`s are
/// written only while the pool loads, before the pool is shared.
public final class MessageDescriptor: @unchecked Sendable {
    // @unchecked Sendable: its `var`s are written only while the pool loads, before the pool is shared (see the doc comment).
    public let fullName: String
    /// Fields, sorted by field number.
    public let fields: [FieldDescriptor]
    public let oneofs: [OneofDescriptor]
    /// Indexes of the `(validate.required)` oneofs (most messages have none; the validator asks for every message).
    let requiredOneofs: [Int]
    public let isMapEntry: Bool
    public let wellKnownType: WellKnownType?
    /// `(validate.disabled)`: no rule of this message is checked.
    // `@exclusivity(unchecked)`: see FieldDescriptor.rules.
    @exclusivity(unchecked) public internal(set) var isValidationDisabled: Bool
    /// `(validate.ignored)`: same effect for our purposes.
    @exclusivity(unchecked) public internal(set) var isValidationIgnored: Bool
    public let isDeprecated: Bool
    let fieldIndexByName: [String: Int]
    /// The same names as `fieldIndexByName`, for the reader's lookup of every key it reads.
    let fieldNameTable: FieldNameTable
    let fieldIndexByNumber: [Int32: Int]
    /// The fields the constraint validator must visit: those with rules, and messages.
    @exclusivity(unchecked) var checkedFields: [CheckedField] = []

    init(fullName: String, fields: [FieldDescriptor], oneofs: [OneofDescriptor], isMapEntry: Bool, wellKnownType: WellKnownType?,
         isValidationDisabled: Bool, isValidationIgnored: Bool, isDeprecated: Bool, fieldIndexByName: [String: Int], fieldIndexByNumber: [Int32: Int]) {
        self.fullName = fullName
        self.fields = fields
        self.oneofs = oneofs
        requiredOneofs = oneofs.indices.filter { oneofs[$0].isRequired }
        self.isMapEntry = isMapEntry
        self.wellKnownType = wellKnownType
        self.isValidationDisabled = isValidationDisabled
        self.isValidationIgnored = isValidationIgnored
        self.isDeprecated = isDeprecated
        self.fieldIndexByName = fieldIndexByName
        self.fieldNameTable = FieldNameTable(fieldIndexByName)
        self.fieldIndexByNumber = fieldIndexByNumber
    }

    /// The field named `name` (proto name or lowerCamelCase JSON name).
    public func field(named name: String) -> FieldDescriptor? {
        fieldIndex(named: name).map { fields[$0] }
    }

    /// Index into `fields` of the field with this proto or JSON name.
    public func fieldIndex(named name: String) -> Int? { fieldNameTable.index(of: name) }

    /// Index into `fields` of the field with this number.
    public func fieldIndex(number: Int32) -> Int? { fieldIndexByNumber[number] }

    /// The short name (last component of the full name).
    public var name: Substring { fullName[(fullName.lastIndex(of: ".").map { fullName.index(after: $0) } ?? fullName.startIndex)...] }
}

/// An enum type.
public struct EnumDescriptor: Sendable {
    public let fullName: String
    /// Values in declaration order.
    public let values: [(name: String, number: Int32)]
    /// proto2 enums are closed: unknown numbers are not values of the field.
    public let isClosed: Bool
    let numberByName: [String: Int32]
    let nameByNumber: [Int32: String]

    public func number(named name: String) -> Int32? { numberByName[name] }
    public func name(of number: Int32) -> String? { nameByNumber[number] }
}

/// An extension field (`extend google.protobuf.FieldOptions { ... }` and the like).
public struct ExtensionDescriptor: Sendable {
    public let fullName: String
    public let extendee: String
    public let number: Int32
    public let kind: FieldKind
    public let typeName: String?
}

/// The whole schema: every message and enum type of a descriptor set, by index and by name.
public final class DescriptorPool: Sendable {
    public let messages: [MessageDescriptor]
    public let enums: [EnumDescriptor]
    public let extensions: [String: ExtensionDescriptor]
    /// Names of all files in the set, in dependency order.
    public let fileNames: [String]
    let messageIDByName: [String: MessageID]
    let enumIDByName: [String: EnumID]

    init(messages: [MessageDescriptor], enums: [EnumDescriptor], extensions: [String: ExtensionDescriptor], fileNames: [String],
         messageIDByName: [String: MessageID], enumIDByName: [String: EnumID]) {
        self.messages = messages
        self.enums = enums
        self.extensions = extensions
        self.fileNames = fileNames
        self.messageIDByName = messageIDByName
        self.enumIDByName = enumIDByName
    }

    /// The message type with this full name (no leading dot), e.g. `envoy.config.cluster.v3.Cluster`.
    public func messageID(named fullName: String) -> MessageID? { messageIDByName[fullName] }

    public func message(_ id: MessageID) -> MessageDescriptor { messages[Int(id)] }

    public func message(named fullName: String) -> MessageDescriptor? { messageID(named: fullName).map { message($0) } }

    public func enumType(_ id: EnumID) -> EnumDescriptor { enums[Int(id)] }

    public func enumID(named fullName: String) -> EnumID? { enumIDByName[fullName] }

    /// All message type names, sorted.
    public var messageNames: [String] { messageIDByName.keys.sorted() }

    /// Full names that look like a misspelling of `name` (same short name, or a short name one or two edits away), best first.
    public func similarMessageNames(to name: String) -> [String] {
        let short = name.split(separator: ".").last.map(String.init) ?? name
        var scored: [(String, Int)] = []
        for candidate in messageIDByName.keys {
            let candidateShort = candidate.split(separator: ".").last.map(String.init) ?? candidate
            guard abs(candidateShort.count - short.count) <= 2 else { continue }
            let distance = editDistance(Array(short), Array(candidateShort))
            if distance <= 2 { scored.append((candidate, distance * 1000 + editDistance(Array(name), Array(candidate)))) }
        }
        return scored.sorted { ($0.1, $0.0) < ($1.1, $1.0) }.map(\.0)
    }

    /// The message type named by an `Any` type URL (`type.googleapis.com/envoy.config.cluster.v3.Cluster`):
    /// everything after the last `/`, as protobuf resolves it.
    public func messageID(typeURL: String) -> MessageID? {
        // Searched as UTF-8: `lastIndex(of: Character)` walks grapheme clusters backwards (~20k
        // instructions for a typical URL; this runs for every Any). "/" is ASCII, so the byte
        // position is a character boundary. A native String's bytes are contiguous: scanning them as a
        // buffer costs a tenth of stepping `String.UTF8View` indices backwards (~2,000 instructions per
        // URL, 2.3% of `validate --envoy` on the listeners shape); the views stay for bridged strings.
        let found: String?? = typeURL.utf8.withContiguousStorageIfAvailable { bytes in
            guard let slash = bytes.lastIndex(of: UInt8(ascii: "/")) else { return nil }
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[(slash + 1)...]), as: UTF8.self)
        }
        if let found { return found.flatMap { messageID(named: $0) } }
        let utf8 = typeURL.utf8
        guard let slash = utf8.lastIndex(of: UInt8(ascii: "/")) else { return nil }
        return messageID(named: String(typeURL[utf8.index(after: slash)...]))
    }

    /// The Envoy v3 API embedded in this binary (the pinned Envoy's own descriptors). Loaded on first use.
    public static var envoy: DescriptorPool {
        get throws(SchemaLoadError) { try embeddedPool.get() }
    }

    private static let embeddedPool: Result<DescriptorPool, SchemaLoadError> = Result { () throws(SchemaLoadError) in
        try DescriptorSetLoader.loadEmbedded()
    }
}

/// The embedded descriptor set could not be turned into a pool: a build problem, never user error.
public struct SchemaLoadError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Field names (proto and JSON) → field index, found without hashing a String: the reader looks up
/// every key of every document, and `Hasher` (SipHash) on the key was ~1.5% of a 10,000-service validate.
/// Open addressing over a power-of-two table keyed by FNV-1a of the name's UTF-8 bytes; a hit is
/// confirmed by comparing the names, so the answer is always `fieldIndexByName`'s.
struct FieldNameTable: Sendable {
    private let names: [String]
    private let indexes: [Int]
    /// Slot → position in `names`/`indexes`, or -1.
    private let slots: [Int32]
    private let mask: Int

    init(_ byName: [String: Int]) {
        let entries = Array(byName)
        names = entries.map(\.key)
        indexes = entries.map(\.value)
        var size = 4
        while size < entries.count * 2 { size *= 2 }
        mask = size - 1
        var slots = [Int32](repeating: -1, count: size)
        for (position, name) in names.enumerated() {
            var slot = Self.hash(name) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(position)
        }
        self.slots = slots
    }

    func index(of name: String) -> Int? {
        var slot = Self.hash(name) & mask
        while true {
            let position = Int(slots[slot])
            if position < 0 { return nil }
            if names[position] == name { return indexes[position] }
            slot = (slot + 1) & mask
        }
    }

    @inline(__always)
    static func hash(_ name: String) -> Int {
        // Over the contiguous bytes: iterating `name.utf8` cost more than the Hasher it replaces.
        var name = name
        return name.withUTF8 { bytes in
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
            return Int(truncatingIfNeeded: hash ^ (hash >> 29))
        }
    }
}
