// What templates see: the mesh model turned into template values with every derived
// name (clusters, listeners, route configurations), effective default (timeouts,
// retries) and endpoint list computed once, so templates stay declarative and names
// agree across templates. The schema below is the template API (docs/CONFIG.md,
// "Template context"); templates are checked against it before rendering.
import EnvoySchema
import Foundation

enum ContextSchema {
    static let endpoint = object("endpoint", ["address": .string, "port": .int])
    static let port = object("port", [
        "name": .string, "protocol": .string, "port": .int, "http": .bool, "grpc": .bool, "tcp": .bool,
        "cluster": .string, "local_cluster": .string, "listener": .string, "route_config": .string,
        "dns": .bool, "endpoints": .list(.object(endpoint)), "mesh_endpoints": .list(.object(endpoint)),
    ])
    static let retries = object("retries", ["attempts": .int, "on": .string, "per_try_timeout": .string])
    static let header = object("header match", ["name": .string, "exact": .string, "prefix": .string, "suffix": .string, "regex": .string, "present": .bool, "invert": .bool])
    static let match = object("match", ["prefix": .string, "path": .string, "regex": .string, "case_sensitive": .bool, "headers": .list(.object(header))])
    static let weighted = object("weighted cluster", ["cluster": .string, "weight": .int])
    static let mirror = object("mirror", ["cluster": .string, "percent": .int])
    static let redirect = object("redirect", ["scheme": .string, "host": .string, "path": .string, "prefix": .string, "code": .string])
    static let directResponse = object("direct response", ["status": .int, "body": .string])
    static let route = object("route", [
        "id": .string, "name": .string, "match": .object(match), "cluster": .string, "split": .list(.object(weighted)),
        "timeout": .string, "retries": .object(retries), "mirror": .object(mirror), "rewrite_prefix": .string,
        "redirect": .object(redirect), "direct_response": .object(directResponse), "grpc_retries": .object(retries),
    ])
    static let upstream = object("upstream", ["name": .string, "vhost": .string, "domains": .list(.string), "routes": .list(.object(route)), "grpc": .bool])
    static let tcpDependency = object("tcp dependency", ["service": .string, "cluster": .string, "listener": .string, "address": .string, "port": .int])
    static let outbound = object("outbound", ["listener": .string, "route_config": .string, "address": .string, "port": .int])
    static let service = object("service", [
        "name": .string, "description": .string, "owners": .list(.string), "identity": .string, "mtls": .bool,
        "allowed_callers": .list(.string), "certificate": .string, "private_key": .string, "certificate_directory": .string, "inbound_address": .string,
        "connect_timeout": .string, "timeout": .string, "ports": .list(.object(port)), "outbound": .object(outbound),
        "routes": .list(.object(route)), "tcp_dependencies": .list(.object(tcpDependency)), "domains": .list(.string),
    ])
    static let cors = object("cors", ["allow_origins": .list(.string), "allow_methods": .string, "allow_headers": .string, "max_age": .string, "allow_credentials": .bool])
    static let group = object("group", [
        "name": .string, "kind": .string, "listener": .string, "route_config": .string, "address": .string, "port": .int,
        "hosts": .list(.string), "certificate": .string, "private_key": .string, "identity": .string, "routes": .list(.object(route)),
        "cors": .object(cors), "identity_certificate": .string, "identity_private_key": .string,
        "certificate_directory": .string, "identity_certificate_directory": .string,
    ])
    static let mesh = object("mesh", [
        "name": .string, "trust_domain": .string, "xds_address": .string, "xds_port": .int, "certificate_directory": .string,
        "ca": .string, "ca_directory": .string, "identity_secret": .string, "ca_secret": .string, "connect_timeout": .string, "timeout": .string,
        "mtls": .bool, "identity_prefix": .string,
    ])

    static func object(_ name: String, _ fields: [String: TemplateType]) -> TemplateObjectType {
        let type = TemplateObjectType(name)
        type.define(fields)
        return type
    }

