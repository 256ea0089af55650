// The gRPC validation profile: what gRPC's xDS client (gRFC A27 LDS/RDS/CDS/EDS, A28 routing,
// A29 security, A39 HTTP filters) NACKs or silently drops, checked on every resource of a
// proxyless gRPC client's group — generated or added by `envoy:` — so it is caught by
// `meshctl validate` instead of by a client at run time. Envoy's own rules still apply first;
// these are the extra ones where gRPC reads the same messages differently.
import EnvoySchema

extension ResourceRules {
    /// HTTP filters gRPC's client side implements (gRFC A39 and the filters built on it).
    static let grpcClientFilters: Set<String> = [
        "envoy.extensions.filters.http.router.v3.Router",
        "envoy.extensions.filters.http.fault.v3.HTTPFault",
        "envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
        "envoy.extensions.filters.http.gcp_authn.v3.GcpAuthnFilterConfig",
    ]
    static let router = "envoy.extensions.filters.http.router.v3.Router"

    mutating func checkGRPCProfile(_ view: MessageView, kind: ResourceKind) {
        switch kind {
        case .listeners: grpcListener(view)
        case .routeConfigurations: grpcRoutes(view)
        case .clusters: grpcCluster(view)
        case .clusterLoadAssignments: grpcEndpoints(view)
        case .secrets:
            report(.error, "grpc.sds", "secret '\(view.string("name") ?? "")' is served by SDS, which gRPC's xDS client does not support (it NACKs SDS); gRPC takes certificates from its bootstrap's certificate providers — remove the secret",
                   path: "", at: view.location)
        }
    }

    /// gRPC accepts a config source only when it is the ADS stream or `self` (the server the resource came from).
    mutating func grpcConfigSource(_ source: MessageView?, what: String, path: String, at location: SourceLocation?) {
        guard let source else { return }
        if !source.has("ads") && !source.has("self") {
            report(.error, "grpc.config-source", "\(what) is not fetched by ADS; gRPC's xDS client NACKs a config source that is not ads or self — write {ads: {}, resource_api_version: V3}",
                   path: source.path, at: source.location ?? location)
        }
    }

    mutating func grpcListener(_ listener: MessageView) {
        let name = listener.string("name") ?? ""
        guard let (type, hcm) = listener.child("api_listener")?.unpacked("api_listener") else {
            report(.error, "grpc.api-listener", "listener '\(name)' has no api_listener; gRPC reads a listener with an address as a server listener, so a client dialing xds:///\(name) fails — give it an api_listener with an HttpConnectionManager",
                   path: "api_listener", at: listener.location(of: "address") ?? listener.location)
            return
        }
        guard type == TypeNames.httpConnectionManager else {
            report(.error, "grpc.api-listener", "listener '\(name)': gRPC's api_listener must be an HttpConnectionManager, not \(type)", path: "api_listener.api_listener", at: listener.location(of: "api_listener"))
            return
        }
        if let rds = hcm.child("rds") {
            grpcConfigSource(rds.child("config_source"), what: "the route configuration of listener '\(name)'", path: rds.path, at: rds.location)
        } else if !hcm.has("route_config") {
            report(.error, "grpc.api-listener", "listener '\(name)' names no routes: gRPC needs rds (over ADS) or an inline route_config", path: hcm.path, at: hcm.location)
        } else if let inline = hcm.child("route_config") {
            grpcRoutes(inline)
        }
        let filters = hcm.children("http_filters")
        for (i, filter) in filters.enumerated() {
            let type = filter.unpacked("typed_config")?.type ?? ""
            if type == Self.router && i != filters.count - 1 {
                report(.error, "grpc.http-filter", "the router must be the last HTTP filter of listener '\(name)' (gRPC NACKs filters after it)", path: filter.path, at: filter.location)
            }
            if !Self.grpcClientFilters.contains(type) && filter.value("is_optional")?.boolValue != true {
                report(.error, "grpc.http-filter", "HTTP filter '\(filter.string("name") ?? "")' (\(type.isEmpty ? "no typed_config" : type)) is not one gRPC's client implements, so gRPC NACKs the listener; remove it or mark it is_optional: true",
                       path: filter.path, at: filter.location)
            }
        }
        if filters.last.flatMap({ $0.unpacked("typed_config")?.type }) != Self.router {
            report(.error, "grpc.http-filter", "the HTTP filters of listener '\(name)' must end with the router (envoy.filters.http.router)", path: hcm.join("http_filters"), at: hcm.location(of: "http_filters") ?? hcm.location)
        }
    }

