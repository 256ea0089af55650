// Converts the CSDS values of ClientStatus.swift to and from protobuf bytes with
// protobuf-c (the arena and decoding helpers are DiscoveryCodec.swift's).
internal import CEnvoyProto
internal import CProtobufC

private let structTypeURL = "type.googleapis.com/google.protobuf.Struct"

extension ClientStatusRequest {
    /// Decodes a serialized envoy.service.status.v3.ClientStatusRequest. Matchers meshctl cannot
    /// evaluate (regex, node metadata) are an error rather than silently matching everything.
    public init(serialized bytes: [UInt8]) throws(WireError) {
        let decoded = bytes.withUnsafeBufferPointer { buffer -> Result<ClientStatusRequest, WireError> in
            guard let message = envoy__service__status__v3__client_status_request__unpack(nil, buffer.count, buffer.baseAddress) else {
                return .failure(WireError(messageType: "envoy.service.status.v3.ClientStatusRequest", byteCount: buffer.count))
            }
            defer { envoy__service__status__v3__client_status_request__free_unpacked(message, nil) }
            let m = message.pointee
            var matchers: [NodeIDMatcher] = []
            for i in 0..<m.n_node_matchers {
                guard let matcher = m.node_matchers[i]?.pointee else { continue }
                if matcher.n_node_metadatas > 0 {
                    return .failure(WireError(messageType: "envoy.service.status.v3.ClientStatusRequest", byteCount: buffer.count,
                                              reason: "node_metadatas matchers are not supported; match on node_id"))
                }
                guard let id = matcher.node_id?.pointee else { continue }
                let pattern: NodeIDMatcher.Pattern
                switch id.match_pattern_case {
                case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT: pattern = .exact(cString(id.exact))
                case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX: pattern = .prefix(cString(id.prefix))
                case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX: pattern = .suffix(cString(id.suffix))
                case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS: pattern = .contains(cString(id.contains))
                default:
                    return .failure(WireError(messageType: "envoy.service.status.v3.ClientStatusRequest", byteCount: buffer.count,
                                              reason: "node_id matchers support exact, prefix, suffix and contains only"))
                }
                matchers.append(NodeIDMatcher(pattern, ignoreCase: id.ignore_case != 0))
            }
            return .success(ClientStatusRequest(nodeMatchers: matchers, node: m.node.map(decodeNode),
                                                excludeResourceContents: m.exclude_resource_contents != 0))
        }
        self = try decoded.get()
    }

    public func serialized() -> [UInt8] {
        let arena = CArena()
        var m = Envoy__Service__Status__V3__ClientStatusRequest()
        envoy__service__status__v3__client_status_request__init(&m)
        if !nodeMatchers.isEmpty {
            let pointers = arena.array(nodeMatchers.count, of: UnsafeMutablePointer<Envoy__Type__Matcher__V3__NodeMatcher>?.self)
            for (i, matcher) in nodeMatchers.enumerated() {
                let p = arena.messages(1, envoy__type__matcher__v3__node_matcher__init)
                let s = arena.messages(1, envoy__type__matcher__v3__string_matcher__init)
                s.pointee.ignore_case = matcher.ignoreCase ? 1 : 0
                switch matcher.pattern {
                case .exact(let v): s.pointee.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT; s.pointee.exact = arena.string(v)
                case .prefix(let v): s.pointee.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX; s.pointee.prefix = arena.string(v)
                case .suffix(let v): s.pointee.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX; s.pointee.suffix = arena.string(v)
                case .contains(let v): s.pointee.match_pattern_case = ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS; s.pointee.contains = arena.string(v)
                }
                p.pointee.node_id = s
                pointers[i] = p
            }
            m.n_node_matchers = nodeMatchers.count
            m.node_matchers = pointers
        }
        if let node { m.node = arena.node(node) }
        m.exclude_resource_contents = excludeResourceContents ? 1 : 0
        return withExtendedLifetime(arena) {
            packed(envoy__service__status__v3__client_status_request__get_packed_size(&m), 0) {
                envoy__service__status__v3__client_status_request__pack(&m, $0)
            }
        }
    }
}