    /// The top-level variables of each kind of template.
    static func roots(_ role: TemplateRole) -> [String: TemplateType] {
        switch role {
        case .upstream: return ["mesh": .object(mesh), "service": .object(service), "config_source": .string]
        case .sidecar: return ["mesh": .object(mesh), "service": .object(service), "upstreams": .list(.object(upstream)), "config_source": .string]
        case .gateway: return ["mesh": .object(mesh), "group": .object(group), "upstreams": .list(.object(upstream)), "config_source": .string]
        case .grpcClient: return ["mesh": .object(mesh), "service": .object(service), "upstreams": .list(.object(upstream)), "services": .list(.object(service))]
        case .raw: return [:]
        }
    }
}

/// What a template is rendered for.
enum TemplateRole: String, Sendable {
    /// Once per service: how proxies reach it (shared by every group that routes to it; once more per
    /// other `config_source` that groups reaching it need).
    case upstream
    /// Once per service: its sidecar's own listeners, routes and local clusters.
    case sidecar
    /// Once per gateway group.
    case gateway
    /// Once per proxyless gRPC client (`proxyless: grpc`): per dependency an API listener named for the
    /// target, its routes, and the clusters and endpoints of every service it reaches, all in gRPC's dialect.
    case grpcClient = "grpc-client"
    /// Once per raw proxy group (Configs/groups/NAME.yaml, e.g. written by `meshctl import`): no template,
    /// only the group's own Envoy resources.
    case raw
}

/// SDS secret names every proxy group gets for its mesh identity and the mesh CA.
enum MeshSecrets {
    static let identity = "mesh-identity"
    static let ca = "mesh-ca"
}

/// Where a generated name came from in the user's files (for diagnostics about mesh rules).
struct Provenance: Sendable {
    let file: String
    let location: SourceLocation
}

/// Derived names, one scheme for every template.
enum ResourceNames {
    static func cluster(service: String, port: String) -> String { "\(service).\(port)" }
    static func localCluster(service: String, port: String) -> String { "\(service).\(port).local" }
    static func inbound(service: String, port: String) -> String { "\(service).\(port).inbound" }
    static func outbound(service: String) -> String { "\(service).outbound" }
    static func tcpOutbound(service: String, dependency: String, port: String) -> String { "\(service).outbound.\(dependency).\(port)" }
}

/// A name with one placeholder (`spiffe://mesh.local/proxy/{service}`), split once so filling it
/// in for 10,000 services is a join, not a search.
struct NamePattern: Sendable {
    let parts: [String]

    init(_ pattern: String, placeholder: String) {
        parts = pattern.split(separator: placeholder, omittingEmptySubsequences: false).map(String.init)
    }

    func callAsFunction(_ value: String) -> String { parts.joined(separator: value) }
}

struct ContextBuilder {
    let mesh: MeshDefinition
    let services: [String: ServiceDefinition]
    private(set) var provenance: [String: Provenance] = [:]
    let identity: NamePattern
    let certificate: NamePattern
    let privateKey: NamePattern

    init(mesh: MeshDefinition, services: [String: ServiceDefinition]) {
        self.mesh = mesh
        self.services = services
        identity = NamePattern(mesh.sidecarIdentity.replacingOccurrences(of: "{trust_domain}", with: mesh.trustDomain), placeholder: "{service}")
        certificate = NamePattern(mesh.certificatePath(mesh.certificatePattern, proxy: "{proxy}"), placeholder: "{proxy}")
        privateKey = NamePattern(mesh.certificatePath(mesh.privateKeyPattern, proxy: "{proxy}"), placeholder: "{proxy}")
    }

    /// Adds provenance found by a copy of this builder (built on another thread).
    mutating func record(_ entries: [String: Provenance]) {
        provenance.merge(entries) { first, _ in first }
    }

