// The bootstrap a proxyless gRPC application needs (`meshctl bootstrap --grpc`): the JSON file
// gRPC's xDS client reads from GRPC_XDS_BOOTSTRAP (gRFC A27), with the xDS server over mutual TLS
// (`tls` channel credentials, gRFC A65) and the certificate providers (gRFC A29) that the
// resources compiled for a proxyless group name: `mesh-identity` (the group's certificate and key)
// and `mesh-ca` (the mesh CA) — the same names as the sidecars' SDS secrets, so one word means one
// thing in both worlds. gRPC subscribes by state-of-the-world ADS only.

import EnvoySchema

public struct GRPCBootstrap: Sendable {
    /// Certificate-provider instance names; templates/grpc-client.yaml names them via mesh.identity_secret / mesh.ca_secret.
    public static let identityProvider = "mesh-identity"
    public static let caProvider = "mesh-ca"
    /// How often gRPC's file watcher re-reads the files (certificate rotation).
    public static let refreshInterval = "60s"

    public var nodeID: String
    public var nodeCluster: String
    public var serverHost: String
    public var serverPort: Int
    /// Further meshctl serve replicas, in order: gRPC falls back to the next when one is unreachable (gRFC A71).
    public var additionalServers: [(host: String, port: Int)] = []
    /// mTLS material on the application's host; nil only with plaintext (development).
    public var certificate: String?
    public var privateKey: String?
    public var caCertificate: String?

    public init(nodeID: String, nodeCluster: String, serverHost: String, serverPort: Int) {
        self.nodeID = nodeID
        self.nodeCluster = nodeCluster
        self.serverHost = serverHost
        self.serverPort = serverPort
    }

    /// A `server_uri`: gRPC checks the server's certificate against this host.
    static func serverURI(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// JSON for GRPC_XDS_BOOTSTRAP (or GRPC_XDS_BOOTSTRAP_CONFIG).
    public var json: String {
        var credentials = "{\"type\": \"insecure\"}"
        var providers = ""
        if let certificate, let privateKey, let caCertificate {
            credentials = """
            {"type": "tls", "config": {"ca_certificate_file": \(q(caCertificate)), "certificate_file": \(q(certificate)), \
            "private_key_file": \(q(privateKey)), "refresh_interval": \(q(Self.refreshInterval))}}
            """
            providers = """
            ,
              "certificate_providers": {
                \(q(Self.identityProvider)): {"plugin_name": "file_watcher", "config": {"certificate_file": \(q(certificate)), \
            "private_key_file": \(q(privateKey)), "refresh_interval": \(q(Self.refreshInterval))}},
                \(q(Self.caProvider)): {"plugin_name": "file_watcher", "config": {"ca_certificate_file": \(q(caCertificate)), \
            "refresh_interval": \(q(Self.refreshInterval))}}
              }
            """
        }
        let servers = ([(serverHost, serverPort)] + additionalServers).map { server in
            "    {\"server_uri\": \(q(Self.serverURI(server.0, server.1))), \"channel_creds\": [\(credentials)], \"server_features\": [\"xds_v3\"]}"
        }
        return """
        {
          "xds_servers": [
        \(servers.joined(separator: ",\n"))
          ],
          "node": {"id": \(q(nodeID)), "cluster": \(q(nodeCluster)), "locality": {}}\(providers)
        }

        """
    }

    private func q(_ s: String) -> String { TextQuoting.json(s) }
}
