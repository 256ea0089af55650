// The protobuf binary format for DynamicMessage, both ways. Encoding is
// protobuf's deterministic serialization byte for byte: fields in field-number
// order, map entries sorted by key with key and value always written, proto3
// defaults omitted, packed repeated scalars, unknown fields last.
import ProtobufWire

enum WireType: UInt8, Sendable {
    case varint = 0, fixed64 = 1, lengthDelimited = 2, startGroup = 3, endGroup = 4, fixed32 = 5
}

/// Messages nested deeper than this are refused (protobuf's own default limit).
let maximumMessageDepth = 100

// MARK: - Encoding

extension DynamicMessage {
    /// Deterministic binary serialization.
    public func serialized(pool: DescriptorPool) -> [UInt8] {
        var writer = WireWriter()
        writer.write(self, pool: pool)
        return writer.bytes
    }
}

struct WireWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) { Varint.append(value, to: &bytes) }

    mutating func tag(_ number: Int32, _ wireType: WireType) {
        varint(UInt64(UInt32(bitPattern: number) << 3 | UInt32(wireType.rawValue)))
    }

    mutating func fixed32(_ v: UInt32) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func fixed64(_ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func lengthDelimited(_ payload: [UInt8]) {
        varint(UInt64(payload.count))
        bytes.append(contentsOf: payload)
    }

    mutating func write(_ message: DynamicMessage, pool: DescriptorPool) {
        let descriptor = pool.message(message.type)
        if descriptor.isMapEntry {
            writeMapEntry(message, descriptor: descriptor, pool: pool)
            return
        }
        let ordered = message.fields.count > 1 && !isSorted(message.fields)
            ? message.fields.sorted { $0.fieldIndex < $1.fieldIndex } : message.fields
        for entry in ordered {
            let field = descriptor.fields[entry.fieldIndex]
            switch entry.value {
            case .list(let elements):
                writeRepeated(field, elements, pool: pool)
            default:
                if !field.hasPresence && entry.value.isScalarDefault { continue }
                writeSingle(field, entry.value, pool: pool)
            }
        }
        bytes.append(contentsOf: message.unknownFields)
    }

    private func isSorted(_ fields: [FieldValue]) -> Bool {
        var previous = -1
        for field in fields {
            if field.fieldIndex < previous { return false }
            previous = field.fieldIndex
        }
        return true
    }

    /// Map entries always carry both key and value, even when they are defaults.
    private mutating func writeMapEntry(_ message: DynamicMessage, descriptor: MessageDescriptor, pool: DescriptorPool) {
        for index in descriptor.fields.indices {
            let field = descriptor.fields[index]
            let value = message.value(at: index)?.value ?? defaultValue(of: field)
            writeSingle(field, value, pool: pool)
        }
    }

    private mutating func writeRepeated(_ field: FieldDescriptor, _ elements: [ListElement], pool: DescriptorPool) {
        if elements.isEmpty { return }
        if field.messageType.map({ pool.message($0).isMapEntry }) == true {
            for element in sortedMapEntries(elements, pool: pool) {
                writeSingle(field, element.value, pool: pool)
            }
            return
        }
        if field.isPacked && field.kind.isPackable {
            var payload = WireWriter()
            for element in elements { payload.writeScalarPayload(field.kind, element.value) }
            tag(field.number, .lengthDelimited)
            lengthDelimited(payload.bytes)
            return
        }
        for element in elements { writeSingle(field, element.value, pool: pool) }
    }

    private mutating func writeSingle(_ field: FieldDescriptor, _ value: ProtoValue, pool: DescriptorPool) {
        switch value {
        case .message(let child):
            var nested = WireWriter()
            nested.write(child, pool: pool)
            // A message carried in a bytes field (Any.value) is bytes: empty means absent.
            if field.kind == .bytes && !field.hasPresence && nested.bytes.isEmpty { return }
            tag(field.number, .lengthDelimited)
            lengthDelimited(nested.bytes)
        case .string(let s):
            tag(field.number, .lengthDelimited)
            varint(UInt64(s.utf8.count))
            bytes.append(contentsOf: s.utf8)
        case .bytes(let b):
            tag(field.number, .lengthDelimited)
            lengthDelimited(b)
        default:
            tag(field.number, field.kind.wireType)
            writeScalarPayload(field.kind, value)
        }
    }

    mutating func writeScalarPayload(_ kind: FieldKind, _ value: ProtoValue) {
        switch (kind, value) {
        case (.double, .double(let v)): fixed64(v.bitPattern)
        case (.float, .float(let v)): fixed32(v.bitPattern)
        case (.bool, .bool(let v)): bytes.append(v ? 1 : 0)
        case (.sint32, .int(let v)): varint(UInt64(UInt32(bitPattern: (Int32(truncatingIfNeeded: v) << 1) ^ (Int32(truncatingIfNeeded: v) >> 31))))
        case (.sint64, .int(let v)): varint(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
        case (.sfixed32, .int(let v)): fixed32(UInt32(bitPattern: Int32(truncatingIfNeeded: v)))
        case (.sfixed64, .int(let v)): fixed64(UInt64(bitPattern: v))
        case (.fixed32, .uint(let v)): fixed32(UInt32(truncatingIfNeeded: v))
        case (.fixed64, .uint(let v)): fixed64(v)
        case (.int32, .int(let v)), (.int64, .int(let v)): varint(UInt64(bitPattern: v))
        case (.uint32, .uint(let v)), (.uint64, .uint(let v)): varint(v)
        case (.enum, .enumNumber(let v)): varint(UInt64(bitPattern: Int64(v)))
        default:
            preconditionFailure("value \(value) does not fit field kind \(kind)")
        }
    }

    /// Entries ordered by key; of entries with equal keys the last wins, as when parsing.
    private func sortedMapEntries(_ elements: [ListElement], pool: DescriptorPool) -> [ListElement] {
        var lastByKey: [MapKey: ListElement] = [:]
        for element in elements {
            guard case .message(let entry) = element.value else { continue }
            lastByKey[MapKey(entry.value(at: 0)?.value)] = element
        }
        return lastByKey.sorted { $0.key < $1.key }.map(\.value)
    }
}

/// A map key in deterministic order: integers by value, strings as upb orders them, false before true.
struct MapKey: Hashable, Comparable {
    enum Storage: Hashable {
        case int(Int64), uint(UInt64), bool(Bool), string([UInt8])
    }
    let storage: Storage

    init(_ value: ProtoValue?) {
        switch value {
        case .int(let v)?: storage = .int(v)
        case .uint(let v)?: storage = .uint(v)
        case .bool(let v)?: storage = .bool(v)
        case .string(let v)?: storage = .string(Array(v.utf8))
        default: storage = .string([])
        }
    }

    static func < (a: MapKey, b: MapKey) -> Bool {
        switch (a.storage, b.storage) {
        case (.int(let x), .int(let y)): return x < y
        case (.uint(let x), .uint(let y)): return x < y
        case (.bool(let x), .bool(let y)): return !x && y
        case (.string(let x), .string(let y)):
            // upb's order (Python protobuf, the reference oracle): bytewise on the common prefix,
            // and where one key is a prefix of the other, the longer key first. (C++ protobuf puts
            // the shorter first; both are deterministic, and Envoy accepts either.)
            for (a, b) in zip(x, y) where a != b { return a < b }
            return x.count > y.count
        default: return false
        }
    }
}

/// The proto3 default of a field (what a map entry writes for a missing key or value).
func defaultValue(of field: FieldDescriptor) -> ProtoValue {
    switch field.kind {
    case .double: return .double(0)
    case .float: return .float(0)
    case .bool: return .bool(false)
    case .string: return .string("")
    case .bytes: return .bytes([])
    case .enum: return .enumNumber(0)
    case .message, .group: return .message(DynamicMessage(type: field.messageType ?? 0))
    default: return field.kind.isUnsignedInteger ? .uint(0) : .int(0)
    }
}

// MARK: - Decoding

/// Binary input that is not a valid encoding of the expected message.
public struct WireFormatError: Error, Equatable, CustomStringConvertible, Sendable {
    /// Byte offset in the input where decoding failed.
    public let offset: Int
    public let message: String
    public var description: String { "byte \(offset): \(message)" }
}

extension DynamicMessage {
    /// Parses binary protobuf into a message of type `type`.
    public init(serialized bytes: [UInt8], type: MessageID, pool: DescriptorPool) throws(WireFormatError) {
        var reader = WireReader(bytes: bytes, pool: pool)
        self = try reader.readMessage(type: type, end: bytes.count, depth: 0)
    }
}

struct WireReader {
    let bytes: [UInt8]
    let pool: DescriptorPool
    var offset = 0

    init(bytes: [UInt8], pool: DescriptorPool) {
        self.bytes = bytes
        self.pool = pool
    }

    private func fail(_ message: String) -> WireFormatError { WireFormatError(offset: offset, message: message) }

    mutating func varint() throws(WireFormatError) -> UInt64 {
        switch Varint.decode(bytes, at: &offset) {
        case .success(let value): return value
        case .failure(.overflow): throw fail("varint overflows 64 bits")
        case .failure(.tooLong): throw fail("varint longer than 10 bytes")
        case .failure(.truncated): throw fail("truncated varint")
        }
    }

    mutating func fixed32() throws(WireFormatError) -> UInt32 {
        guard offset + 4 <= bytes.count else { throw fail("truncated fixed32") }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(bytes[offset + i]) << (8 * UInt32(i)) }
        offset += 4
        return v
    }

    mutating func fixed64() throws(WireFormatError) -> UInt64 {
        guard offset + 8 <= bytes.count else { throw fail("truncated fixed64") }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += 8
        return v
    }

    mutating func length(limit end: Int) throws(WireFormatError) -> Int {
        let length = try varint()
        // The varint itself may have run past the end of the enclosing message (its bytes are the parent's).
        guard offset <= end, length <= UInt64(end - offset) else { throw fail("length \(length) runs past the end of the enclosing message") }
        return Int(length)
    }

    mutating func readMessage(type: MessageID, end: Int, depth: Int) throws(WireFormatError) -> DynamicMessage {
        guard depth < maximumMessageDepth else { throw fail("messages nested more than \(maximumMessageDepth) deep") }
        var message = DynamicMessage(type: type)
        try readFields(into: &message, end: end, depth: depth)
        return message
    }

    mutating func readFields(into message: inout DynamicMessage, end: Int, depth: Int) throws(WireFormatError) {
        let descriptor = pool.message(message.type)
        while offset < end {
            let fieldStart = offset
            let key = try varint()
            let number = Int32(truncatingIfNeeded: key >> 3)
            guard let wireType = WireType(rawValue: UInt8(key & 7)), number > 0 else { throw fail("invalid field key \(key)") }
            guard let index = descriptor.fieldIndex(number: number) else {
                try skip(wireType, end: end)
                message.unknownFields.append(contentsOf: bytes[fieldStart..<offset])
                continue
            }
            let field = descriptor.fields[index]
            if field.isRepeated {
                var elements = message.value(at: index)?.value.listValue ?? []
                if wireType == .lengthDelimited && field.kind.isPackable {
                    let packedLength = try length(limit: end)
                    let packedEnd = offset + packedLength
                    while offset < packedEnd { elements.append(ListElement(try readScalar(field.kind, wireType: field.kind.wireType))) }
                    guard offset == packedEnd else { throw fail("packed field \(field.name) overruns its length") }
                } else {
                    elements.append(ListElement(try readValue(field, wireType: wireType, end: end, depth: depth, existing: nil)))
                }
                message.set(index, .list(elements))
            } else {
                let existing = message.value(at: index)?.value
                let value = try readValue(field, wireType: wireType, end: end, depth: depth, existing: existing)
                if let oneof = field.oneofIndex {
                    for member in descriptor.oneofs[oneof].memberFields where member != index { message.clear(member) }
                }
                message.set(index, value)
            }
            // A scalar (or a key) read past `end` took bytes of the enclosing message: stop before they are reused.
            guard offset <= end else { throw fail("field overruns the enclosing message") }
        }
        guard offset == end else { throw fail("field overruns the enclosing message") }
    }

    private mutating func readValue(_ field: FieldDescriptor, wireType: WireType, end: Int, depth: Int, existing: ProtoValue?) throws(WireFormatError) -> ProtoValue {
        switch field.kind {
        case .message:
            guard wireType == .lengthDelimited, let type = field.messageType else { throw fail("field \(field.name): expected a length-delimited message") }
            let messageLength = try length(limit: end)
            let messageEnd = offset + messageLength
            // A singular message seen twice merges, as protobuf parsers do.
            var message = existing?.messageValue ?? DynamicMessage(type: type)
            guard depth + 1 < maximumMessageDepth else { throw fail("messages nested more than \(maximumMessageDepth) deep") }
            try readFields(into: &message, end: messageEnd, depth: depth + 1)
            return .message(message)
        case .string:
            guard wireType == .lengthDelimited else { throw fail("field \(field.name): expected a length-delimited string") }
            let count = try length(limit: end)
            let slice = bytes[offset..<offset + count]
            guard let text = String(validating: slice, as: UTF8.self) else { throw fail("field \(field.name): string is not valid UTF-8") }
            offset += count
            return .string(text)
        case .bytes:
            guard wireType == .lengthDelimited else { throw fail("field \(field.name): expected length-delimited bytes") }
            let count = try length(limit: end)
            defer { offset += count }
            return .bytes(Array(bytes[offset..<offset + count]))
        case .group:
            throw fail("field \(field.name): groups are not supported")
        default:
            guard wireType == field.kind.wireType else { throw fail("field \(field.name): wire type \(wireType.rawValue) does not match its kind \(field.kind)") }
            return try readScalar(field.kind, wireType: wireType)
        }
    }

    private mutating func readScalar(_ kind: FieldKind, wireType: WireType) throws(WireFormatError) -> ProtoValue {
        switch kind {
        case .double: return .double(Double(bitPattern: try fixed64()))
        case .float: return .float(Float(bitPattern: try fixed32()))
        case .fixed64: return .uint(try fixed64())
        case .fixed32: return .uint(UInt64(try fixed32()))
        case .sfixed64: return .int(Int64(bitPattern: try fixed64()))
        case .sfixed32: return .int(Int64(Int32(bitPattern: try fixed32())))
        case .bool: return .bool(try varint() != 0)
        case .int64: return .int(Int64(bitPattern: try varint()))
        case .int32: return .int(Int64(Int32(truncatingIfNeeded: try varint())))
        case .uint64: return .uint(try varint())
        case .uint32: return .uint(UInt64(UInt32(truncatingIfNeeded: try varint())))
        case .enum: return .enumNumber(Int32(truncatingIfNeeded: try varint()))
        case .sint32:
            let raw = UInt32(truncatingIfNeeded: try varint())
            return .int(Int64(Int32(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))))
        case .sint64:
            let raw = try varint()
            return .int(Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1))))
        default: throw fail("kind \(kind) is not a scalar")
        }
    }

    private mutating func skip(_ wireType: WireType, end: Int) throws(WireFormatError) {
        switch wireType {
        case .varint: _ = try varint()
        case .fixed64: _ = try fixed64()
        case .fixed32: _ = try fixed32()
        case .lengthDelimited: offset += try length(limit: end)
        case .startGroup, .endGroup: throw fail("groups are not supported")
        }
    }
}
