// Owns the value types that configure the transport: server and client
// settings, TLS credentials, and the limits (with their defaults) that keep a
// server with thousands of connections bounded in memory.

/// An HTTP header field (name lowercased on the wire, as HTTP/2 requires).
public struct HeaderField: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var value: String

    public init(_ name: String, _ value: String) {
        self.name = name
        self.value = value
    }

    public var description: String { "\(name): \(value)" }
}

/// The server's certificate and key, and the CA that client certificates must chain to (PEM files).
public struct TLSServerCredentials: Sendable, Equatable {
    public var certificateChainFile: String
    public var privateKeyFile: String
    /// Clients must present a certificate issued (directly or through intermediates) by a CA in this file.
    public var clientCAFile: String

    public init(certificateChainFile: String, privateKeyFile: String, clientCAFile: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.clientCAFile = clientCAFile
    }
}

/// How the server protects connections.
public enum ServerTransportSecurity: Sendable, Equatable {
    /// TLS 1.2/1.3, ALPN `h2` required, client certificate required and verified (the default posture).
    case mutualTLS(TLSServerCredentials)
    /// HTTP/2 over cleartext TCP with prior knowledge (h2c); only for `--insecure-plaintext`.
    case insecurePlaintext
}

/// The `TransportLimits` of one server or client, held once and referenced by each of its connections and streams:
/// a copy in each was ≈ 280 bytes per connection and as much again per stream (heaptrack, 4,000 idle proxies).
final class LimitsReference: Sendable {
    let limits: TransportLimits
    init(_ limits: TransportLimits) { self.limits = limits }
}

/// The limits that bound what one peer can make the server hold; all have defaults sized for
/// ~10,000 mostly idle xDS connections on a small machine.
public struct TransportLimits: Sendable, Equatable {
    /// Connections accepted beyond this are closed at once (logged, rate-limited).
    public var maxConnections = 16_384
    /// Advertised as SETTINGS_MAX_CONCURRENT_STREAMS and enforced; a peer that keeps exceeding it gets GOAWAY.
    public var maxConcurrentStreamsPerConnection = 100
    /// Connections one client identity (SPIFFE ID, else certificate CN) may hold at once; more are closed right
    /// after the handshake with GOAWAY ENHANCE_YOUR_CALM, so one stolen key cannot take every connection slot.
    /// The default does not bind: meshctl's development certificates are per proxy group, and one group may be
    /// thousands of proxies. With a certificate per proxy, set it to a few (a proxy needs one, two while it
    /// reconnects). Plaintext connections have no identity and are not counted.
    public var maxConnectionsPerIdentity = 16_384
    /// Streams one identity may hold open across its connections; more end with RESOURCE_EXHAUSTED.
    public var maxStreamsPerIdentity = 65_536
    /// Larger inbound gRPC messages end the stream with RESOURCE_EXHAUSTED.
    public var maxReceiveMessageBytes = 4 * 1024 * 1024
    /// Larger outbound messages are refused by `send` (xDS responses can be big, hence the generous default).
    public var maxSendMessageBytes = 64 * 1024 * 1024
    /// A stream's outbound queue accepts no new message once it holds this many bytes (one message may overshoot it).
    public var maxQueuedBytesPerStream = 4 * 1024 * 1024
    /// HTTP/2 frames are produced only while fewer than this many encoded bytes wait for the socket.
    public var connectionWriteBufferBytes = 64 * 1024
    /// Advertised as SETTINGS_MAX_HEADER_LIST_SIZE and enforced per stream.
    public var maxHeaderListBytes = 16 * 1024
    /// Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE): inbound bytes a peer may send before WINDOW_UPDATE.
    public var initialWindowSize = 65_535
    /// A TCP connection that has not completed its TLS handshake by then is closed.
    public var handshakeTimeout: Duration = .seconds(10)
    /// A request stream that has delivered no complete message by then is ended with DEADLINE_EXCEEDED (and a
    /// non-gRPC request whose body has not ended is answered), so an idle stream cannot hold its slot forever.
    public var firstMessageTimeout: Duration = .seconds(30)
    /// After this long without inbound bytes a PING is sent; nil disables keepalive.
    public var keepaliveInterval: Duration? = .seconds(30)
    /// A PING not acknowledged within this time closes the connection.
    public var keepaliveTimeout: Duration = .seconds(10)
    /// Connections older than this (±10% jitter) get GOAWAY; nil means unlimited.
    public var maxConnectionAge: Duration? = nil
    /// After a max-age GOAWAY, streams get this long to finish before they end with UNAVAILABLE.
    public var maxConnectionAgeGrace: Duration = .seconds(30)
    /// After a stream-ending event (trailers after grace, protocol error) the socket is closed at the latest this much later.
    public var closeLinger: Duration = .seconds(2)
    /// After this long without writing, a connection hands the pages of nghttp2's 16 KiB outbound frame buffer
    /// back to the kernel (≈ 12 KiB of resident memory per idle connection); the next write faults them in again.
    /// nil keeps them.
    public var releaseIdleFrameBufferAfter: Duration? = .seconds(1)
    /// A connection that writes stream data again within this long after its frame buffer was released is busy
    /// (pushes seconds apart: endpoint churn, a run of changes); its buffer is then released only after this long
    /// without stream data, so a run of pushes pays the page faults and the madvise once instead of per push.
    /// Control frames (keepalive PINGs and their ACKs, SETTINGS ACKs) never postpone a release. nil: always
    /// `releaseIdleFrameBufferAfter`.
    public var keepBusyFrameBufferFor: Duration? = .seconds(30)
    /// listen(2) backlog.
    public var listenBacklog = 4096
    /// After this many connections have closed, the heap's free pages go back to the kernel (malloc_trim, on a
    /// utility thread, 2 s after the threshold so a burst of closes is trimmed once). Without it, glibc keeps the
    /// memory of every connection the server ever held at once: after a storm the server's RSS stays at its peak.
    /// nil disables it.
    public var releaseMemoryAfterClosedConnections: Int? = 256

