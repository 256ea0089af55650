// `meshctl certs`: development certificates so the quickstart runs with mTLS.
import ArgumentParser
import Foundation
import MeshCertificates

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Development certificates for mutual TLS.",
        subcommands: [Initialize.self]
    )

    struct Initialize: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Create a development CA, the xDS server's certificate and proxy certificates (SPIFFE URI SANs).",
            discussion: "Writes ca.crt/ca.key, server.crt/server.key, NAME.crt/NAME.key for each --proxy and operator-NAME.crt/key for each --operator (keys 0600). For development only: production meshes use their own CA."
        )

        @Option(help: "Directory to write into (created if missing).")
        var out: String

        @Option(help: "SPIFFE trust domain.")
        var trustDomain = "mesh.local"

        @Option(name: .customLong("proxy"), help: "A proxy identity to issue a certificate for (repeatable); its SPIFFE ID is spiffe://TRUST-DOMAIN/proxy/NAME.")
        var proxies: [String] = ["proxy"]

        @Option(name: .customLong("operator"), help: "An operator identity (repeatable): spiffe://TRUST-DOMAIN/operator/NAME may read proxy status (meshctl status).")
        var operators: [String] = ["admin"]

        @Option(name: .customLong("server-host"), help: "Names and addresses the xDS server's certificate covers (repeatable).")
        var serverHosts: [String] = ["localhost", "127.0.0.1", "::1"]

        func validate() throws {
            for name in proxies + operators where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
                throw ValidationError("proxy name '\(name)' must be a plain file name (no '/', not starting with '.')")
            }
            if trustDomain.isEmpty || trustDomain.contains("/") { throw ValidationError("--trust-domain must be a domain such as mesh.local") }
        }

        func run() throws {
            do {
                let written = try DevelopmentCertificates.write(to: out, trustDomain: trustDomain, proxies: proxies, operators: operators, serverHosts: serverHosts)
                for file in written.files { print(file) }
            } catch {
                printError("meshctl: certs init: \(error)")
                throw Exit.invalid
            }
        }
    }
}
