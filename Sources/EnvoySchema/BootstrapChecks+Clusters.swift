// What Envoy's cluster manager checks when it builds a cluster: which cluster factory the
// cluster names (`ClusterFactoryImplBase::create` in source/common/upstream/cluster_factory_impl.cc),
// and that factory's own rules for the endpoints it is given.

extension BootstrapChecks {
    /// The factory Envoy builds a cluster with: `cluster_type.typed_config`'s message type picks it
    /// when that is a real config (not a Struct); otherwise `cluster_type.name`; without
    /// `cluster_type`, the `type` enum names one of the built-in factories. Nil when no factory
    /// fits (reported here, or by the extension-category check for a typed_config).
    mutating func clusterFactory(_ cluster: MessageView, report reportUnknown: Bool) -> (name: String, config: MessageView?)? {
        guard let custom = cluster.child("cluster_type") else {
            switch cluster.enumNumber("type") ?? 0 {
            case 0: return ("envoy.cluster.static", nil)
            case 1: return ("envoy.cluster.strict_dns", nil)
            case 2: return ("envoy.cluster.logical_dns", nil)
            case 3: return ("envoy.cluster.eds", nil)
            case 4: return ("envoy.cluster.original_dst", nil)
            default: return nil
            }
        }
        if let (type, config) = custom.unpacked("typed_config"), type != "google.protobuf.Struct" {
            guard let name = extensions.factoryName(category: "envoy.clusters", typeName: type) else { return nil }
            return (name, config)
        }
        let name = custom.string("name") ?? ""
        let known = extensions.namesByCategory["envoy.clusters"] ?? []
        if !known.isEmpty && !known.contains(name) {
            if reportUnknown {
                report("envoy.cluster-factory", "the pinned Envoy has no cluster factory named '\(name)'; use one of \(known.sorted().joined(separator: ", ")), or give cluster_type a typed_config", path: custom.join("name"), at: custom.location(of: "name"))
            }
            return nil
        }
        return (name, nil)
    }

    /// The static cluster factory resolves every endpoint as an IP address: it does no DNS.
    mutating func checkClusterEndpoints(_ cluster: MessageView) {
        guard clusterFactory(cluster, report: false)?.name == "envoy.cluster.static", let assignment = cluster.child("load_assignment") else { return }
        for locality in assignment.children("endpoints") {
            for endpoint in locality.children("lb_endpoints") {
                if endpoint.has("endpoint_name") { continue }
                let address = endpoint.child("endpoint")?.child("address")
                if address?.has("pipe") == true || address?.has("envoy_internal_address") == true { continue }
                guard let socket = address?.child("socket_address") else {
                    let at = address ?? endpoint.child("endpoint") ?? endpoint
                    report("xref.static-cluster-hostname", "STATIC cluster endpoint has no address; give it endpoint.address.socket_address with an IP and port", path: at.path, at: at.location)
                    continue
                }
                let host = socket.string("address") ?? ""
                if case .string(let resolver)? = socket.value("resolver_name"), !resolver.isEmpty { continue }
                if !WellKnownFormats.isIPv4(host) && !WellKnownFormats.isIPv6(host) {
                    report("xref.static-cluster-hostname", "STATIC cluster endpoint '\(host)' is not an IP address; use an IP, or make the cluster STRICT_DNS or LOGICAL_DNS (or cluster_type envoy.cluster.dns) to resolve names", path: socket.path + ".address", at: socket.location(of: "address"))
                }
            }
        }
    }

    /// `typed_extension_protocol_options` is keyed by factory name: a network filter, an HTTP filter,
    /// or an upstream protocol options factory (ClusterInfoImpl's createProtocolOptionsConfig), and an
    /// upstream options factory takes its own message only.
    mutating func checkProtocolOptions(_ cluster: MessageView) {
        guard !extensions.isEmpty else { return }
        for entry in cluster.children("typed_extension_protocol_options") {
            guard let key = entry.string("key") else { continue }
            let families = ["envoy.filters.network", "envoy.filters.http", "envoy.upstream_options"]
            guard families.contains(where: { extensions.namesByCategory[$0]?.contains(key) == true }) else {
                report("envoy.protocol-options", "typed_extension_protocol_options key '\(key)' names no network filter, HTTP filter or upstream protocol options factory of the pinned Envoy (e.g. envoy.extensions.upstreams.http.v3.HttpProtocolOptions)", path: entry.path, at: entry.location)
                continue
            }
            guard let url = entry.child("value")?.string("type_url"), !url.isEmpty else { continue }
            let type = String(url.split(separator: "/").last ?? "")
            let accepted = Set(extensions.factoryByType["envoy.upstream_options"]?.filter { $0.value == key }.keys.map { $0 } ?? [])
            if !accepted.isEmpty && !accepted.contains(type) && !ExtensionRegistry.wrappers.contains(type) {
                report("envoy.protocol-options", "the protocol options for '\(key)' must be a \(accepted.sorted().joined(separator: " or ")), not \(type)", path: entry.path, at: entry.location)
            }
        }
    }

    /// Rules of the factory the cluster names: the logical DNS cluster resolves one name, the
    /// original-destination cluster takes its hosts from connections, never from a load assignment.
    mutating func checkClusterFactoryRules(_ cluster: MessageView) {
        checkProtocolOptions(cluster)
        guard let (factory, config) = clusterFactory(cluster, report: true) else { return }
        let name = cluster.string("name") ?? ""
        let logical = factory == "envoy.cluster.logical_dns" || (factory == "envoy.cluster.dns" && config?.isTrue("all_addresses_in_single_endpoint") == true)
        if logical {
            let assignment = cluster.child("load_assignment")
            let localities = assignment?.children("endpoints") ?? []
            if localities.count != 1 || localities[0].children("lb_endpoints").count != 1 {
                report("envoy.logical-dns-endpoints", "LOGICAL_DNS cluster '\(name)' must have exactly one locality with exactly one lb_endpoint (the name it resolves); use STRICT_DNS for several hosts", path: assignment?.path ?? cluster.path, at: assignment?.location ?? cluster.location)
            }
        }
        // The built-in factories make no load balancer of their own for CLUSTER_PROVIDED to use.
        if cluster.enumNumber("lb_policy") == 6,
           ["envoy.cluster.static", "envoy.cluster.strict_dns", "envoy.cluster.logical_dns", "envoy.cluster.eds", "envoy.cluster.dns"].contains(factory) {
            report("envoy.cluster-provided-lb", "cluster '\(name)' asks for lb_policy CLUSTER_PROVIDED, but its cluster type (\(factory)) provides no load balancer; use e.g. ROUND_ROBIN", path: cluster.join("lb_policy"), at: cluster.location(of: "lb_policy"))
        }
        if factory == "envoy.cluster.eds" && !cluster.has("eds_cluster_config") {
            report("envoy.eds-config", "EDS cluster '\(name)' has no eds_cluster_config; add eds_cluster_config: {eds_config: {ads: {}}} (or the config source that serves its endpoints)", path: cluster.path, at: cluster.location)
        }
        if factory == "envoy.cluster.original_dst", let assignment = cluster.child("load_assignment") {
            report("envoy.original-dst-load-assignment", "ORIGINAL_DST cluster '\(name)' takes its upstream hosts from each connection's original destination: remove load_assignment", path: assignment.path, at: assignment.location)
        }
    }
}
