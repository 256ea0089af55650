// Envoy's own semantic rules beyond protoc-gen-validate, the ones it applies when
// it builds listeners, clusters and routes from static configuration. Each rule
// is named after the Envoy error it mirrors (see the invalid corpus).

import Foundation

extension MessageView {
    /// This message and every message below it (Any payloads included), depth first; with
    /// `descendInto`, only into messages of the types it admits.
    func walk(descendInto: ((MessageID) -> Bool)? = nil, _ visit: (MessageView) -> Void) {
        visit(self)
        let descriptor = self.descriptor
        let isAny: Bool
        if case .any? = descriptor.wellKnownType { isAny = true } else { isAny = false }
        let fields = descriptor.fields
        for entry in message.fields {
            let field = fields[entry.fieldIndex]
            switch entry.value {
            case .message(let child):
                if let descendInto, !descendInto(child.type) { continue }
                // The path runs straight through an Any into the message it carries.
                MessageView(pool: pool, message: child, trail: isAny ? trail : PathTrail(parent: trail, step: field.name)).walk(descendInto: descendInto, visit)
            case .list(let elements):
                guard field.kind == .message else { continue }
                if let descendInto, let type = field.messageType, !pool.message(type).isMapEntry, !descendInto(type) { continue }
                let list = PathTrail(parent: trail, step: field.name)
                for (i, element) in elements.enumerated() {
                    guard case .message(let child) = element.value else { continue }
                    if pool.message(child.type).isMapEntry {
                        guard case .message(let value)? = child.value(at: 1)?.value else { continue }
                        let key = child.value(at: 0)?.value.stringValue ?? "\(i)"
                        MessageView(pool: pool, message: value, trail: PathTrail(parent: list, step: "[\"\(key)\"]")).walk(descendInto: descendInto, visit)
                    } else {
                        MessageView(pool: pool, message: child, trail: PathTrail(parent: list, index: i)).walk(descendInto: descendInto, visit)
                    }
                }
            default:
                break
            }
        }
    }

    func uint(_ name: String) -> UInt64? { if case .uint(let n)? = value(name) { return n } else { return nil } }
}

extension BootstrapChecks {
    /// Network filters that end a chain (nothing after them sees the bytes).
    static let terminalNetworkFilters: Set<String> = [
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "envoy.extensions.filters.network.redis_proxy.v3.RedisProxy",
        "envoy.extensions.filters.network.thrift_proxy.v3.ThriftProxy",
        "envoy.extensions.filters.network.dubbo_proxy.v3.DubboProxy",
        "envoy.extensions.filters.network.echo.v3.Echo",
        "envoy.extensions.filters.network.direct_response.v3.Config",
        "envoy.extensions.filters.network.generic_proxy.v3.GenericProxy",
    ]

    /// The message types checkEnvoyRules looks at.
    static let ruleTypeNames = [
        "envoy.config.listener.v3.FilterChain", "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", "envoy.config.route.v3.WeightedCluster",
        "envoy.config.route.v3.RouteConfiguration", "envoy.config.route.v3.VirtualHost", "envoy.config.route.v3.Route",
        "envoy.config.route.v3.WeightedCluster.ClusterWeight", "envoy.config.cluster.v3.Cluster",
        "envoy.extensions.filters.http.health_check.v3.HealthCheck", "envoy.config.core.v3.ApiConfigSource", "envoy.config.core.v3.ConfigSource",
        "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", "envoy.extensions.transport_sockets.tls.v3.TlsCertificate",
        "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext", "envoy.config.listener.v3.Listener",
        "envoy.config.bootstrap.v3.RuntimeLayer.DiskLayer", "envoy.extensions.wasm.v3.VmConfig",
        "envoy.extensions.geoip_providers.maxmind.v3.MaxMindConfig",
        "envoy.config.bootstrap.v3.LayeredRuntime", "envoy.config.core.v3.HealthCheck.HttpHealthCheck", "envoy.config.overload.v3.OverloadAction",
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext", "envoy.config.core.v3.HealthCheck.Payload",
        "xds.type.matcher.v3.Matcher.OnMatch", "envoy.config.common.matcher.v3.Matcher.OnMatch",
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig",
    ]

