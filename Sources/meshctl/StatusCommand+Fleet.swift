// `meshctl status --store postgres://…`: the whole fleet from the store's fleet-status table, one query, with
// the exit status of the CSDS form (1 when a proxy NACKED or stayed STALE too long, naming proxy, type and
// Envoy's error; 2 when the database cannot be read). The store location printed never carries the password.
import Foundation
import PostgresStorage
import SnapshotStorage
import XDSCache
import XDSProtocol

extension Status {
    func runFleet(_ url: PostgresStoreURL) throws {
        let view: FleetView
        do throws(SnapshotStoreError) {
            view = Fleet.view(try PostgresSnapshotStore(url: url).readFleet(), staleAfter: replicaStaleAfter)
        } catch {
            printError("meshctl: status: \(error)")
            throw Exit.usage
        }
        var proxies = view.proxies.sorted { ($0.record.group, $0.record.nodeID, $0.replicaID) < ($1.record.group, $1.record.nodeID, $1.replicaID) }
        if let proxyID {
            proxies = proxies.filter { $0.record.nodeID == proxyID }
            if proxies.isEmpty {
                printError("meshctl: status: proxy '\(proxyID)' is not in the fleet table of \(url.redactedDescription)")
                throw Exit.invalid
            }
        }
        let now = Date()
        switch format {
        case "json": print(fleetJSON(view, proxies: proxies, now: now))
        default: print(fleetTable(view, proxies: proxies, location: url.redactedDescription, now: now), terminator: "")
        }
        if view.unreadableRows > 0 {
            printError("meshctl: status: \(view.unreadableRows) fleet row(s) could not be read (written by another meshctl version)")
        }
        if proxies.contains(where: { !$0.stale && fleetFails($0, now: now) }) { throw Exit.invalid }
    }

    /// How long a type has been sent and not answered, when STALE.
    func staleSeconds(_ type: ProxyTypeStatus, now: Date) -> Double? {
        guard type.status == .stale, let sentAt = type.sentAt else { return nil }
        return now.timeIntervalSince(sentAt)
    }

    func fleetCell(_ type: ProxyTypeStatus?, now: Date) -> String {
        guard let type else { return "-" }
        if let age = staleSeconds(type, now: now), age > staleAfter { return "STALE (\(Int(age))s)" }
        return type.status.rawValue
    }

    func fleetFails(_ proxy: FleetView.Proxy, now: Date) -> Bool {
        proxy.record.types.contains { $0.status == .nacked || (staleSeconds($0, now: now) ?? 0) > staleAfter }
    }

    static func age(_ seconds: Double) -> String { seconds.isFinite ? "\(Int(seconds.rounded()))s ago" : "never" }

    func fleetTable(_ view: FleetView, proxies: [FleetView.Proxy], location: String, now: Date) -> String {
        var out = "fleet of \(location): \(view.replicas.count) replica\(view.replicas.count == 1 ? "" : "s"), "
            + "\(view.proxies.count) prox\(view.proxies.count == 1 ? "y" : "ies")\n"
        for replica in view.replicas {
            let count = view.proxies.filter { $0.replicaID == replica.replicaID }.count
            out += "replica \(replica.replicaID) (\(replica.xdsAddress)): \(count) prox\(count == 1 ? "y" : "ies")"
            out += replica.servingVersion.map { ", serving snapshot \($0.prefix(12))" } ?? ""
            out += ", heartbeat \(Self.age(replica.heartbeatAgeSeconds))"
            if replica.stale { out += " — STALE: no heartbeat for over \(Int(replicaStaleAfter))s; its rows are what it last wrote" }
            if replica.maintenanceLeader { out += " (maintenance leader)" }
            out += "\n"
        }
        guard !proxies.isEmpty else { return out + "no proxy is connected to any replica\n" }
        let header = ["PROXY", "GROUP", "MODE", "LDS", "RDS", "CDS", "EDS", "SDS", "SNAPSHOT", "REPLICA"]
        var lines = [header]
        for proxy in proxies {
            let record = proxy.record
            let snapshot = Set(record.types.compactMap(\.snapshotSent)).map { String($0.prefix(12)) }.sorted().joined(separator: ",")
            lines.append([record.nodeID, record.group, record.mode.rawValue]
                         + ["LDS", "RDS", "CDS", "EDS", "SDS"].map { short in fleetCell(record.types.first { $0.type == short }, now: now) }
                         + [snapshot.isEmpty ? "-" : snapshot, proxy.replicaID + (proxy.stale ? " (stale)" : "")])
        }
        let widths = header.indices.map { i in lines.map { $0[i].count }.max() ?? 0 }
        for line in lines {
            out += line.enumerated().map { i, cell in i == line.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ") + "\n"
        }
        for proxy in proxies {
            for type in proxy.nacks {
                out += "\n\(proxy.record.nodeID) \(type.type) NACKED version \(type.nack?.rejectedVersion?.prefix(12) ?? "?") (replica \(proxy.replicaID)"
                    + (proxy.stale ? ", stale" : "") + "): \(type.nack?.message ?? "(no message)")\n"
            }
        }
        return out
    }

    func fleetJSON(_ view: FleetView, proxies: [FleetView.Proxy], now: Date) -> String {
        let replicas: [[String: Any]] = view.replicas.map { r in
            var entry: [String: Any] = ["replica_id": r.replicaID, "xds_address": r.xdsAddress, "stale": r.stale,
                                        "maintenance_leader": r.maintenanceLeader,
                                        "heartbeat_age_seconds": r.heartbeatAgeSeconds.isFinite ? r.heartbeatAgeSeconds : -1]
            if let serving = r.servingVersion { entry["serving_version"] = serving }
            if let admin = r.adminAddress { entry["admin_address"] = admin }
            return entry
        }
        let rows: [[String: Any]] = proxies.map { proxy in
            [
                "node_id": proxy.record.nodeID, "group": proxy.record.group, "mode": proxy.record.mode.rawValue, "replica": proxy.replicaID,
                "replica_stale": proxy.stale, "in_sync": !fleetFails(proxy, now: now),
                "types": proxy.record.types.map { t -> [String: Any] in
                    var entry: [String: Any] = ["type": t.type, "type_url": t.typeURL, "status": t.status.rawValue, "subscribed": t.subscribed]
                    if let v = t.versionSent { entry["version_sent"] = v }
                    if let v = t.snapshotSent { entry["snapshot_sent"] = v }
                    if let v = t.versionAcked { entry["version_acked"] = v }
                    if let d = t.sentAt { entry["sent_at"] = Self.time(d.nanosecondsSinceEpoch) }
                    if let d = t.ackedAt { entry["acked_at"] = Self.time(d.nanosecondsSinceEpoch) }
                    if let n = t.nack {
                        entry["last_nack"] = ["version": n.rejectedVersion ?? "", "message": n.message, "at": Self.time(n.at.nanosecondsSinceEpoch)]
                    }
                    return entry
                },
            ]
        }
        let data = (try? JSONSerialization.data(withJSONObject: ["replicas": replicas, "proxies": rows],
                                                options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
