// The fleet as operators read it: every replica sharing a database store and every proxy each one serves,
// from the fleet-status tables (written by each replica from its ProxyRegistry). `meshctl status --store URL`
// and the status page of every replica read this one shape.
import Foundation

/// Every replica and its proxies, as last written to the store's database.
public struct FleetView: Sendable {
    public struct Replica: Sendable, Hashable {
        public var replicaID: String
        public var xdsAddress: String
        public var adminAddress: String?
        public var servingVersion: String?
        public var maintenanceLeader: Bool
        /// Seconds since its last write, by the database's clock.
        public var heartbeatAgeSeconds: Double
        /// Its heartbeat is older than the reader's threshold: the replica is presumably dead; its rows are what it
        /// last wrote, and they are deleted once the heartbeat is older than the expiry.
        public var stale: Bool

        public init(replicaID: String, xdsAddress: String, adminAddress: String?, servingVersion: String?, maintenanceLeader: Bool,
                    heartbeatAgeSeconds: Double, stale: Bool) {
            self.replicaID = replicaID
            self.xdsAddress = xdsAddress
            self.adminAddress = adminAddress
            self.servingVersion = servingVersion
            self.maintenanceLeader = maintenanceLeader
            self.heartbeatAgeSeconds = heartbeatAgeSeconds
            self.stale = stale
        }
    }

    public struct Proxy: Sendable, Hashable {
        public var replicaID: String
        public var record: ProxyStreamRecord
        /// Its replica is stale (see Replica.stale).
        public var stale: Bool

        public init(replicaID: String, record: ProxyStreamRecord, stale: Bool) {
            self.replicaID = replicaID
            self.record = record
            self.stale = stale
        }

        /// The types this proxy rejected the latest response of.
        public var nacks: [ProxyTypeStatus] { record.types.filter { $0.status == .nacked } }
    }

    public var replicas: [Replica]
    public var proxies: [Proxy]
    /// Rows that could not be decoded (written by a different meshctl), counted rather than hidden.
    public var unreadableRows: Int

    public init(replicas: [Replica], proxies: [Proxy], unreadableRows: Int = 0) {
        self.replicas = replicas
        self.proxies = proxies
        self.unreadableRows = unreadableRows
    }
}

/// How a ProxyStreamRecord is stored in the fleet table (JSON; dates as seconds since 1970 with fractions).
public enum FleetRecordCoding {
    public static func encode(_ record: ProxyStreamRecord) -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .secondsSince1970
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(record)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    public static func decode(_ text: String) -> ProxyStreamRecord? {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return try? decoder.decode(ProxyStreamRecord.self, from: Data(text.utf8))
    }
}
