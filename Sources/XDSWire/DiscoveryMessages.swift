// The xDS envelope messages (envoy.service.discovery.v3) as Swift values. Only the
// fields meshctl acts on are kept; DiscoveryCodec.swift converts them to and from
// protobuf bytes. Fields left out on purpose: resource_locators (xdstp), canary,
// resource_errors, removed_resource_names, Resource.cache_control/metadata.

/// The identity an Envoy (or other xDS client) presents on a stream: envoy.config.core.v3.Node, minimally decoded.
public struct Node: Sendable, Hashable {
    /// `node.id`: the proxy's own identifier.
    public var id: String
    /// `node.cluster`: the service cluster the proxy belongs to.
    public var cluster: String
    /// `node.metadata` as a serialized google.protobuf.Struct, kept opaque; empty when absent.
    public var metadata: [UInt8]
    /// `node.user_agent_name`, e.g. "envoy".
    public var userAgentName: String
    /// `node.user_agent_version`, or `major.minor.patch` of `user_agent_build_version`.
    public var userAgentVersion: String
    /// `node.client_features`, e.g. "envoy.lb.does_not_support_overprovisioning".
    public var clientFeatures: [String]

    public init(id: String, cluster: String = "", metadata: [UInt8] = [], userAgentName: String = "",
                userAgentVersion: String = "", clientFeatures: [String] = []) {
        self.id = id
        self.cluster = cluster
        self.metadata = metadata
        self.userAgentName = userAgentName
        self.userAgentVersion = userAgentVersion
        self.clientFeatures = clientFeatures
    }
}

/// A google.rpc.Status: how a proxy explains a NACK (`error_detail`); `details` are dropped.
public struct Status: Sendable, Hashable {
    /// The gRPC status code number.
    public var code: Int32
    /// The human-readable reason.
    public var message: String

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }
}

/// A google.protobuf.Any whose value is an already-serialized resource message.
public struct AnyResource: Sendable, Hashable {
    /// The Any's `type_url`, e.g. `type.googleapis.com/envoy.config.cluster.v3.Cluster`.
    public var typeURL: String
    /// The serialized resource message, shared rather than copied.
    public var value: ResourceBytes

    public init(typeURL: String, value: ResourceBytes) {
        self.typeURL = typeURL
        self.value = value
    }
}

/// A state-of-the-world request from a proxy: subscription, ACK or NACK (envoy.service.discovery.v3.DiscoveryRequest).
public struct DiscoveryRequest: Sendable, Hashable {
    /// The version the proxy last accepted for this type ("" before any).
    public var versionInfo: String
    /// The proxy's identity; guaranteed only on the first request of a stream.
    public var node: Node?
    /// The complete set of names the proxy subscribes to for this type.
    public var resourceNames: [String]
    /// The resource type; empty is allowed on a stream bound to one type.
    public var typeURL: String
    /// The nonce of the response this request answers ("" on the first request).
    public var responseNonce: String
    /// Set when the proxy rejected the response named by `responseNonce` (a NACK).
    public var errorDetail: Status?

    public init(versionInfo: String = "", node: Node? = nil, resourceNames: [String] = [], typeURL: String = "",
                responseNonce: String = "", errorDetail: Status? = nil) {
        self.versionInfo = versionInfo
        self.node = node
        self.resourceNames = resourceNames
        self.typeURL = typeURL
        self.responseNonce = responseNonce
        self.errorDetail = errorDetail
    }
}

/// A state-of-the-world response to a proxy (envoy.service.discovery.v3.DiscoveryResponse).
public struct DiscoveryResponse: Sendable, Hashable {
    /// The version of this type's resource set that the response carries.
    public var versionInfo: String
    /// The resources as one shared list (possibly pre-encoded, see `ResourceList`).
    public var resourceList: ResourceList
    /// The resource type.
    public var typeURL: String
    /// Unique per stream; the proxy echoes it to ACK or NACK this response.
    public var nonce: String
    /// `control_plane.identifier`, shown by Envoy in its config dump.
    public var controlPlane: String?

    /// The resources, each wrapped as a google.protobuf.Any.
    public var resources: [AnyResource] {
        get { resourceList.items }
        set { resourceList = ResourceList(newValue) }
    }

