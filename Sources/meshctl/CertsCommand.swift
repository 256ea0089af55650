// `meshctl certs`: development certificates so the quickstart runs with mTLS.
import ArgumentParser
import Foundation
import MeshCertificates

struct Certs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Development certificates for mutual TLS.",
        subcommands: [Initialize.self, Renew.self]
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

    struct Renew: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-issue proxy certificates from the development CA (same SPIFFE ID, new key), in place.",
            discussion: "Reads ca.crt/ca.key and each NAME.crt in --dir, issues a new certificate and key for the same identity, and renames them into place (key first, certificate right after). Envoys whose secrets watch that directory (the shipped templates set watched_directory) pick them up without a restart; new connections present the new certificate."
        )

        @Option(help: "The directory `meshctl certs init` wrote.")
        var dir: String

        @Option(name: .customLong("proxy"), help: "A proxy group whose certificate to renew (repeatable).")
        var proxies: [String] = []

        @Option(help: "Validity of the new certificates, in days.")
        var days = 365

        func validate() throws {
            guard !proxies.isEmpty else { throw ValidationError("name at least one --proxy to renew") }
            for name in proxies where name.isEmpty || name.contains("/") || name.hasPrefix(".") {
                throw ValidationError("proxy name '\(name)' must be a plain file name (no '/', not starting with '.')")
            }
            guard (1...3650).contains(days) else { throw ValidationError("--days must be 1-3650") }
        }

        func run() throws {
            do {
                let written = try DevelopmentCertificates.renew(in: dir, proxies: proxies, validForSeconds: days * 24 * 3600)
                for file in written.files { print(file) }
            } catch {
                printError("meshctl: certs renew: \(error)")
                throw Exit.invalid
            }
        }
    }
}
