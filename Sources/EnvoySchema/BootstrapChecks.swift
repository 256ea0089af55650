// Static cross-reference checks Envoy runs when it loads a bootstrap's
// static_resources (the part of `envoy --mode validate` beyond the schema):
// unique listener and cluster names and listener addresses, routes naming
// defined clusters, unique virtual-host domains, the HTTP filter chain ending
// in its terminal filter.

public enum TypeNames {
    public static let bootstrap = "envoy.config.bootstrap.v3.Bootstrap"
    public static let listener = "envoy.config.listener.v3.Listener"
    public static let cluster = "envoy.config.cluster.v3.Cluster"
    public static let routeConfiguration = "envoy.config.route.v3.RouteConfiguration"
    public static let clusterLoadAssignment = "envoy.config.endpoint.v3.ClusterLoadAssignment"
    public static let httpConnectionManager = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    public static let router = "envoy.extensions.filters.http.router.v3.Router"
}

/// Cross-reference checks over a bootstrap's static resources.
public struct BootstrapChecks: Sendable {
    public let pool: DescriptorPool
    public let file: String?
    public private(set) var diagnostics: [Diagnostic] = []

    /// Also load the TLS files the bootstrap names, as Envoy would on this host.
    public var checkHostFiles = false

    /// Where those files are read once for a whole run (nil: read each time one is named).
    public var hostFileReads: HostFileReads?

    /// False when checking one xDS resource: rules about the bootstrap around it (static
    /// clusters and secrets, node identity) do not apply.
    var bootstrapContext = true

    /// The extension factories of the target Envoy (which cluster factories exist).
    public var extensions = ExtensionRegistry.envoy

    public init(pool: DescriptorPool, file: String?) {
        self.pool = pool
        self.file = file
    }

    mutating func report(_ rule: String, _ message: String, path: String, at location: SourceLocation?) {
        diagnostics.append(Diagnostic(.error, rule: rule, message: message, path: path, file: file, location: location))
    }

    public mutating func check(bootstrap: DynamicMessage) {
        let root = MessageView(pool: pool, message: bootstrap, path: "")
        let clusters = root.child("static_resources")?.children("clusters") ?? []
        var staticClusterTypes: [String: Int32] = [:]
        for cluster in clusters { if let name = cluster.string("name") { staticClusterTypes[name] = cluster.enumNumber("type") ?? 0 } }
        let staticSecrets = root.child("static_resources")?.children("secrets") ?? []
        let secrets = Set(staticSecrets.compactMap { $0.string("name") })
        checkDuplicateSecrets(staticSecrets)
        checkEnvoyRules(root: root, staticClusters: staticClusterTypes, staticSecrets: secrets)
        // The admin listener's address is parsed as an IP, as a listener's is.
        if let admin = root.child("admin")?.child("address")?.child("socket_address") { _ = parsedListenerIP(admin) }
        guard let resources = root.child("static_resources") else { return }
        var clusterNames: [String: String] = [:]
        for cluster in clusters {
            guard let name = cluster.string("name"), !name.isEmpty else { continue }
            if let first = clusterNames[name] {
                report("xref.duplicate-cluster", "cluster name '\(name)' is already used by \(first); cluster names must be unique", path: cluster.path + ".name", at: cluster.location(of: "name"))
            } else {
                clusterNames[name] = cluster.path
            }
            checkClusterEndpoints(cluster)
        }
        let definedClusters = Set(clusterNames.keys)  // once, not once per HTTP connection manager
        var listenerNames: [String: String] = [:]
        var listenerAddresses: [String: String] = [:]
        for listener in resources.children("listeners") {
            if let name = listener.string("name"), !name.isEmpty {
                if let first = listenerNames[name] {
                    report("xref.duplicate-listener", "listener name '\(name)' is already used by \(first); listener names must be unique", path: listener.path + ".name", at: listener.location(of: "name"))
                } else {
                    listenerNames[name] = listener.path
                }
            }
            if let address = socketAddress(listener.child("address")), address.port != 0 {
                if let first = listenerAddresses[address.key] {
                    report("xref.duplicate-address", "listener address \(address.key) is already used by \(first); give each listener its own address and port", path: listener.path + ".address", at: listener.location(of: "address"))
                } else {
                    listenerAddresses[address.key] = listener.path
                }
            }
            var chains = listener.children("filter_chains")
            if let defaultChain = listener.child("default_filter_chain") { chains.append(defaultChain) }
            for chain in chains {
                for filter in chain.children("filters") {
                    guard let (type, hcm) = filter.unpacked("typed_config"), type == TypeNames.httpConnectionManager else { continue }
                    checkHTTPConnectionManager(hcm, clusters: definedClusters)
                }
            }
        }
    }

