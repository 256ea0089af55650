// `meshctl serve`: the xDS server.
import Locking
import ArgumentParser
import Foundation
import MeshAdmin
import NetworkAddress
import ControlPlane
import MeshServer
import ServerTelemetry
import PostgresStorage
import SnapshotStorage
import Transport

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve the snapshot store's live snapshot to Envoy proxies over xDS (gRPC, HTTP/2, mutual TLS).",
        discussion: "Follows the store: a newly published or rolled-back snapshot is pushed to connected proxies. SIGTERM or SIGINT drains: new connections are refused, proxies are told to reconnect elsewhere (a second signal exits at once). SIGHUP, or a change of the TLS files, loads the certificate, key and client CA bundle again for new connections; established streams are kept, and files that cannot be used are refused with a log line while the current ones stay."
    )

    @Option(help: "The snapshot store (written by meshctl compile): a directory, or postgres://USER@HOST:PORT/DATABASE to follow a shared store with other replicas.")
    var store: String

    @Option(help: "A local directory kept as a copy of the last snapshot served: a replica started while its PostgreSQL store is unreachable serves from it (and says so).")
    var cache: String?

    @Option(help: "Seconds between reads of a PostgreSQL store's live version when no notification arrives (the backstop for a missed NOTIFY; default 2, or the URL's poll_interval).")
    var storePollInterval: Double?

    @Option(help: "Run `snapshot gc --keep N` every --gc-interval seconds (off by default). On a PostgreSQL store only the maintenance leader does it: the replica holding the maintenance advisory lock (one at a time; another takes over when it dies).")
    var gcKeep: Int?

    @Option(help: "Seconds between the maintenance rounds (gc of --gc-keep, trimming of --history-keep).")
    var gcInterval: Double = 3600

    @Option(help: "PostgreSQL store: keep only the newest N history lines (publish, rollback, gc events), trimmed by the maintenance leader every --gc-interval seconds (off by default).")
    var historyKeep: Int?

    @Option(help: "PostgreSQL store: this replica's name in the fleet-status table (default HOSTNAME:PORT of --listen).")
    var replicaId: String?

    @Option(help: "PostgreSQL store: seconds between this replica's fleet-status writes (one statement each, of the proxies that changed); the bound on its write rate.")
    var fleetFlushInterval: Double = 1

    @Option(help: "PostgreSQL store: seconds without a heartbeat after which the status page shows a replica's proxies as stale (the heartbeat is written at least every 5 s).")
    var replicaStaleAfter: Double = 15

    @Option(help: "PostgreSQL store: seconds without a heartbeat after which the maintenance leader deletes a replica's fleet rows.")
    var replicaExpireAfter: Double = 300

    @Option(help: "Address to listen on, HOST:PORT.")
    var listen = "127.0.0.1:18000"

    @Option(help: "The server's certificate chain (PEM).")
    var tlsCert: String?

    @Option(help: "The server's private key (PEM).")
    var tlsKey: String?

    @Option(help: "CA bundle that proxy certificates must chain to (PEM).")
    var clientCa: String?

    @Flag(help: "Serve without TLS (local development only: proxies are not authenticated).")
    var insecurePlaintext = false

    @Option(help: "Event loop threads (default: one per core).")
    var threads: Int = EventLoopGroup.onlineCPUCount

    @Option(help: "Log format: text or json.")
    var logFormat: String = "text"

    @Option(help: "Least severe log level printed: debug, info, warning or error.")
    var logLevel: String = "info"

    @Option(help: "Admin endpoint HOST:PORT (/healthz, /readyz, /metrics, /debug/proxies, status page at /), or 'off'.")
    var admin = "127.0.0.1:18001"

    @Flag(help: "Allow --admin on an address other than loopback (needs --admin-token-file).")
    var adminExpose = false

    @Option(help: "A file holding the bearer token every admin request but /healthz and /readyz must send (Authorization: Bearer TOKEN); required with --admin-expose.")
    var adminTokenFile: String?

    @Option(name: .customLong("status-reader"), help: "A SPIFFE ID allowed to read proxy status over CSDS (repeatable; a trailing * matches by prefix). Default: spiffe://TRUST-DOMAIN/operator/NAME identities.")
    var statusReaders: [String] = []

    @Option(help: "Seconds to wait for streams to finish when draining.")
    var drainSeconds: Int = 10

    @Option(help: "Close connections older than this many seconds with GOAWAY, so proxies rebalance (0: never).")
    var maxConnectionAge: Int = 0

    @Option(help: "Seconds a new stream may stay open without sending its first request before it is ended (DEADLINE_EXCEEDED).")
    var firstRequestTimeout: Double = 30

    @Option(help: "Seconds between checks of --tls-cert, --tls-key and --client-ca for changes; changed files are loaded for new connections without dropping streams (0: only on SIGHUP).")
    var credentialPollSeconds: Double = 2

    @Option(help: "Most concurrent proxy connections.")
    var maxConnections: Int = TransportLimits().maxConnections

    @Option(help: "Most connections one client identity (SPIFFE ID or certificate CN) may hold; proxies of a group that share a certificate share this.")
    var maxConnectionsPerIdentity: Int = TransportLimits().maxConnectionsPerIdentity

    @Option(help: "Most streams one client identity may hold open across its connections.")
    var maxStreamsPerIdentity: Int = TransportLimits().maxStreamsPerIdentity

    var endpoint: (host: String, port: Int)? { hostPort(listen) }

    /// The admin bearer token: the token file's content without surrounding white space (never logged or printed).
    func adminToken() throws -> String? {
        guard let path = adminTokenFile else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--admin-token-file \(path) cannot be read: give a file holding the bearer token (e.g. from `openssl rand -hex 32`)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 16 else {
            throw ValidationError("--admin-token-file \(path) holds \(token.isEmpty ? "no token" : "a token shorter than 16 characters"): use a long random token (e.g. `openssl rand -hex 32`)")
        }
        guard token.allSatisfy({ $0.isASCII && !$0.isWhitespace && !$0.isNewline }) else {
            throw ValidationError("--admin-token-file \(path): the token must be one line of printable ASCII without spaces")
        }
        return token
    }
    var adminEndpoint: (host: String, port: Int)? { admin == "off" ? nil : hostPort(admin) }

    func validate() throws {
        guard endpoint != nil else { throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:18000") }
        guard admin == "off" || adminEndpoint != nil else { throw ValidationError("--admin must be HOST:PORT, e.g. 127.0.0.1:18001, or off") }
        if let (host, _) = adminEndpoint, !IPAddress.isLoopback(host) {
            guard adminExpose else {
                throw ValidationError("--admin \(admin) is not a loopback address: the admin endpoint shows every proxy and the store's history. Bind it to 127.0.0.1, or add --admin-expose with --admin-token-file FILE to serve it beyond this host")
            }
            guard adminTokenFile != nil else {
                throw ValidationError("--admin-expose needs --admin-token-file FILE: a file holding the bearer token admin requests must send")
            }
        }
        if adminTokenFile != nil { _ = try adminToken() }
        guard ServerLog.Level(name: logLevel) != nil else { throw ValidationError("--log-level must be debug, info, warning or error") }
        for reader in statusReaders where !reader.hasPrefix("spiffe://") {
            throw ValidationError("--status-reader \(reader): give a SPIFFE ID such as spiffe://mesh.local/operator/oncall")
        }
        let parsed: StoreArgument
        do { parsed = try StoreArgument(store) } catch { throw ValidationError("--store: \(error)") }
        if case .directory(let path) = parsed {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("--store \(store): no such directory; create it by publishing a snapshot (meshctl compile --out \(store))")
            }
        }
        if !insecurePlaintext {
            guard tlsCert != nil, tlsKey != nil, clientCa != nil else {
                throw ValidationError("mutual TLS needs --tls-cert, --tls-key and --client-ca (create development ones with `meshctl certs init`), or --insecure-plaintext for local development")
            }
            for (flag, path) in [("--tls-cert", tlsCert!), ("--tls-key", tlsKey!), ("--client-ca", clientCa!)] where !FileManager.default.isReadableFile(atPath: path) {
                throw ValidationError("\(flag) \(path): no such readable file")
            }
        }
        if let gcKeep, gcKeep < 0 { throw ValidationError("--gc-keep must be 0 or more") }
        if let historyKeep {
            guard historyKeep >= 1 else { throw ValidationError("--history-keep must be 1 or more") }
            guard case .postgres = parsed else { throw ValidationError("--history-keep trims a PostgreSQL store's history; a directory store keeps its whole history") }
        }
        if let replicaId, replicaId.isEmpty || replicaId.count > 200 || replicaId.contains(where: { $0.isNewline }) {
            throw ValidationError("--replica-id must be 1-200 characters on one line")
        }
        guard (0.05...60).contains(fleetFlushInterval) else { throw ValidationError("--fleet-flush-interval must be 0.05-60 seconds") }
        guard replicaStaleAfter >= 1, replicaExpireAfter >= replicaStaleAfter else {
            throw ValidationError("--replica-stale-after must be at least 1 second and --replica-expire-after at least as long")
        }
        guard gcInterval >= 1, gcInterval <= 7 * 86_400 else { throw ValidationError("--gc-interval must be 1 to 604800 seconds") }
        if let storePollInterval, !(0.01...3600).contains(storePollInterval) {
            throw ValidationError("--store-poll-interval must be 0.01-3600 seconds")
        }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1-256") }
        guard logFormat == "text" || logFormat == "json" else { throw ValidationError("--log-format must be text or json") }
        guard maxConnectionsPerIdentity > 0, maxStreamsPerIdentity > 0 else { throw ValidationError("--max-connections-per-identity and --max-streams-per-identity must be at least 1") }
        guard maxConnections > 0, drainSeconds >= 0, maxConnectionAge >= 0 else { throw ValidationError("limits must not be negative") }
        guard credentialPollSeconds >= 0, credentialPollSeconds <= 86_400 else { throw ValidationError("--credential-poll-seconds must be 0 (off) to 86400") }
        guard firstRequestTimeout > 0, firstRequestTimeout <= 3600 else { throw ValidationError("--first-request-timeout must be more than 0 and at most 3600 seconds") }
    }

    func run() throws {
        let (host, port) = endpoint!
        raiseOpenFileLimit()
        var options = XDSServerOptions()
        options.host = host
        options.port = port
        options.insecurePlaintext = insecurePlaintext
        if !insecurePlaintext { options.tls = TLSServerCredentials(certificateChainFile: tlsCert!, privateKeyFile: tlsKey!, clientCAFile: clientCa!) }
        options.eventLoops = threads
        options.drainGrace = .seconds(drainSeconds)
        options.limits.maxConnections = maxConnections
        options.limits.maxConnectionsPerIdentity = maxConnectionsPerIdentity
        options.limits.maxStreamsPerIdentity = maxStreamsPerIdentity
        options.credentialPollInterval = credentialPollSeconds > 0 ? .milliseconds(Int(credentialPollSeconds * 1000)) : nil
        options.limits.firstMessageTimeout = .milliseconds(Int(firstRequestTimeout * 1000))
        if maxConnectionAge > 0 { options.limits.maxConnectionAge = .seconds(maxConnectionAge) }
        options.admin = adminEndpoint
        options.adminAccess = AdminAccess(bearerToken: try? adminToken())
        options.cacheDirectory = cache
        if !statusReaders.isEmpty { options.statusReaders = .identities(statusReaders) }
        let log = ServerLog(format: logFormat == "json" ? .json : .text, minimumLevel: ServerLog.Level(name: logLevel)!)
        // Signals are taken over before anything starts: one that arrives while the server is still starting is
        // kept and acted on as soon as it runs (a drain of nothing, or a reload), never the default "terminate".
        let stop = StopRequest()
        let started = Locked<XDSServer?>(nil)
        ProcessSignals.handle { signal in
            switch signal {
            case SIGHUP:
                if let server = started.withLock({ $0 }) { server.reloadCredentials(trigger: "SIGHUP") }
            default:
                if stop.request(signal) {
                    log.warning("signal.again", ["signal": signalName(signal), "effect": "exiting now without finishing the drain"])
                    _exit(1)
                }
            }
        }
        let server: XDSServer
        let maintenance: StoreMaintenance
        let fleetStore: PostgresSnapshotStore?
        do {
            let followed = try followedStore()
            fleetStore = try (followed as? PostgresSnapshotStore).map { try PostgresSnapshotStore(url: $0.url) }
            // Its own store object (its own connection): a long gc never delays the snapshot feed or fleet writes.
            let maintained = try (followed as? PostgresSnapshotStore).map { try PostgresSnapshotStore(url: $0.url) } ?? followed
            maintenance = try StoreMaintenance(store: maintained, gcKeep: gcKeep, historyKeep: historyKeep, interval: gcInterval,
                                               expireAfter: replicaExpireAfter, log: log)
            if let fleetStore { configureFleet(&options, store: fleetStore, maintenance: maintenance) }
            server = try XDSServer(options: options, store: followed, log: log)
            try server.start()
            maintenance.start()
            started.withLock { $0 = server }
            try runBlocking { try await server.startAdmin() }
            if let (host, _) = adminEndpoint, !IPAddress.isLoopback(host) {
                log.warning("admin.not-loopback", ["address": admin, "note": "the admin endpoint is served beyond this host; every request but /healthz and /readyz needs the bearer token"])
            }
        } catch {
            printError("meshctl: serve: \(error)")
            throw Exit.usage
        }
        // Termination signals are blocked in every thread and arrive here from the one sigwait thread.
        let unreceivable = ProcessSignals.threadsNotBlocking(SIGTERM)
        if !unreceivable.isEmpty {
            log.error("signals.not-blocked", ["threads": unreceivable.joined(separator: ","),
                                              "effect": "SIGTERM/SIGINT may be lost; stop the process with SIGKILL"])
        }
        let signal = stop.wait()
        log.info("signal.received", ["signal": signalName(signal), "effect": "draining for up to \(drainSeconds) s"])
        let drained = DispatchSemaphore(value: 0)
        Task.detached {
            await server.drain()
            drained.signal()
        }
        drained.wait()
        maintenance.stop()
        if let fleetStore {
            server.waitForFleetWriter(seconds: 5)
            // Its proxies have gone: remove its rows now rather than leaving them to expire.
            do throws(SnapshotStoreError) { try fleetStore.removeReplica(replicaName) } catch {
                log.warning("fleet.remove-failed", ["error": "\(error)", "effect": "the rows expire after --replica-expire-after"])
            }
        }
        log.info("server.stopped", [:])
    }
}

