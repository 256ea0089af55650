// Converts the envelope values of DiscoveryMessages.swift to and from protobuf bytes
// with protobuf-c. This is the only file of XDSWire (and of the xDS layers above it)
// that touches protobuf-c structs; nothing C-typed escapes it.
internal import CEnvoyProto
internal import CProtobufC
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Public entry points

extension DiscoveryRequest {
    /// Decodes a serialized envoy.service.discovery.v3.DiscoveryRequest.
    public init(serialized bytes: UnsafeRawBufferPointer) throws(WireError) {
        try self.init(serialized: bytes, knownNames: { _ in nil })
    }

    /// Decodes a serialized envoy.service.discovery.v3.DiscoveryRequest. When its `resource_names` are exactly
    /// `knownNames(type_url)`, in that order, that array is taken instead of new strings: a proxy's ACK repeats its
    /// subscription (fifty names for EDS), and the stream compares it with what it holds — equal storage makes that an
    /// identity check, and building fifty strings per ACK was a twentieth of the server's instructions on a push.
    public init(serialized bytes: UnsafeRawBufferPointer, knownNames: (String) -> [String]?) throws(WireError) {
        // Every ACK of every proxy is decoded here: read from the wire directly (DiscoveryRequestDecoding.swift).
        if let acknowledgement = Self.decodeAcknowledgement(bytes, knownNames: knownNames) {
            self = acknowledgement
            return
        }
        try self.init(unpacking: bytes, knownNames: knownNames)
    }

    /// Decodes through protobuf-c; the message lives in scratch memory (see UnpackScratch.swift).
    init(unpacking bytes: UnsafeRawBufferPointer, knownNames: (String) -> [String]?) throws(WireError) {
        self = try withUnpackScratch { allocator throws(WireError) in
            guard let message = envoy__service__discovery__v3__discovery_request__unpack(allocator, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
                throw WireError(messageType: "envoy.service.discovery.v3.DiscoveryRequest", byteCount: bytes.count)
            }
            defer { envoy__service__discovery__v3__discovery_request__free_unpacked(message, allocator) }
            let m = message.pointee
            let typeURL = cString(m.type_url)
            var names: [String]
            if m.n_resource_names > 0, let known = knownNames(typeURL), cStrings(m.resource_names, m.n_resource_names, equal: known) {
                names = known
            } else {
                names = cStrings(m.resource_names, m.n_resource_names)
            }
            return DiscoveryRequest(versionInfo: cString(m.version_info), node: m.node.map(decodeNode), resourceNames: names,
                                    typeURL: typeURL, responseNonce: cString(m.response_nonce), errorDetail: m.error_detail.map(decodeStatus))
        }
    }

    /// Decodes a serialized envoy.service.discovery.v3.DiscoveryRequest.
    public init(serialized bytes: [UInt8]) throws(WireError) {
        try self.init(serialized: bytes, knownNames: { _ in nil })
    }

    /// Decodes a serialized envoy.service.discovery.v3.DiscoveryRequest (see `init(serialized:knownNames:)`).
    public init(serialized bytes: [UInt8], knownNames: (String) -> [String]?) throws(WireError) {
        self = try bytes.withUnsafeBytes { raw in
            Result { () throws(WireError) in try DiscoveryRequest(serialized: raw, knownNames: knownNames) }
        }.get()
    }

    /// The protobuf encoding, after `headroom` zero bytes left for the caller's framing.
    public func serialized(headroom: Int = 0) -> [UInt8] {
        let arena = CArena()
        var m = Envoy__Service__Discovery__V3__DiscoveryRequest()
        envoy__service__discovery__v3__discovery_request__init(&m)
        if !versionInfo.isEmpty { m.version_info = arena.string(versionInfo) }
        if let node { m.node = arena.node(node) }
        (m.n_resource_names, m.resource_names) = arena.strings(resourceNames)
        if !typeURL.isEmpty { m.type_url = arena.string(typeURL) }
        if !responseNonce.isEmpty { m.response_nonce = arena.string(responseNonce) }
        if let errorDetail { m.error_detail = arena.status(errorDetail) }
        return withExtendedLifetime(arena) {
            packed(envoy__service__discovery__v3__discovery_request__get_packed_size(&m), headroom) {
                envoy__service__discovery__v3__discovery_request__pack(&m, $0)
            }
        }
    }
}