    /// `re2.max_program_size.error_level` from the bootstrap's static runtime layers (the last layer
    /// that sets it wins, as Envoy's layered runtime does), as dotted key or nested objects.
    static func regexProgramSizeLimit(bootstrap: DynamicMessage, pool: DescriptorPool) -> Int? {
        let root = MessageView(pool: pool, message: bootstrap, path: "")
        var limit: Int?
        for layer in root.child("layered_runtime")?.children("layers") ?? [] {
            guard let staticLayer = layer.child("static_layer") else { continue }
            let json = TextWriter(pool: pool).json(staticLayer.message)
            if let value = lookup(json, ["re2.max_program_size.error_level"]) ?? lookup(json, ["re2", "max_program_size", "error_level"])
                ?? lookup(json, ["re2.max_program_size", "error_level"]) ?? lookup(json, ["re2", "max_program_size.error_level"]) {
                limit = value
            }
        }
        return limit
    }

    private static func lookup(_ value: JSONValue, _ keys: [String]) -> Int? {
        guard let first = keys.first else {
            switch value {
            case .number(let n): return Double(n).map { Int($0) }
            case .string(let s): return Int(s)
            default: return nil
            }
        }
        guard case .object(let members) = value, let next = members.first(where: { $0.0 == first })?.1 else { return nil }
        return lookup(next, Array(keys.dropFirst()))
    }

    /// Envoy's secret manager keeps one table of static secrets per kind (TLS certificate,
    /// validation context, session ticket keys, generic secret): a name may repeat across kinds,
    /// not within one.
    mutating func checkDuplicateSecrets(_ secrets: [MessageView]) {
        var first: [String: String] = [:]
        for secret in secrets {
            guard let name = secret.string("name"), !name.isEmpty,
                  let kind = ["tls_certificate", "session_ticket_keys", "validation_context", "generic_secret"].first(where: { secret.has($0) }) else { continue }
            let key = kind + "\u{0}" + name
            if let earlier = first[key] {
                report("xref.duplicate-secret", "static secret name '\(name)' is already used by \(earlier) for a \(kind); names of static secrets of one kind must be unique", path: secret.join("name"), at: secret.location(of: "name"))
            } else {
                first[key] = secret.path
            }
        }
    }

    /// Secrets named without an sds_config come from static_resources.secrets.
    mutating func checkStaticSecret(_ view: MessageView, defined: Set<String>) {
        guard view.value("sds_config") == nil, let name = view.string("name"), !defined.contains(name) else { return }
        report("xref.static-secret", "secret '\(name)' is not defined in static_resources.secrets (and no sds_config names a server for it); define it or add sds_config", path: view.path + ".name", at: view.location(of: "name"))
    }

    /// A listener's socket address as Envoy's listener manager compares them: a TCP and a UDP listener
    /// may share an address and port (ListenerImpl compares the socket type too), so UDP keys say so.
    func socketAddress(_ address: MessageView?) -> (key: String, port: UInt64)? {
        guard let socket = address?.child("socket_address"), let host = socket.string("address") else { return nil }
        var port: UInt64 = 0
        if case .uint(let p)? = socket.value("port_value") { port = p }
        return ("\(host):\(port)\(socket.enumNumber("protocol") == 1 ? " (UDP)" : "")", port)
    }

