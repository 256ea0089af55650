// Rules over one generated resource (routes that can never match, per-try timeouts longer
// than the route's, split weights against a declared total, mutual TLS inside the mesh),
// and the references a resource makes to others — checked later against the proxy
// group it is served in (GroupRules).
import EnvoySchema

/// A name one resource uses to refer to another.
struct ResourceReference: Sendable {
    enum Kind: Sendable {
        case routeCluster, weightedCluster, mirrorCluster, tcpProxyCluster, routeConfiguration, loadAssignment, secret

        var target: ResourceKind {
            switch self {
            case .routeCluster, .weightedCluster, .mirrorCluster, .tcpProxyCluster: return .clusters
            case .routeConfiguration: return .routeConfigurations
            case .loadAssignment: return .clusterLoadAssignments
            case .secret: return .secrets
            }
        }
    }
    let kind: Kind
    let name: String
    /// Where the reference stands; rendered only when a group rule reports it (most references never are).
    let at: JoinedPath
    var path: String { at.rendered }
    let location: SourceLocation?
    /// Route id (`route:<id>`) whose user definition a problem should point at, if any.
    let provenance: String?
}

/// What group-level rules need to know about a resource, so the decoded message can be dropped.
struct ResourceFacts: Sendable {
    var references: [ResourceReference] = []
    /// `address:port` of a listener.
    var listenerAddress: String?
    var listenerAddressLocation: SourceLocation?
}

/// A diagnostic whose location may be replaced by the user's definition of a named thing.
struct PendingDiagnostic: Sendable {
    var diagnostic: Diagnostic
    /// e.g. `route:orders/canary`, `listener:orders.http.inbound`.
    var provenance: String?
}

struct ResourceRules {
    let pool: DescriptorPool
    var diagnostics: [PendingDiagnostic] = []

    init(pool: DescriptorPool) { self.pool = pool }

    mutating func report(_ severity: Diagnostic.Severity = .error, _ rule: String, _ message: String, path: String, at location: SourceLocation?, provenance: String? = nil) {
        diagnostics.append(PendingDiagnostic(diagnostic: Diagnostic(severity, rule: rule, message: message, path: path, location: location), provenance: provenance))
    }

    // MARK: References

    static let tcpProxyType = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

    /// Route checks and the references a resource makes, found by visiting only the fields
    /// where Envoy resources refer to each other (not every node).
    mutating func analyze(_ root: MessageView, kind: ResourceKind) -> ResourceFacts {
        var facts = ResourceFacts()
        switch kind {
        case .routeConfigurations:
            routes(root, into: &facts)
        case .listeners:
            var chains = root.children("filter_chains")
            if let d = root.child("default_filter_chain") { chains.append(d) }
            for chain in chains {
                for filter in chain.children("filters") {
                    guard let (type, config) = filter.unpacked("typed_config") else { continue }
                    switch type {
                    case TypeNames.httpConnectionManager:
                        if let rds = config.child("rds"), let name = rds.string("route_config_name"), !name.isEmpty {
                            facts.references.append(ResourceReference(kind: .routeConfiguration, name: name, at: rds.joined("route_config_name"), location: rds.location(of: "route_config_name"), provenance: nil))
                        }
                        if let inline = config.child("route_config") { routes(inline, into: &facts) }
                    case Self.tcpProxyType:
                        tcpProxy(config, into: &facts)
                    default:
                        break
                    }
                }
                transportSocket(chain.child("transport_socket"), into: &facts)
            }
            // A gRPC client's listener (api_listener) refers to its routes like a filter chain's HCM does.
            if let (type, hcm) = root.child("api_listener")?.unpacked("api_listener"), type == TypeNames.httpConnectionManager,
               let rds = hcm.child("rds"), let name = rds.string("route_config_name"), !name.isEmpty {
                facts.references.append(ResourceReference(kind: .routeConfiguration, name: name, at: rds.joined("route_config_name"), location: rds.location(of: "route_config_name"), provenance: nil))
            }
            if let socket = root.child("address")?.child("socket_address"), let host = socket.string("address") {
                var port: UInt64 = 0
                if case .uint(let p)? = socket.value("port_value") { port = p }
                if port != 0 {
                    facts.listenerAddress = "\(host):\(port)"
                    facts.listenerAddressLocation = socket.location(of: "port_value")
                }
            }
        case .clusters:
            transportSocket(root.child("transport_socket"), into: &facts)
            for match in root.children("transport_socket_matches") { transportSocket(match.child("transport_socket"), into: &facts) }
            // EDS (type 3) clusters take their endpoints from a ClusterLoadAssignment by service_name or cluster name.
            if root.enumNumber("type") == 3 {
                let eds = root.child("eds_cluster_config")
                let name = eds?.string("service_name").flatMap { $0.isEmpty ? nil : $0 } ?? root.string("name") ?? ""
                facts.references.append(ResourceReference(kind: .loadAssignment, name: name, at: JoinedPath(trail: nil, name: "type"), location: root.location(of: "type"), provenance: nil))
            }
        default:
            break
        }
        return facts
    }

