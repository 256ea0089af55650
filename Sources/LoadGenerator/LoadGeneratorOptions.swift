// Owns what a load-generation run is asked to do and how it can fail: the simulated
// fleet's shape (proxies, connections, xDS mode, groups), its bounds, and typed errors.
import MeshModel
import NetworkAddress
import SnapshotStorage
import Transport

extension SubscriptionMode {
    /// gRPC streams each simulated proxy holds open: one ADS stream, or one per type (CDS, EDS, LDS, RDS).
    public var streamsPerProxy: Int { isAggregated ? 1 : 4 }
}

/// The parameters of one load-generation run.
public struct LoadGeneratorOptions: Sendable {
    /// Numeric address of the xDS server (no DNS, like the transport).
    public var host: String
    public var port: Int
    /// Client certificate, key, the CA that must have signed the server, and the name to verify.
    public var credentials: TLSClientCredentials
    public var proxies = 100
    public var connections = 10
    public var mode = SubscriptionMode.adsStateOfTheWorld
    /// Proxy groups (`node.cluster`); proxy i goes to `groups[i % groups.count]`.
    public var groups: [String] = ["default"]
    /// How long the run lasts after it starts connecting.
    public var duration: Duration = .seconds(30)
    /// Fraction of responses (after a proxy's first full configuration) answered with a NACK.
    public var nackRate = 0.0
    /// The snapshot store the server serves from (any backend): published versions and their publish times are
    /// read from it.
    public var store: (any SnapshotStoring)?
    /// Client event loops (threads).
    public var eventLoops = EventLoopGroup.onlineCPUCount
    /// Most TLS handshakes in flight at once, so a connect storm does not overflow the server's accept backlog.
    public var maxConnectsInFlight = 256
    /// Seed of the NACK choice, so runs are repeatable.
    public var seed: UInt64 = 1
    /// The server's limit on concurrent streams per connection (meshctl serve's default).
    public var serverStreamLimit = 100
    /// Reconnect like Envoy when a connection or stream is lost (jittered exponential backoff, 0.25 s doubling to 4 s),
    /// instead of counting the proxy as failed: for server restarts, failovers and drains.
    public var reconnect = false
    /// Connections closed by the client per second, each reconnecting at once (churn; implies `reconnect`).
    public var churnPerSecond = 0.0
    /// Write one JSON line of progress here every 100 ms (for scripts that watch a storm).
    public var progressFile: String?

    /// Whether lost connections and streams are reconnected (asked for, or implied by churn).
    public var reconnects: Bool { reconnect || churnPerSecond > 0 }

    public init(host: String, port: Int, credentials: TLSClientCredentials) {
        self.host = host
        self.port = port
        self.credentials = credentials
    }

    /// Checks the shape of the run; a non-nil result is a usage error to show as is.
    public func problem() -> String? {
        if proxies < 1 { return "--proxies must be at least 1" }
        if connections < 1 { return "--connections must be at least 1" }
        if connections > proxies { return "--connections (\(connections)) must not exceed --proxies (\(proxies))" }
        if groups.isEmpty || groups.contains(where: \.isEmpty) { return "--groups must list at least one non-empty group name" }
        if !(0.0...1.0).contains(nackRate) { return "--nack-rate must be between 0 and 1" }
        if duration <= .zero { return "--duration must be positive" }
        if churnPerSecond < 0 || !churnPerSecond.isFinite { return "--churn-per-second must be zero or positive" }
        if !(1...65535).contains(port) { return "the server port must be 1-65535" }
        let perConnection = (proxies + connections - 1) / connections * mode.streamsPerProxy
        if perConnection > serverStreamLimit {
            let needed = (proxies * mode.streamsPerProxy + serverStreamLimit - 1) / serverStreamLimit
            return "\(perConnection) streams per connection exceed the server's limit of \(serverStreamLimit) concurrent streams; use --connections \(needed) or more"
        }
        return nil
    }

    /// Whether `host` is a loopback address (127.0.0.0/8 or ::1).
    public static func isLoopback(_ host: String) -> Bool { IPAddress.isLoopback(host) }
}

/// Why a load-generation run could not do its job; `description` is the message for the user.
public struct LoadGeneratorError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Certificate/key/CA files unusable.
        case credentials
        /// Nothing listens, or every connection was lost.
        case unreachable
        /// The TLS handshake failed (wrong CA, server name mismatch, client certificate refused).
        case handshake
        /// The server ended streams with an error status (PERMISSION_DENIED, NOT_FOUND, …).
        case refused
        /// Some proxies never received their complete configuration before the run ended.
        case incomplete
        /// The snapshot store could not be read.
        case store
    }

    public let kind: Kind
    public let description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}