    /// Matchers whose actions Envoy builds with one context's action factories: the matcher's path and the action
    /// types those factories take. An action of any other type is "Didn't find a registered implementation".
    static let matcherActionContexts: [String: (field: String, owner: String, actions: Set<String>)] = [
        "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig": ("matcher", "the UDP proxy", ["envoy.extensions.filters.udp.udp_proxy.v3.Route"]),
    ]

    /// Rules over the whole bootstrap that need no cross-reference table.
    mutating func checkEnvoyRules(root: MessageView, staticClusters: [String: Int32], staticSecrets: Set<String>) {
        var usesXDS = false
        // Matchers met on the walk whose actions are typed by their owner (the walk visits a message before
        // the messages inside it, so a matcher's actions are checked after its owner registered it).
        var typedMatchers: [(path: String, owner: String, actions: Set<String>)] = []
        // Only messages of these types have rules; the rest are passed by ID without a string compare.
        let index = RuleTypeIndex.shared(for: pool)
        root.walk(descendInto: { index.canReach($0) }) { view in
            guard index.isRuleType(view.message.type) else { return }
            switch view.typeName {
            case "envoy.config.listener.v3.FilterChain":
                checkNetworkFilterChain(view)
            case "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager":
                checkRDS(view)
                var upgrades: Set<String> = []
                for upgrade in view.children("upgrade_configs") {
                    let type = (upgrade.string("upgrade_type") ?? "").lowercased()
                    if !upgrades.insert(type).inserted {
                        report("envoy.upgrade-config", "upgrade type '\(upgrade.string("upgrade_type") ?? "")' is configured twice; keep one upgrade_configs entry per type", path: upgrade.path, at: upgrade.location)
                    }
                }
            case "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter":
                if view.value("typed_config") == nil && view.value("config_discovery") == nil {
                    report("envoy.filter-config-missing", "HTTP filter '\(view.string("name") ?? "")' has no typed_config; Envoy finds filter implementations by config type, so add typed_config with its \"@type\"", path: view.path, at: view.location)
                }
            case "envoy.config.route.v3.WeightedCluster":
                var total: UInt64 = 0
                for cluster in view.children("clusters") {
                    if case .uint(let w)? = cluster.wrapped("weight") { total += w }
                }
                if total == 0 && !view.children("clusters").isEmpty {
                    report("envoy.weighted-clusters-zero", "the weights of weighted_clusters add up to 0; give at least one cluster a positive weight", path: view.path, at: view.location)
                }
            case "envoy.config.route.v3.RouteConfiguration", "envoy.config.route.v3.VirtualHost", "envoy.config.route.v3.Route", "envoy.config.route.v3.WeightedCluster.ClusterWeight":
                checkHeaderMutations(view)
                // Read from the route rather than walked to: the walk need not descend into every RouteAction.
                for mirror in view.child("route")?.children("request_mirror_policies") ?? [] where (mirror.string("cluster") ?? "").isEmpty == (mirror.string("cluster_header") ?? "").isEmpty {
                    report("envoy.mirror-cluster", "a request mirror policy names exactly one of cluster or cluster_header", path: mirror.path, at: mirror.location)
                }
            case "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext":
                // A server context needs a certificate to present (ServerContextConfigImpl).
                let common = view.child("common_tls_context")
                let sources = ["tls_certificates", "tls_certificate_sds_secret_configs", "tls_certificate_provider_instance", "custom_tls_certificate_selector",
                               "tls_certificate_certificate_provider", "tls_certificate_certificate_provider_instance", "custom_handshaker"]
                if !sources.contains(where: { common?.has($0) == true }) {
                    report("envoy.tls-server-certificate", "a DownstreamTlsContext presents no certificate: add common_tls_context.tls_certificates (or tls_certificate_sds_secret_configs)", path: view.path, at: view.location)
                }
                for certificate in common?.children("tls_certificates") ?? [] where !certificate.has("certificate_chain") && !certificate.has("pkcs12") {
                    report("envoy.tls-server-certificate", "a server TLS certificate needs its certificate_chain (or pkcs12)", path: certificate.path, at: certificate.location)
                }
            case "envoy.config.core.v3.HealthCheck.Payload":
                if let text = view.string("text"), text.count % 2 != 0 || !text.allSatisfy(\.isHexDigit) {
                    report("envoy.health-check-payload", "health check payload text '\(text)' is not a hex string (two hex digits per byte)", path: view.join("text"), at: view.location(of: "text"))
                }
            case "envoy.config.core.v3.HealthCheck.HttpHealthCheck":
                for field in ["expected_statuses", "retriable_statuses"] {
                    for range in view.children(field) {
                        var start: Int64 = 0, end: Int64 = 0
                        if case .int(let v)? = range.value("start") { start = v }
                        if case .int(let v)? = range.value("end") { end = v }
                        if start >= end || start < 100 || end > 600 {
                            report("envoy.health-check-status-range", "HTTP status range [\(start), \(end)) is not valid: Envoy needs 100 <= start < end <= 600", path: range.path, at: range.location)
                        }
                    }
                }
            case "envoy.config.overload.v3.OverloadAction":
                var seen: Set<String> = []
                for trigger in view.children("triggers") {
                    if let name = trigger.string("name"), !seen.insert(name).inserted {
                        report("envoy.overload-trigger", "overload action '\(view.string("name") ?? "")' has two triggers on resource monitor '\(name)'; give each resource one trigger", path: trigger.join("name"), at: trigger.location(of: "name"))
                    }
                }
            case "envoy.config.bootstrap.v3.LayeredRuntime":
                var seen: Set<String> = []
                for layer in view.children("layers") {
                    if let name = layer.string("name"), !seen.insert(name).inserted {
                        report("envoy.runtime-layer-name", "runtime layer name '\(name)' is used twice; give each layer its own name", path: layer.join("name"), at: layer.location(of: "name"))
                    }
                }
            case "envoy.config.cluster.v3.Cluster":
                checkCluster(view)
            case "envoy.extensions.filters.http.health_check.v3.HealthCheck":
                if case .bool(false)? = view.wrapped("pass_through_mode") ?? .bool(false), view.value("cache_time") != nil {
                    report("envoy.health-check-cache", "cache_time must not be set when pass_through_mode is disabled; remove cache_time or enable pass_through_mode", path: view.path + ".cache_time", at: view.location(of: "cache_time"))
                }
            case "envoy.config.core.v3.ApiConfigSource":
                for service in view.children("grpc_services") where bootstrapContext {
                    guard let cluster = service.child("envoy_grpc")?.string("cluster_name") else { continue }
                    // Only static clusters that are not EDS exist when xDS subscriptions start.
                    if staticClusters[cluster] == nil || staticClusters[cluster] == 3 {
                        report("envoy.config-source-cluster", "the xDS server cluster '\(cluster)' must be a static, non-EDS cluster in static_resources.clusters; define it there", path: service.path + ".envoy_grpc.cluster_name", at: service.location)
                    }
                }
            case "envoy.config.core.v3.ConfigSource":
                // `envoy --mode validate` does not start the LDS subscription (its validation server
                // builds no LdsApi), so the bootstrap's lds_config is neither subscribed nor checked.
                if bootstrapContext && view.path == "dynamic_resources.lds_config" { break }
                // Every other config source (ADS, gRPC, REST, a file) starts a subscription, and Envoy's
                // subscription factory refuses to start one for a node without id and cluster.
                usesXDS = true
                if let api = view.child("api_config_source") { checkSubscriptionServer(api) }
                if checkHostFiles { checkConfigSourcePath(view) }
            case "envoy.config.bootstrap.v3.RuntimeLayer.DiskLayer":
                if (view.string("symlink_root") ?? "").isEmpty {
                    report("envoy.runtime-disk-layer", "a runtime disk layer needs a symlink_root (the directory it reads); Envoy refuses an empty path", path: view.path, at: view.location)
                } else if checkHostFiles {
                    checkRuntimeDiskLayer(view)
                }
            case "envoy.extensions.wasm.v3.VmConfig" where checkHostFiles:
                checkWasmCode(view)
            case "envoy.extensions.geoip_providers.maxmind.v3.MaxMindConfig" where checkHostFiles:
                checkMaxMindDatabases(view)
            case "envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig" where bootstrapContext:
                checkStaticSecret(view, defined: staticSecrets)
            case "envoy.extensions.transport_sockets.tls.v3.TlsCertificate" where checkHostFiles:
                checkTLSCertificateFiles(view)
            case "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext" where checkHostFiles:
                checkValidationContextFiles(view)
            case "envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig":
                if let context = Self.matcherActionContexts[view.typeName], view.has(context.field) {
                    typedMatchers.append((view.join(context.field), context.owner, context.actions))
                }
            case "xds.type.matcher.v3.Matcher.OnMatch", "envoy.config.common.matcher.v3.Matcher.OnMatch":
                checkMatcherAction(view, typedBy: typedMatchers.last { view.path.hasPrefix($0.path + ".") })
            case "envoy.config.listener.v3.Listener":
                checkListenerManagerRules(view)
                if view.value("address") == nil && view.value("internal_listener") == nil && view.value("api_listener") == nil && view.value("additional_addresses") == nil {
                    report("envoy.listener-address", "listener '\(view.string("name") ?? "")' has no address; give it an address (or make it an internal_listener)", path: view.path, at: view.location)
                }
            default:
                break
            }
        }
        // The ADS stream is opened (and checks the node) whenever ads_config is set; other API config
        // sources (load reporting, health discovery) do not subscribe and do not need it.
        if let ads = root.child("dynamic_resources")?.child("ads_config") {
            usesXDS = true
            checkSubscriptionServer(ads)
        }
        if usesXDS && bootstrapContext {
            let node = root.child("node")
            if (node?.string("id") ?? "").isEmpty || (node?.string("cluster") ?? "").isEmpty {
                report("envoy.node-identity", "node 'id' and 'cluster' are required when configuration comes from a config source (xDS, ADS or a file); set node: {id: ..., cluster: ...}", path: "node", at: node?.location ?? root.location)
            }
        }
    }