extension DiscoveryResponse {
    /// Decodes a serialized envoy.service.discovery.v3.DiscoveryResponse (resource bodies are copied once).
    public init(serialized bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard let message = envoy__service__discovery__v3__discovery_response__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw WireError(messageType: "envoy.service.discovery.v3.DiscoveryResponse", byteCount: bytes.count)
        }
        defer { envoy__service__discovery__v3__discovery_response__free_unpacked(message, nil) }
        let m = message.pointee
        let resources = (0..<m.n_resources).compactMap { m.resources[$0].map(decodeAny) }
        let controlPlane = m.control_plane.map { cString($0.pointee.identifier) }
        self.init(versionInfo: cString(m.version_info), resources: resources, typeURL: cString(m.type_url),
                  nonce: cString(m.nonce), controlPlane: controlPlane)
    }

    /// Decodes a serialized envoy.service.discovery.v3.DiscoveryResponse.
    public init(serialized bytes: [UInt8]) throws(WireError) {
        self = try bytes.withUnsafeBytes { raw in Result { () throws(WireError) in try DiscoveryResponse(serialized: raw) } }.get()
    }

    /// The protobuf encoding, after `headroom` zero bytes left for the caller's framing.
    /// Resource bodies are referenced in place and copied only into the output.
    public func serialized(headroom: Int = 0) -> [UInt8] {
        if let shared = resourceList.encodedResourcesField { return serialized(sharing: shared, headroom: headroom) }
        let arena = CArena()
        var m = Envoy__Service__Discovery__V3__DiscoveryResponse()
        envoy__service__discovery__v3__discovery_response__init(&m)
        if !versionInfo.isEmpty { m.version_info = arena.string(versionInfo) }
        (m.n_resources, m.resources) = arena.anys(resources)
        if !typeURL.isEmpty { m.type_url = arena.string(typeURL) }
        if !nonce.isEmpty { m.nonce = arena.string(nonce) }
        if let controlPlane { m.control_plane = arena.controlPlane(controlPlane) }
        return withExtendedLifetime((arena, resources)) {
            packed(envoy__service__discovery__v3__discovery_response__get_packed_size(&m), headroom) {
                envoy__service__discovery__v3__discovery_response__pack(&m, $0)
            }
        }
    }
}

extension DeltaDiscoveryRequest {
    /// Decodes a serialized envoy.service.discovery.v3.DeltaDiscoveryRequest.
    public init(serialized bytes: UnsafeRawBufferPointer) throws(WireError) {
        self = try withUnpackScratch { allocator throws(WireError) in
            guard let message = envoy__service__discovery__v3__delta_discovery_request__unpack(allocator, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
                throw WireError(messageType: "envoy.service.discovery.v3.DeltaDiscoveryRequest", byteCount: bytes.count)
            }
            defer { envoy__service__discovery__v3__delta_discovery_request__free_unpacked(message, allocator) }
            let m = message.pointee
            var initial: [String: String] = [:]
            for i in 0..<m.n_initial_resource_versions {
                guard let entry = m.initial_resource_versions[i] else { continue }
                initial[cString(entry.pointee.key)] = cString(entry.pointee.value)
            }
            return DeltaDiscoveryRequest(node: m.node.map(decodeNode), typeURL: cString(m.type_url),
                                         resourceNamesSubscribe: cStrings(m.resource_names_subscribe, m.n_resource_names_subscribe),
                                         resourceNamesUnsubscribe: cStrings(m.resource_names_unsubscribe, m.n_resource_names_unsubscribe),
                                         initialResourceVersions: initial, responseNonce: cString(m.response_nonce),
                                         errorDetail: m.error_detail.map(decodeStatus))
        }
    }

    /// Decodes a serialized envoy.service.discovery.v3.DeltaDiscoveryRequest.
    public init(serialized bytes: [UInt8]) throws(WireError) {
        self = try bytes.withUnsafeBytes { raw in Result { () throws(WireError) in try DeltaDiscoveryRequest(serialized: raw) } }.get()
    }