    mutating func routes(_ configuration: MessageView, into facts: inout ResourceFacts) {
        var domains: [String: String] = [:]
        for vhost in configuration.children("virtual_hosts") {
            checkVirtualHost(vhost)
            // Envoy refuses a route configuration where two virtual hosts claim one domain.
            let vhostName = vhost.string("name") ?? ""
            for (i, domain) in vhost.stringValues("domains").enumerated() {
                let key = domain.lowercased()
                if let first = domains[key] {
                    report(.error, "xref.duplicate-domain", "domain '\(domain)' is already served by virtual host '\(first)' of route configuration '\(configuration.string("name") ?? "")'; a domain may belong to one virtual host only — rename the host alias",
                           path: vhost.join("domains") + "[\(i)]", at: vhost.location(of: "domains"), provenance: "domain:\(vhostName)|\(domain)")
                } else {
                    domains[key] = vhostName
                }
            }
            for route in vhost.children("routes") {
                guard let action = route.child("route") else { continue }
                let provenance = route.string("name").map { "route:" + $0 }
                if let c = action.string("cluster"), !c.isEmpty {
                    facts.references.append(ResourceReference(kind: .routeCluster, name: c, at: action.joined("cluster"), location: action.location(of: "cluster"), provenance: provenance))
                }
                for w in action.child("weighted_clusters")?.children("clusters") ?? [] {
                    if let c = w.string("name"), !c.isEmpty {
                        facts.references.append(ResourceReference(kind: .weightedCluster, name: c, at: w.joined("name"), location: w.location(of: "name"), provenance: provenance))
                    }
                }
                for m in action.children("request_mirror_policies") {
                    if let c = m.string("cluster"), !c.isEmpty {
                        facts.references.append(ResourceReference(kind: .mirrorCluster, name: c, at: m.joined("cluster"), location: m.location(of: "cluster"), provenance: provenance))
                    }
                }
            }
        }
    }

    func tcpProxy(_ config: MessageView, into facts: inout ResourceFacts) {
        if let c = config.string("cluster"), !c.isEmpty {
            facts.references.append(ResourceReference(kind: .tcpProxyCluster, name: c, at: config.joined("cluster"), location: config.location(of: "cluster"), provenance: nil))
        }
        for w in config.child("weighted_clusters")?.children("clusters") ?? [] {
            if let c = w.string("name"), !c.isEmpty {
                facts.references.append(ResourceReference(kind: .tcpProxyCluster, name: c, at: w.joined("name"), location: w.location(of: "name"), provenance: nil))
            }
        }
    }

    /// Secrets a TLS context asks the xDS server for (SDS with an sds_config): they must be in the group.
    func transportSocket(_ socket: MessageView?, into facts: inout ResourceFacts) {
        guard let (type, tls) = socket?.unpacked("typed_config"), type == Self.upstreamTLS || type == Self.downstreamTLS,
              let common = tls.child("common_tls_context") else { return }
        var configs = common.children("tls_certificate_sds_secret_configs")
        if let v = common.child("validation_context_sds_secret_config") { configs.append(v) }
        if let v = common.child("combined_validation_context")?.child("validation_context_sds_secret_config") { configs.append(v) }
        for config in configs where config.has("sds_config") {
            if let name = config.string("name"), !name.isEmpty {
                facts.references.append(ResourceReference(kind: .secret, name: name, at: config.joined("name"), location: config.location(of: "name"), provenance: nil))
            }
        }
    }

    // MARK: Routes

    /// Shadowed routes, per-try timeouts and weight totals of one virtual host.
    mutating func checkVirtualHost(_ vhost: MessageView) {
        let routes = vhost.children("routes")
        let vhostPerTry = vhost.child("retry_policy")?.milliseconds("per_try_timeout")
        for (j, route) in routes.enumerated() {
            let provenance = route.string("name").map { "route:" + $0 }
            if let match = route.child("match") {
                for i in 0..<j {
                    guard let earlier = routes[i].child("match"), Self.covers(earlier, match) else { continue }
                    let earlierName = routes[i].string("name").map { "'\($0)'" } ?? "#\(i + 1)"
                    let name = route.string("name").map { "'\($0)'" } ?? "#\(j + 1)"
                    report(.warning, "route.shadowed", "route \(name) can never match: route \(earlierName) before it in virtual host '\(vhost.string("name") ?? "")' catches all of its traffic; move it above \(earlierName) or make its match more specific",
                           path: route.path, at: route.location, provenance: provenance)
                    break
                }
            }
            guard let action = route.child("route") else { continue }
            // Envoy's route timeout defaults to 15 s; 0 disables it.
            let timeout = action.milliseconds("timeout") ?? 15_000
            let perTry = action.child("retry_policy")?.milliseconds("per_try_timeout") ?? vhostPerTry
            if let perTry, timeout > 0, perTry > timeout {
                report(.error, "route.per-try-timeout", "the per-try timeout (\(format(perTry))) is longer than the route timeout (\(format(timeout))), so no retry can ever happen; make per_try_timeout shorter than timeout",
                       path: action.path + ".retry_policy.per_try_timeout", at: action.child("retry_policy")?.location(of: "per_try_timeout") ?? action.location, provenance: provenance)
            }
            if let weighted = action.child("weighted_clusters"), case .uint(let total)? = weighted.wrapped("total_weight") {
                var sum: UInt64 = 0
                for c in weighted.children("clusters") { if case .uint(let w)? = c.wrapped("weight") { sum += w } }
                if sum != total {
                    report(.error, "route.split-total", "the weights of weighted_clusters add up to \(sum), not the declared total_weight \(total); make them add up",
                           path: weighted.path, at: weighted.location(of: "total_weight"), provenance: provenance)
                }
            }
        }
    }