    /// The server a subscription talks to (`Config::Utility::checkApiConfigSourceNames`): gRPC types
    /// name at most one gRPC service and no cluster; REST exactly one cluster and no gRPC service.
    mutating func checkSubscriptionServer(_ api: MessageView) {
        let services = api.children("grpc_services").count
        let clusters = api.stringValues("cluster_names").count
        let isGRPC = [2, 3, 5, 6].contains(api.enumNumber("api_type") ?? 0)  // (AGGREGATED_)(DELTA_)GRPC
        var problem: String?
        if services == 0 && clusters == 0 {
            problem = "an API config source needs a gRPC service (grpc_services) or, for REST, a cluster (cluster_names)"
        } else if isGRPC && clusters > 0 {
            problem = "a gRPC API config source takes grpc_services, not cluster_names; remove cluster_names"
        } else if isGRPC && services > 1 {
            problem = "a gRPC API config source takes exactly one gRPC service; Envoy does not fail over between several"
        } else if !isGRPC && services > 0 {
            problem = "a REST API config source takes cluster_names, not grpc_services"
        } else if !isGRPC && clusters != 1 {
            problem = "a REST API config source takes exactly one cluster in cluster_names"
        }
        if let problem { report("envoy.api-config-source", problem, path: api.path, at: api.location) }
    }