extension Serve {
    /// This replica's name in the fleet table.
    var replicaName: String { replicaId ?? "\(ProcessInfo.processInfo.hostName):\(endpoint?.port ?? 0)" }

    /// A PostgreSQL store: this replica writes its proxies' status to the fleet table, and its status page reads
    /// every replica's from there.
    func configureFleet(_ options: inout XDSServerOptions, store: PostgresSnapshotStore, maintenance: StoreMaintenance) {
        let beat = FleetReplicaBeat(replicaID: replicaName, xdsAddress: listen, adminAddress: adminEndpoint == nil ? nil : admin,
                                    startedAt: Date(), servingVersion: nil, maintenanceLeader: false)
        options.fleetFlushInterval = fleetFlushInterval
        options.fleetHeartbeatInterval = max(fleetFlushInterval, min(5, replicaStaleAfter / 3))
        options.fleetWriter = { batch in
            var replica = beat
            replica.maintenanceLeader = maintenance.leader.withLock { $0 }
            try store.writeFleet(Fleet.databaseBatch(batch, replica: replica))
        }
        let staleAfter = replicaStaleAfter
        options.fleetReader = {
            do throws(SnapshotStoreError) { return .success(Fleet.view(try store.readFleet(), staleAfter: staleAfter)) } catch { return .failure(error) }
        }
    }