extension ClientStatusResponse {
    public func serialized() -> [UInt8] {
        let arena = CArena()
        var m = Envoy__Service__Status__V3__ClientStatusResponse()
        envoy__service__status__v3__client_status_response__init(&m)
        if !configs.isEmpty {
            let pointers = arena.array(configs.count, of: UnsafeMutablePointer<Envoy__Service__Status__V3__ClientConfig>?.self)
            for (i, config) in configs.enumerated() {
                let c = arena.messages(1, envoy__service__status__v3__client_config__init)
                c.pointee.node = arena.node(config.node)
                if !config.clientScope.isEmpty { c.pointee.client_scope = arena.string(config.clientScope) }
                if !config.xdsConfigs.isEmpty {
                    let generic = arena.array(config.xdsConfigs.count, of: UnsafeMutablePointer<Envoy__Service__Status__V3__ClientConfig__GenericXdsConfig>?.self)
                    for (j, x) in config.xdsConfigs.enumerated() {
                        let g = arena.messages(1, envoy__service__status__v3__client_config__generic_xds_config__init)
                        g.pointee.type_url = arena.internedString(x.typeURL)
                        if !x.name.isEmpty { g.pointee.name = arena.string(x.name) }
                        if !x.versionInfo.isEmpty { g.pointee.version_info = arena.string(x.versionInfo) }
                        if !x.details.isEmpty {
                            g.pointee.xds_config = arena.rawAny(typeURL: structTypeURL, bytes: stringStruct(x.details, arena))
                        }
                        if x.lastUpdatedNanoseconds > 0 { g.pointee.last_updated = arena.timestamp(x.lastUpdatedNanoseconds) }
                        g.pointee.config_status = Envoy__Service__Status__V3__ConfigStatus(rawValue: UInt32(x.configStatus.rawValue))
                        g.pointee.client_status = Envoy__Admin__V3__ClientResourceStatus(rawValue: UInt32(x.clientStatus.rawValue))
                        if let e = x.errorState {
                            let f = arena.messages(1, envoy__admin__v3__update_failure_state__init)
                            if !e.details.isEmpty { f.pointee.details = arena.string(e.details) }
                            if !e.versionInfo.isEmpty { f.pointee.version_info = arena.string(e.versionInfo) }
                            if e.lastUpdateAttemptNanoseconds > 0 { f.pointee.last_update_attempt = arena.timestamp(e.lastUpdateAttemptNanoseconds) }
                            g.pointee.error_state = f
                        }
                        generic[j] = g
                    }
                    c.pointee.n_generic_xds_configs = config.xdsConfigs.count
                    c.pointee.generic_xds_configs = generic
                }
                pointers[i] = c
            }
            m.n_config = configs.count
            m.config = pointers
        }
        return withExtendedLifetime(arena) {
            packed(envoy__service__status__v3__client_status_response__get_packed_size(&m), 0) {
                envoy__service__status__v3__client_status_response__pack(&m, $0)
            }
        }
    }

    /// Decodes a serialized envoy.service.status.v3.ClientStatusResponse.
    public init(serialized bytes: [UInt8]) throws(WireError) {
        let decoded = bytes.withUnsafeBufferPointer { buffer -> ClientStatusResponse? in
            guard let message = envoy__service__status__v3__client_status_response__unpack(nil, buffer.count, buffer.baseAddress) else { return nil }
            defer { envoy__service__status__v3__client_status_response__free_unpacked(message, nil) }
            let m = message.pointee
            var configs: [ClientConfig] = []
            for i in 0..<m.n_config {
                guard let c = m.config[i]?.pointee else { continue }
                var xds: [GenericXDSConfig] = []
                for j in 0..<c.n_generic_xds_configs {
                    guard let g = c.generic_xds_configs[j]?.pointee else { continue }
                    var x = GenericXDSConfig(typeURL: cString(g.type_url), name: cString(g.name), versionInfo: cString(g.version_info))
                    if let any = g.xds_config?.pointee, cString(any.type_url) == structTypeURL, let data = any.value.data {
                        x.details = decodeStringStruct(UnsafeBufferPointer(start: data, count: any.value.len))
                    }
                    x.lastUpdatedNanoseconds = g.last_updated.map(nanoseconds) ?? 0
                    x.configStatus = ConfigStatus(rawValue: Int32(g.config_status.rawValue)) ?? .unknown
                    x.clientStatus = ClientResourceStatus(rawValue: Int32(g.client_status.rawValue)) ?? .unknown
                    if let e = g.error_state?.pointee {
                        x.errorState = UpdateFailureState(details: cString(e.details), versionInfo: cString(e.version_info),
                                                          lastUpdateAttemptNanoseconds: e.last_update_attempt.map(nanoseconds) ?? 0)
                    }
                    xds.append(x)
                }
                configs.append(ClientConfig(node: c.node.map(decodeNode) ?? Node(id: ""), xdsConfigs: xds, clientScope: cString(c.client_scope)))
            }
            return ClientStatusResponse(configs: configs)
        }
        guard let decoded else { throw WireError(messageType: "envoy.service.status.v3.ClientStatusResponse", byteCount: bytes.count) }
        self = decoded
    }
}

