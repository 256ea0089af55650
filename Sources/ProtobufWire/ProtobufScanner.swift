// Reads serialized protobuf messages field by field, in place, without a schema: for the few places that
// need one or two fields of a resource body (the EDS name of a cluster, the RDS names of a listener) and
// neither the schema engine nor a decoded message tree.

/// Walks the fields of one serialized protobuf message in place.
public struct ProtobufScanner {
    public let bytes: UnsafeRawBufferPointer

    public init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    /// Calls `body(field, varint, payload)` for each varint (payload nil) or length-delimited field (payload set);
    /// stops at malformed input (a bad body only means fewer follow-up names).
    public func forEach(_ body: (Int, UInt64, UnsafeRawBufferPointer?) -> Void) {
        walk(malformed: {}) { field, _, value, payload in body(field, value, payload) }
    }

    /// Like `forEach`, with each field's offset (where its key starts) instead of the varint; calls `malformed`
    /// if the walk stopped before the end.
    public func forEachWithOffsets(malformed: () -> Void, _ body: (_ field: Int, _ start: Int, UnsafeRawBufferPointer?) -> Void) {
        walk(malformed: malformed) { field, start, _, payload in body(field, start, payload) }
    }

    private func walk(malformed: () -> Void, _ body: (Int, Int, UInt64, UnsafeRawBufferPointer?) -> Void) {
        var index = 0
        let count = bytes.count
        func varint() -> UInt64? { try? Varint.decode(bytes, at: &index).get() }
        while index < count {
            let start = index
            guard let key = varint() else { return malformed() }
            let field = Int(key >> 3)
            switch key & 7 {
            case 0:
                guard let value = varint() else { return malformed() }
                body(field, start, value, nil)
            case 1:
                guard count - index >= 8 else { return malformed() }
                index += 8
            case 2:
                guard let length = varint(), length <= UInt64(count - index) else { return malformed() }
                let end = index + Int(length)
                body(field, start, length, UnsafeRawBufferPointer(rebasing: bytes[index..<end]))
                index = end
            case 5:
                guard count - index >= 4 else { return malformed() }
                index += 4
            default:
                return malformed()
            }
        }
    }

    /// The last occurrence of length-delimited `field` (proto3: the last one wins).
    public func last(_ field: Int) -> UnsafeRawBufferPointer? {
        var found: UnsafeRawBufferPointer?
        forEach { number, _, payload in if number == field, let payload { found = payload } }
        return found
    }

    public func string(_ field: Int) -> String? {
        last(field).map { String(decoding: $0, as: UTF8.self) }
    }

    public func varint(_ field: Int) -> UInt64? {
        var found: UInt64?
        forEach { number, value, payload in if number == field, payload == nil { found = value } }
        return found
    }

    /// Calls `body` with every occurrence of length-delimited `field`.
    public func each(_ field: Int, _ body: (ProtobufScanner) -> Void) {
        forEach { number, _, payload in if number == field, let payload { body(ProtobufScanner(bytes: payload)) } }
    }
}
