// `meshctl loadgen`: simulated Envoy proxies against a running xDS server (argument parsing and output only).
import ArgumentParser
import Foundation
import LoadGenerator
import MeshModel
import PostgresStorage
import SnapshotStorage
import Transport

struct Loadgen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Simulate N Envoy proxies over mutual TLS against an xDS server and measure time to configuration and push latency.",
        discussion: """
        Each proxy (node id loadgen-<i>, node cluster = its group) subscribes like Envoy (CDS and LDS wildcard, then the \
        EDS/RDS names they refer to), ACKs every response (NACKs --nack-rate of them once configured), and records when \
        each response arrived and its ACK was sent. With --store (the store the server serves from: a directory or a postgres:// URL), every version \
        published during the run is matched to the responses and publish→receipt/ACK latencies are reported. Stops after \
        --duration; exits 1 if the server is unreachable, the TLS handshake fails, streams are refused, or a proxy never \
        gets its configuration.
        """
    )

    @Option(help: "The xDS server, HOST:PORT (numeric address).")
    var server = "127.0.0.1:18000"
    @Option(help: "CA that signed the server's certificate (PEM).")
    var ca: String
    @Option(help: "Client certificate presented by every simulated proxy (PEM).")
    var cert: String
    @Option(help: "Client private key (PEM).")
    var key: String
    @Option(help: "Name to verify in the server's certificate.")
    var serverName = "localhost"
    @Option(help: "Simulated proxies.")
    var proxies = 100
    @Option(help: "HTTP/2 connections the proxies are spread over (default: one per proxy, like real Envoys).")
    var connections: Int?
    @Option(help: "ads, ads-delta, per-type or per-type-delta (ads-sotw: deprecated spelling of ads).")
    var mode = "ads"
    @Option(help: "Proxy groups (node.cluster), comma-separated; proxies are spread round-robin.")
    var groups = "default"
    @Option(help: "Seconds the run lasts.")
    var duration = 30.0
    @Option(help: "Fraction of responses NACKed once a proxy is configured (0-1).")
    var nackRate = 0.0
    @Option(help: "The snapshot store the server serves from: enables publish→receipt/ACK latencies.")
    var store: String?
    @Option(help: "Write the report as JSON to this file.")
    var json: String?
    @Option(help: "Client event loop threads.")
    var threads = EventLoopGroup.onlineCPUCount
    @Option(help: "Create this file once every proxy has its complete configuration (for scripts).")
    var readyFile: String?
    @Flag(help: "Allow a server address outside loopback (the load is real: only point it at your own servers).")
    var allowRemote = false
    @Flag(help: "Reconnect like Envoy (jittered backoff) when a connection or stream is lost, instead of counting the proxy as failed.")
    var reconnect = false
    @Option(help: "Churn: connections closed by the proxies per second, each reconnecting (implies --reconnect).")
    var churnPerSecond = 0.0
    @Option(help: "Write one JSON line of progress (configured proxies now, reconnects, …) every 100 ms to this file.")
    var progressFile: String?

    func run() throws {
        // Every simulated proxy decodes and drops each answer's objects: with glibc's 7-chunk cache most of those
        // allocations took malloc's slow path (15 % of the load generator's CPU in a 10,000-proxy SotW fan-out).
        AllocatorTuning.apply()
        guard let colon = server.lastIndex(of: ":"), let port = Int(server[server.index(after: colon)...]) else {
            printError("meshctl loadgen: --server must be HOST:PORT, e.g. 127.0.0.1:18000")
            throw Exit.usage
        }
        var host = String(server[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { host = "127.0.0.1" }
        guard allowRemote || LoadGeneratorOptions.isLoopback(host) else {
            printError("meshctl loadgen: \(host) is not a loopback address; pass --allow-remote to load a server you operate elsewhere")
            throw Exit.usage
        }
        guard let (loadMode, _) = SubscriptionMode.parse(mode) else {
            printError("meshctl loadgen: --mode must be one of \(SubscriptionMode.spellings)")
            throw Exit.usage
        }
        if let warning = SubscriptionMode.deprecationWarning(mode, option: "--mode") { printError("meshctl loadgen: \(warning)") }
        for (flag, path) in [("--ca", ca), ("--cert", cert), ("--key", key)] where !FileManager.default.isReadableFile(atPath: path) {
            printError("meshctl loadgen: \(flag) \(path): no such readable file")
            throw Exit.usage
        }
        guard duration > 0, duration <= 86_400 else {
            printError("meshctl loadgen: --duration must be between 0 and 86400 seconds")
            throw Exit.usage
        }
        var options = LoadGeneratorOptions(host: host, port: port, credentials: TLSClientCredentials(
            certificateChainFile: cert, privateKeyFile: key, trustedCAFile: ca, serverName: serverName))
        options.proxies = proxies
        options.connections = connections ?? proxies
        options.mode = loadMode
        options.groups = groups.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        options.duration = .milliseconds(Int64(duration * 1000))
        options.nackRate = nackRate
        if let store {
            do {
                options.store = try openSnapshotStore(store)
            } catch {
                printError("meshctl loadgen: --store \(StoreArgument.displayed(store)): \(error)")
                throw Exit.usage
            }
        }
        options.eventLoops = max(1, threads)
        options.reconnect = reconnect
        options.churnPerSecond = churnPerSecond
        options.progressFile = progressFile
        if let problem = options.problem() {
            printError("meshctl loadgen: \(problem)")
            throw Exit.usage
        }
        raiseOpenFileLimit(to: options.connections + 256)
        let generator: LoadGenerator
        do {
            generator = try LoadGenerator(options: options)
        } catch {
            printError("meshctl loadgen: \(error)")
            throw Exit.usage
        }
        // SIGINT/SIGTERM end the run early; the report is still printed (SIGHUP too: a closed terminal).
        ProcessSignals.handle { _ in generator.requestEnd() }
        generator.start()
        if let readyFile {
            let proxies = options.proxies
            let ready = generator.wait(upTo: duration) { $0.configuredProxies == proxies }
            if ready { _ = FileManager.default.createFile(atPath: readyFile, contents: Data()) }
        }
        generator.waitForEnd()
        let report = generator.stop()
        let verdict = generator.verdict()
        print(report.table())
        if let json {
            do {
                try report.json().write(to: URL(fileURLWithPath: json))
            } catch {
                printError("meshctl loadgen: cannot write --json \(json): \(error.localizedDescription)")
                throw Exit.usage
            }
        }
        if let verdict {
            printError("meshctl loadgen: \(verdict)")
            throw Exit.invalid
        }
    }

    /// Each connection is a socket: 10,000 proxies need more descriptors than the usual soft limit of 1024.
    private func raiseOpenFileLimit(to wanted: Int) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < rlim_t(wanted) else { return }
        limit.rlim_cur = min(limit.rlim_max, rlim_t(wanted))
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 || limit.rlim_cur < rlim_t(wanted) {
            printError("meshctl loadgen: warning: open-file limit is \(limit.rlim_cur), below the \(wanted) descriptors \(connections ?? proxies) connections need (raise the hard limit: ulimit -Hn)")
        }
    }
}

