// The Client Status Discovery Service messages (envoy.service.status.v3) as Swift
// values: what an operator asks (ClientStatusRequest) and what the control plane
// answers per connected proxy (ClientStatusResponse). ClientStatusCodec.swift
// converts them to and from protobuf bytes with protobuf-c.

/// Which proxies a CSDS request asks about: `envoy.type.matcher.v3.NodeMatcher` on `node.id`.
public struct NodeIDMatcher: Sendable, Hashable {
    /// The string-match kinds meshctl evaluates (`safe_regex` and node metadata matchers are refused).
    public enum Pattern: Sendable, Hashable {
        case exact(String), prefix(String), suffix(String), contains(String)
    }

    public var pattern: Pattern
    public var ignoreCase: Bool

    public init(_ pattern: Pattern, ignoreCase: Bool = false) {
        self.pattern = pattern
        self.ignoreCase = ignoreCase
    }

    public func matches(_ nodeID: String) -> Bool {
        let subject = ignoreCase ? nodeID.lowercased() : nodeID
        func fold(_ s: String) -> String { ignoreCase ? s.lowercased() : s }
        switch pattern {
        case .exact(let s): return subject == fold(s)
        case .prefix(let s): return subject.hasPrefix(fold(s))
        case .suffix(let s): return subject.hasSuffix(fold(s))
        case .contains(let s): return subject.contains(fold(s))
        }
    }
}

/// envoy.service.status.v3.ClientStatusRequest: which proxies to report (all when `nodeMatchers` is empty).
public struct ClientStatusRequest: Sendable, Hashable {
    public var nodeMatchers: [NodeIDMatcher]
    /// The requester's own node, if it sent one.
    public var node: Node?
    public var excludeResourceContents: Bool

    public init(nodeMatchers: [NodeIDMatcher] = [], node: Node? = nil, excludeResourceContents: Bool = false) {
        self.nodeMatchers = nodeMatchers
        self.node = node
        self.excludeResourceContents = excludeResourceContents
    }
}

/// envoy.service.status.v3.ConfigStatus: the control plane's view of one proxy's copy of a type.
public enum ConfigStatus: Int32, Sendable, Hashable, CaseIterable {
    case unknown = 0
    /// The proxy ACKed the latest version sent.
    case synced = 1
    /// Requested, nothing sent yet.
    case notSent = 2
    /// Sent, not yet ACKed or NACKed.
    case stale = 3
    /// The proxy NACKed the latest version sent.
    case error = 4
}

/// envoy.admin.v3.ClientResourceStatus: the proxy's side of the same.
public enum ClientResourceStatus: Int32, Sendable, Hashable, CaseIterable {
    case unknown = 0, requested = 1, doesNotExist = 2, acked = 3, nacked = 4, receivedError = 5, timeout = 6
}

/// envoy.admin.v3.UpdateFailureState: the last rejection a proxy reported.
public struct UpdateFailureState: Sendable, Hashable {
    /// The proxy's `error_detail.message`.
    public var details: String
    /// The rejected version.
    public var versionInfo: String
    /// When the rejection arrived, nanoseconds since the epoch.
    public var lastUpdateAttemptNanoseconds: Int64

    public init(details: String, versionInfo: String, lastUpdateAttemptNanoseconds: Int64) {
        self.details = details
        self.versionInfo = versionInfo
        self.lastUpdateAttemptNanoseconds = lastUpdateAttemptNanoseconds
    }
}

/// envoy.service.status.v3.ClientConfig.GenericXdsConfig: one proxy's state for one resource type.
///
/// meshctl reports per type (`name` empty). `details` travels in `xds_config` as a
/// google.protobuf.Struct of strings (version ACKed, snapshot, subscribed names…): the
/// standard message has no field for the ACKed version when a newer one is in flight.
public struct GenericXDSConfig: Sendable, Hashable {
    public var typeURL: String
    public var name: String
    /// The version of the latest response sent.
    public var versionInfo: String
    public var details: [String: String]
    /// When the latest response was sent, nanoseconds since the epoch (0: never).
    public var lastUpdatedNanoseconds: Int64
    public var configStatus: ConfigStatus
    public var clientStatus: ClientResourceStatus
    public var errorState: UpdateFailureState?

    public init(typeURL: String, name: String = "", versionInfo: String = "", details: [String: String] = [:],
                lastUpdatedNanoseconds: Int64 = 0, configStatus: ConfigStatus = .unknown,
                clientStatus: ClientResourceStatus = .unknown, errorState: UpdateFailureState? = nil) {
        self.typeURL = typeURL
        self.name = name
        self.versionInfo = versionInfo
        self.details = details
        self.lastUpdatedNanoseconds = lastUpdatedNanoseconds
        self.configStatus = configStatus
        self.clientStatus = clientStatus
        self.errorState = errorState
    }
}

/// envoy.service.status.v3.ClientConfig: one proxy and its per-type states.
public struct ClientConfig: Sendable, Hashable {
    public var node: Node
    public var xdsConfigs: [GenericXDSConfig]
    /// `client_scope`: meshctl puts the proxy's xDS mode here (e.g. "ads", "per-type-delta").
    public var clientScope: String

    public init(node: Node, xdsConfigs: [GenericXDSConfig], clientScope: String = "") {
        self.node = node
        self.xdsConfigs = xdsConfigs
        self.clientScope = clientScope
    }
}

/// envoy.service.status.v3.ClientStatusResponse.
public struct ClientStatusResponse: Sendable, Hashable {
    public var configs: [ClientConfig]

    public init(configs: [ClientConfig]) { self.configs = configs }
}
