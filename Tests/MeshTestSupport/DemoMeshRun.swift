// The demo mesh run for real, as the system tests need it again and again: development
// certificates, the repository's Configs/ compiled by `meshctl compile` into a store,
// `meshctl serve` over mutual TLS, the demo's applications, and real Envoys bootstrapped
// by `meshctl bootstrap`. One place, so every system test starts them the same way.
import Foundation
import MeshCertificates
import XCTest

/// A temporary directory and every process started in it; `stop()` (from tearDown) ends them, newest first.
public final class DemoMeshRun {
    public let directory: String
    /// Development certificates (`meshctl certs init` layout): ca.crt, server.crt/key, GROUP.crt/key, operator-NAME.crt/key.
    public let certificates: String
    /// The compiled Configs/ copy.
    public let configs: String
    /// The directory store the demo was compiled into.
    public let store: String
    public private(set) var children: [ChildProcess] = []

    /// Skips the test when Envoy is not installed; writes certificates for `proxies` and `operators`, copies Configs/
    /// (gateways' `xds` modes set from `gatewayModes`) and compiles it into `store` — unless `compileDemo` is false
    /// (a test that publishes its own snapshots to `store`; `configs` is then empty).
    public init(proxies: [String], operators: [String] = [], gatewayModes: [String: String] = [:], compileDemo: Bool = true) throws {
        guard FileManager.default.isExecutableFile(atPath: E2E.envoy) else { throw XCTSkip("Envoy is not installed; run through `make test`") }
        directory = try E2E.temporaryDirectory()
        certificates = directory + "/certs"
        store = directory + "/store"
        _ = try DevelopmentCertificates.write(to: certificates, trustDomain: "mesh.local", proxies: proxies, operators: operators)
        guard compileDemo else {
            configs = ""
            return
        }
        configs = try E2E.demoConfigs(in: directory, certificates: certificates, gatewayModes: gatewayModes)
        let compile = E2E.run(E2E.meshctl, ["compile", "--configs", configs, "--templates", E2E.root.appendingPathComponent("templates").path,
                                            "--out", store], timeout: 120)
        guard compile?.status == 0 else {
            throw DemoMeshError("meshctl compile of the demo failed: \(compile?.output ?? "did not finish")")
        }
    }

    /// Keeps `child` to be stopped with the rest.
    @discardableResult
    public func adopt(_ child: ChildProcess) -> ChildProcess {
        children.append(child)
        return child
    }

    /// An application of the demo: answers every GET on 127.0.0.1:`port` with `body` (users 19170, frontend 19110, admin 19190).
    public func startApplication(port: Int, body: String) throws {
        adopt(try startUpstream(port: port, body: body, directory: directory))
    }

    /// `meshctl serve` on the store with the development server certificate (on `port`, default a free one); returns the
    /// process and its xDS port once it logs `server.listening`.
    public func startServe(admin: String = "off", extraArguments: [String] = [], name: String = "server", port: Int? = nil) throws -> (process: ChildProcess, port: Int) {
        let port = port ?? E2E.freePort()
        let server = adopt(try ChildProcess(E2E.meshctl, ["serve", "--store", store, "--listen", "127.0.0.1:\(port)", "--admin", admin,
                                                          "--tls-cert", certificates + "/server.crt", "--tls-key", certificates + "/server.key",
                                                          "--client-ca", certificates + "/ca.crt", "--drain-seconds", "1"] + extraArguments,
                                           log: "\(directory)/\(name).log"))
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }
        return (server, port)
    }

    /// A started Envoy: its process, admin port and the bootstrap `meshctl bootstrap` wrote for it.
    public struct Envoy {
        public let process: ChildProcess
        public let adminPort: Int
        public let bootstrap: String
    }

    /// A real Envoy of `group` (node id `nodeID`, default GROUP-1) bootstrapped by `meshctl bootstrap` against the server
    /// on `serverPort`, with `bootstrapFlags` added (e.g. `--delta`, or `--store STORE` to take the group's mode from it)
    /// and `envoyArguments` added to Envoy's command line.
    public func startEnvoy(group: String, nodeID: String? = nil, serverPort: Int, bootstrapFlags: [String] = [],
                           envoyArguments: [String] = []) throws -> Envoy {
        let node = nodeID ?? "\(group)-1"
        let admin = E2E.freePort()
        let bootstrap = E2E.run(E2E.meshctl, ["bootstrap", "--node-id", node, "--node-cluster", group, "--server", "127.0.0.1:\(serverPort)",
                                              "--cert", "\(certificates)/\(group).crt", "--key", "\(certificates)/\(group).key",
                                              "--ca", "\(certificates)/ca.crt", "--server-name", "localhost", "--admin-port", "\(admin)"] + bootstrapFlags,
                                timeout: 30)
        guard bootstrap?.status == 0, let yaml = bootstrap?.output else {
            throw DemoMeshError("meshctl bootstrap for \(node) failed: \(bootstrap?.output ?? "did not finish")")
        }
        let path = "\(directory)/\(node)-\(admin).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        let envoy = adopt(try ChildProcess(E2E.envoy, ["-c", path, "--base-id", "\(admin)", "--disable-hot-restart", "-l", "warning"] + envoyArguments,
                                           log: "\(directory)/envoy-\(node)-\(admin).log"))
        return Envoy(process: envoy, adminPort: admin, bootstrap: yaml)
    }

    /// Stops every process, newest first, and removes the directory.
    public func stop() {
        for child in children.reversed() { child.stop() }
        children = []
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A demo-mesh step that failed, with the tool's output.
public struct DemoMeshError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