    public init() {}
}

/// Everything a `GRPCServer` needs to listen and serve.
public struct GRPCServerConfiguration: Sendable {
    /// Numeric address to bind ("127.0.0.1", "0.0.0.0", "::").
    public var host: String
    /// Port to bind; 0 picks a free port (see `GRPCServer.boundPort`).
    public var port: Int
    public var security: ServerTransportSecurity
    /// Event loops (threads) the server uses when it creates its own group.
    public var eventLoopCount: Int = EventLoopGroup.onlineCPUCount
    public var limits = TransportLimits()
    public var logger: TransportLogger = standardErrorTransportLogger

    public init(host: String = "127.0.0.1", port: Int = 0, security: ServerTransportSecurity) {
        self.host = host
        self.port = port
        self.security = security
    }
}

/// What a client presents and trusts (PEM files).
public struct TLSClientCredentials: Sendable, Equatable {
    /// Client certificate chain and key for mutual TLS; nil presents no certificate.
    public var certificateChainFile: String?
    public var privateKeyFile: String?
    /// The server's certificate must chain to a CA in this file.
    public var trustedCAFile: String
    /// Name the server certificate must carry (SNI and hostname check).
    public var serverName: String
    /// ALPN protocols offered, in preference order; the transport requires the server to pick `h2`.
    public var alpnProtocols: [String] = ["h2"]

    public init(certificateChainFile: String?, privateKeyFile: String?, trustedCAFile: String, serverName: String) {
        self.certificateChainFile = certificateChainFile
        self.privateKeyFile = privateKeyFile
        self.trustedCAFile = trustedCAFile
        self.serverName = serverName
    }
}

/// How a client protects its connection.
public enum ClientTransportSecurity: Sendable, Equatable {
    case tls(TLSClientCredentials)
    case insecurePlaintext
}

/// Everything a `GRPCClientConnection` needs.
public struct GRPCClientConfiguration: Sendable {
    public var host: String
    public var port: Int
    public var security: ClientTransportSecurity
    /// The :authority of requests.
    public var authority: String
    public var limits = TransportLimits()
    public var logger: TransportLogger = { _ in }

    public init(host: String, port: Int, security: ClientTransportSecurity, authority: String = "localhost") {
        self.host = host
        self.port = port
        self.security = security
        self.authority = authority
        limits.maxReceiveMessageBytes = 64 * 1024 * 1024
        limits.keepaliveInterval = nil
    }
}