    var meshValue: TemplateValue {
        .object(TemplateObject(ContextSchema.mesh, [
            "name": .string(mesh.name), "trust_domain": .string(mesh.trustDomain), "xds_address": .string(mesh.xdsAddress),
            "xds_port": .int(mesh.xdsPort), "certificate_directory": .string(mesh.certificateDirectory),
            "ca": .string(mesh.certificatePath(mesh.caFile, proxy: "")),
            "ca_directory": .string(directoryOf(mesh.certificatePath(mesh.caFile, proxy: ""))), "identity_secret": .string(MeshSecrets.identity),
            "ca_secret": .string(MeshSecrets.ca), "connect_timeout": .string(mesh.connectTimeout.envoy), "timeout": .string(mesh.timeout.envoy),
            "mtls": .bool(mesh.mtlsStrict), "identity_prefix": .string("spiffe://\(mesh.trustDomain)/"),
        ]))
    }

    func endpointList(_ endpoints: EndpointsDefinition?) -> [TemplateValue] {
        switch endpoints {
        case .addresses(let list)?:
            return list.map { .object(TemplateObject(ContextSchema.endpoint, ["address": .string($0.value.address), "port": .int($0.value.port)])) }
        case .dns(let name, let port, _)?:
            return [.object(TemplateObject(ContextSchema.endpoint, ["address": .string(name), "port": .int(port)]))]
        case nil:
            return []
        }
    }

    /// Callers reach a service's sidecars at each distinct endpoint host, on the port's mesh port.
    func meshEndpoints(_ endpoints: EndpointsDefinition?, port: Int) -> [TemplateValue] {
        var seen = Set<String>()
        var out: [TemplateValue] = []
        switch endpoints {
        case .addresses(let list)?:
            for e in list where seen.insert(e.value.address).inserted {
                out.append(.object(TemplateObject(ContextSchema.endpoint, ["address": .string(e.value.address), "port": .int(port)])))
            }
        case .dns(let name, _, _)?:
            out.append(.object(TemplateObject(ContextSchema.endpoint, ["address": .string(name), "port": .int(port)])))
        case nil:
            break
        }
        return out
    }

    func portValue(_ service: ServiceDefinition, _ port: PortDefinition) -> TemplateValue {
        let endpoints = port.endpoints ?? service.endpoints
        var isDNS = false
        if case .dns? = endpoints { isDNS = true }
        let name = service.name.value, p = port.name.value
        return .object(TemplateObject(ContextSchema.port, [
            "name": .string(p), "protocol": .string(port.proto.rawValue), "port": .int(port.port.value),
            "http": .bool(port.proto == .http), "grpc": .bool(port.proto == .grpc), "tcp": .bool(port.proto == .tcp),
            "cluster": .string(ResourceNames.cluster(service: name, port: p)), "local_cluster": .string(ResourceNames.localCluster(service: name, port: p)),
            "listener": .string(ResourceNames.inbound(service: name, port: p)), "route_config": .string(ResourceNames.inbound(service: name, port: p)),
            "dns": .bool(isDNS), "endpoints": .list(endpointList(endpoints)), "mesh_endpoints": .list(meshEndpoints(endpoints, port: port.port.value)),
        ]))
    }

    /// The cluster a route target names: the service's chosen port, else its first HTTP/gRPC port.
    func cluster(for target: RouteTargetDefinition) -> String? {
        guard let service = services[target.service.value] else { return nil }
        let port = target.port.flatMap { name in service.ports.first { $0.name.value == name.value } } ?? service.primaryHTTPPort
        return port.map { ResourceNames.cluster(service: service.name.value, port: $0.name.value) }
    }

    static func redirectCode(_ code: Int) -> String {
        switch code {
        case 302: return "FOUND"
        case 303: return "SEE_OTHER"
        case 307: return "TEMPORARY_REDIRECT"
        case 308: return "PERMANENT_REDIRECT"
        default: return "MOVED_PERMANENTLY"
        }
    }