    /// The store to follow; a PostgreSQL store with --store-poll-interval applied.
    func followedStore() throws -> any SnapshotStoring {
        guard case .postgres(var url) = try StoreArgument(store), let storePollInterval else { return try openSnapshotStore(store) }
        url.pollIntervalMilliseconds = Int(storePollInterval * 1000)
        return try PostgresSnapshotStore(url: url)
    }
}

/// The first termination signal starts the drain; a second one while draining means "now".
final class StopRequest: Sendable {
    private let state = Locked<Int32?>(nil)
    private let signalled = DispatchSemaphore(value: 0)

    /// Records a signal; returns true if one had already arrived.
    func request(_ signal: Int32) -> Bool {
        let repeated = state.withLock { current -> Bool in
            if current != nil { return true }
            current = signal
            return false
        }
        if !repeated { signalled.signal() }
        return repeated
    }

    func wait() -> Int32 {
        signalled.wait()
        return state.withLock { $0! }
    }
}

func signalName(_ signal: Int32) -> String {
    switch signal {
    case SIGTERM: "SIGTERM"
    case SIGINT: "SIGINT"
    case SIGHUP: "SIGHUP"
    default: "signal \(signal)"
    }
}

/// Every proxy holds a connection: lift the soft descriptor limit to the hard limit.
func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// Parses HOST:PORT (IPv6 in brackets).
func hostPort(_ text: String) -> (host: String, port: Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else { return nil }
    var host = String(text[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return host.isEmpty ? nil : (host, port)
}

/// Runs async work from a synchronous command and returns its result.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) throws -> T {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var result: Result<T, any Error>!
    Task.detached {
        do { result = .success(try await body()) } catch { result = .failure(error) }
        done.signal()
    }
    done.wait()
    return try result.get()
}