    /// Envoy's per-resource rules (filter order, header mutation, cluster settings, duplicate
    /// domains …) over one xDS resource (Listener, Cluster, RouteConfiguration, …), without
    /// cross-references to other resources: the caller checks those against the set it serves.
    public mutating func check(resource: DynamicMessage) {
        bootstrapContext = false
        let root = MessageView(pool: pool, message: resource, path: "")
        checkEnvoyRules(root: root, staticClusters: [:], staticSecrets: [])
        switch root.typeName {
        case TypeNames.cluster:
            checkClusterEndpoints(root)
        case TypeNames.routeConfiguration:
            checkRouteConfiguration(root, clusters: nil)
        case TypeNames.listener:
            var chains = root.children("filter_chains")
            if let defaultChain = root.child("default_filter_chain") { chains.append(defaultChain) }
            for chain in chains {
                for filter in chain.children("filters") {
                    guard let (type, hcm) = filter.unpacked("typed_config"), type == TypeNames.httpConnectionManager else { continue }
                    checkHTTPFilterOrder(hcm)
                    if let routes = hcm.child("route_config") { checkRouteConfiguration(routes, clusters: nil) }
                }
            }
        default:
            break
        }
    }

    mutating func checkHTTPConnectionManager(_ hcm: MessageView, clusters: Set<String>) {
        checkHTTPFilterOrder(hcm)
        guard let routes = hcm.child("route_config") else { return }
        var validateClusters = true
        if case .message(let flag)? = routes.value("validate_clusters"), case .bool(false)? = flag.value(at: 0)?.value ?? .bool(false) {
            validateClusters = false
        }
        checkRouteConfiguration(routes, clusters: validateClusters ? clusters : nil)
    }

    /// The router (a terminal filter) ends http_filters, and nothing follows it.
    mutating func checkHTTPFilterOrder(_ hcm: MessageView) {
        let filters = hcm.children("http_filters")
        for (i, filter) in filters.enumerated() {
            let isTerminal = filter.unpacked("typed_config")?.type == TypeNames.router
            let name = filter.string("name") ?? "?"
            if isTerminal && i != filters.count - 1 {
                report("xref.http-filter-order", "terminal filter '\(name)' (router) must be the last HTTP filter; move it to the end", path: filter.path, at: filter.location)
            }
            if !isTerminal && i == filters.count - 1, filter.unpacked("typed_config") != nil {
                report("xref.http-filter-order", "the last HTTP filter '\(name)' is not a terminal filter; end http_filters with envoy.filters.http.router", path: filter.path, at: filter.location)
            }
        }
    }

    /// Duplicate domains always; unknown clusters when `clusters` is given (Envoy's validate_clusters).
    mutating func checkRouteConfiguration(_ routes: MessageView, clusters: Set<String>?) {
        let routeName = routes.string("name") ?? ""
        // The virtual host that first served each domain; named only when a later one repeats it.
        var domains: [String: MessageView] = [:]
        for vhost in routes.children("virtual_hosts") {
            for (i, (domain, location)) in vhost.strings("domains").enumerated() {
                let key = domain.lowercased()
                if let firstHost = domains[key] {
                    let first = firstHost.string("name").map { "virtual host '\($0)'" } ?? firstHost.path
                    report("xref.duplicate-domain", "domain '\(domain)' is already served by \(first) of route configuration '\(routeName)'; each domain may appear in one virtual host only", path: vhost.path + ".domains[\(i)]", at: location)
                } else {
                    domains[key] = vhost
                }
            }
            guard let clusters else { continue }
            for route in vhost.children("routes") {
                guard let action = route.child("route") else { continue }
                if let cluster = action.string("cluster"), !clusters.contains(cluster) {
                    report("xref.route-cluster", "route points at cluster '\(cluster)', which is not defined in static_resources.clusters; define it or fix the name", path: action.path + ".cluster", at: action.location(of: "cluster"))
                }
                for weighted in action.child("weighted_clusters")?.children("clusters") ?? [] {
                    if let cluster = weighted.string("name"), !clusters.contains(cluster) {
                        report("xref.route-cluster", "weighted cluster '\(cluster)' is not defined in static_resources.clusters; define it or fix the name", path: weighted.path + ".name", at: weighted.location(of: "name"))
                    }
                }
                for mirror in action.children("request_mirror_policies") {
                    if let cluster = mirror.string("cluster"), !cluster.isEmpty, !clusters.contains(cluster) {
                        report("xref.route-cluster", "mirror cluster '\(cluster)' is not defined in static_resources.clusters; define it or fix the name", path: mirror.path + ".cluster", at: mirror.location(of: "cluster"))
                    }
                }
            }
        }
    }
}
