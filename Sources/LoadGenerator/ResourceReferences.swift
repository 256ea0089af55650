// Owns what a simulated proxy reads out of resource bodies: the names that lead it to
// its next subscriptions (CDS → EDS names, LDS → RDS names), as Envoy would follow them.
// A minimal protobuf field scanner is enough: only a handful of fixed field numbers matter,
// so the load generator needs neither the schema engine nor a decoded message tree.

/// A read-only cursor over the fields of one serialized protobuf message.
struct ProtobufFields {
    /// One field as it appears on the wire: varints as values, length-delimited fields as byte ranges.
    enum Value {
        case varint(UInt64)
        case bytes(ArraySlice<UInt8>)
        case other
    }

    let bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    /// Every (field number, value) in wire order; stops quietly at malformed input (the server's bytes are trusted
    /// to be valid, and a bad body only means fewer follow-up names).
    func all() -> [(Int, Value)] {
        var result: [(Int, Value)] = []
        var index = bytes.startIndex
        func varint() -> UInt64? {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while index < bytes.endIndex, shift < 64 {
                let byte = bytes[index]
                index += 1
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            return nil
        }
        while index < bytes.endIndex {
            guard let key = varint() else { break }
            let field = Int(key >> 3)
            switch key & 7 {
            case 0:
                guard let value = varint() else { return result }
                result.append((field, .varint(value)))
            case 1:
                guard bytes.endIndex - index >= 8 else { return result }
                index += 8
                result.append((field, .other))
            case 2:
                guard let length = varint(), length <= UInt64(bytes.endIndex - index) else { return result }
                let end = index + Int(length)
                result.append((field, .bytes(bytes[index..<end])))
                index = end
            case 5:
                guard bytes.endIndex - index >= 4 else { return result }
                index += 4
                result.append((field, .other))
            default:
                return result
            }
        }
        return result
    }

    /// The length-delimited values of `field`.
    func messages(_ field: Int) -> [ArraySlice<UInt8>] {
        all().compactMap { number, value in
            if number == field, case .bytes(let slice) = value { return slice }
            return nil
        }
    }

    /// The last string value of `field` (proto3: the last occurrence wins).
    func string(_ field: Int) -> String? {
        messages(field).last.map { String(decoding: $0, as: UTF8.self) }
    }

    func varint(_ field: Int) -> UInt64? {
        var found: UInt64?
        for (number, value) in all() where number == field {
            if case .varint(let v) = value { found = v }
        }
        return found
    }
}

/// The names a resource body refers a proxy on to.
enum ResourceReferences {
    /// envoy.config.cluster.v3.Cluster: `name` (1).
    static func clusterName(_ body: [UInt8]) -> String? { ProtobufFields(body[...]).string(1) }

    /// The ClusterLoadAssignment name an EDS cluster asks for: `eds_cluster_config.service_name` (3.2) or the
    /// cluster's `name` (1); nil for clusters that are not of `type` EDS (2 = 3).
    static func endpointName(ofCluster body: [UInt8]) -> String? {
        let fields = ProtobufFields(body[...])
        guard fields.varint(2) == 3 else { return nil }
        let serviceName = fields.messages(3).last.flatMap { ProtobufFields($0).string(2) }
        if let serviceName, !serviceName.isEmpty { return serviceName }
        return fields.string(1)
    }

    /// The name of a ClusterLoadAssignment (`cluster_name`, 1), Listener (`name`, 1) or RouteConfiguration (`name`, 1).
    static func name(_ body: [UInt8]) -> String? { ProtobufFields(body[...]).string(1) }

    /// The RDS route configuration names a Listener uses: filter_chains (3) and default_filter_chain (25) →
    /// filters (3) → typed_config (4, an Any) → HttpConnectionManager → rds (3) → route_config_name (2).
    static func routeNames(ofListener body: [UInt8]) -> [String] {
        let listener = ProtobufFields(body[...])
        var names: [String] = []
        for chain in listener.messages(3) + listener.messages(25) {
            for filter in ProtobufFields(chain).messages(3) {
                for typed in ProtobufFields(filter).messages(4) {
                    let any = ProtobufFields(typed)
                    guard any.string(1)?.hasSuffix("HttpConnectionManager") == true,
                          let manager = any.messages(2).last,
                          let rds = ProtobufFields(manager).messages(3).last,
                          let name = ProtobufFields(rds).string(2), !name.isEmpty else { continue }
                    names.append(name)
                }
            }
        }
        return names
    }
}
