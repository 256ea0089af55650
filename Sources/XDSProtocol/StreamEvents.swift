// The vocabulary between a DiscoveryStream and the transport that drives it: events
// in, actions out, plus the per-type status record CSDS exposes. All pure values.
import XDSWire
import GRPCStatusCodes

/// A wall-clock instant supplied by the caller, so the machine itself never reads a clock.
public struct WallClockTime: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    public var nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) { self.nanosecondsSinceEpoch = nanosecondsSinceEpoch }

    public static func < (a: WallClockTime, b: WallClockTime) -> Bool { a.nanosecondsSinceEpoch < b.nanosecondsSinceEpoch }

    public var description: String { "\(nanosecondsSinceEpoch)ns" }
}

/// Something that happened to one xDS stream, fed to `DiscoveryStream.handle`.
public enum StreamEvent: Sendable {
    /// A decoded state-of-the-world request arrived.
    case request(DiscoveryRequest)
    /// A decoded incremental request arrived.
    case deltaRequest(DeltaDiscoveryRequest)
    /// The proxy group's snapshot was replaced.
    case snapshotChanged(any ResourceSnapshotView)
    /// The transport can (true) or cannot (false) take more responses for this stream right now.
    case writabilityChanged(Bool)
    /// The response carrying `nonce` has been written out completely.
    case flushed(nonce: String)
    /// Time to refresh TTLs: resends TTL'd resources the proxy holds as heartbeats (delta only).
    case heartbeat
}


/// A proxy's acceptance of a response: it now runs `version` of `typeURL`.
public struct AckRecord: Sendable, Hashable {
    public var typeURL: String
    /// The accepted version (SotW `version_info`, or delta `system_version_info`).
    public var version: String
    /// The nonce of the accepted response.
    public var nonce: String
    public var at: WallClockTime
}

/// A proxy's rejection of a response, with the reason it gave.
public struct NackRecord: Sendable, Hashable {
    public var typeURL: String
    /// The version the proxy rejected (nil if the nonce is too old to remember).
    public var rejectedVersion: String?
    /// The nonce of the rejected response.
    public var nonce: String
    /// The version the proxy says it still runs (its last accepted one).
    public var proxyVersion: String
    /// The proxy's `error_detail`: why it rejected the response.
    public var errorDetail: Status
    public var at: WallClockTime
    /// True when a newer response had already been sent when the NACK arrived.
    public var stale: Bool

    public init(typeURL: String, rejectedVersion: String? = nil, nonce: String, proxyVersion: String, errorDetail: Status,
                at: WallClockTime, stale: Bool) {
        self.typeURL = typeURL
        self.rejectedVersion = rejectedVersion
        self.nonce = nonce
        self.proxyVersion = proxyVersion
        self.errorDetail = errorDetail
        self.at = at
        self.stale = stale
    }
}

/// What a DiscoveryStream asks its transport (or its status bookkeeping) to do.
public enum StreamAction: Sendable, Hashable {
    /// Encode and write this state-of-the-world response.
    case send(DiscoveryResponse)
    /// Encode and write this incremental response.
    case sendDelta(DeltaDiscoveryResponse)
    /// The proxy accepted a response (for status and metrics; nothing to write).
    case ack(AckRecord)
    /// The proxy rejected a response (for status, logs and metrics; nothing to write).
    case nack(NackRecord)
    /// End the stream with this status; the machine ignores every later event.
    case close(GRPCStatus)
}

/// Where a proxy stands for one resource type relative to what was sent: the one verdict the
/// state machine computes, the registry records, CSDS carries and `meshctl status` prints.
public enum SyncVerdict: String, Sendable, Hashable, Codable {
    /// Requested, but nothing sent on this stream yet (e.g. names that do not exist yet).
    case notSent = "NOT_SENT"
    /// The latest response is not yet ACKed or NACKed.
    case stale = "STALE"
    /// The proxy runs the latest response's version.
    case synced = "SYNCED"
    /// The proxy rejected the latest response and runs `versionAcked`.
    case nacked = "NACKED"

    /// How CSDS reports the verdict: `config_status` and `client_status`.
    public var clientStatusDiscovery: (config: ConfigStatus, client: ClientResourceStatus) {
        switch self {
        case .notSent: (.notSent, .requested)
        case .stale: (.stale, .requested)
        case .synced: (.synced, .acked)
        case .nacked: (.error, .nacked)
        }
    }

    /// The verdict a CSDS `config_status` reports (nil for UNKNOWN).
    public init?(configStatus: ConfigStatus) {
        switch configStatus {
        case .notSent: self = .notSent
        case .stale: self = .stale
        case .synced: self = .synced
        case .error: self = .nacked
        case .unknown: return nil
        }
    }
}

/// Where one resource type of one stream stands, for CSDS and operators.
public struct ProxyStatus: Sendable, Hashable {

    public var typeURL: String
    /// Version of the latest response sent (SotW `version_info` / delta `system_version_info`).
    public var versionSent: String?
    /// Nonce of the latest response sent.
    public var nonceSent: String?
    /// The snapshot version the latest response was built from.
    public var snapshotVersionSent: String?
    /// The version the proxy last accepted (on this stream, or claimed on reconnect).
    public var versionAcked: String?
    /// Nonce of the latest accepted response.
    public var nonceAcked: String?
    /// The latest rejection, kept after later ACKs so operators can see what failed.
    public var lastNack: NackRecord? {
        get { rejection?.record }
        set { rejection = newValue.map(Rejection.init) }
    }
    /// Boxed: a rejection is rare, and inline it took 104 of this status's 216 bytes, in every type of every stream.
    var rejection: Rejection?
    /// Explicitly subscribed names, sorted.
    public var subscribedNames: [String] = []
    /// Whether the proxy subscribes to every resource of the type.
    public var wildcard: Bool = false
    /// Whether the transport reported the latest response written out. (The two flags last and together: apart, they
    /// took 16 bytes more of every type's status of every stream.)
    public var flushed: Bool = false

    public init(typeURL: String) { self.typeURL = typeURL }

    public var verdict: SyncVerdict {
        guard let nonceSent else { return versionAcked == nil ? .notSent : .synced }
        if let lastNack, lastNack.nonce == nonceSent { return .nacked }
        if nonceAcked == nonceSent { return .synced }
        return .stale
    }
}

/// A `NackRecord` on the heap (see `ProxyStatus.lastNack`); compared and hashed by its record.
final class Rejection: Sendable, Hashable {
    let record: NackRecord
    init(_ record: NackRecord) { self.record = record }
    static func == (a: Rejection, b: Rejection) -> Bool { a.record == b.record }
    func hash(into hasher: inout Hasher) { hasher.combine(record) }
}
