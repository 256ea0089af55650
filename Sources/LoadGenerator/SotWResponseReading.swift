// Owns how a simulated proxy reads a state-of-the-world DiscoveryResponse: the envelope
// fields in place (no decoded message, no copied resource bodies), and the reading of its
// resources — their names and the names they refer on to — shared between proxies.
// Every proxy of a group is sent byte-identical resources for a version, and 10,000
// proxies each re-reading 50 clusters per push made that reading a third of the load
// generator's CPU: the load generator must not be the bottleneck it measures. A shared
// reading is reused only after comparing the bytes it was read from, so it is exact.
import Foundation
import Locking
import ProtobufWire
import XDSWire

/// The fields of one serialized DiscoveryResponse a proxy acts on, read in place.
struct SotWResponseEnvelope {
    var versionInfo = ""
    var typeURL = ""
    var nonce = ""
    /// Each resource's `Any.value` (the resource body), in order.
    var bodies: [UnsafeRawBufferPointer] = []
    /// All `resources` fields as one span when nothing else lies between them (the server writes them so); nil otherwise.
    var resourcesSpan: UnsafeRawBufferPointer?

    /// Nil when `bytes` is not a well-formed protobuf message.
    init?(_ bytes: UnsafeRawBufferPointer) {
        var well = true
        var spanStart: Int?, spanEnd = 0, contiguous = true
        ProtobufScanner(bytes: bytes).forEachWithOffsets(malformed: { well = false }) { field, start, payload in
            guard let payload else { return }
            switch field {
            case 1: versionInfo = String(decoding: payload, as: UTF8.self)
            case 2:
                if spanStart == nil {
                    spanStart = start
                } else if start != spanEnd {
                    contiguous = false
                }
                spanEnd = payload.baseAddress! - bytes.baseAddress! + payload.count
                // Any: type_url = 1, value = 2.
                bodies.append(ProtobufScanner(bytes: payload).last(2) ?? UnsafeRawBufferPointer(start: nil, count: 0))
            case 4: typeURL = String(decoding: payload, as: UTF8.self)
            case 5: nonce = String(decoding: payload, as: UTF8.self)
            default: break
            }
        }
        guard well else { return nil }
        if let spanStart, contiguous { resourcesSpan = UnsafeRawBufferPointer(rebasing: bytes[spanStart..<spanEnd]) }
    }
}

/// What a proxy holds of one SotW response: each resource's name → the names it refers on to, and those names sorted.
final class ResourceReading: Sendable {
    let references: [String: [String]]
    /// Every name the resources refer on to (EDS names of clusters, RDS names of listeners), sorted, without repeats.
    let referencedNames: [String]
    /// The `resources` bytes this was read from (empty when not shared).
    let source: [UInt8]

    init(typeURL: String, bodies: [UnsafeRawBufferPointer], source: [UInt8]) {
        var references: [String: [String]] = [:]
        references.reserveCapacity(bodies.count)
        for body in bodies {
            if let name = ResourceReferences.name(body) { references[name] = ResourceReferences.references(typeURL, body) }
        }
        self.references = references
        referencedNames = Set(references.values.joined()).sorted()
        self.source = source
    }
}

/// Readings of recent responses, shared by every proxy of a run, keyed by type and version and checked against the
/// bytes before reuse (a version the server sent with other contents is read again, never mistaken).
final class SharedResourceReadings: Sendable {
    private struct Key: Hashable {
        let typeURL: String
        let versionInfo: String
    }

    private let readings = Locked<[Key: ResourceReading]>([:])
    /// Readings kept at most (groups × types in flight); the oldest are simply dropped all at once beyond it.
    static let capacity = 1024

    func reading(of envelope: SotWResponseEnvelope, typeURL: String) -> ResourceReading {
        guard let span = envelope.resourcesSpan else { return ResourceReading(typeURL: typeURL, bodies: envelope.bodies, source: []) }
        let key = Key(typeURL: typeURL, versionInfo: envelope.versionInfo)
        if let known = readings.withLock({ $0[key] }), known.source.count == span.count,
           known.source.withUnsafeBytes({ memcmp($0.baseAddress!, span.baseAddress!, span.count) == 0 }) {
            return known
        }
        let fresh = ResourceReading(typeURL: typeURL, bodies: envelope.bodies, source: Array(span))
        readings.withLock {
            if $0.count >= Self.capacity { $0.removeAll(keepingCapacity: true) }
            $0[key] = fresh
        }
        return fresh
    }
}