    /// The protobuf encoding (map entries sorted by key), after `headroom` zero bytes left for the caller's framing.
    public func serialized(headroom: Int = 0) -> [UInt8] {
        let arena = CArena()
        var m = Envoy__Service__Discovery__V3__DeltaDiscoveryRequest()
        envoy__service__discovery__v3__delta_discovery_request__init(&m)
        if let node { m.node = arena.node(node) }
        if !typeURL.isEmpty { m.type_url = arena.string(typeURL) }
        (m.n_resource_names_subscribe, m.resource_names_subscribe) = arena.strings(resourceNamesSubscribe)
        (m.n_resource_names_unsubscribe, m.resource_names_unsubscribe) = arena.strings(resourceNamesUnsubscribe)
        let keys = initialResourceVersions.keys.sorted()
        if !keys.isEmpty {
            let entries = arena.array(keys.count, of: UnsafeMutablePointer<Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry>?.self)
            let storage = arena.messages(keys.count, envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init)
            for (i, key) in keys.enumerated() {
                storage[i].key = arena.string(key)
                storage[i].value = arena.string(initialResourceVersions[key]!)
                entries[i] = storage + i
            }
            m.n_initial_resource_versions = keys.count
            m.initial_resource_versions = entries
        }
        if !responseNonce.isEmpty { m.response_nonce = arena.string(responseNonce) }
        if let errorDetail { m.error_detail = arena.status(errorDetail) }
        return withExtendedLifetime(arena) {
            packed(envoy__service__discovery__v3__delta_discovery_request__get_packed_size(&m), headroom) {
                envoy__service__discovery__v3__delta_discovery_request__pack(&m, $0)
            }
        }
    }
}

extension DeltaDiscoveryResponse {
    /// Decodes a serialized envoy.service.discovery.v3.DeltaDiscoveryResponse (resource bodies are copied once).
    public init(serialized bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard let message = envoy__service__discovery__v3__delta_discovery_response__unpack(nil, bytes.count, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)) else {
            throw WireError(messageType: "envoy.service.discovery.v3.DeltaDiscoveryResponse", byteCount: bytes.count)
        }
        defer { envoy__service__discovery__v3__delta_discovery_response__free_unpacked(message, nil) }
        let m = message.pointee
        let resources: [DeltaResource] = (0..<m.n_resources).compactMap { i in
            guard let r = m.resources[i]?.pointee else { return nil }
            return DeltaResource(name: cString(r.name), version: cString(r.version), resource: r.resource.map(decodeAny),
                                 aliases: cStrings(r.aliases, r.n_aliases), ttl: r.ttl.map { decodeDuration($0.pointee) })
        }
        self.init(systemVersionInfo: cString(m.system_version_info), resources: resources, typeURL: cString(m.type_url),
                  removedResources: cStrings(m.removed_resources, m.n_removed_resources), nonce: cString(m.nonce),
                  controlPlane: m.control_plane.map { cString($0.pointee.identifier) })
    }

    /// Decodes a serialized envoy.service.discovery.v3.DeltaDiscoveryResponse.
    public init(serialized bytes: [UInt8]) throws(WireError) {
        self = try bytes.withUnsafeBytes { raw in Result { () throws(WireError) in try DeltaDiscoveryResponse(serialized: raw) } }.get()
    }

    /// The protobuf encoding by protobuf-c, after `headroom` zero bytes left for the caller's framing: the reference
    /// `serialized(headroom:)` (DeltaResponseEncoding.swift) is checked against, byte for byte.
    public func serializedByProtobufC(headroom: Int = 0) -> [UInt8] {
        let arena = CArena()
        var m = Envoy__Service__Discovery__V3__DeltaDiscoveryResponse()
        envoy__service__discovery__v3__delta_discovery_response__init(&m)
        if !systemVersionInfo.isEmpty { m.system_version_info = arena.string(systemVersionInfo) }
        if !resources.isEmpty {
            let pointers = arena.array(resources.count, of: UnsafeMutablePointer<Envoy__Service__Discovery__V3__Resource>?.self)
            let storage = arena.messages(resources.count, envoy__service__discovery__v3__resource__init)
            for (i, resource) in resources.enumerated() {
                if !resource.name.isEmpty { storage[i].name = arena.string(resource.name) }
                if !resource.version.isEmpty { storage[i].version = arena.string(resource.version) }
                if let any = resource.resource { storage[i].resource = arena.any(any) }
                (storage[i].n_aliases, storage[i].aliases) = arena.strings(resource.aliases)
                if let ttl = resource.ttl { storage[i].ttl = arena.duration(ttl) }
                pointers[i] = storage + i
            }
            m.n_resources = resources.count
            m.resources = pointers
        }
        if !typeURL.isEmpty { m.type_url = arena.string(typeURL) }
        (m.n_removed_resources, m.removed_resources) = arena.strings(removedResources)
        if !nonce.isEmpty { m.nonce = arena.string(nonce) }
        if let controlPlane { m.control_plane = arena.controlPlane(controlPlane) }
        return withExtendedLifetime((arena, resources)) {
            packed(envoy__service__discovery__v3__delta_discovery_response__get_packed_size(&m), headroom) {
                envoy__service__discovery__v3__delta_discovery_response__pack(&m, $0)
            }
        }
    }
}