    /// - Parameter timeout: the route's timeout; a mesh-default per-try timeout that is not shorter is left out
    ///   (Envoy then gives each try the whole route timeout) instead of making every short route an error.
    func retriesValue(_ retries: RetryDefinition?, isMeshDefault: Bool = false, timeout: ConfigDuration? = nil) -> TemplateValue {
        guard let retries else { return .null }
        var perTry = retries.perTryTimeout
        if isMeshDefault, let p = perTry, let timeout, timeout.milliseconds > 0, p.milliseconds >= timeout.milliseconds { perTry = nil }
        return .object(TemplateObject(ContextSchema.retries, [
            "attempts": .int(retries.attempts), "on": .string(retries.on.joined(separator: ",")),
            "per_try_timeout": perTry.map { .string($0.envoy) } ?? .null,
        ]))
    }

    /// One route as templates render it. `owner` is the service (defaults, self target) or gateway.
    mutating func routeValue(_ route: RouteDefinition, index: Int, owner: String, file: String, service: ServiceDefinition?) -> TemplateValue {
        let id = "\(owner)/\(route.name?.value ?? String(index))"
        provenance["route:" + id] = Provenance(file: file, location: route.location)
        var fields: [String: TemplateValue] = ["id": .string(id), "name": route.name.map { .string($0.value) } ?? .null]
        var match: [String: TemplateValue] = [:]
        switch route.match.path {
        case .prefix(let p): match["prefix"] = .string(p)
        case .path(let p): match["path"] = .string(p)
        case .regex(let r): match["regex"] = .string(r)
        }
        if let cs = route.match.caseSensitive { match["case_sensitive"] = .bool(cs) }
        match["headers"] = .list(route.match.headers.map { h in
            var f: [String: TemplateValue] = ["name": .string(h.name), "invert": .bool(h.invert), "present": .bool(h.kind == .present)]
            if h.kind != .present { f[h.kind.rawValue] = .string(h.value) }
            return .object(TemplateObject(ContextSchema.header, f))
        })
        fields["match"] = .object(TemplateObject(ContextSchema.match, match))
        var forwards = false
        switch route.action {
        case .forward(let target):
            forwards = true
            if let target { fields["cluster"] = cluster(for: target).map { .string($0) } ?? .null } else if let service, let port = service.primaryHTTPPort {
                fields["cluster"] = .string(ResourceNames.cluster(service: service.name.value, port: port.name.value))
            }
            fields["split"] = .list([])
        case .split(let split):
            forwards = true
            fields["split"] = .list(split.targets.compactMap { t in
                cluster(for: t.target).map { .object(TemplateObject(ContextSchema.weighted, ["cluster": .string($0), "weight": .int(t.weight.value)])) }
            })
        case .redirect(let r):
            var f: [String: TemplateValue] = ["code": .string(Self.redirectCode(r.code))]
            if let v = r.scheme { f["scheme"] = .string(v) }
            if let v = r.host { f["host"] = .string(v) }
            if let v = r.path { f["path"] = .string(v) }
            if let v = r.prefix { f["prefix"] = .string(v) }
            fields["redirect"] = .object(TemplateObject(ContextSchema.redirect, f))
            fields["split"] = .list([])
        case .directResponse(let status, let body):
            fields["direct_response"] = .object(TemplateObject(ContextSchema.directResponse, ["status": .int(status), "body": body.map { .string($0) } ?? .null]))
            fields["split"] = .list([])
        }
        if forwards {
            let timeout = route.timeout?.value ?? service?.timeout ?? mesh.timeout
            fields["timeout"] = .string(timeout.envoy)
            let explicit = route.retries ?? service?.retries
            fields["retries"] = retriesValue(explicit ?? mesh.retries, isMeshDefault: explicit == nil, timeout: timeout)
            // gRPC retries on status codes only and has no per-try timeout (gRFC A44): what is left of the policy.
            if var grpc = explicit ?? mesh.retries {
                grpc.on = grpc.on.filter { MeshChecks.grpcRetryConditions.contains($0) }
                grpc.perTryTimeout = nil
                if !grpc.on.isEmpty { fields["grpc_retries"] = retriesValue(grpc) }
            }
            if let mirror = route.mirror, let cluster = cluster(for: mirror.target) {
                fields["mirror"] = .object(TemplateObject(ContextSchema.mirror, ["cluster": .string(cluster), "percent": .int(mirror.percent)]))
            }
            if let rewrite = route.rewritePrefix { fields["rewrite_prefix"] = .string(rewrite) }
        }
        return .object(TemplateObject(ContextSchema.route, fields))
    }