    mutating func checkNetworkFilterChain(_ chain: MessageView) {
        let filters = chain.children("filters")
        for (i, filter) in filters.enumerated() {
            let name = filter.string("name") ?? ""
            guard let type = filter.unpacked("typed_config")?.type else {
                if filter.value("config_discovery") == nil && filter.value("typed_config") == nil {
                    report("envoy.filter-config-missing", "network filter '\(name)' has no typed_config; add typed_config with its \"@type\"", path: filter.path, at: filter.location)
                }
                continue
            }
            let terminal = Self.terminalNetworkFilters.contains(type)
            if terminal && i != filters.count - 1 {
                report("envoy.network-filter-order", "terminal filter '\(name)' must be the last filter in a network filter chain; move it to the end", path: filter.path, at: filter.location)
            } else if !terminal && i == filters.count - 1 {
                report("envoy.network-filter-order", "the last network filter '\(name)' is not a terminal filter; end the chain with e.g. http_connection_manager or tcp_proxy", path: filter.path, at: filter.location)
            }
        }
    }

    mutating func checkRDS(_ hcm: MessageView) {
        guard let rds = hcm.child("rds") else { return }
        if rds.value("config_source") == nil && !(rds.string("route_config_name") ?? "").hasPrefix("xdstp://") {
            report("envoy.rds-config-source", "rds needs a config_source (e.g. config_source: {ads: {}}) unless route_config_name is an xdstp:// name", path: rds.path, at: rds.location)
        }
    }