// MARK: - Decoding helpers

func cString(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }

func cStrings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int) -> [String] {
    guard let list, count > 0 else { return [] }
    return (0..<count).map { cString(list[$0]) }
}

/// Whether the C strings are `names`, byte for byte and in order (what `cStrings` would return, without building it).
func cStrings(_ list: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ count: Int, equal names: [String]) -> Bool {
    guard count == names.count else { return false }
    guard let list else { return count == 0 }
    for i in 0..<count {
        var name = names[i]
        let same = name.withUTF8 { utf8 in
            guard let c = list[i] else { return utf8.isEmpty }
            return strlen(c) == utf8.count && (utf8.isEmpty || memcmp(c, utf8.baseAddress!, utf8.count) == 0)
        }
        guard same else { return false }
    }
    return true
}

func decodeStatus(_ p: UnsafeMutablePointer<Google__Rpc__Status>) -> Status {
    Status(code: p.pointee.code, message: cString(p.pointee.message))
}

func decodeAny(_ p: UnsafeMutablePointer<Google__Protobuf__Any>) -> AnyResource {
    let value = p.pointee.value
    return AnyResource(typeURL: cString(p.pointee.type_url),
                       value: ResourceBytes(copying: UnsafeRawBufferPointer(start: value.data, count: value.data == nil ? 0 : value.len)))
}

private func decodeDuration(_ d: Google__Protobuf__Duration) -> Duration {
    .seconds(d.seconds) + .nanoseconds(Int64(d.nanos))
}

func decodeNode(_ p: UnsafeMutablePointer<Envoy__Config__Core__V3__Node>) -> Node {
    let n = p.pointee
    var metadata: [UInt8] = []
    if let md = n.metadata {
        metadata = packed(google__protobuf__struct__get_packed_size(md), 0) { google__protobuf__struct__pack(md, $0) }
    }
    var version = ""
    if n.user_agent_version_type_case == ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION {
        version = cString(n.user_agent_version)
    } else if n.user_agent_version_type_case == ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_BUILD_VERSION,
              let semantic = n.user_agent_build_version?.pointee.version?.pointee {
        version = "\(semantic.major_number).\(semantic.minor_number).\(semantic.patch)"
    }
    return Node(id: cString(n.id), cluster: cString(n.cluster), metadata: metadata, userAgentName: cString(n.user_agent_name),
                userAgentVersion: version, clientFeatures: cStrings(n.client_features, n.n_client_features))
}

/// Runs a protobuf-c `pack` into a fresh array of `headroom + size` bytes.
func packed(_ size: Int, _ headroom: Int, _ pack: (UnsafeMutablePointer<UInt8>) -> Int) -> [UInt8] {
    [UInt8](unsafeUninitializedCapacity: max(headroom + size, 1)) { buffer, count in
        let base = buffer.baseAddress!
        base.initialize(repeating: 0, count: headroom)
        let written = pack(base + headroom)
        precondition(written == size, "protobuf-c packed \(written) bytes, expected \(size)")
        count = headroom + size
    }
}

// MARK: - Encoding arena