    func domains(_ service: ServiceDefinition) -> [String] {
        var out = [service.name.value]
        for host in service.hosts where !out.contains(host.value) { out.append(host.value) }
        return out
    }

    /// The routes callers apply to traffic for a service: its own, then a catch-all to it.
    mutating func serviceRoutes(_ service: ServiceDefinition) -> [TemplateValue] {
        var routes = service.routes
        let hasCatchAll = routes.contains { $0.match.path == .prefix("/") && $0.match.headers.isEmpty }
        if !hasCatchAll {
            routes.append(RouteDefinition(name: Located(value: "default", location: service.name.location), location: service.name.location))
        }
        return routes.enumerated().map { routeValue($1, index: $0, owner: service.name.value, file: service.file, service: service) }
    }

    /// A service as the proxies that route to it see it (one virtual host).
    mutating func upstreamValue(_ service: ServiceDefinition, routes: [TemplateValue]) -> TemplateValue {
        provenance["vhost:" + service.name.value] = Provenance(file: service.file, location: service.hosts.first?.location ?? service.name.location)
        provenance["domain:\(service.name.value)|\(service.name.value)"] = Provenance(file: service.file, location: service.name.location)
        for host in service.hosts { provenance["domain:\(service.name.value)|\(host.value)"] = Provenance(file: service.file, location: host.location) }
        return .object(TemplateObject(ContextSchema.upstream, [
            "name": .string(service.name.value), "vhost": .string(service.name.value), "domains": .list(domains(service).map { .string($0) }),
            "routes": .list(routes), "grpc": .bool(service.primaryHTTPPort?.proto == .grpc),
        ]))
    }

    mutating func serviceValue(_ service: ServiceDefinition, routes: [TemplateValue]) -> TemplateValue {
        let name = service.name.value
        for port in service.ports {
            provenance["listener:" + ResourceNames.inbound(service: name, port: port.name.value)] = Provenance(file: service.file, location: port.port.location)
            provenance["cluster:" + ResourceNames.cluster(service: name, port: port.name.value)] = Provenance(file: service.file, location: port.location)
        }
        var outbound: TemplateValue = .null
        if let port = service.outboundPort {
            provenance["listener:" + ResourceNames.outbound(service: name)] = Provenance(file: service.file, location: port.location)
            outbound = .object(TemplateObject(ContextSchema.outbound, [
                "listener": .string(ResourceNames.outbound(service: name)), "route_config": .string(ResourceNames.outbound(service: name)),
                "address": .string(mesh.sidecarOutboundAddress), "port": .int(port.value),
            ]))
        }
        var tcp: [TemplateValue] = []
        for dependency in service.dependencies {
            guard let target = services[dependency.service.value], let localPort = dependency.localPort else { continue }
            let port = dependency.port.flatMap { p in target.ports.first { $0.name.value == p.value } } ?? target.ports.first { $0.proto == .tcp }
            guard let port, port.proto == .tcp else { continue }
            let listener = ResourceNames.tcpOutbound(service: name, dependency: target.name.value, port: port.name.value)
            provenance["listener:" + listener] = Provenance(file: service.file, location: localPort.location)
            tcp.append(.object(TemplateObject(ContextSchema.tcpDependency, [
                "service": .string(target.name.value), "cluster": .string(ResourceNames.cluster(service: target.name.value, port: port.name.value)),
                "listener": .string(listener), "address": .string(mesh.sidecarOutboundAddress), "port": .int(localPort.value),
            ])))
        }
        let callers = service.allowedCallers.map { caller -> TemplateValue in
            .string(services[caller.value] != nil ? identity(caller.value)
                    : mesh.gateways.first { $0.name.value == caller.value }?.identities.first ?? caller.value)
        }
        return .object(TemplateObject(ContextSchema.service, [
            "name": .string(name), "description": service.description.map { .string($0) } ?? .null,
            "owners": .list(service.owners.map { .string($0) }), "identity": .string(identity(name)),
            "mtls": .bool(mesh.mtlsStrict && service.mtlsDisabled == nil), "allowed_callers": .list(callers),
            "certificate": .string(certificate(name)), "private_key": .string(privateKey(name)),
            "certificate_directory": .string(directoryOf(certificate(name))),
            "inbound_address": .string(mesh.sidecarAddress),
            "connect_timeout": .string((service.connectTimeout ?? mesh.connectTimeout).envoy),
            "timeout": .string((service.timeout ?? mesh.timeout).envoy),
            "ports": .list(service.ports.map { portValue(service, $0) }), "outbound": outbound, "routes": .list(routes),
            "tcp_dependencies": .list(tcp), "domains": .list(domains(service).map { .string($0) }),
        ]))
    }

