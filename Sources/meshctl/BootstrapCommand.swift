// `meshctl bootstrap`: a working Envoy bootstrap for one proxy.
import ArgumentParser
import Foundation
import MeshModel
import SnapshotStorage

extension SubscriptionMode: ExpressibleByArgument {}

struct Bootstrap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print an Envoy bootstrap that connects a proxy to meshctl serve over mutual TLS."
    )

    @Option(help: "The proxy's node id.")
    var nodeId: String

    @Option(help: "The proxy's node cluster: the proxy group it belongs to.")
    var nodeCluster: String

    @Option(help: "The xDS server, HOST:PORT.")
    var server: String

    @Option(help: "The proxy's certificate (PEM file on the proxy's host).")
    var cert: String?

    @Option(help: "The proxy's private key (PEM file on the proxy's host).")
    var key: String?

    @Option(help: "The CA that signed the server's certificate.")
    var ca: String?

    @Option(help: "The name to expect in the server's certificate (default: the server host).")
    var serverName: String?

    @Flag(help: "Use the incremental (delta) xDS protocol.")
    var delta = false

    @Flag(exclusivity: .exclusive, help: "Aggregated (one ADS stream, the default) or one stream per resource type.")
    var streams: StreamLayout?

    @Option(help: ArgumentHelp("The snapshot store meshctl serve serves: the subscription mode defaults to the group's (its xds setting in mesh.yaml), and --delta/--per-type must agree with it.", valueName: "dir"))
    var store: String?

    @Option(help: "Envoy admin port on 127.0.0.1.")
    var adminPort = 9901

    @Flag(help: "Connect without TLS (development only; the server must run with --insecure-plaintext).")
    var insecurePlaintext = false

    enum StreamLayout: String, EnumerableFlag { case ads, perType }

    var endpoint: (host: String, port: Int)? {
        guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]), (1...65535).contains(port) else { return nil }
        var host = String(server[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    func validate() throws {
        guard endpoint != nil else { throw ValidationError("--server must be HOST:PORT, e.g. 127.0.0.1:18000") }
        if !insecurePlaintext && (cert == nil || key == nil || ca == nil) {
            throw ValidationError("mutual TLS needs --cert, --key and --ca (or --insecure-plaintext for local development)")
        }
        guard (1...65535).contains(adminPort) else { throw ValidationError("--admin-port must be 1-65535") }
        if nodeId.isEmpty || nodeCluster.isEmpty { throw ValidationError("--node-id and --node-cluster must not be empty") }
    }

    func run() throws {
        let (host, port) = endpoint!
        var bootstrap = ProxyBootstrap(nodeID: nodeId, nodeCluster: nodeCluster, serverHost: host, serverPort: port)
        switch (streams ?? .ads, delta) {
        case (.ads, false): bootstrap.mode = .adsStateOfTheWorld
        case (.ads, true): bootstrap.mode = .adsDelta
        case (.perType, false): bootstrap.mode = .perType
        case (.perType, true): bootstrap.mode = .perTypeDelta
        }
        if let store {
            let groupMode = try Self.subscriptionMode(ofGroup: nodeCluster, store: store)
            if streams == nil && !delta {
                bootstrap.mode = groupMode
            } else if bootstrap.mode != groupMode {
                // Resources compiled for one mode name config sources the other mode's proxy does not have.
                throw Self.usage("group '\(nodeCluster)' is compiled for xds: \(groupMode.rawValue) (mesh.yaml), not \(bootstrap.mode.rawValue); drop --delta/--per-type/--ads to follow the group, or change its xds setting")
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

    /// The group's mode as the live snapshot in `store` records it.
    static func subscriptionMode(ofGroup group: String, store path: String) throws -> SubscriptionMode {
        let snapshot: Snapshot?
        do { snapshot = try SnapshotStore(directory: path).current() } catch {
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
