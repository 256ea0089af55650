// What Envoy checks when it builds listeners, clusters and subscriptions from a bootstrap, one
// named case per behaviour, each with Envoy 1.40's verdict: meshctl must report exactly the
// expected rule (or nothing), and when the pinned Envoy is at hand it must agree on every case.
import EnvoySchema
import Foundation
import XCTest

final class LoadRuleTests: XCTestCase {
    struct Case {
        let name: String
        let yaml: String
        /// The rule meshctl reports; nil when Envoy accepts the file.
        let rule: String?
        var messageContains = ""
    }

    // MARK: Building blocks

    static let staticCluster = """
      - name: app
        type: STATIC
        load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}}]}]}

    """
    static let tcpProxy = #"{name: tcp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: tcp, cluster: app}}"#
    static let udpProxy = #"{name: udp, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.UdpProxyConfig, stat_prefix: udp, matcher: {on_no_match: {action: {name: route, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route, cluster: app}}}}}}"#

    /// A bootstrap with the static cluster `app` plus `clusters` and `listeners` (YAML list items).
    static func bootstrap(clusters: String = "", listeners: String = "", extra: String = "") -> String {
        var text = "static_resources:\n  clusters:\n" + staticCluster + clusters
        if !listeners.isEmpty { text += "  listeners:\n" + listeners }
        return text + extra
    }

    /// A TCP listener on 127.0.0.1:10000 with `chains` (YAML list items at the filter_chains level).
    static func listener(address: String = "{address: 127.0.0.1, port_value: 10000}", extra: String = "", chains: String) -> String {
        "  - name: l\n    address: {socket_address: \(address)}\n\(extra)    filter_chains:\n\(chains)"
    }

    static func chain(_ match: String = "", name: String = "") -> String {
        var text = "    - "
        if !name.isEmpty { text += "name: \(name)\n      " }
        if !match.isEmpty { text += "filter_chain_match: \(match)\n      " }
        return text + "filters: [\(tcpProxy)]\n"
    }

    static let oneChain = chain()

    static let udpListener = "  - name: dns\n    address: {socket_address: {address: 127.0.0.1, port_value: 10053, protocol: UDP}}\n    listener_filters: [\(udpProxy)]\n"

    static let grpcSource = "{api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: app}}]}"

    static func hostnameCluster(_ discovery: String, endpoints: String = "[{endpoint: {address: {socket_address: {address: backend.internal, port_value: 80}}}}]") -> String {
        "  - name: custom\n\(discovery)\n    load_assignment: {cluster_name: custom, endpoints: [{lb_endpoints: \(endpoints)}]}\n"
    }

    static func transportSocket(_ type: String) -> String {
        let certificate = type == "DownstreamTlsContext" ? ", common_tls_context: {tls_certificates: [{certificate_chain: {inline_string: c}, private_key: {inline_string: k}}]}" : ""
        return #"{name: envoy.transport_sockets.tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.\#(type)\#(certificate)}}"#
    }

    static func hcm(filters: String) -> String {
        """
            - filters:
              - name: hcm
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: http
                  route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: app}}]}]}
                  http_filters:
        \(filters)
                  - {name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}

        """
    }

    static func secret(_ name: String, _ kind: String) -> String {
        switch kind {
        case "tls_certificate": return "  - {name: \(name), tls_certificate: {certificate_chain: {inline_string: x}, private_key: {inline_string: k}}}\n"
        default: return "  - {name: \(name), \(kind): {trusted_ca: {inline_string: z}}}\n"
        }
    }

    // MARK: Cases

