// Owns the error and log-record values the transport reports: setup failures
// (`TransportError`), why a connection ended (`ConnectionCloseReason`), and the
// one log record written per connection that ends abnormally.

import Glibc

/// A failure to set up the transport (bad certificate file, port in use, …), with the context it concerns.
public struct TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The layer that failed.
    public enum Kind: String, Sendable, Equatable {
        case socket, tlsConfiguration, tls, http2
    }

    public let kind: Kind
    /// What went wrong, including the library's own reasons (e.g. the OpenSSL error queue).
    public let message: String
    /// What it concerns: a file path, an address, an option name.
    public let context: String
    /// Where in the transport it was raised, for bug reports.
    public let location: String

    init(_ kind: Kind, _ message: String, context: String = "", fileID: String = #fileID, line: Int = #line) {
        self.kind = kind
        self.message = message
        self.context = context
        self.location = "\(fileID):\(line)"
    }

    public var description: String {
        context.isEmpty ? "\(kind.rawValue): \(message)" : "\(kind.rawValue): \(context): \(message)"
    }
}

/// Why a connection ended; reported once per connection to the log and to stream handlers.
public enum ConnectionCloseReason: Sendable, Equatable, CustomStringConvertible {
    /// The peer closed the connection (EOF or TLS close_notify).
    case peerClosed
    /// This side closed it through the API (client `close()`).
    case localClose
    /// The TLS handshake did not complete within the configured time.
    case handshakeTimeout
    /// The TLS handshake failed: not TLS, no/expired/untrusted certificate, …
    case tlsHandshakeFailed(String)
    /// The peer did not offer (client: the server did not select) ALPN `h2`.
    case alpnNotNegotiated
    /// The peer broke the HTTP/2 protocol (bad preface, bad frames, flooding); a GOAWAY was sent when possible.
    case http2ProtocolError(String)
    /// The peer kept opening streams beyond SETTINGS_MAX_CONCURRENT_STREAMS; GOAWAY ENHANCE_YOUR_CALM was sent.
    case tooManyStreams
    /// The peer did not answer a keepalive PING in time (dead peer, or one that never reads).
    case keepaliveTimeout
    /// The connection reached its maximum age; GOAWAY was sent and remaining streams ended UNAVAILABLE.
    case maxConnectionAge
    /// The server is draining; GOAWAY was sent and remaining streams ended UNAVAILABLE.
    case serverDrain
    /// The server already had its maximum number of connections.
    case connectionLimit
    /// The peer's identity already held its maximum number of connections (GOAWAY ENHANCE_YOUR_CALM was sent).
    case identityConnectionLimit(identity: String, limit: Int)
    /// The peer sent GOAWAY and no streams remain (client side).
    case goAwayReceived(errorCode: HTTP2ErrorCode)
    /// A socket error (errno text).
    case ioError(String)

    /// Whether this is an ordinary end of a connection rather than something worth a warning.
    public var isOrderly: Bool {
        switch self {
        case .peerClosed, .localClose, .maxConnectionAge, .serverDrain, .goAwayReceived: return true
        default: return false
        }
    }

    public var description: String {
        switch self {
        case .peerClosed: return "peer closed the connection"
        case .localClose: return "closed locally"
        case .handshakeTimeout: return "TLS handshake timed out"
        case .tlsHandshakeFailed(let why): return "TLS handshake failed: \(why)"
        case .alpnNotNegotiated: return "refused: ALPN h2 not negotiated"
        case .http2ProtocolError(let why): return "HTTP/2 protocol error: \(why)"
        case .tooManyStreams: return "refused: too many concurrent streams (GOAWAY ENHANCE_YOUR_CALM)"
        case .keepaliveTimeout: return "keepalive PING not acknowledged in time"
        case .maxConnectionAge: return "maximum connection age reached"
        case .serverDrain: return "server draining"
        case .connectionLimit: return "refused: connection limit reached"
        case .identityConnectionLimit(let identity, let limit): return "refused: identity \(identity) already holds \(limit) connections (per-identity limit)"
        case .goAwayReceived(let code): return "peer sent GOAWAY (error code \(code))"
        case .ioError(let why): return "socket error: \(why)"
        }
    }
}

/// One line of transport logging: a connection that ended (exactly once per connection) or a server event.
public struct TransportLogRecord: Sendable, Equatable, CustomStringConvertible {
    /// How much an operator should care.
    public enum Level: String, Sendable, Equatable { case info, warning }

    public let level: Level
    /// The connection concerned, or nil for server-wide events.
    public let connectionID: UInt64?
    /// "address:port" of the peer, when known.
    public let peer: String
    /// Why the connection ended, for connection records.
    public let closeReason: ConnectionCloseReason?
    public let message: String
    /// Set when a per-identity limit refused a connection or a stream.
    public var identityLimit: IdentityLimitRefusal? = nil

    public var description: String {
        let who = connectionID.map { "conn=\($0) peer=\(peer) " } ?? ""
        return "[transport] \(level.rawValue) \(who)\(message)"
    }
}

/// A connection or stream refused because its client identity held too many already.
public struct IdentityLimitRefusal: Sendable, Equatable {
    public enum Kind: String, Sendable { case connections, streams }
    public let kind: Kind
    public let identity: String
    public let limit: Int
}

/// Where transport log records go; called from loop threads, so it must be thread-safe.
public typealias TransportLogger = @Sendable (TransportLogRecord) -> Void

/// The default logger: one line per record on standard error.
public let standardErrorTransportLogger: TransportLogger = { record in
    let line = Array((record.description + "\n").utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