    mutating func grpcRoutes(_ configuration: MessageView) {
        for vhost in configuration.children("virtual_hosts") {
            for route in vhost.children("routes") where !route.has("route") && !route.has("non_forwarding_action") {
                let what = route.has("redirect") ? "a redirect" : route.has("direct_response") ? "a direct response" : "no route action"
                report(.error, "grpc.route-action", "route '\(route.string("name") ?? "")' has \(what); gRPC's client only forwards (its RPCs would fail) — give it a route action or move it to a gateway",
                       path: route.path, at: route.location, provenance: route.string("name").map { "route:" + $0 })
            }
        }
    }

    mutating func grpcCluster(_ cluster: MessageView) {
        let name = cluster.string("name") ?? ""
        // Cluster.DiscoveryType: STATIC 0, STRICT_DNS 1, LOGICAL_DNS 2, EDS 3, ORIGINAL_DST 4.
        let type = cluster.enumNumber("type") ?? 0
        if !cluster.has("cluster_type") && type != 2 && type != 3 {
            report(.error, "grpc.cluster-type", "cluster '\(name)' is neither EDS nor LOGICAL_DNS (nor an aggregate cluster): gRPC's xDS client NACKs other discovery types", path: "type", at: cluster.location(of: "type") ?? cluster.location)
        }
        if type == 3 {
            grpcConfigSource(cluster.child("eds_cluster_config")?.child("eds_config"), what: "the endpoints of cluster '\(name)'", path: "eds_cluster_config", at: cluster.location)
        }
        guard let (socketType, tls) = cluster.child("transport_socket")?.unpacked("typed_config") else { return }
        guard socketType == Self.upstreamTLS else {
            report(.error, "grpc.tls", "cluster '\(name)': gRPC's only transport socket is an UpstreamTlsContext, not \(socketType)", path: "transport_socket", at: cluster.location(of: "transport_socket"))
            return
        }
        guard let common = tls.child("common_tls_context") else { return }
        for field in ["tls_certificate_sds_secret_configs", "tls_certificates"] where !common.children(field).isEmpty {
            report(.error, "grpc.sds", "cluster '\(name)' gives its client certificate by \(field), which gRPC's xDS client does not support (NACK); use tls_certificate_provider_instance naming a certificate provider of the gRPC bootstrap (mesh-identity)",
                   path: common.join(field), at: common.location(of: field))
        }
        var validation = common.child("validation_context")
        if let combined = common.child("combined_validation_context") {
            if combined.has("validation_context_sds_secret_config") {
                report(.error, "grpc.sds", "cluster '\(name)' takes its CA by SDS (validation_context_sds_secret_config), which gRPC does not support; use validation_context.ca_certificate_provider_instance (mesh-ca)",
                       path: combined.join("validation_context_sds_secret_config"), at: combined.location(of: "validation_context_sds_secret_config"))
            }
            validation = combined.child("default_validation_context")
        }
        if common.has("validation_context_sds_secret_config") {
            report(.error, "grpc.sds", "cluster '\(name)' takes its CA by SDS (validation_context_sds_secret_config), which gRPC does not support; use validation_context.ca_certificate_provider_instance (mesh-ca)",
                   path: common.join("validation_context_sds_secret_config"), at: common.location(of: "validation_context_sds_secret_config"))
        }
        if validation?.has("ca_certificate_provider_instance") != true && validation?.has("system_root_certs") != true {
            report(.error, "grpc.certificate-provider", "cluster '\(name)' uses TLS without a CA certificate provider; gRPC verifies servers only with validation_context.ca_certificate_provider_instance (or system_root_certs) — add {instance_name: mesh-ca}",
                   path: common.path, at: common.location ?? tls.location)
        }
    }

    mutating func grpcEndpoints(_ assignment: MessageView) {
        let name = assignment.string("cluster_name") ?? ""
        for locality in assignment.children("endpoints") {
            var weighted = false
            if case .uint(let weight)? = locality.wrapped("load_balancing_weight"), weight > 0 { weighted = true }
            if !weighted {
                report(.error, "grpc.locality-weight", "a locality of '\(name)' has no load_balancing_weight; gRPC ACKs it and then drops the locality, leaving the cluster without endpoints — set load_balancing_weight: 1",
                       path: locality.path, at: locality.location)
            }
        }
    }
}