/// Owns every C allocation made while building one message for protobuf-c; frees them all in deinit.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []
    private var cleanups: [() -> Void] = []
    private var interned: [String: UnsafeMutablePointer<CChar>] = [:]

    deinit {
        for cleanup in cleanups { cleanup() }
        for block in blocks { block.deallocate() }
    }

    func array<T>(_ count: Int, of type: T.Type) -> UnsafeMutablePointer<T> {
        let p = UnsafeMutablePointer<T>.allocate(capacity: max(count, 1))
        blocks.append(UnsafeMutableRawPointer(p))
        return p
    }

    /// `count` messages initialised by their protobuf-c `*__init` function.
    func messages<T>(_ count: Int, _ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let p = array(count, of: T.self)
        for i in 0..<count { initialize(p + i) }
        return p
    }

    /// A NUL-terminated copy. protobuf-c strings end at the first NUL, so a Swift string
    /// containing one is cut there; xDS names and versions never contain it.
    func string(_ s: String) -> UnsafeMutablePointer<CChar> {
        var utf8 = Array(s.utf8CString)
        let p = array(utf8.count, of: CChar.self)
        p.update(from: &utf8, count: utf8.count)
        return p
    }

    /// One shared copy per distinct string (type URLs repeat in every Any of a response).
    func internedString(_ s: String) -> UnsafeMutablePointer<CChar> {
        if let p = interned[s] { return p }
        let p = string(s)
        interned[s] = p
        return p
    }

    func strings(_ list: [String]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        guard !list.isEmpty else { return (0, nil) }
        let p = array(list.count, of: UnsafeMutablePointer<CChar>?.self)
        for (i, s) in list.enumerated() { p[i] = string(s) }
        return (list.count, p)
    }

    func status(_ status: Status) -> UnsafeMutablePointer<Google__Rpc__Status> {
        let p = messages(1, google__rpc__status__init)
        p.pointee.code = status.code
        if !status.message.isEmpty { p.pointee.message = string(status.message) }
        return p
    }

    func controlPlane(_ identifier: String) -> UnsafeMutablePointer<Envoy__Config__Core__V3__ControlPlane> {
        let p = messages(1, envoy__config__core__v3__control_plane__init)
        if !identifier.isEmpty { p.pointee.identifier = string(identifier) }
        return p
    }

    func duration(_ d: Duration) -> UnsafeMutablePointer<Google__Protobuf__Duration> {
        let p = messages(1, google__protobuf__duration__init)
        p.pointee.seconds = d.components.seconds
        p.pointee.nanos = Int32(d.components.attoseconds / 1_000_000_000)
        return p
    }

    /// The Any points at the shared body; the caller keeps the `ResourceBytes` alive until packing ends.
    func any(_ resource: AnyResource) -> UnsafeMutablePointer<Google__Protobuf__Any> {
        let p = messages(1, google__protobuf__any__init)
        fill(p, resource)
        return p
    }

    func anys(_ list: [AnyResource]) -> (Int, UnsafeMutablePointer<UnsafeMutablePointer<Google__Protobuf__Any>?>?) {
        guard !list.isEmpty else { return (0, nil) }
        let pointers = array(list.count, of: UnsafeMutablePointer<Google__Protobuf__Any>?.self)
        let storage = messages(list.count, google__protobuf__any__init)
        for (i, resource) in list.enumerated() {
            fill(storage + i, resource)
            pointers[i] = storage + i
        }
        return (list.count, pointers)
    }

    private func fill(_ p: UnsafeMutablePointer<Google__Protobuf__Any>, _ resource: AnyResource) {
        if !resource.typeURL.isEmpty { p.pointee.type_url = internedString(resource.typeURL) }
        p.pointee.value = ProtobufCBinaryData(len: resource.value.count, data: resource.value.count > 0 ? resource.value.baseAddress : nil)
    }

    /// Node metadata travels as opaque Struct bytes; protobuf-c needs it parsed to re-embed it.
    /// Bytes that are not a valid Struct are left out of the encoding.
    func node(_ node: Node) -> UnsafeMutablePointer<Envoy__Config__Core__V3__Node> {
        let p = messages(1, envoy__config__core__v3__node__init)
        if !node.id.isEmpty { p.pointee.id = string(node.id) }
        if !node.cluster.isEmpty { p.pointee.cluster = string(node.cluster) }
        if !node.metadata.isEmpty,
           let md = node.metadata.withUnsafeBufferPointer({ google__protobuf__struct__unpack(nil, $0.count, $0.baseAddress) }) {
            cleanups.append { google__protobuf__struct__free_unpacked(md, nil) }
            p.pointee.metadata = md
        }
        if !node.userAgentName.isEmpty { p.pointee.user_agent_name = string(node.userAgentName) }
        if !node.userAgentVersion.isEmpty {
            p.pointee.user_agent_version_type_case = ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION
            p.pointee.user_agent_version = string(node.userAgentVersion)
        }
        (p.pointee.n_client_features, p.pointee.client_features) = strings(node.clientFeatures)
        return p
    }
}
