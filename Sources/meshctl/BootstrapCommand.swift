// `meshctl bootstrap`: a working Envoy bootstrap for one proxy.
import ArgumentParser
import Foundation
import MeshServer

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
    var streams: StreamLayout = .ads

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
        switch (streams, delta) {
        case (.ads, false): bootstrap.mode = .adsStateOfTheWorld
        case (.ads, true): bootstrap.mode = .adsDelta
        case (.perType, false): bootstrap.mode = .perType
        case (.perType, true): bootstrap.mode = .perTypeDelta
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
}
