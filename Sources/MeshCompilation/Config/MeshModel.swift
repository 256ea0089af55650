// The mesh as its owners describe it (Configs/mesh.yaml and Configs/services/*.yaml),
// as typed values that remember where in which file each came from. docs/CONFIG.md is
// the reference for every key.
import EnvoySchema
import MeshModel

/// Mesh-wide settings and the gateway proxy groups (Configs/mesh.yaml).
struct MeshDefinition: Sendable {
    var file: String
    var name = "mesh"
    var trustDomain = "mesh.local"
    var xdsAddress = "127.0.0.1"
    var xdsPort = 18000
    var certificateDirectory = "/etc/meshctl/certs"
    var caFile = "ca.crt"
    /// `{proxy}` is replaced with the proxy group's name.
    var certificatePattern = "{proxy}.crt"
    var privateKeyPattern = "{proxy}.key"
    var connectTimeout = ConfigDuration(milliseconds: 1000)
    var timeout = ConfigDuration(milliseconds: 15_000)
    var retries: RetryDefinition?
    /// Mutual TLS between proxies unless a service opts out (`mtls: {mode: disabled}`).
    var mtlsStrict = true
    var upstreamTemplate = Located(value: "upstream.yaml", location: SourceLocation(line: 1, column: 1))
    var sidecarTemplate = Located(value: "sidecar.yaml", location: SourceLocation(line: 1, column: 1))
    /// Rendered once per proxyless gRPC client service (`proxyless: grpc`); read only when the mesh has one.
    var grpcClientTemplate = Located(value: "grpc-client.yaml", location: SourceLocation(line: 1, column: 1))
    /// Where sidecars listen for mesh traffic (inbound).
    var sidecarAddress = "0.0.0.0"
    /// Where sidecars listen for their local application (outbound).
    var sidecarOutboundAddress = "127.0.0.1"
    /// `{trust_domain}`, `{service}` are replaced.
    var sidecarIdentity = "spiffe://{trust_domain}/proxy/{service}"
    var sidecarNodeIDs: [String] = []
    /// How every sidecar group's proxies subscribe (`sidecars.xds`).
    var sidecarXDS = SubscriptionMode.adsStateOfTheWorld
    var gateways: [GatewayDefinition] = []
    /// How new snapshots reach each group's proxies unless the group says otherwise (`rollout:`).
    var rollout = RolloutChoice.immediate
    var location = SourceLocation(line: 1, column: 1)

    func identity(ofService name: String) -> String {
        sidecarIdentity.replacingOccurrences(of: "{trust_domain}", with: trustDomain).replacingOccurrences(of: "{service}", with: name)
    }

    func certificatePath(_ pattern: String, proxy: String) -> String {
        let file = pattern.replacingOccurrences(of: "{proxy}", with: proxy)
        if file.hasPrefix("/") { return file }
        return certificateDirectory.hasSuffix("/") ? certificateDirectory + file : certificateDirectory + "/" + file
    }
}

/// `rollout:` as written: at once, or in waves.
enum RolloutChoice: Sendable, Equatable {
    case immediate
    case waves(RolloutPolicy)

    /// The record the snapshot carries (nil: immediate, no record).
    var policy: RolloutPolicy? {
        if case .waves(let policy) = self { return policy }
        return nil
    }
}

enum GatewayKind: String, Sendable {
    /// Terminates TLS from outside the mesh and routes into it.
    case ingress
    /// A front proxy for internal web applications, with browser security defaults.
    case internalWeb = "internal-web"
}

/// A non-sidecar proxy group: an ingress gateway or an internal web front proxy.
struct GatewayDefinition: Sendable {
    var name: Located<String>
    var kind: GatewayKind
    var template: Located<String>
    var identities: [String]
    var nodeIDs: [String]
    var listenAddress: String
    var listenPort: Located<Int>
    var certificate: String
    var privateKey: String
    var hosts: [Located<String>]
    var routes: [RouteDefinition]
    var cors: CORSDefinition?
    /// How the gateway's proxies subscribe (`xds`).
    var xds: SubscriptionMode
    /// The gateway's own `rollout:` (nil: the mesh's).
    var rollout: RolloutChoice?
    var location: SourceLocation
}

struct CORSDefinition: Sendable {
    var allowOrigins: [String]
    var allowMethods: [String]
    var allowHeaders: [String]
    var maxAge: ConfigDuration?
    var allowCredentials: Bool
}

enum ServiceProtocol: String, Sendable, CaseIterable {
    case http, grpc, tcp
    var isHTTP: Bool { self != .tcp }
}

struct EndpointAddress: Sendable, Hashable {
    var address: String
    var port: Int
}

/// Where a service's application instances run.
enum EndpointsDefinition: Sendable {
    case addresses([Located<EndpointAddress>])
    case dns(name: String, port: Int, location: SourceLocation)

    var location: SourceLocation {
        switch self {
        case .addresses(let list): return list.first?.location ?? SourceLocation(line: 1, column: 1)
        case .dns(_, _, let location): return location
        }
    }
}

struct PortDefinition: Sendable {
    var name: Located<String>
    var proto: ServiceProtocol
    /// Where the service's sidecars accept mesh traffic for this port.
    var port: Located<Int>
    /// The application instances for this port (defaults to the service's endpoints).
    var endpoints: EndpointsDefinition?
    var location: SourceLocation
}

