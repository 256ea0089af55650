// Owns what a simulated proxy reads out of resource bodies: the names that lead it to
// its next subscriptions (CDS → EDS names, LDS → RDS names), as Envoy would follow them.
// A minimal protobuf field scanner is enough: only a handful of fixed field numbers matter,
// so the load generator needs neither the schema engine nor a decoded message tree. It reads
// the bytes in place and allocates nothing but the names it returns (10,000 proxies each
// re-reading every cluster on every push made allocation the load generator's main cost).
import ProtobufWire
import XDSProtocol

/// Walks the fields of one serialized protobuf message in place.
struct ProtobufScanner {
    let bytes: UnsafeRawBufferPointer

    /// Calls `body(field, varint, payload)` for each varint (payload nil) or length-delimited field (payload set);
    /// stops at malformed input (a bad body only means fewer follow-up names).
    func forEach(_ body: (Int, UInt64, UnsafeRawBufferPointer?) -> Void) {
        walk(malformed: {}) { field, _, value, payload in body(field, value, payload) }
    }

    /// Like `forEach`, with each field's offset (where its key starts) instead of the varint; calls `malformed`
    /// if the walk stopped before the end.
    func forEachWithOffsets(malformed: () -> Void, _ body: (_ field: Int, _ start: Int, UnsafeRawBufferPointer?) -> Void) {
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
    func last(_ field: Int) -> UnsafeRawBufferPointer? {
        var found: UnsafeRawBufferPointer?
        forEach { number, _, payload in if number == field, let payload { found = payload } }
        return found
    }

    func string(_ field: Int) -> String? {
        last(field).map { String(decoding: $0, as: UTF8.self) }
    }

    func varint(_ field: Int) -> UInt64? {
        var found: UInt64?
        forEach { number, value, payload in if number == field, payload == nil { found = value } }
        return found
    }

    /// Calls `body` with every occurrence of length-delimited `field`.
    func each(_ field: Int, _ body: (ProtobufScanner) -> Void) {
        forEach { number, _, payload in if number == field, let payload { body(ProtobufScanner(bytes: payload)) } }
    }
}

/// The names a resource body refers a proxy on to.
enum ResourceReferences {
    /// The name of a Cluster, ClusterLoadAssignment (`cluster_name`), Listener or RouteConfiguration: field 1 in all four.
    static func name(_ body: UnsafeRawBufferPointer) -> String? { ProtobufScanner(bytes: body).string(1) }

    /// The ClusterLoadAssignment name an EDS cluster asks for: `eds_cluster_config.service_name` (3.2) or the
    /// cluster's `name` (1); nil for clusters that are not of `type` EDS (2 = 3).
    static func endpointName(ofCluster body: UnsafeRawBufferPointer) -> String? {
        let cluster = ProtobufScanner(bytes: body)
        guard cluster.varint(2) == 3 else { return nil }
        if let config = cluster.last(3), let serviceName = ProtobufScanner(bytes: config).string(2), !serviceName.isEmpty {
            return serviceName
        }
        return cluster.string(1)
    }

    /// The RDS route configuration names a Listener uses: filter_chains (3) and default_filter_chain (25) →
    /// filters (3) → typed_config (4, an Any) → HttpConnectionManager → rds (3) → route_config_name (2).
    static func routeNames(ofListener body: UnsafeRawBufferPointer) -> [String] {
        var names: [String] = []
        let listener = ProtobufScanner(bytes: body)
        func chain(_ chain: ProtobufScanner) {
            chain.each(3) { filter in
                filter.each(4) { any in
                    guard any.string(1)?.hasSuffix("HttpConnectionManager") == true, let manager = any.last(2),
                          let rds = ProtobufScanner(bytes: manager).last(3),
                          let name = ProtobufScanner(bytes: rds).string(2), !name.isEmpty else { return }
                    names.append(name)
                }
            }
        }
        listener.each(3, chain)
        listener.each(25, chain)
        return names
    }

    /// What a resource of `typeURL` refers a proxy on to.
    static func references(_ typeURL: String, _ body: UnsafeRawBufferPointer) -> [String] {
        switch typeURL {
        case TypeURL.cluster: endpointName(ofCluster: body).map { [$0] } ?? []
        case TypeURL.listener: routeNames(ofListener: body)
        default: []
        }
    }

    // Array conveniences (tests, the report's expected versions).
    static func name(_ body: [UInt8]) -> String? { body.withUnsafeBytes { name($0) } }
    static func endpointName(ofCluster body: [UInt8]) -> String? { body.withUnsafeBytes { endpointName(ofCluster: $0) } }
    static func routeNames(ofListener body: [UInt8]) -> [String] { body.withUnsafeBytes { routeNames(ofListener: $0) } }
}
