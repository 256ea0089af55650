// Protobuf's base-128 varints, written and read in one place for every target that
// touches the wire format by hand: the schema engine's encoder and decoder, the xDS
// envelope's pre-encoded resource lists, and the load generator's reference scanner.
// Inlinable: these are the innermost loops of encoding and decoding.

/// Protobuf varints (https://protobuf.dev/programming-guides/encoding/#varints).
public enum Varint {
    /// Why bytes are not a varint.
    public enum DecodeError: Error, Sendable, Hashable {
        /// The tenth byte carries bits beyond 64.
        case overflow
        /// More than ten bytes.
        case tooLong
        /// The input ended inside the varint.
        case truncated
    }

    /// Bytes `value` takes on the wire (1…10).
    @inlinable
    public static func size(_ value: UInt64) -> Int {
        var value = value
        var size = 1
        while value >= 0x80 {
            value >>= 7
            size += 1
        }
        return size
    }

    /// Appends `value`'s encoding to `out`.
    @inlinable
    public static func append(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }

    /// Decodes the varint at `index` and moves `index` past it (on failure `index` is past the bytes examined).
    @inlinable
    public static func decode<Bytes: RandomAccessCollection>(_ bytes: Bytes, at index: inout Int) -> Result<UInt64, DecodeError>
        where Bytes.Element == UInt8, Bytes.Index == Int {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while index < bytes.endIndex {
            let byte = bytes[index]
            index += 1
            if shift == 63 && byte > 1 { return .failure(.overflow) }
            result |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return .success(result) }
            shift += 7
            if shift > 63 { return .failure(.tooLong) }
        }
        return .failure(.truncated)
    }
}