struct DependencyDefinition: Sendable {
    var service: Located<String>
    var port: Located<String>?
    /// For TCP dependencies: where the sidecar listens for the local app.
    var localPort: Located<Int>?
    var location: SourceLocation
}

struct RetryDefinition: Sendable {
    var attempts: Int
    var on: [String]
    var perTryTimeout: ConfigDuration?
    var location: SourceLocation
}

struct RouteTargetDefinition: Sendable {
    var service: Located<String>
    var port: Located<String>?
}

struct HeaderMatchDefinition: Sendable {
    enum Kind: String, Sendable, CaseIterable { case exact, prefix, suffix, regex, present }
    var name: String
    var kind: Kind
    var value: String
    var invert: Bool
}

struct MatchDefinition: Sendable {
    enum Path: Sendable, Equatable {
        case prefix(String), path(String), regex(String)
    }
    var path: Path = .prefix("/")
    var caseSensitive: Bool?
    var headers: [HeaderMatchDefinition] = []
}

struct SplitDefinition: Sendable {
    var total: Located<Int>?
    var targets: [(target: RouteTargetDefinition, weight: Located<Int>)]
    var location: SourceLocation
}

struct RedirectDefinition: Sendable {
    var scheme: String?
    var host: String?
    var path: String?
    var prefix: String?
    var code: Int
}

enum RouteActionDefinition: Sendable {
    case forward(RouteTargetDefinition?)
    case split(SplitDefinition)
    case redirect(RedirectDefinition)
    case directResponse(status: Int, body: String?)
}

struct RouteDefinition: Sendable {
    var name: Located<String>?
    var match = MatchDefinition()
    var action: RouteActionDefinition = .forward(nil)
    var timeout: Located<ConfigDuration>?
    var retries: RetryDefinition?
    var mirror: (target: RouteTargetDefinition, percent: Int)?
    var rewritePrefix: String?
    var location: SourceLocation
}

/// Which generated resource kind an `envoy:` block names.
enum ResourceKind: String, Sendable, CaseIterable {
    case listeners, clusters
    case routeConfigurations = "route_configurations"
    case clusterLoadAssignments = "cluster_load_assignments"
    case secrets

    var typeName: String {
        switch self {
        case .listeners: return "envoy.config.listener.v3.Listener"
        case .clusters: return "envoy.config.cluster.v3.Cluster"
        case .routeConfigurations: return "envoy.config.route.v3.RouteConfiguration"
        case .clusterLoadAssignments: return "envoy.config.endpoint.v3.ClusterLoadAssignment"
        case .secrets: return "envoy.extensions.transport_sockets.tls.v3.Secret"
        }
    }

    var typeURL: String { "type.googleapis.com/" + typeName }

    /// The field that names a resource of this kind.
    var nameField: String { self == .clusterLoadAssignments ? "cluster_name" : "name" }

    var singular: String {
        switch self {
        case .listeners: return "listener"
        case .clusters: return "cluster"
        case .routeConfigurations: return "route configuration"
        case .clusterLoadAssignments: return "cluster load assignment"
        case .secrets: return "secret"
        }
    }
}

/// The raw-Envoy escape hatch of a service: fields merged into generated resources, and extra resources.
struct RawEnvoyDefinition: Sendable {
    /// kind → (resource name, partial resource) in file order.
    var patches: [ResourceKind: [(name: Located<String>, node: YAMLNode)]] = [:]
    /// kind → complete extra resources.
    var additions: [ResourceKind: [YAMLNode]] = [:]
}

/// One service (Configs/services/NAME.yaml).
struct ServiceDefinition: Sendable {
    var file: String
    var origin: Int32
    var name: Located<String>
    var description: String?
    var owners: [String]
    var ports: [PortDefinition]
    var endpoints: EndpointsDefinition?
    var hosts: [Located<String>]
    var outboundPort: Located<Int>?
    var dependencies: [DependencyDefinition]
    var routes: [RouteDefinition]
    var timeout: ConfigDuration?
    var connectTimeout: ConfigDuration?
    var retries: RetryDefinition?
    var mtlsDisabled: Located<String>?
    var allowedCallers: [Located<String>]
    var raw: RawEnvoyDefinition
    /// The service's sidecar group's own `rollout:` (nil: the mesh's).
    var rollout: RolloutChoice?
    var location: SourceLocation
    /// `proxyless: grpc`: the application is a gRPC client that takes its config from meshctl itself
    /// (gRPC's xDS resolver, `xds:///SERVICE`); no sidecar, no ports, nothing calls it.
    var proxyless: Located<String>? = nil

    var isProxyless: Bool { proxyless != nil }

    /// The first HTTP or gRPC port (what routes and outbound virtual hosts use by default).
    var primaryHTTPPort: PortDefinition? { ports.first { $0.proto.isHTTP } }
}

/// A proxy group made only of raw Envoy resources (Configs/groups/NAME.yaml; `meshctl import` writes them from a
/// flat Envoy bootstrap): no template, no mesh semantics — its resources are checked like every other Envoy
/// resource and served to the group's proxies as they are.
struct RawGroupDefinition: Sendable {
    var file: String
    var name: Located<String>
    var identities: [String]
    var nodeIDs: [String]
    /// How the group's proxies subscribe; its resources' config sources must be written for this mode.
    var xds: SubscriptionMode
    var rollout: RolloutChoice?
    /// kind → the group's resources (`envoy.add`), in file order.
    var resources: [ResourceKind: [YAMLNode]]
    var location: SourceLocation
}
