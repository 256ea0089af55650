// Owns the encoding of a DeltaDiscoveryResponse on the push path. Every delta response is
// its stream's own (nonce, resources the proxy lacks), so unlike state-of-the-world answers
// it cannot share one encoding; packing it through protobuf-c meant first copying every
// string into C memory (name, version and type URL of each resource), which was a sixth of
// the server's instructions on a delta push. The fields are written here directly, in
// field-number order, exactly as protobuf-c packs them: `serializedByProtobufC` stays the
// reference, and the two are compared byte for byte in the tests.
import ProtobufWire

extension DeltaDiscoveryResponse {
    /// The protobuf encoding, after `headroom` zero bytes left for the caller's framing. Resource bodies are copied
    /// once, into the output.
    public func serialized(headroom: Int = 0) -> [UInt8] {
        let resourceSizes = resources.map(Self.resourceSize)
        var size = ProtobufBytes.stringFieldSize(systemVersionInfo) + ProtobufBytes.stringFieldSize(typeURL)
            + ProtobufBytes.stringFieldSize(nonce)
        for resourceSize in resourceSizes { size += 1 + ProtobufBytes.varintSize(UInt64(resourceSize)) + resourceSize }
        for name in removedResources { size += ProtobufBytes.repeatedStringSize(name) }
        let controlPlaneSize = controlPlane.map { ProtobufBytes.stringFieldSize($0) }
        if let controlPlaneSize { size += 1 + ProtobufBytes.varintSize(UInt64(controlPlaneSize)) + controlPlaneSize }

        var out = [UInt8](repeating: 0, count: headroom)
        out.reserveCapacity(headroom + size)
        ProtobufBytes.appendString(field: 1, systemVersionInfo, to: &out)
        for (resource, resourceSize) in zip(resources, resourceSizes) {
            ProtobufBytes.appendTag(field: 2, to: &out)
            ProtobufBytes.appendVarint(UInt64(resourceSize), to: &out)
            Self.append(resource, to: &out)
        }
        ProtobufBytes.appendString(field: 4, typeURL, to: &out)
        ProtobufBytes.appendString(field: 5, nonce, to: &out)
        for name in removedResources { ProtobufBytes.appendRepeatedString(field: 6, name, to: &out) }
        if let controlPlane, let controlPlaneSize {
            ProtobufBytes.appendTag(field: 7, to: &out)
            ProtobufBytes.appendVarint(UInt64(controlPlaneSize), to: &out)
            ProtobufBytes.appendString(field: 1, controlPlane, to: &out)
        }
        return out
    }

    // envoy.service.discovery.v3.Resource: version = 1, resource = 2, name = 3, aliases = 4, ttl = 6.

    private static func resourceSize(_ resource: DeltaResource) -> Int {
        var size = ProtobufBytes.stringFieldSize(resource.version) + ProtobufBytes.stringFieldSize(resource.name)
        if let any = resource.resource {
            let anySize = ProtobufBytes.anySize(any)
            size += 1 + ProtobufBytes.varintSize(UInt64(anySize)) + anySize
        }
        for alias in resource.aliases { size += ProtobufBytes.repeatedStringSize(alias) }
        if let ttl = resource.ttl {
            let ttlSize = ProtobufBytes.durationSize(ttl)
            size += 1 + ProtobufBytes.varintSize(UInt64(ttlSize)) + ttlSize
        }
        return size
    }

    private static func append(_ resource: DeltaResource, to out: inout [UInt8]) {
        ProtobufBytes.appendString(field: 1, resource.version, to: &out)
        if let any = resource.resource {
            ProtobufBytes.appendTag(field: 2, to: &out)
            ProtobufBytes.appendVarint(UInt64(ProtobufBytes.anySize(any)), to: &out)
            ProtobufBytes.appendAny(any, to: &out)
        }
        ProtobufBytes.appendString(field: 3, resource.name, to: &out)
        for alias in resource.aliases { ProtobufBytes.appendRepeatedString(field: 4, alias, to: &out) }
        if let ttl = resource.ttl {
            ProtobufBytes.appendTag(field: 6, to: &out)
            ProtobufBytes.appendVarint(UInt64(ProtobufBytes.durationSize(ttl)), to: &out)
            ProtobufBytes.appendDuration(ttl, to: &out)
        }
    }
}

extension ProtobufBytes {
    /// Size of one element of a repeated string field: written even when empty.
    static func repeatedStringSize(_ s: String) -> Int {
        let count = withBytes(s) { $0.count }
        return 1 + varintSize(UInt64(count)) + count
    }

    static func appendRepeatedString(field: UInt8, _ s: String, to out: inout [UInt8]) {
        withBytes(s) { utf8 in
            appendTag(field: field, to: &out)
            appendVarint(UInt64(utf8.count), to: &out)
            out.append(contentsOf: utf8)
        }
    }

    /// google.protobuf.Any: type_url = 1, value = 2 (bytes, not written when empty).
    static func anySize(_ any: AnyResource) -> Int {
        stringFieldSize(any.typeURL) + (any.value.count > 0 ? 1 + varintSize(UInt64(any.value.count)) + any.value.count : 0)
    }

    static func appendAny(_ any: AnyResource, to out: inout [UInt8]) {
        appendString(field: 1, any.typeURL, to: &out)
        guard any.value.count > 0 else { return }
        appendTag(field: 2, to: &out)
        appendVarint(UInt64(any.value.count), to: &out)
        any.value.withUnsafeBytes { out.append(contentsOf: $0) }
    }

    /// google.protobuf.Duration: seconds = 1 (int64), nanos = 2 (int32; a negative one sign-extended to ten bytes, as
    /// protobuf-c writes it); zero fields are not written.
    private static func durationFields(_ duration: Duration) -> (seconds: Int64, nanos: Int32) {
        (duration.components.seconds, Int32(duration.components.attoseconds / 1_000_000_000))
    }

    static func durationSize(_ duration: Duration) -> Int {
        let (seconds, nanos) = durationFields(duration)
        return (seconds != 0 ? 1 + varintSize(UInt64(bitPattern: seconds)) : 0)
            + (nanos != 0 ? 1 + varintSize(UInt64(bitPattern: Int64(nanos))) : 0)
    }

    static func appendDuration(_ duration: Duration, to out: inout [UInt8]) {
        let (seconds, nanos) = durationFields(duration)
        if seconds != 0 {
            out.append(1 << 3)
            appendVarint(UInt64(bitPattern: seconds), to: &out)
        }
        if nanos != 0 {
            out.append(2 << 3)
            appendVarint(UInt64(bitPattern: Int64(nanos)), to: &out)
        }
    }
}
