// `meshctl status`: where every connected proxy stands, read over CSDS from one or
// more servers — a table like `istioctl proxy-status`, one proxy's detail, or JSON —
// or, with `--store postgres://…` and no --server, the whole fleet from the store's
// fleet-status table in one query (StatusCommand+Fleet.swift).
// Exits non-zero when a proxy NACKed or has been STALE too long, so a rollout
// script can gate on it.
import ArgumentParser
import Foundation
import PostgresStorage
import RolloutPlanning
import SnapshotStorage
import XDSClient
import Transport
import XDSProtocol
import XDSWire

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show whether every connected proxy has the served configuration (SYNCED, STALE, NACKED), read over CSDS or from a PostgreSQL store's fleet table.",
        discussion: """
        Exit status: 0 when every proxy is SYNCED (or STALE for less than --stale-after), 1 when a proxy NACKED or \
        stayed STALE longer, 2 when a server cannot be asked (down, slow, wrong credentials, not a meshctl server).
        With --store postgres://… and no --server, every replica's proxies are read from the store's fleet table \
        (one query); rows of a replica whose heartbeat is older than --replica-stale-after are shown as stale and \
        do not fail the check (its proxies have reconnected elsewhere or will).
        The certificate must be an operator's: spiffe://TRUST-DOMAIN/operator/NAME (meshctl certs init --operator NAME).
        """
    )

    @Argument(help: "Show this proxy's detail (node id) instead of the table.")
    var proxyID: String?

    @Option(name: .customLong("server"), help: "xDS server HOST:PORT (repeatable: every replica is asked; default 127.0.0.1:18000).")
    var serverArguments: [String] = []

    /// The servers asked over CSDS.
    var servers: [String] { serverArguments.isEmpty ? ["127.0.0.1:18000"] : serverArguments }

    @Option(help: "Operator certificate (PEM).")
    var cert: String?

    @Option(help: "Operator private key (PEM).")
    var key: String?

    @Option(help: "CA bundle the server's certificate must chain to (PEM).")
    var ca: String?

    @Option(help: "Name the server's certificate must carry.")
    var serverName = "localhost"

    @Flag(help: "Connect without TLS (servers started with --insecure-plaintext).")
    var plaintext = false

    @Option(help: "Output: table or json.")
    var format = "table"

    @Option(help: "Seconds a proxy may be STALE (sent, not yet ACKed) before it fails the check.")
    var staleAfter: Double = 10

    @Option(help: "Seconds to wait for each server.")
    var timeout: Double = 5

    @Option(help: "A directory store: also report the latest publish's progressive rollout; a rolled-back or halted one fails the check. A postgres:// store without --server: read the whole fleet's status from its fleet table.")
    var store: String?

    @Option(help: "With a postgres:// store: seconds without a heartbeat after which a replica's rows are shown as stale.")
    var replicaStaleAfter: Double = 15

    /// The PostgreSQL store whose fleet table is read (no --server given).
    var fleetStore: PostgresStoreURL? {
        guard serverArguments.isEmpty, let store, case .postgres(let url) = try? StoreArgument(store) else { return nil }
        return url
    }

    func validate() throws {
        guard format == "table" || format == "json" else { throw ValidationError("--format must be table or json") }
        for server in servers where hostPort(server) == nil { throw ValidationError("--server \(server): give HOST:PORT, e.g. 127.0.0.1:18000") }
        guard timeout > 0, staleAfter >= 0 else { throw ValidationError("--timeout must be positive and --stale-after not negative") }
        guard replicaStaleAfter > 0 else { throw ValidationError("--replica-stale-after must be positive") }
        if let store {
            do { _ = try StoreArgument(store) } catch { throw ValidationError("--store: \(error)") }
        }
        if fleetStore != nil { return }
        if !plaintext {
            guard let ca else { throw ValidationError("give --ca (and --cert/--key of an operator identity), or --plaintext for a server started with --insecure-plaintext") }
            guard (cert == nil) == (key == nil) else { throw ValidationError("--cert and --key go together") }
            for path in [ca, cert, key].compactMap({ $0 }) where !FileManager.default.isReadableFile(atPath: path) {
                throw ValidationError("\(path): no such readable file")
            }
        }
    }

    func run() throws {
        if let url = fleetStore { return try runFleet(url) }
        let security: ClientTransportSecurity = plaintext ? .insecurePlaintext
            : .tls(TLSClientCredentials(certificateChainFile: cert, privateKeyFile: key, trustedCAFile: ca!, serverName: serverName))
        let request = ClientStatusRequest(nodeMatchers: proxyID.map { [NodeIDMatcher(.exact($0))] } ?? [])
        var reports: [ServerReport] = []
        var unreachable = false
        for server in servers {
            let (host, port) = hostPort(server)!
            switch ClientStatusClient.fetch(host: host, port: port, security: security, request: request, timeout: .milliseconds(Int64(timeout * 1000))) {
            case .success(let response): reports.append(ServerReport(server: server, response: response))
            case .failure(let error):
                printError("meshctl: status: \(error)")
                unreachable = true
            }
        }
        if unreachable && reports.isEmpty { throw Exit.usage }
        let now = Date()
        let rows = reports.flatMap { report in report.response.configs.map { ProxyRow(server: report.server, config: $0, now: now, staleAfter: staleAfter) } }
            .sorted { ($0.group, $0.nodeID) < ($1.group, $1.nodeID) }
        if let proxyID, rows.isEmpty {
            printError("meshctl: status: proxy '\(proxyID)' is not connected to \(servers.joined(separator: ", "))")
            throw Exit.invalid
        }
        switch format {
        case "json": print(json(rows))
        default: print(proxyID == nil ? table(rows, reports: reports) : rows.map(detail).joined(separator: "\n"), terminator: "")
        }
        let rolloutFailed = store.map(reportRollout) ?? false
        if unreachable { throw Exit.usage }
        if rows.contains(where: { $0.failsCheck }) || rolloutFailed { throw Exit.invalid }
    }

    /// Prints the rollout line of the latest publish; true when that rollout failed (its proxy and Envoy's error are named).
    func reportRollout(_ argument: String) -> Bool {
        let opened: (any SnapshotStoring)?
        if case .directory(let directory)? = try? StoreArgument(argument) {
            opened = SnapshotStore(directory: directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + "/" + directory)
        } else {
            opened = try? openSnapshotStore(argument)
        }
        guard let snapshots = opened as? any SnapshotStoring & RolloutStateStoring, let data = try? snapshots.loadRolloutState(), let state = RolloutState.decode(data) else { return false }
        guard let published = (try? snapshots.history())?.last(where: { $0.kind == .publish })?.version, published == state.target else { return false }
        let line = "rollout of \(state.target.prefix(12)) (from \(state.previous.prefix(12))): \(state.phase.rawValue)"
        let destination = format == "json" ? FileHandle.standardError : FileHandle.standardOutput
        if let failure = state.failure, state.phase == .rolledBack || state.phase == .halted {
            destination.write(Data("\n\(line)\nrollout FAILED: \(failure.summary)\n".utf8))
            return true
        }
        destination.write(Data("\n\(line)\n".utf8))
        return false
    }

    struct ServerReport {
        let server: String
        let response: ClientStatusResponse
    }

    /// One proxy as the table shows it.
    struct ProxyRow {
        let server: String
        let nodeID: String
        let group: String
        let mode: String
        let types: [GenericXDSConfig]
        let now: Date
        let staleAfter: Double

        init(server: String, config: ClientConfig, now: Date, staleAfter: Double) {
            self.server = server
            nodeID = config.node.id
            group = config.node.cluster
            mode = config.clientScope
            types = config.xdsConfigs
            self.now = now
            self.staleAfter = staleAfter
        }

        func status(_ shortName: String) -> GenericXDSConfig? { types.first { TypeURL.shortName($0.typeURL) == shortName } }

        func staleSeconds(_ x: GenericXDSConfig) -> Double? {
            guard x.configStatus == .stale, x.lastUpdatedNanoseconds > 0 else { return nil }
            return now.timeIntervalSince1970 - Double(x.lastUpdatedNanoseconds) / 1e9
        }

        func cell(_ x: GenericXDSConfig?) -> String {
            guard let x else { return "-" }
            guard let verdict = SyncVerdict(configStatus: x.configStatus) else { return "UNKNOWN" }
            if verdict == .stale, let age = staleSeconds(x), age > staleAfter { return "STALE (\(Int(age))s)" }
            return verdict.rawValue
        }

        var snapshot: String {
            let versions = Set(types.compactMap { $0.details["snapshot_sent"] })
            return versions.map { String($0.prefix(12)) }.sorted().joined(separator: ",")
        }

        var failsCheck: Bool {
            types.contains { $0.configStatus == .error || (staleSeconds($0) ?? 0) > staleAfter }
        }
    }

    func table(_ rows: [ProxyRow], reports: [ServerReport]) -> String {
        var out = ""
        for report in reports {
            let served = report.response.configs.lazy.flatMap(\.xdsConfigs).compactMap { $0.details["snapshot_served"] }.first
            out += "server \(report.server): \(report.response.configs.count) prox\(report.response.configs.count == 1 ? "y" : "ies")"
            out += served.map { ", serving snapshot \($0.prefix(12))" } ?? ""
            out += "\n"
        }
        guard !rows.isEmpty else { return out + "no proxy is connected\n" }
        let header = ["PROXY", "GROUP", "MODE", "LDS", "RDS", "CDS", "EDS", "SDS", "SNAPSHOT"] + (servers.count > 1 ? ["SERVER"] : [])
        var lines = [header]
        for row in rows {
            lines.append([row.nodeID, row.group, row.mode] + ["LDS", "RDS", "CDS", "EDS", "SDS"].map { row.cell(row.status($0)) }
                         + [row.snapshot.isEmpty ? "-" : row.snapshot] + (servers.count > 1 ? [row.server] : []))
        }
        let widths = header.indices.map { i in lines.map { $0[i].count }.max() ?? 0 }
        for line in lines {
            out += line.enumerated().map { i, cell in i == line.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
        }
        let nacks = rows.flatMap { row in row.types.compactMap { x in x.configStatus == .error ? (row, x) : nil } }
        for (row, x) in nacks {
            out += "\n\(row.nodeID) \(TypeURL.shortName(x.typeURL)) NACKED version \(x.errorState?.versionInfo.prefix(12) ?? "?"): \(x.errorState?.details ?? "(no message)")\n"
        }
        return out
    }

    func detail(_ row: ProxyRow) -> String {
        var out = "proxy \(row.nodeID)\n  group: \(row.group)\n  mode: \(row.mode)\n  server: \(row.server)\n"
        if let x = row.types.first {
            for key in ["identity", "peer", "connected_at"] { if let v = x.details[key] { out += "  \(key.replacingOccurrences(of: "_", with: " ")): \(v)\n" } }
        }
        for x in row.types {
            out += "  \(TypeURL.shortName(x.typeURL)): \(row.cell(x))\n"
            out += "    version sent: \(x.versionInfo.isEmpty ? "-" : x.versionInfo)"
            if x.lastUpdatedNanoseconds > 0 { out += " at \(Self.time(x.lastUpdatedNanoseconds))" }
            out += "\n"
            if let snapshot = x.details["snapshot_sent"] { out += "    from snapshot: \(snapshot)\n" }
            out += "    version ACKed: \(x.details["version_acked"] ?? "-")\(x.details["acked_at"].map { " at \($0)" } ?? "")\n"
            out += "    subscribed: \(x.details["subscribed"] == "*" ? "all (wildcard)" : "\(x.details["subscribed"] ?? "?") names")\n"
            if let e = x.errorState {
                out += "    last NACK: version \(e.versionInfo.isEmpty ? "?" : e.versionInfo) at \(Self.time(e.lastUpdateAttemptNanoseconds))\n"
                out += "      \(e.details.replacingOccurrences(of: "\n", with: "\n      "))\n"
            }
        }
        return out
    }

    func json(_ rows: [ProxyRow]) -> String {
        let proxies: [[String: Any]] = rows.map { row in
            [
                "node_id": row.nodeID, "group": row.group, "mode": row.mode, "server": row.server, "in_sync": !row.failsCheck,
                "types": row.types.map { x -> [String: Any] in
                    var t: [String: Any] = ["type": TypeURL.shortName(x.typeURL), "type_url": x.typeURL, "status": row.cell(x).split(separator: " ").first.map(String.init) ?? "",
                                            "version_sent": x.versionInfo]
                    for (k, v) in x.details { t[k] = v }
                    if x.lastUpdatedNanoseconds > 0 { t["sent_at"] = Self.time(x.lastUpdatedNanoseconds) }
                    if let e = x.errorState {
                        t["last_nack"] = ["version": e.versionInfo, "message": e.details, "at": Self.time(e.lastUpdateAttemptNanoseconds)]
                    }
                    return t
                },
            ]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["proxies": proxies], options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func time(_ nanoseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(nanoseconds) / 1e9).formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
    }
}