    public init(versionInfo: String, resources: [AnyResource], typeURL: String, nonce: String, controlPlane: String? = nil) {
        self.init(versionInfo: versionInfo, resourceList: ResourceList(resources), typeURL: typeURL, nonce: nonce,
                  controlPlane: controlPlane)
    }

    /// A response around a list shared with other responses (no per-response copy of the list).
    public init(versionInfo: String, resourceList: ResourceList, typeURL: String, nonce: String, controlPlane: String? = nil) {
        self.versionInfo = versionInfo
        self.resourceList = resourceList
        self.typeURL = typeURL
        self.nonce = nonce
        self.controlPlane = controlPlane
    }
}

/// An incremental request from a proxy: subscription changes and/or an ACK or NACK (envoy.service.discovery.v3.DeltaDiscoveryRequest).
public struct DeltaDiscoveryRequest: Sendable, Hashable {
    /// The proxy's identity; guaranteed only on the first request of a stream.
    public var node: Node?
    /// The resource type; empty is allowed on a stream bound to one type.
    public var typeURL: String
    /// Names added to the subscription ("*" is the wildcard).
    public var resourceNamesSubscribe: [String]
    /// Names removed from the subscription.
    public var resourceNamesUnsubscribe: [String]
    /// On the first request of a stream for this type: what the proxy already holds, name → version.
    public var initialResourceVersions: [String: String]
    /// The nonce of the response this request answers ("" for a spontaneous request).
    public var responseNonce: String
    /// Set when the proxy rejected the response named by `responseNonce` (a NACK).
    public var errorDetail: Status?

    public init(node: Node? = nil, typeURL: String = "", resourceNamesSubscribe: [String] = [], resourceNamesUnsubscribe: [String] = [],
                initialResourceVersions: [String: String] = [:], responseNonce: String = "", errorDetail: Status? = nil) {
        self.node = node
        self.typeURL = typeURL
        self.resourceNamesSubscribe = resourceNamesSubscribe
        self.resourceNamesUnsubscribe = resourceNamesUnsubscribe
        self.initialResourceVersions = initialResourceVersions
        self.responseNonce = responseNonce
        self.errorDetail = errorDetail
    }
}

/// One named, versioned resource in an incremental response (envoy.service.discovery.v3.Resource).
public struct DeltaResource: Sendable, Hashable {
    /// The resource name.
    public var name: String
    /// The resource's own version (meshctl uses a content hash).
    public var version: String
    /// The resource; nil in a TTL heartbeat, which only refreshes `ttl` of the version the proxy holds.
    public var resource: AnyResource?
    /// Alternative names the proxy may have subscribed with.
    public var aliases: [String]
    /// How long the proxy keeps the resource without hearing from the control plane.
    public var ttl: Duration?

    public init(name: String, version: String, resource: AnyResource?, aliases: [String] = [], ttl: Duration? = nil) {
        self.name = name
        self.version = version
        self.resource = resource
        self.aliases = aliases
        self.ttl = ttl
    }
}

/// An incremental response to a proxy (envoy.service.discovery.v3.DeltaDiscoveryResponse).
public struct DeltaDiscoveryResponse: Sendable, Hashable {
    /// The snapshot version, for debugging only (proxies track per-resource versions).
    public var systemVersionInfo: String
    /// Added or changed resources.
    public var resources: [DeltaResource]
    /// The resource type.
    public var typeURL: String
    /// Names the proxy must drop (deleted, or subscribed but non-existent).
    public var removedResources: [String]
    /// Unique per stream; the proxy echoes it to ACK or NACK this response.
    public var nonce: String
    /// `control_plane.identifier`, shown by Envoy in its config dump.
    public var controlPlane: String?

    public init(systemVersionInfo: String, resources: [DeltaResource], typeURL: String, removedResources: [String],
                nonce: String, controlPlane: String? = nil) {
        self.systemVersionInfo = systemVersionInfo
        self.resources = resources
        self.typeURL = typeURL
        self.removedResources = removedResources
        self.nonce = nonce
        self.controlPlane = controlPlane
    }
}
