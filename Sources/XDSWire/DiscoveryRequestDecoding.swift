// Reads the request every proxy sends after every response — an ACK: version_info, resource_names, type_url and
// response_nonce, no node and no error_detail — straight from the wire. protobuf-c decodes it in ≈ 6,700
// instructions and comparing its fifty C strings with the stream's names took ≈ 5,400 more: together 15 % of the
// server's instructions per config change (callgrind, docs/BENCHMARKS.md session 12). Anything else goes through
// protobuf-c, so this path only has to be right for what it accepts, and what it accepts decodes exactly as
// protobuf-c would decode it (DiscoveryRequestDecodingTests compares the two on generated and mutated messages).

import Glibc
import ProtobufWire

extension DiscoveryRequest {
    /// The request, when it is an ACK-shaped one this path reads; nil for anything else, to be decoded by protobuf-c:
    /// a node or error_detail (first requests and NACKs), any other field or wire type, a truncated or over-long
    /// varint, a length past the end, or a string that is not plain ASCII without NUL (protobuf-c's strings end at a
    /// NUL, and only ASCII is sure to read back the same both ways).
    static func decodeAcknowledgement(_ bytes: UnsafeRawBufferPointer, knownNames: (String) -> [String]?) -> DiscoveryRequest? {
        guard let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else {
            return bytes.isEmpty ? DiscoveryRequest() : nil
        }
        let end = bytes.count
        var version: Range<Int>?, typeURL: Range<Int>?, nonce: Range<Int>?
        var nameCount = 0, firstName = -1
        var position = 0
        // First pass: where each field is. Names are compared with the stream's only once the type URL (after them on
        // the wire) is known.
        while position < end {
            let fieldStart = position
            guard let tag = readVarint(base, &position, end), tag & 7 == 2,
                  let length = readVarint(base, &position, end), length <= UInt64(end - position) else { return nil }
            let range = position..<(position + Int(length))
            position = range.upperBound
            switch tag >> 3 {
            case 1: version = range
            case 3:
                if firstName < 0 { firstName = fieldStart }
                nameCount += 1
            case 4: typeURL = range
            case 5: nonce = range
            default: return nil
            }
        }
        guard let type = typeURL.map({ plainString(base, $0) }) ?? "",
              let versionInfo = version.map({ plainString(base, $0) }) ?? "",
              let responseNonce = nonce.map({ plainString(base, $0) }) ?? "" else { return nil }
        var names: [String] = []
        if nameCount > 0 {
            let known = knownNames(type)
            if let known, known.count == nameCount, eachName(base, from: firstName, end: end, equals: known) {
                names = known
            } else {
                names.reserveCapacity(nameCount)
                var failed = false
                forEachName(base, from: firstName, end: end) { range in
                    if let name = plainString(base, range) { names.append(name) } else { failed = true }
                }
                if failed { return nil }
            }
        }
        return DiscoveryRequest(versionInfo: versionInfo, resourceNames: names, typeURL: type, responseNonce: responseNonce)
    }
}

/// The varint at `position` of the `end` bytes at `base` (ProtobufWire's reader), or nil when it is not one.
@inline(__always)
private func readVarint(_ base: UnsafePointer<UInt8>, _ position: inout Int, _ end: Int) -> UInt64? {
    try? Varint.decode(UnsafeBufferPointer(start: base, count: end), at: &position).get()
}

/// The bytes as a string when they are ASCII without NUL (see `decodeAcknowledgement`), else nil.
@inline(__always)
private func plainString(_ base: UnsafePointer<UInt8>, _ range: Range<Int>) -> String? {
    let bytes = UnsafeBufferPointer(start: base + range.lowerBound, count: range.count)
    for byte in bytes where byte == 0 || byte >= 0x80 { return nil }
    return String(decoding: bytes, as: UTF8.self)
}

/// Calls `body` with each resource_names field's bytes, in order, starting at the first one's tag (the message was
/// walked once already, so every tag and length is known to be well formed).
private func forEachName(_ base: UnsafePointer<UInt8>, from start: Int, end: Int, _ body: (Range<Int>) -> Void) {
    var position = start
    while position < end {
        let tag = readVarint(base, &position, end)!
        let length = Int(readVarint(base, &position, end)!)
        if tag >> 3 == 3 { body(position..<(position + length)) }
        position += length
    }
}

/// Whether the resource_names fields are `names`, byte for byte and in order. A stream's names are valid strings
/// without NUL (they were decoded by either path), so bytes equal to them decode to them.
private func eachName(_ base: UnsafePointer<UInt8>, from start: Int, end: Int, equals names: [String]) -> Bool {
    var index = 0
    var same = true
    forEachName(base, from: start, end: end) { range in
        guard same else { return }
        let name = names[index]
        index += 1
        let matched = name.utf8.withContiguousStorageIfAvailable { utf8 in
            utf8.count == range.count && (range.isEmpty || memcmp(utf8.baseAddress!, base + range.lowerBound, range.count) == 0)
        }
        same = matched ?? name.utf8.elementsEqual(UnsafeBufferPointer(start: base + range.lowerBound, count: range.count))
    }
    return same
}