    static let cases: [Case] = [
        // UDP listeners take UDP listener filters (ListenerImpl::createListenerFilterFactories by socket type).
        Case(name: "UDP proxy as a UDP listener's filter", yaml: bootstrap(listeners: udpListener), rule: nil),
        Case(name: "UDP proxy on a TCP listener", yaml: bootstrap(listeners: listener(extra: "    listener_filters: [\(udpProxy)]\n", chains: oneChain)),
             rule: "schema.extension-category", messageContains: "TCP listener"),
        // ListenerImpl compares the socket type with the address: TCP and UDP may share an address and port.
        Case(name: "a UDP and a TCP listener on one address and port",
             yaml: bootstrap(listeners: udpListener + "  - name: dns-tcp\n    address: {socket_address: {address: 127.0.0.1, port_value: 10053}}\n    filter_chains:\n" + oneChain), rule: nil),
        Case(name: "two UDP listeners on one address and port",
             yaml: bootstrap(listeners: udpListener + udpListener.replacingOccurrences(of: "name: dns", with: "name: dns2")), rule: "xref.duplicate-address"),
        // Matcher actions are found by config type among the owner's action factories.
        Case(name: "UDP proxy route action without a type",
             yaml: bootstrap(listeners: udpListener.replacingOccurrences(of: #"typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route, cluster: app}"#, with: "typed_config: {}")),
             rule: "envoy.matcher-action", messageContains: "no typed_config"),
        Case(name: "UDP proxy matcher with an HTTP action",
             yaml: bootstrap(listeners: udpListener.replacingOccurrences(of: #"typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.udp.udp_proxy.v3.Route, cluster: app}"#,
                                                                          with: #"typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.composite.v3.ExecuteFilterAction}"#)),
             rule: "envoy.matcher-action", messageContains: "the UDP proxy takes"),
        Case(name: "TLS inspector on a UDP listener",
             yaml: bootstrap(listeners: "  - name: dns\n    address: {socket_address: {address: 127.0.0.1, port_value: 10053, protocol: UDP}}\n    listener_filters: [{name: tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]\n"),
             rule: "schema.extension-category", messageContains: "UDP listener filter"),
        Case(name: "connection-less UDP listener with a filter chain",
             yaml: bootstrap(listeners: udpListener + "    filter_chains:\n" + oneChain), rule: "envoy.udp-listener-filter-chains"),
        Case(name: "TCP listener without filter chains",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n"), rule: "envoy.listener-filter-chains"),

        // Node identity: only subscriptions need it (Config::Utility::checkLocalInfo in the subscription factory and the ADS mux).
        Case(name: "load reporting without node identity",
             yaml: bootstrap(extra: "cluster_manager: {load_stats_config: \(grpcSource)}\n"), rule: nil),
        Case(name: "health discovery without node identity", yaml: bootstrap(extra: "hds_config: \(grpcSource)\n"), rule: nil),
        Case(name: "LDS is not started by envoy --mode validate",
             yaml: bootstrap(extra: "dynamic_resources: {lds_config: {path_config_source: {path: /nonexistent/lds.yaml}}}\n"), rule: nil),
        Case(name: "file-based CDS without node identity",
             yaml: bootstrap(extra: "dynamic_resources: {cds_config: {path_config_source: {path: /dev/null}}}\n"), rule: "envoy.node-identity"),
        Case(name: "ADS without node identity",
             yaml: bootstrap(extra: "dynamic_resources: {ads_config: \(grpcSource), cds_config: {ads: {}}}\n"), rule: "envoy.node-identity"),

        Case(name: "ADS with two gRPC services",
             yaml: bootstrap(extra: "node: {id: edge-1, cluster: edge}\ndynamic_resources: {ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: app}}, {envoy_grpc: {cluster_name: app}}]}, cds_config: {ads: {}}}\n"),
             rule: "envoy.api-config-source"),
        Case(name: "gRPC CDS naming a cluster", yaml: bootstrap(extra: "node: {id: edge-1, cluster: edge}\ndynamic_resources: {cds_config: {api_config_source: {api_type: GRPC, transport_api_version: V3, cluster_names: [app], grpc_services: [{envoy_grpc: {cluster_name: app}}]}}}\n"),
             rule: "envoy.api-config-source"),
        Case(name: "load reporting may list two gRPC services",
             yaml: bootstrap(extra: "cluster_manager: {load_stats_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: app}}, {envoy_grpc: {cluster_name: app}}]}}\n"), rule: nil),

        // Custom cluster types: the factory is chosen by typed_config type, then by name.
        Case(name: "DNS cluster extension with hostnames",
             yaml: bootstrap(clusters: hostnameCluster("    cluster_type: {name: envoy.cluster.dns, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster}}")), rule: nil),
        Case(name: "typed_config picks the factory, not the name",
             yaml: bootstrap(clusters: hostnameCluster("    cluster_type: {name: envoy.cluster.static, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster}}")), rule: nil),
        Case(name: "a Struct typed_config means by name",
             yaml: bootstrap(clusters: hostnameCluster("    cluster_type: {name: envoy.cluster.strict_dns, typed_config: {\"@type\": type.googleapis.com/google.protobuf.Struct}}")), rule: nil),
        Case(name: "the static factory by name takes IPs only",
             yaml: bootstrap(clusters: hostnameCluster("    cluster_type: {name: envoy.cluster.static}")), rule: "xref.static-cluster-hostname"),
        Case(name: "redis cluster resolves its hostnames",
             yaml: bootstrap(clusters: hostnameCluster("    lb_policy: CLUSTER_PROVIDED\n    cluster_type: {name: envoy.clusters.redis, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig}}")), rule: nil),
        Case(name: "unknown cluster factory name",
             yaml: bootstrap(clusters: hostnameCluster("    cluster_type: {name: envoy.cluster.nope}")), rule: "envoy.cluster-factory"),
        Case(name: "DNS cluster in logical mode resolves one name",
             yaml: bootstrap(clusters: hostnameCluster("    cluster_type: {name: envoy.cluster.dns, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.clusters.dns.v3.DnsCluster, all_addresses_in_single_endpoint: true}}",
                                                       endpoints: "[{endpoint: {address: {socket_address: {address: a.internal, port_value: 80}}}}, {endpoint: {address: {socket_address: {address: b.internal, port_value: 80}}}}]")),
             rule: "envoy.logical-dns-endpoints"),
        Case(name: "ORIGINAL_DST with a load assignment",
             yaml: bootstrap(clusters: hostnameCluster("    type: ORIGINAL_DST\n    lb_policy: CLUSTER_PROVIDED")), rule: "envoy.original-dst-load-assignment"),

        Case(name: "EDS cluster without an EDS config", yaml: bootstrap(clusters: "  - {name: eds, type: EDS}\n"), rule: "envoy.eds-config"),
        Case(name: "static endpoint without an address",
             yaml: bootstrap(clusters: "  - name: s\n    type: STATIC\n    load_assignment: {cluster_name: s, endpoints: [{lb_endpoints: [{endpoint: {}}]}]}\n"), rule: "xref.static-cluster-hostname"),

        // Transport sockets and HTTP filters by side.
        Case(name: "DownstreamTlsContext in a cluster",
             yaml: bootstrap(clusters: "  - name: tls\n    type: STATIC\n    transport_socket: \(transportSocket("DownstreamTlsContext"))\n"),
             rule: "schema.extension-category", messageContains: "upstream (cluster) transport socket"),
        Case(name: "UpstreamTlsContext in a listener",
             yaml: bootstrap(listeners: listener(chains: "    - transport_socket: \(transportSocket("UpstreamTlsContext"))\n      filters: [\(tcpProxy)]\n")),
             rule: "schema.extension-category", messageContains: "downstream (listener) transport socket"),
        Case(name: "UpstreamTlsContext in a cluster", yaml: bootstrap(clusters: "  - name: tls\n    type: STATIC\n    transport_socket: \(transportSocket("UpstreamTlsContext"))\n"), rule: nil),
        Case(name: "upstream-only HTTP filter in the connection manager",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: codec, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec}}"#)),
             rule: "schema.extension-category", messageContains: "is not a HTTP filter"),
        Case(name: "downstream-only HTTP filter among a cluster's upstream filters",
             yaml: bootstrap(clusters: """
               - name: filtered
                 type: STATIC
                 typed_extension_protocol_options:
                   envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                     "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                     explicit_http_config: {http_protocol_options: {}}
                     http_filters:
                     - {name: cors, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors}}
                     - {name: codec, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec}}

             """), rule: "schema.extension-category", messageContains: "upstream HTTP filter"),

        // A factory registers its per-route config too, but its filter slot unpacks only its own config
        // (an empty Any is not unpacked at all).
        Case(name: "per-route config in the HTTP filter slot",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: authz, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute, disabled: true}}"#)),
             rule: "schema.extension-category", messageContains: "per-route config of envoy.filters.http.ext_authz"),
        Case(name: "empty per-route config in the HTTP filter slot",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: rbac, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute}}"#)),
             rule: nil),