/// `meshctl bench-fixture` (hidden): publishes the benchmark mesh, one-cluster changes and endpoint churn.
struct BenchFixture: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-fixture",
        abstract: "Publish the synthetic benchmark mesh to a snapshot store (used by make bench).",
        shouldDisplay: false
    )

    @Option(help: "The snapshot store: a directory (created if missing) or a postgres:// URL.")
    var store: String
    @Option(help: "Proxy groups, comma-separated.")
    var groups = "default"
    @Option(help: "EDS clusters per group.")
    var clusters = 50
    @Option(help: "Identity (SPIFFE ID or CN) allowed to receive every group; repeatable.")
    var identity: [String] = []
    @Option(help: "Listener port in the mesh.")
    var listenerPort = 10_000
    @Option(help: "Change this cluster's connect_timeout (a one-cluster change) to revision --revision.")
    var changeCluster: Int?
    @Option(help: "Revision for --change-cluster; with churn, the first endpoint revision (so runs can follow each other).")
    var revision = 1
    @Option(help: "Endpoint churn: publishes per second, each moving every cluster's endpoints.")
    var churnPerSecond = 0.0
    @Option(help: "Endpoint churn: for how many seconds.")
    var churnSeconds = 0.0
    @Option(help: "Endpoint churn: stop after this many publishes (even before --churn-seconds).")
    var churnVersions: Int?
    @Option(help: "Rollout waves every group's policy record carries, comma-separated (e.g. 1,10%,100%); none: immediate.")
    var rolloutWaves: String?
    @Option(help: "The rollout policy's bake time in milliseconds.")
    var rolloutBakeMs: Int64 = 2000
    @Flag(help: "After the version, print when the publish returned (Unix time, seconds): the start of publish → served.")
    var printPublishedAt = false

    func run() throws {
        let store: any SnapshotStoring
        do {
            store = try openPublishTarget(self.store)
        } catch {
            printError("meshctl bench-fixture: --store \(StoreArgument.displayed(self.store)): \(error)")
            throw Exit.usage
        }
        var mesh = BenchmarkMesh(groups: groups.split(separator: ",").map(String.init), clusters: clusters, identities: identity)
        mesh.listenerPort = listenerPort
        if let rolloutWaves {
            let waves = rolloutWaves.split(separator: ",").compactMap { RolloutPolicy.WaveSize(text: String($0)) }
            guard RolloutPolicy.problems(of: waves).isEmpty, waves.count == rolloutWaves.split(separator: ",").count else {
                printError("meshctl bench-fixture: --rollout-waves \(rolloutWaves): \(RolloutPolicy.problems(of: waves).map(\.message).joined(separator: "; "))")
                throw Exit.usage
            }
            mesh.rollout = RolloutPolicy(waves: waves, bakeMilliseconds: rolloutBakeMs)
        }
        if let changeCluster { mesh.clusterRevisions[changeCluster] = revision }
        do {
            guard churnPerSecond > 0 else {
                let version = try mesh.publish(to: store, message: changeCluster.map { "cluster svc-\($0) revision \(revision)" } ?? "benchmark mesh")
                print(printPublishedAt ? "\(version) \(String(format: "%.3f", Date().timeIntervalSince1970))" : version)
                return
            }
            let interval = 1 / churnPerSecond
            let start = Date()
            var tick = 0
            var slow = 0
            while Date().timeIntervalSince(start) < churnSeconds && tick < (churnVersions ?? .max) {
                tick += 1
                mesh.endpointRevision = revision + tick - 1
                try mesh.publish(to: store, message: "endpoint churn \(tick)")
                let next = start.addingTimeInterval(Double(tick) * interval)
                let wait = next.timeIntervalSinceNow
                if wait > 0 { usleep(UInt32(wait * 1e6)) } else { slow += 1 }
            }
            print("published \(tick) versions in \(String(format: "%.1f", Date().timeIntervalSince(start))) s (\(slow) late)")
        } catch {
            printError("meshctl bench-fixture: \(error)")
            throw Exit.usage
        }
    }
}
