// Owns resource lists shared by many responses: the Any-wrapped resources of one
// state-of-the-world answer and, when built for sharing, their protobuf encoding as
// the `resources` field of a DiscoveryResponse. A proxy group's streams all get the
// same answer, so the list is encoded once and each stream only writes its own
// envelope fields (version, type, nonce, control plane) around the same bytes.
// The envelope is written here by hand in field-number order, exactly as protobuf-c
// packs it, so both paths produce identical bytes (tested).
import ProtobufWire

/// An immutable list of resources wrapped as `google.protobuf.Any`, shared by every response that carries it, optionally with its encoding made once.
public final class ResourceList: Sendable, Hashable {
    /// The resources, in the order they are sent.
    public let items: [AnyResource]
    /// The encoded `resources` entries of a DiscoveryResponse (tag, length and Any for each), or nil when not pre-encoded.
    let encodedResourcesField: [UInt8]?

    /// A list that responses carrying it encode on every `serialized()` call.
    public init(_ items: [AnyResource]) {
        self.items = items
        encodedResourcesField = nil
    }

    /// A list encoded now, once, for responses that many streams send (`serialized()` then copies these bytes).
    public init(preEncoding items: [AnyResource]) {
        self.items = items
        var size = 0
        for item in items {
            let any = ProtobufBytes.anySize(item)
            size += 1 + ProtobufBytes.varintSize(UInt64(any)) + any
        }
        var out: [UInt8] = []
        out.reserveCapacity(size)
        for item in items {
            ProtobufBytes.appendTag(field: 2, to: &out)
            ProtobufBytes.appendVarint(UInt64(ProtobufBytes.anySize(item)), to: &out)
            ProtobufBytes.appendAny(item, to: &out)
        }
        encodedResourcesField = out
    }

    /// Whether responses carrying this list copy a ready encoding instead of encoding the resources again.
    public var isPreEncoded: Bool { encodedResourcesField != nil }

    public static func == (lhs: ResourceList, rhs: ResourceList) -> Bool { lhs === rhs || lhs.items == rhs.items }

    public func hash(into hasher: inout Hasher) { hasher.combine(items) }
}

extension DiscoveryResponse {
    /// The encoding of a response whose resources are pre-encoded: the shared bytes copied once,
    /// the envelope fields written around them in field-number order (as protobuf-c writes them).
    func serialized(sharing resourcesField: [UInt8], headroom: Int) -> [UInt8] {
        let controlPlaneSize = controlPlane.map { ProtobufBytes.stringFieldSize($0) }
        var size = ProtobufBytes.stringFieldSize(versionInfo) + resourcesField.count
            + ProtobufBytes.stringFieldSize(typeURL) + ProtobufBytes.stringFieldSize(nonce)
        if let controlPlaneSize { size += 1 + ProtobufBytes.varintSize(UInt64(controlPlaneSize)) + controlPlaneSize }
        var out = [UInt8](repeating: 0, count: headroom)
        out.reserveCapacity(headroom + size)
        ProtobufBytes.appendString(field: 1, versionInfo, to: &out)
        out.append(contentsOf: resourcesField)
        ProtobufBytes.appendString(field: 4, typeURL, to: &out)
        ProtobufBytes.appendString(field: 5, nonce, to: &out)
        if let controlPlane, let controlPlaneSize {
            ProtobufBytes.appendTag(field: 6, to: &out)
            ProtobufBytes.appendVarint(UInt64(controlPlaneSize), to: &out)
            ProtobufBytes.appendString(field: 1, controlPlane, to: &out)
        }
        return out
    }
}

/// Protobuf wire-format pieces for the hand-written envelope: varints and length-delimited fields.
enum ProtobufBytes {
    static func varintSize(_ value: UInt64) -> Int { Varint.size(value) }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) { Varint.append(value, to: &out) }

    /// Tag of a length-delimited field (wire type 2); field numbers here are all < 16, so one byte.
    static func appendTag(field: UInt8, to out: inout [UInt8]) { out.append(field << 3 | 2) }

    /// protobuf-c strings end at the first NUL, so the bytes sent are the ones before it. Read from the string's
    /// contiguous UTF-8 in place (every response writes four strings; the generic `UTF8View` search and byte-by-byte
    /// append were 5 % of the server's instructions on a push).
    static func withBytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        var s = s
        return s.withUTF8 { utf8 in
            let end = utf8.firstIndex(of: 0) ?? utf8.count
            return body(UnsafeBufferPointer(rebasing: utf8[..<end]))
        }
    }

    /// Size of a proto3 string field: nothing when empty (the default is not written).
    static func stringFieldSize(_ s: String) -> Int {
        let count = withBytes(s) { $0.count }
        return count == 0 ? 0 : 1 + varintSize(UInt64(count)) + count
    }

    static func appendString(field: UInt8, _ s: String, to out: inout [UInt8]) {
        withBytes(s) { utf8 in
            guard !utf8.isEmpty else { return }
            appendTag(field: field, to: &out)
            appendVarint(UInt64(utf8.count), to: &out)
            out.append(contentsOf: utf8)
        }
    }
}