    /// Envoy refuses to add or remove pseudo-headers (":path") and Host through header mutations.
    mutating func checkHeaderMutations(_ view: MessageView) {
        for field in ["request_headers_to_add", "response_headers_to_add"] {
            for option in view.children(field) {
                guard let key = option.child("header")?.string("key") else { continue }
                if key.hasPrefix(":") || (field.hasPrefix("request") && key.lowercased() == "host") {
                    report("envoy.header-not-modifiable", ":-prefixed or host headers may not be modified ('\(key)'); use the route's host_rewrite_* or prefix_rewrite options instead", path: option.path + ".header.key", at: option.location)
                }
            }
        }
        for field in ["request_headers_to_remove", "response_headers_to_remove"] {
            for (key, location) in view.strings(field) where key.hasPrefix(":") || (field.hasPrefix("request") && key.lowercased() == "host") {
                report("envoy.header-not-modifiable", ":-prefixed or host headers may not be removed ('\(key)')", path: view.path + "." + field, at: location)
            }
        }
    }

    static func isPrime(_ n: UInt64) -> Bool {
        if n < 2 { return false }
        var d: UInt64 = 2
        while d * d <= n { if n % d == 0 { return false }; d += 1 }
        return true
    }

    mutating func checkCluster(_ cluster: MessageView) {
        let name = cluster.string("name") ?? ""
        let healthChecks = cluster.children("health_checks")
        if healthChecks.count > 1 {
            for check in healthChecks where (check.string("name") ?? "").isEmpty {
                report("envoy.health-check-name", "cluster '\(name)' has several health checks, so each needs a name", path: check.path, at: check.location)
            }
        }
        checkClusterFactoryRules(cluster)
        if case .uint(let size)? = cluster.child("maglev_lb_config")?.wrapped("table_size"), !Self.isPrime(size) {
            report("envoy.maglev-table-size", "the Maglev table_size \(size) is not a prime number; use a prime such as 65537", path: cluster.join("maglev_lb_config.table_size"), at: cluster.child("maglev_lb_config")?.location(of: "table_size"))
        }
        if let ring = cluster.child("ring_hash_lb_config") {
            var minimum: UInt64 = 1024
            var maximum: UInt64 = 8 * 1024 * 1024
            if case .uint(let v)? = ring.wrapped("minimum_ring_size") { minimum = v }
            if case .uint(let v)? = ring.wrapped("maximum_ring_size") { maximum = v }
            if minimum > maximum {
                report("envoy.ring-hash-size", "ring hash minimum_ring_size (\(minimum)) is larger than maximum_ring_size (\(maximum))", path: ring.path, at: ring.location)
            }
        }
        // LOAD_BALANCING_POLICY_CONFIG (7) takes its policy from load_balancing_policy.
        if cluster.enumNumber("lb_policy") == 7 && cluster.value("load_balancing_policy") == nil {
            report("envoy.lb-policy-config", "cluster '\(name)': lb_policy LOAD_BALANCING_POLICY_CONFIG needs load_balancing_policy to be set", path: cluster.path + ".lb_policy", at: cluster.location(of: "lb_policy"))
        }
    }
}