    func format(_ ms: Int64) -> String { ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms" }

    /// The RouteMatch fields `covers` understands (built once: it runs for every pair of routes of a virtual host).
    static let coveringMatchFields: Set<String> = ["prefix", "path", "safe_regex", "case_sensitive", "headers"]

    /// True when every request `later` matches is matched by `earlier` already.
    static func covers(_ earlier: MessageView, _ later: MessageView) -> Bool {
        let descriptor = earlier.pool.message(earlier.message.type)
        for entry in earlier.message.fields where !coveringMatchFields.contains(descriptor.fields[entry.fieldIndex].name) { return false }
        let earlierSensitive = earlier.wrapped("case_sensitive")?.boolValue ?? true
        let laterSensitive = later.wrapped("case_sensitive")?.boolValue ?? true
        guard earlierSensitive == laterSensitive || !earlierSensitive else { return false }
        func fold(_ s: String) -> String { earlierSensitive ? s : s.lowercased() }
        let pathCovered: Bool
        if let prefix = earlier.string("prefix") {
            if let p = later.string("prefix") { pathCovered = fold(p).hasPrefix(fold(prefix)) }
            else if let p = later.string("path") { pathCovered = fold(p).hasPrefix(fold(prefix)) }
            else { pathCovered = prefix.isEmpty || prefix == "/" }  // every path starts with "/"
        } else if let path = earlier.string("path") {
            pathCovered = later.string("path").map { fold($0) == fold(path) } ?? false
        } else if let regex = earlier.child("safe_regex")?.string("regex") {
            pathCovered = later.child("safe_regex")?.string("regex") == regex
        } else {
            pathCovered = false
        }
        guard pathCovered else { return false }
        // Every header condition of the earlier route must also be one of the later route's.
        let laterHeaders = later.children("headers").map { $0.message.serialized(pool: later.pool) }
        for header in earlier.children("headers") where !laterHeaders.contains(header.message.serialized(pool: earlier.pool)) {
            return false
        }
        return true
    }

    // MARK: Mutual TLS

    static let upstreamTLS = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
    static let downstreamTLS = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"

    /// A cluster to a mesh service must present a client certificate over TLS.
    mutating func checkMeshCluster(_ cluster: MessageView, service: String) {
        let name = cluster.string("name") ?? ""
        guard let (type, tls) = cluster.child("transport_socket")?.unpacked("typed_config"), type == Self.upstreamTLS else {
            report(.error, "mesh.mtls-required", "cluster '\(name)' reaches service '\(service)' without TLS; mesh traffic is mutual TLS — add a transport_socket with an UpstreamTlsContext carrying the mesh identity, or opt '\(service)' out with mtls: {mode: disabled, reason: ...}",
                   path: "transport_socket", at: cluster.location(of: "transport_socket"))
            return
        }
        let common = tls.child("common_tls_context")
        if common?.children("tls_certificates").isEmpty ?? true, common?.children("tls_certificate_sds_secret_configs").isEmpty ?? true,
           common?.child("tls_certificate_provider_instance") == nil {
            report(.error, "mesh.mtls-required", "cluster '\(name)' uses TLS without a client certificate, so the sidecars of '\(service)' cannot verify the caller; add tls_certificate_sds_secret_configs (the mesh identity) to common_tls_context",
                   path: tls.path + ".common_tls_context", at: common?.location ?? tls.location)
        }
    }

    /// A listener that takes mesh traffic must require a client certificate on every filter chain.
    mutating func checkMeshListener(_ listener: MessageView, service: String) {
        let name = listener.string("name") ?? ""
        var chains = listener.children("filter_chains")
        if let d = listener.child("default_filter_chain") { chains.append(d) }
        for chain in chains {
            guard let (type, tls) = chain.child("transport_socket")?.unpacked("typed_config"), type == Self.downstreamTLS else {
                report(.error, "mesh.mtls-required", "listener '\(name)' accepts mesh traffic for '\(service)' without TLS; add a transport_socket with a DownstreamTlsContext that requires client certificates, or opt '\(service)' out with mtls: {mode: disabled, reason: ...}",
                       path: chain.path, at: chain.location)
                continue
            }
            if tls.wrapped("require_client_certificate")?.boolValue != true {
                report(.error, "mesh.mtls-required", "listener '\(name)' does not require client certificates, so any caller can reach '\(service)'; set require_client_certificate: true",
                       path: tls.path + ".require_client_certificate", at: tls.location(of: "require_client_certificate"))
            }
        }
    }
}