        Case(name: "network filter with an empty typed_config",
             yaml: bootstrap(listeners: listener(chains: "    - filters: [{name: envoy.filters.network.tcp_proxy, typed_config: {}}]\n")), rule: "schema.extension-category", messageContains: "typed_config is empty"),
        Case(name: "mirror policy without a cluster",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: "").replacingOccurrences(of: "route: {cluster: app}", with: "route: {cluster: app, request_mirror_policies: [{runtime_fraction: {default_value: {numerator: 50}}}]}")),
             rule: "envoy.mirror-cluster"),
        Case(name: "two runtime layers with one name",
             yaml: bootstrap(extra: "layered_runtime: {layers: [{name: base, static_layer: {a: 1}}, {name: base, admin_layer: {}}]}\n"), rule: "envoy.runtime-layer-name"),

        Case(name: "empty per-route filter config",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: "").replacingOccurrences(of: "route: {cluster: app}", with: "route: {cluster: app}, typed_per_filter_config: {envoy.filters.http.buffer: {}}")),
             rule: "schema.extension-category", messageContains: "typed_config is empty"),
        Case(name: "a cluster as a per-route filter config",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: "").replacingOccurrences(of: "route: {cluster: app}", with: #"route: {cluster: app}, typed_per_filter_config: {envoy.filters.http.buffer: {"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c}}"#)),
             rule: "schema.extension-category"),
        Case(name: "per-route configs and the FilterConfig wrapper",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: envoy.filters.http.buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 1024}}"#)
                                .replacingOccurrences(of: "route: {cluster: app}", with: #"route: {cluster: app}, typed_per_filter_config: {envoy.filters.http.buffer: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, disabled: true}, envoy.filters.http.cors: {"@type": type.googleapis.com/envoy.config.route.v3.FilterConfig, is_optional: true, config: {"@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy}}}"#)),
             rule: nil),
        Case(name: "health check status range upside down",
             yaml: bootstrap(clusters: "  - name: hc\n    type: STATIC\n    health_checks: [{timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 2, http_health_check: {path: /healthz, expected_statuses: [{start: 429, end: 200}]}}]\n"),
             rule: "envoy.health-check-status-range"),
        Case(name: "overload action with two triggers on one resource",
             yaml: bootstrap(extra: #"overload_manager: {refresh_interval: 0.25s, resource_monitors: [{name: envoy.resource_monitors.fixed_heap, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig, max_heap_size_bytes: 1073741824}}], actions: [{name: envoy.overload_actions.shrink_heap, triggers: [{name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.9}}, {name: envoy.resource_monitors.fixed_heap, threshold: {value: 0.95}}]}]}"# + "\n"),
             rule: "envoy.overload-trigger"),
        Case(name: "runtime disk layer without a root", yaml: bootstrap(extra: "layered_runtime: {layers: [{name: disk, disk_layer: {}}]}\n"), rule: "envoy.runtime-disk-layer"),
        Case(name: "two unnamed health checks",
             yaml: bootstrap(clusters: "  - name: hc\n    type: STATIC\n    health_checks: [{timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 2, tcp_health_check: {}}, {timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 2, tcp_health_check: {}}]\n"),
             rule: "envoy.health-check-name"),
        Case(name: "HTTP protocol options of the wrong type",
             yaml: bootstrap(clusters: #"  - {name: po, type: STATIC, typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: {"@type": type.googleapis.com/envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions}}}"# + "\n"),
             rule: "envoy.protocol-options"),
        Case(name: "protocol options under an unknown name",
             yaml: bootstrap(clusters: #"  - {name: po, type: STATIC, typed_extension_protocol_options: {envoy.upstreams.nope: {"@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, explicit_http_config: {http2_protocol_options: {}}}}}"# + "\n"),
             rule: "envoy.protocol-options"),
        Case(name: "CLUSTER_PROVIDED on a static cluster",
             yaml: bootstrap(clusters: "  - {name: cp, type: STATIC, lb_policy: CLUSTER_PROVIDED}\n"), rule: "envoy.cluster-provided-lb"),
        Case(name: "health check payload that is not hex",
             yaml: bootstrap(clusters: "  - name: hc\n    type: STATIC\n    health_checks: [{timeout: 1s, interval: 5s, unhealthy_threshold: 2, healthy_threshold: 2, tcp_health_check: {send: {text: 50494E47}, receive: [{text: 504F4E47x}]}}]\n"),
             rule: "envoy.health-check-payload"),
        Case(name: "a filter's own config as its per-route config",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: "").replacingOccurrences(of: "route: {cluster: app}", with: #"route: {cluster: app}, typed_per_filter_config: {envoy.filters.http.buffer: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer, max_request_bytes: 10}}"#)),
             rule: "schema.extension-category", messageContains: "per-route config envoy.extensions.filters.http.buffer.v3.BufferPerRoute"),
        Case(name: "a per-route config as the filter a matcher wraps",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: matched, typed_config: {"@type": type.googleapis.com/envoy.extensions.common.matching.v3.ExtensionWithMatcher, extension_config: {name: buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute, disabled: true}}, xds_matcher: {on_no_match: {action: {name: skip, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter}}}}}}"#)),
             rule: "schema.extension-category", messageContains: "per-route config of envoy.filters.http.buffer"),
        Case(name: "RBAC principal with a malformed CIDR range",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: rbac, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: {policies: {internal: {permissions: [{any: true}], principals: [{direct_remote_ip: {address_prefix: 10.0.0.0x, prefix_len: 8}}]}}}}}"#)),
             rule: "envoy.cidr-range"),
        Case(name: "RBAC principal with a CIDR range",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: rbac, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC, rules: {policies: {internal: {permissions: [{any: true}], principals: [{direct_remote_ip: {address_prefix: 10.0.0.0, prefix_len: 8}}]}}}}}"#)),
             rule: nil),
        Case(name: "Maglev table size that is not prime",
             yaml: bootstrap(clusters: "  - {name: mg, type: STATIC, lb_policy: MAGLEV, maglev_lb_config: {table_size: 65536}}\n"), rule: "envoy.maglev-table-size"),
        Case(name: "Maglev table size that is prime",
             yaml: bootstrap(clusters: "  - {name: mg, type: STATIC, lb_policy: MAGLEV, maglev_lb_config: {table_size: 65537}}\n"), rule: nil),
        Case(name: "LOGICAL_DNS without a load assignment",
             yaml: bootstrap(clusters: "  - {name: logical, type: LOGICAL_DNS}\n"), rule: "envoy.logical-dns-endpoints"),

        Case(name: "transport socket named but not configured",
             yaml: bootstrap(clusters: "  - name: raw\n    type: STATIC\n    transport_socket: {name: envoy.transport_sockets.raw_buffer}\n"), rule: "envoy.extension-config-missing"),
        Case(name: "listener filter named but not configured",
             yaml: bootstrap(listeners: listener(extra: "    listener_filters: [{name: envoy.filters.listener.tls_inspector}]\n", chains: oneChain)), rule: "envoy.extension-config-missing"),
        Case(name: "stats sink named but not configured", yaml: bootstrap(extra: "stats_sinks: [{name: envoy.stat_sinks.statsd}]\n"), rule: "envoy.extension-config-missing"),
        Case(name: "additional address without an address",
             yaml: bootstrap(listeners: listener(extra: "    additional_addresses: [{}]\n", chains: oneChain)), rule: "envoy.listener-address-ip"),

        Case(name: "server TLS context without a certificate",
             yaml: bootstrap(listeners: listener(chains: "    - transport_socket: {name: tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {alpn_protocols: [h2]}}}\n      filters: [\(tcpProxy)]\n")),
             rule: "envoy.tls-server-certificate"),
        Case(name: "server TLS certificate without a chain",
             yaml: bootstrap(listeners: listener(chains: "    - transport_socket: {name: tls, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, common_tls_context: {tls_certificates: [{}]}}}\n      filters: [\(tcpProxy)]\n")),
             rule: "envoy.tls-server-certificate"),
        Case(name: "websocket upgrade configured twice",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: "").replacingOccurrences(of: "stat_prefix: http", with: "stat_prefix: http\n          upgrade_configs: [{upgrade_type: websocket}, {upgrade_type: WebSocket}]")),
             rule: "envoy.upgrade-config"),
        Case(name: "admin on localhost", yaml: bootstrap(extra: "admin: {address: {socket_address: {address: localhost, port_value: 9901}}}\n"), rule: "envoy.listener-address-ip"),

        // Every field read through one factory registry takes that registry's configs only.
        Case(name: "a bootstrap config as a retry host predicate",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: "").replacingOccurrences(of: "route: {cluster: app}", with: #"route: {cluster: app, retry_policy: {retry_on: 5xx, retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener}}]}}"#)),
             rule: "schema.extension-category", messageContains: "retry host predicate"),
        Case(name: "retry host predicate and compressor library of the right kind",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: compressor, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: {name: gzip, typed_config: {"@type": type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip}}}}"#)
                                .replacingOccurrences(of: "route: {cluster: app}", with: #"route: {cluster: app, retry_policy: {retry_on: 5xx, retry_host_predicate: [{name: envoy.retry_host_predicates.previous_hosts, typed_config: {"@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate}}]}}"#)),
             rule: nil),
        Case(name: "a decompressor as the compressor library",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: compressor, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor, compressor_library: {name: gzip, typed_config: {"@type": type.googleapis.com/envoy.extensions.compression.gzip.decompressor.v3.Gzip}}}}"#)),
             rule: "schema.extension-category", messageContains: "compressor library"),
        Case(name: "a resource monitor as a bootstrap extension",
             yaml: bootstrap(extra: #"bootstrap_extensions: [{name: heap, typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig, max_heap_size_bytes: 1000000}}]"# + "\n"),
             rule: "schema.extension-category", messageContains: "bootstrap extension"),

        Case(name: "empty per-route type in the filter slot builds the filter's own default config",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: jwt, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig}}"#)),
             rule: nil),
        Case(name: "... and that default config must be valid",
             yaml: bootstrap(listeners: "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}\n    filter_chains:\n"
                             + hcm(filters: #"          - {name: buffer, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute}}"#)),
             rule: "pgv.message.required"),
        Case(name: "load balancing policies: the first one Envoy has is used",
             yaml: bootstrap(clusters: #"  - {name: lb, type: STATIC, load_balancing_policy: {policies: [{typed_extension_config: {name: custom, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /dev/null}}}, {typed_extension_config: {name: rr, typed_config: {"@type": type.googleapis.com/envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin}}}]}}"# + "\n"),
             rule: nil),
        Case(name: "load balancing policies: none Envoy has",
             yaml: bootstrap(clusters: #"  - {name: lb, type: STATIC, load_balancing_policy: {policies: [{typed_extension_config: {name: custom, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /dev/null}}}]}}"# + "\n"),
             rule: "schema.extension-category", messageContains: "none of the load balancing policies"),

        // Static secrets: one name table per kind (SecretManagerImpl::addStaticSecret).
        Case(name: "two static TLS certificates with one name",
             yaml: bootstrap(extra: "  secrets:\n" + secret("cert", "tls_certificate") + secret("cert", "tls_certificate")), rule: "xref.duplicate-secret"),
        Case(name: "a certificate and a validation context may share a name",
             yaml: bootstrap(extra: "  secrets:\n" + secret("edge", "tls_certificate") + secret("edge", "validation_context")), rule: nil),

        // Listener addresses are IPs (Network::Utility::parseInternetAddressNoThrow), ipv4_compat only on :: or ::ffff:a.b.c.d.
        Case(name: "listener on *", yaml: bootstrap(listeners: listener(address: "{address: \"*\", port_value: 10000}", chains: oneChain)), rule: "envoy.listener-address-ip"),
        Case(name: "listener on any", yaml: bootstrap(listeners: listener(address: "{address: any, port_value: 10000}", chains: oneChain)), rule: "envoy.listener-address-ip"),
        Case(name: "listener on five dotted parts", yaml: bootstrap(listeners: listener(address: "{address: 10.0.0.1.5, port_value: 10000}", chains: oneChain)), rule: "envoy.listener-address-ip"),
        Case(name: "listener on a leading-zero octet", yaml: bootstrap(listeners: listener(address: "{address: 010.0.0.1, port_value: 10000}", chains: oneChain)), rule: "envoy.listener-address-ip"),
        Case(name: "ipv4_compat on an IPv4 address", yaml: bootstrap(listeners: listener(address: "{address: 0.0.0.0, port_value: 10000, ipv4_compat: true}", chains: oneChain)), rule: "envoy.ipv4-compat"),
        Case(name: "ipv4_compat on ::1", yaml: bootstrap(listeners: listener(address: "{address: \"::1\", port_value: 10000, ipv4_compat: true}", chains: oneChain)), rule: "envoy.ipv4-compat"),
        Case(name: "ipv4_compat on ::", yaml: bootstrap(listeners: listener(address: "{address: \"::\", port_value: 10000, ipv4_compat: true}", chains: oneChain)), rule: nil),
        Case(name: "ipv4_compat on an IPv4-mapped address", yaml: bootstrap(listeners: listener(address: "{address: \"::ffff:10.0.0.1\", port_value: 10000, ipv4_compat: true}", chains: oneChain)), rule: nil),

        // Filter chain matching (FilterChainManagerImpl): one chain per connection.
        Case(name: "two chains without a match", yaml: bootstrap(listeners: listener(chains: chain() + chain())), rule: "envoy.filter-chain-overlap", messageContains: "same filter_chain_match"),
        Case(name: "two chains with the same match", yaml: bootstrap(listeners: listener(chains: chain("{server_names: [a.example]}", name: "a") + chain("{server_names: [a.example]}", name: "b"))),
             rule: "envoy.filter-chain-overlap"),
        Case(name: "server names overlap regardless of case", yaml: bootstrap(listeners: listener(chains: chain("{server_names: [a.example, b.example]}") + chain("{server_names: [B.example]}"))),
             rule: "envoy.filter-chain-overlap", messageContains: "overlaps"),
        Case(name: "CIDR ranges compare after masking", yaml: bootstrap(listeners: listener(chains: chain("{prefix_ranges: [{address_prefix: 10.0.0.1, prefix_len: 8}]}") + chain("{prefix_ranges: [{address_prefix: 10.9.9.9, prefix_len: 8}]}"))),
             rule: "envoy.filter-chain-overlap"),
        Case(name: "one chain listing a server name twice", yaml: bootstrap(listeners: listener(chains: chain("{server_names: [a.example, a.example]}"))), rule: "envoy.filter-chain-overlap", messageContains: "twice"),
        Case(name: "distinct server names and a catch-all", yaml: bootstrap(listeners: listener(chains: chain("{server_names: [a.example]}") + chain("{server_names: [\"*.example\"]}") + chain())), rule: nil),
        Case(name: "partial wildcard server name", yaml: bootstrap(listeners: listener(chains: chain("{server_names: [\"a*.example\"]}"))), rule: "envoy.filter-chain-server-name"),
        Case(name: "filter chain matcher with a repeated chain name",
             yaml: bootstrap(listeners: listener(extra: "    filter_chain_matcher: {on_no_match: {action: {name: chain, typed_config: {\"@type\": type.googleapis.com/google.protobuf.StringValue, value: a}}}}\n",
                                                 chains: chain(name: "a") + chain(name: "a"))),
             rule: "envoy.filter-chain-name"),
    ]

    func testEachLoadRuleIsReportedAsEnvoyReportsIt() throws {
        for c in Self.cases {
            let diagnostics = BootstrapValidation.validate(text: c.yaml, file: "case.yaml", syntax: .yaml, pool: TestSupport.pool)
            let errors = diagnostics.filter { $0.severity == .error }
            if let rule = c.rule {
                XCTAssertEqual(Set(errors.map(\.rule)), [rule], "\(c.name): \(errors)")
                if !c.messageContains.isEmpty {
                    XCTAssertTrue(errors.contains { $0.message.contains(c.messageContains) }, "\(c.name): \(errors.map(\.message))")
                }
                XCTAssertTrue(errors.allSatisfy { $0.location != nil && $0.file == "case.yaml" }, "\(c.name): every error has a position")
            } else {
                XCTAssertEqual(errors, [], c.name)
            }
        }
    }

    /// The verdicts above are Envoy 1.40's: checked against the pinned binary.
    func testEnvoyAgreesWithEveryCase() throws {
        let envoy = TestSupport.envoy
        guard FileManager.default.isExecutableFile(atPath: envoy) else { throw XCTSkip("no Envoy at \(envoy): set MESHCTL_ENVOY (make test does)") }
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (i, c) in Self.cases.enumerated() {
            let file = directory.appendingPathComponent("case-\(i).yaml")
            try c.yaml.write(to: file, atomically: true, encoding: .utf8)
            let run = try TestSupport.run(envoy, ["--mode", "validate", "-c", file.path, "-l", "critical", "--disable-hot-restart"], timeout: 60)
            XCTAssertEqual(run.status == 0, c.rule == nil, "\(c.name): Envoy says \(String(decoding: run.stdout + run.stderr, as: UTF8.self).suffix(400))")
        }
    }
}
