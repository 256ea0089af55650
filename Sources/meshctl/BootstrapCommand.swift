// `meshctl bootstrap`: a working Envoy bootstrap for one proxy, or with --grpc the xDS bootstrap
// JSON of a proxyless gRPC application (GRPC_XDS_BOOTSTRAP).
import ArgumentParser
import Foundation
import MeshModel
import PostgresStorage
import SnapshotStorage

struct Bootstrap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an Envoy bootstrap that connects a proxy to meshctl serve over mutual TLS.",
        discussion: "With --grpc: the xDS bootstrap JSON for a proxyless gRPC application (a `proxyless: grpc` service), to pass in GRPC_XDS_BOOTSTRAP; --cert, --key and --ca become its channel credentials and its certificate providers (mesh-identity, mesh-ca)."
    )

    @Option(help: "The proxy's node id.")
    var nodeId: String

    @Option(help: "The proxy's node cluster: the proxy group it belongs to.")
    var nodeCluster: String

    @Option(help: "The xDS server, HOST:PORT; repeat it for several meshctl serve replicas (the proxy reconnects to another when one goes), or give one DNS name that resolves to all of them.")
    var server: [String] = []

    @Option(help: "The proxy's certificate (PEM file on the proxy's host).")
    var cert: String?

    @Option(help: "The proxy's private key (PEM file on the proxy's host).")
    var key: String?

    @Option(help: "The CA that signed the server's certificate.")
    var ca: String?

    @Option(help: "The name to expect in the server's certificate (default: the server host).")
    var serverName: String?

    @Option(help: "How the proxy subscribes: ads (the default), ads-delta, per-type or per-type-delta (as mesh.yaml's xds).")
    var mode: String?

    @Flag(help: ArgumentHelp("Deprecated: use --mode ads-delta or per-type-delta.", visibility: .hidden))
    var delta = false

    @Flag(exclusivity: .exclusive, help: ArgumentHelp("Deprecated: use --mode.", visibility: .hidden))
    var streams: StreamLayout?

    @Option(help: ArgumentHelp("The snapshot store meshctl serve serves: the subscription mode defaults to the group's (its xds setting in mesh.yaml), and --mode must agree with it.", valueName: "dir"))
    var store: String?

    @Option(help: "Envoy admin port on 127.0.0.1.")
    var adminPort = 9901

    @Flag(help: "Connect without TLS (development only; the server must run with --insecure-plaintext).")
    var insecurePlaintext = false

    @Flag(help: "Print gRPC's xDS bootstrap JSON (GRPC_XDS_BOOTSTRAP) for a proxyless gRPC client group instead of Envoy's.")
    var grpc = false

    enum StreamLayout: String, EnumerableFlag { case ads, perType }

    static func endpoint(_ server: String) -> (host: String, port: Int)? {
        guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(server[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    var endpoints: [(host: String, port: Int)] { server.compactMap(Self.endpoint) }

    func validate() throws {
        guard !server.isEmpty else { throw ValidationError("give --server HOST:PORT (repeat it for several replicas)") }
        for s in server where Self.endpoint(s) == nil { throw ValidationError("--server \(s) must be HOST:PORT, e.g. 127.0.0.1:18000") }
        if !insecurePlaintext && (cert == nil || key == nil || ca == nil) {
            throw ValidationError("mutual TLS needs --cert, --key and --ca (or --insecure-plaintext for local development)")
        }
        guard (1...65535).contains(adminPort) else { throw ValidationError("--admin-port must be 1-65535") }
        if nodeId.isEmpty || nodeCluster.isEmpty { throw ValidationError("--node-id and --node-cluster must not be empty") }
        if let mode {
            guard SubscriptionMode.parse(mode) != nil else { throw ValidationError("--mode must be one of \(SubscriptionMode.spellings)") }
            if delta || streams != nil { throw ValidationError("give --mode alone (--delta, --ads and --per-type are its deprecated spellings)") }
        }
        if grpc {
            if let mode = requestedMode, mode != .adsStateOfTheWorld {
                throw ValidationError("gRPC's xDS client subscribes by state-of-the-world ADS only; drop --mode (or give --mode ads) with --grpc")
            }
            if serverName != nil { throw ValidationError("--server-name does not apply to --grpc: gRPC checks the server's certificate against the --server host") }
        }
    }

    /// The mode asked for on the command line (nil: none, follow the group or default to ads).
    var requestedMode: SubscriptionMode? {
        if let mode { return SubscriptionMode.parse(mode)?.mode }
        guard delta || streams != nil else { return nil }
        return SubscriptionMode(aggregated: (streams ?? .ads) == .ads, delta: delta)
    }

    func run() throws {
        let all = endpoints
        if grpc { return try runGRPC(all) }
        var bootstrap = ProxyBootstrap(nodeID: nodeId, nodeCluster: nodeCluster, serverHost: all[0].host, serverPort: all[0].port)
        bootstrap.additionalServers = Array(all.dropFirst())
        if mode == nil && (delta || streams != nil), let requestedMode {
            FileHandle.standardError.write(Data("meshctl bootstrap: warning: --delta, --ads and --per-type are deprecated; write --mode \(requestedMode.rawValue)\n".utf8))
        }
        if let mode, let warning = SubscriptionMode.deprecationWarning(mode, option: "--mode") {
            FileHandle.standardError.write(Data("meshctl bootstrap: \(warning)\n".utf8))
        }
        bootstrap.mode = requestedMode ?? .adsStateOfTheWorld
        if let store {
            let groupMode = try Self.subscriptionMode(ofGroup: nodeCluster, store: store)
            if requestedMode == nil {
                bootstrap.mode = groupMode
            } else if bootstrap.mode != groupMode {
                // Resources compiled for one mode name config sources the other mode's proxy does not have.
                throw Self.usage("group '\(nodeCluster)' is compiled for xds: \(groupMode.rawValue) (mesh.yaml), not \(bootstrap.mode.rawValue); drop --mode to follow the group, or change its xds setting")
            }
        }
        if !insecurePlaintext {
            bootstrap.certificate = cert
            bootstrap.privateKey = key
            bootstrap.caCertificate = ca
            bootstrap.serverName = serverName
        }
        bootstrap.adminPort = adminPort
        print(bootstrap.yaml, terminator: "")
    }

    func runGRPC(_ servers: [(host: String, port: Int)]) throws {
        if let store {
            let groupMode = try Self.subscriptionMode(ofGroup: nodeCluster, store: store)
            guard groupMode == .adsStateOfTheWorld else {
                throw Self.usage("group '\(nodeCluster)' is compiled for xds: \(groupMode.rawValue), which gRPC's xDS client cannot use (it subscribes by ADS, state of the world); make it a proxyless: grpc service")
            }
        }
        var bootstrap = GRPCBootstrap(nodeID: nodeId, nodeCluster: nodeCluster, serverHost: servers[0].host, serverPort: servers[0].port)
        bootstrap.additionalServers = Array(servers.dropFirst())
        if !insecurePlaintext {
            bootstrap.certificate = cert
            bootstrap.privateKey = key
            bootstrap.caCertificate = ca
        }
        print(bootstrap.json, terminator: "")
    }

    /// The group's mode as the live snapshot in `store` records it.
    static func subscriptionMode(ofGroup group: String, store path: String) throws -> SubscriptionMode {
        let snapshot: Snapshot?
        do { snapshot = try openSnapshotStore(path).current() } catch {
            throw Self.usage("--store \(path): \(error)")
        }
        guard let snapshot else { throw Self.usage("--store \(path): nothing published yet; run meshctl compile first") }
        guard let resources = snapshot.groups[group] else {
            throw Self.usage("--store \(path): the live snapshot has no proxy group '\(group)' (groups: \(snapshot.groupNames.joined(separator: ", ")))")
        }
        guard let record = resources.resources[GroupAccess.typeURL]?[group].flatMap({ GroupAccess.decode($0.body) }), let mode = record.subscriptionMode else {
            throw Self.usage("--store \(path): group '\(group)' has no readable access record; recompile with this meshctl")
        }
        return mode
    }

    static func usage(_ message: String) -> ExitCode {
        printError("meshctl: bootstrap: \(message)")
        return Exit.usage
    }
}