    mutating func gatewayValue(_ gateway: GatewayDefinition) -> TemplateValue {
        let name = gateway.name.value
        provenance["listener:" + name] = Provenance(file: mesh.file, location: gateway.listenPort.location)
        provenance["vhost:" + name] = Provenance(file: mesh.file, location: gateway.hosts.first?.location ?? gateway.location)
        for host in gateway.hosts { provenance["domain:\(name)|\(host.value)"] = Provenance(file: mesh.file, location: host.location) }
        var cors: TemplateValue = .null
        if let c = gateway.cors {
            cors = .object(TemplateObject(ContextSchema.cors, [
                "allow_origins": .list(c.allowOrigins.map { .string($0) }),
                "allow_methods": .string((c.allowMethods.isEmpty ? ["GET", "POST", "PUT", "DELETE", "OPTIONS"] : c.allowMethods).joined(separator: ",")),
                "allow_headers": .string((c.allowHeaders.isEmpty ? ["content-type", "authorization", "x-csrf-token"] : c.allowHeaders).joined(separator: ",")),
                "max_age": .string(String((c.maxAge ?? ConfigDuration(milliseconds: 600_000)).milliseconds / 1000)),
                "allow_credentials": .bool(c.allowCredentials),
            ]))
        }
        let routes = gateway.routes.enumerated().map { routeValue($1, index: $0, owner: name, file: mesh.file, service: nil) }
        return .object(TemplateObject(ContextSchema.group, [
            "name": .string(name), "kind": .string(gateway.kind.rawValue), "listener": .string(name), "route_config": .string(name),
            "address": .string(gateway.listenAddress), "port": .int(gateway.listenPort.value),
            "hosts": .list(gateway.hosts.map { .string($0.value) }), "certificate": .string(gateway.certificate),
            "private_key": .string(gateway.privateKey), "identity": .string(gateway.identities.first ?? ""),
            "identity_certificate": .string(mesh.certificatePath(mesh.certificatePattern, proxy: name)),
            "identity_private_key": .string(mesh.certificatePath(mesh.privateKeyPattern, proxy: name)),
            "certificate_directory": .string(directoryOf(gateway.certificate)),
            "identity_certificate_directory": .string(directoryOf(mesh.certificatePath(mesh.certificatePattern, proxy: name))),
            "routes": .list(routes), "cors": cors,
        ]))
    }
}

/// The directory holding a certificate file: what Envoy watches (`watched_directory`) to reload it when a rotation
/// moves new files in.
func directoryOf(_ path: String) -> String {
    let directory = (path as NSString).deletingLastPathComponent
    return directory.isEmpty ? "." : directory
}