/// Nanoseconds since the epoch, saturated: a Timestamp may name any second of years 1–9999 (and a peer may send
/// anything), while Int64 nanoseconds end in 2262 — a far-off time must not crash the decoder. A time before the
/// epoch reads as 0, "unset", which is also how the encoder writes an unset time (it omits non-positive ones).
private func nanoseconds(_ p: UnsafeMutablePointer<Google__Protobuf__Timestamp>) -> Int64 {
    let (scaled, overflow) = p.pointee.seconds.multipliedReportingOverflow(by: 1_000_000_000)
    if overflow { return p.pointee.seconds < 0 ? 0 : .max }
    let (total, overflowAgain) = scaled.addingReportingOverflow(Int64(p.pointee.nanos))
    if overflowAgain { return p.pointee.nanos < 0 ? 0 : .max }
    return max(0, total)
}

/// A google.protobuf.Struct of string values, keys sorted so the bytes are deterministic.
private func stringStruct(_ fields: [String: String], _ arena: CArena) -> [UInt8] {
    var s = Google__Protobuf__Struct()
    google__protobuf__struct__init(&s)
    let keys = fields.keys.sorted()
    let entries = arena.array(keys.count, of: UnsafeMutablePointer<Google__Protobuf__Struct__FieldsEntry>?.self)
    for (i, key) in keys.enumerated() {
        let entry = arena.messages(1, google__protobuf__struct__fields_entry__init)
        let value = arena.messages(1, google__protobuf__value__init)
        value.pointee.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE
        value.pointee.string_value = arena.string(fields[key]!)
        entry.pointee.key = arena.string(key)
        entry.pointee.value = value
        entries[i] = entry
    }
    s.n_fields = keys.count
    s.fields = entries
    return packed(google__protobuf__struct__get_packed_size(&s), 0) { google__protobuf__struct__pack(&s, $0) }
}

private func decodeStringStruct(_ bytes: UnsafeBufferPointer<UInt8>) -> [String: String] {
    guard let s = google__protobuf__struct__unpack(nil, bytes.count, bytes.baseAddress) else { return [:] }
    defer { google__protobuf__struct__free_unpacked(s, nil) }
    var fields: [String: String] = [:]
    for i in 0..<s.pointee.n_fields {
        guard let entry = s.pointee.fields[i]?.pointee, let value = entry.value?.pointee,
              value.kind_case == GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE else { continue }
        fields[cString(entry.key)] = cString(value.string_value)
    }
    return fields
}

extension CArena {
    func timestamp(_ nanoseconds: Int64) -> UnsafeMutablePointer<Google__Protobuf__Timestamp> {
        let p = messages(1, google__protobuf__timestamp__init)
        p.pointee.seconds = nanoseconds / 1_000_000_000
        p.pointee.nanos = Int32(nanoseconds % 1_000_000_000)
        return p
    }

    /// An Any over a copy of `bytes` owned by the arena.
    func rawAny(typeURL: String, bytes: [UInt8]) -> UnsafeMutablePointer<Google__Protobuf__Any> {
        let p = messages(1, google__protobuf__any__init)
        p.pointee.type_url = internedString(typeURL)
        let copy = array(bytes.count, of: UInt8.self)
        copy.update(from: bytes, count: bytes.count)
        p.pointee.value = ProtobufCBinaryData(len: bytes.count, data: bytes.isEmpty ? nil : copy)
        return p
    }
}