/// Which message types can contain (at any depth) a message of a target type. A type with an
/// Any or Struct field can contain anything. Lets a walk skip subtrees no rule looks at.
struct TypeReachability {
    let pool: DescriptorPool
    let targets: Set<MessageID>
    private var known: [MessageID: Bool] = [:]

    init(pool: DescriptorPool, targets: Set<MessageID>) {
        self.pool = pool
        self.targets = targets
    }

    mutating func canReach(_ type: MessageID) -> Bool {
        if let answer = known[type] { return answer }
        if targets.contains(type) { known[type] = true; return true }
        known[type] = false  // provisional, breaks cycles
        let descriptor = pool.message(type)
        var answer = false
        if case .any? = descriptor.wellKnownType { answer = true }
        for field in descriptor.fields where !answer {
            if let child = field.messageType { answer = canReach(child) }
        }
        known[type] = answer
        return answer
    }
}

/// The rule types of `checkEnvoyRules` and which types can contain them, computed once per pool
/// (the compiler checks every generated resource separately: recomputing it per resource showed up).
final class RuleTypeIndex: Sendable {
    let ruleTypes: Set<MessageID>
    private let reaching: [Bool]
    /// `ruleTypes` by ID: asked for every message the walk visits, where hashing the ID showed up.
    private let isRule: [Bool]

    init(pool: DescriptorPool) {
        let ruleTypes = Set(BootstrapChecks.ruleTypeNames.compactMap { pool.messageID(named: $0) })
        self.ruleTypes = ruleTypes
        var reach = TypeReachability(pool: pool, targets: ruleTypes)
        reaching = (0..<pool.messages.count).map { reach.canReach(MessageID($0)) }
        isRule = (0..<pool.messages.count).map { ruleTypes.contains(MessageID($0)) }
    }

    func canReach(_ type: MessageID) -> Bool { reaching[Int(type)] }

    func isRuleType(_ type: MessageID) -> Bool { isRule[Int(type)] }

    private static let cache = PerPoolCache<RuleTypeIndex>()

    static func shared(for pool: DescriptorPool) -> RuleTypeIndex {
        cache.value(for: pool) { RuleTypeIndex(pool: pool) }
    }
}

extension BootstrapChecks {
    /// A matcher's action is an extension found by its config type (Matcher::ActionFactory): it needs a
    /// typed_config with an @type, and where the matcher's owner takes one kind of action, that kind.
    mutating func checkMatcherAction(_ onMatch: MessageView, typedBy context: (path: String, owner: String, actions: Set<String>)?) {
        guard let action = onMatch.child("action") else { return }
        let name = action.string("name") ?? ""
        let url = action.value("typed_config")?.messageValue?.value(at: 0)?.value.stringValue ?? ""
        let type = url.split(separator: "/").last.map(String.init) ?? ""
        guard !type.isEmpty else {
            report("envoy.matcher-action", "matcher action '\(name)' has no typed_config \"@type\": Envoy finds the action's implementation by its config type; add typed_config with the action's \"@type\"", path: action.path, at: action.location)
            return
        }
        if let context, !context.actions.contains(type) {
            report("envoy.matcher-action", "matcher action '\(name)' is a \(type), but \(context.owner) takes \(context.actions.sorted().joined(separator: " or ")) actions; use one of those", path: action.join("typed_config"), at: action.location(of: "typed_config"))
        }
    }
}
