// Owns one OpenSSL SSL object bound to a non-blocking socket: the handshake,
// record reads/writes, and what the handshake established (ALPN, peer identity).
//
// The SSL reads and writes the socket itself (socket BIO) rather than through
// memory BIOs: memory BIOs keep their grown buffers for the connection's life,
// while SSL_MODE_RELEASE_BUFFERS frees the SSL's own buffers whenever idle.
internal import COpenSSL
import NetworkAddress
import OpenSSLSupport
internal import CTransportShims
import Glibc

/// The verified identity of a TLS peer, taken from its certificate.
public struct PeerIdentity: Sendable, Hashable, CustomStringConvertible {
    /// URI subject alternative names, in certificate order.
    public let uriSANs: [String]
    /// The subject common name, if any.
    public let commonName: String?

    public init(uriSANs: [String], commonName: String?) {
        self.uriSANs = uriSANs
        self.commonName = commonName
    }

    /// The first `spiffe://` URI SAN, the identity a mesh authorizes on.
    public var spiffeID: String? { uriSANs.first { $0.hasPrefix("spiffe://") } }

    public var description: String {
        "\(spiffeID ?? uriSANs.first ?? "-") (CN=\(commonName ?? "-"))"
    }
}

/// One TLS session over a socket; confined to the socket's event loop.
final class TLSConnection {
    /// The outcome of a handshake step, read or write.
    enum Outcome: Equatable {
        case done(Int)
        case wantRead
        case wantWrite
        case closed
        case failed(String)
    }

    private let ssl: OpaquePointer
    private(set) var refusedForALPN = false

    init(context: TLSContext, fd: Int32, serverName: String?) throws(TransportError) {
        OpenSSLErrorQueue.clear()
        guard let ssl = SSL_new(context.raw) else {
            throw OpenSSLErrorQueue.error(.tls, "SSL_new failed")
        }
        self.ssl = ssl
        guard SSL_set_fd(ssl, fd) == 1 else {
            throw OpenSSLErrorQueue.error(.tls, "SSL_set_fd failed")
        }
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
            if let serverName {
                // An IP literal is checked against IP SANs and never sent as SNI (RFC 6066 forbids it).
                if IPAddress.isLiteral(serverName) {
                    guard X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), serverName) == 1 else {
                        throw OpenSSLErrorQueue.error(.tls, "cannot set expected server address", context: serverName)
                    }
                } else {
                    _ = transport_ssl_set_sni(ssl, serverName)
                    guard SSL_set1_host(ssl, serverName) == 1 else {
                        throw OpenSSLErrorQueue.error(.tls, "cannot set expected server name", context: serverName)
                    }
                }
            }
        }
        // Lets the ALPN callbacks find this object (index 0 is the "app data" slot).
        SSL_set_ex_data(ssl, 0, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { SSL_free(ssl) }

    static func owner(of ssl: OpaquePointer?) -> TLSConnection? {
        guard let ssl, let pointer = SSL_get_ex_data(ssl, 0) else { return nil }
        return Unmanaged<TLSConnection>.fromOpaque(pointer).takeUnretainedValue()
    }

    func alpnRefused() { refusedForALPN = true }

    func handshake() -> Outcome {
        OpenSSLErrorQueue.clear()
        let rc = SSL_do_handshake(ssl)
        return rc == 1 ? .done(0) : outcome(rc)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Outcome {
        OpenSSLErrorQueue.clear()
        var count = 0
        let rc = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count)
        return rc == 1 ? .done(count) : outcome(rc)
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        OpenSSLErrorQueue.clear()
        var count = 0
        let rc = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &count)
        return rc == 1 ? .done(count) : outcome(rc)
    }

    /// Sends close_notify if it fits in the socket now; never waits.
    func shutdownQuietly() {
        OpenSSLErrorQueue.clear()
        _ = SSL_shutdown(ssl)
        OpenSSLErrorQueue.clear()
    }

    /// Whether OpenSSL holds received bytes not yet returned by `read`: decrypted plaintext, or (with read-ahead)
    /// records read from the socket and not yet processed. Epoll will not report them.
    var hasBufferedInput: Bool { SSL_has_pending(ssl) == 1 }

    /// The ALPN protocol the handshake selected, if any.
    var negotiatedProtocol: String? {
        var data: UnsafePointer<UInt8>?
        var length: UInt32 = 0
        SSL_get0_alpn_selected(ssl, &data, &length)
        guard let data, length > 0 else { return nil }
        return String(decoding: UnsafeBufferPointer(start: data, count: Int(length)), as: UTF8.self)
    }

    /// The verified peer certificate's identity (nil when the peer presented none).
    func peerIdentity() -> PeerIdentity? {
        guard let raw = SSL_get0_peer_certificate(ssl) else { return nil }
        let certificate = X509Certificate(retaining: raw)
        return PeerIdentity(uriSANs: certificate.uriNames, commonName: certificate.commonName.flatMap { $0.isEmpty ? nil : $0 })
    }

    /// How many certificates the peer sent (its own and the rest of its chain); 0 before the handshake. On a server,
    /// OpenSSL keeps the client's chain apart from its certificate, both for the connection's life.
    var peerCertificateCount: Int {
        guard SSL_get0_peer_certificate(ssl) != nil else { return 0 }
        let chain = SSL_get_peer_cert_chain(ssl).map { Int(OPENSSL_sk_num($0)) } ?? 0
        return SSL_is_server(ssl) == 1 ? 1 + chain : chain
    }

    private func outcome(_ rc: Int32) -> Outcome {
        let code = SSL_get_error(ssl, rc)
        switch code {
        case SSL_ERROR_WANT_READ:
            return .wantRead
        case SSL_ERROR_WANT_WRITE:
            return .wantWrite
        case SSL_ERROR_ZERO_RETURN:
            return .closed
        case SSL_ERROR_SYSCALL:
            let reasons = OpenSSLErrorQueue.drain()
            let error = errno
            if reasons.isEmpty && (error == 0 || error == ECONNRESET || error == EPIPE) { return .closed }
            return .failed(reasons.isEmpty ? "socket error: \(String(cString: strerror(error)))" : reasons.joined(separator: "; "))
        default:
            var reasons = OpenSSLErrorQueue.drain()
            let verify = SSL_get_verify_result(ssl)
            if verify != Int(X509_V_OK), let text = X509_verify_cert_error_string(verify) {
                reasons.append(String(cString: text))
            }
            return .failed(reasons.isEmpty ? "TLS error \(code)" : reasons.joined(separator: ": "))
        }
    }
}

extension String {
    /// Text from a NUL-terminated C buffer filled by a shim function.
    init(nulTerminated buffer: [CChar]) {
        self = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
