// Owns the OpenSSL SSL_CTX (certificates, trust, protocol versions, ALPN
// policy) and the one place an OpenSSL failure becomes a TransportError (the
// error queue itself is read by OpenSSLSupport, shared with the other OpenSSL users).
internal import COpenSSL
internal import CTransportShims
import OpenSSLSupport

/// Every OpenSSL failure in the transport goes through here.
extension OpenSSLErrorQueue {
    static func error(_ kind: TransportError.Kind, _ what: String, context: String = "",
                      fileID: String = #fileID, line: Int = #line) -> TransportError {
        let reasons = drain()
        let message = reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))"
        return TransportError(kind, message, context: context, fileID: fileID, line: line)
    }
}

/// The ALPN protocol the transport speaks.
private let h2Protocol: [UInt8] = Array("h2".utf8)

/// Picks `h2` from the client's ALPN list, or fails the handshake with no_application_protocol.
private let selectALPN: @convention(c) (
    OpaquePointer?, UnsafeMutablePointer<UnsafePointer<UInt8>?>?, UnsafeMutablePointer<UInt8>?,
    UnsafePointer<UInt8>?, UInt32, UnsafeMutableRawPointer?
) -> Int32 = { ssl, out, outLength, offered, offeredLength, _ in
    guard let out, let outLength, let offered else { return SSL_TLSEXT_ERR_ALERT_FATAL }
    var index = 0
    let total = Int(offeredLength)
    while index < total {
        let length = Int(offered[index])
        guard index + 1 + length <= total else { break }
        if length == 2 && offered[index + 1] == h2Protocol[0] && offered[index + 2] == h2Protocol[1] {
            out.pointee = offered + index + 1
            outLength.pointee = 2
            return SSL_TLSEXT_ERR_OK
        }
        index += 1 + length
    }
    TLSConnection.owner(of: ssl)?.alpnRefused()
    return SSL_TLSEXT_ERR_ALERT_FATAL
}

/// Refuses a ClientHello that carries no ALPN extension at all (the select callback only runs when one is present).
private let requireALPN: @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>?, UnsafeMutableRawPointer?) -> Int32 = {
    ssl, alert, _ in
    guard let ssl else { return 0 }
    let offered = h2Protocol.withUnsafeBufferPointer {
        transport_client_hello_alpn_offers(ssl, $0.baseAddress, $0.count)
    }
    if offered == -1 {
        TLSConnection.owner(of: ssl)?.alpnRefused()
        alert?.pointee = Int32(SSL_AD_NO_APPLICATION_PROTOCOL)
        return 0  // SSL_CLIENT_HELLO_ERROR
    }
    return 1  // SSL_CLIENT_HELLO_SUCCESS
}

/// An OpenSSL SSL_CTX configured for one side of the transport: protocol versions, credentials, trust and ALPN.
final class TLSContext: @unchecked Sendable {
    // @unchecked Sendable: the SSL_CTX is fully configured in init and only read afterwards
    // (SSL_new from any loop thread), which OpenSSL documents as thread-safe.
    let raw: OpaquePointer
    let isServer: Bool

    private init(method: OpaquePointer?, isServer: Bool) throws(TransportError) {
        OpenSSLErrorQueue.clear()
        guard let context = SSL_CTX_new(method) else {
            throw OpenSSLErrorQueue.error(.tlsConfiguration, "SSL_CTX_new failed")
        }
        raw = context
        self.isServer = isServer
        guard transport_ssl_ctx_set_tls_versions(context) == 1 else {
            throw OpenSSLErrorQueue.error(.tlsConfiguration, "cannot restrict TLS versions to 1.2-1.3")
        }
        // Release the 16 KiB+ read/write record buffers whenever a connection is idle: most xDS connections are.
        _ = transport_ssl_ctx_set_mode(
            context,
            transport_ssl_mode_release_buffers() | transport_ssl_mode_enable_partial_write()
                | transport_ssl_mode_accept_moving_write_buffer())
        transport_ssl_ctx_set_options(context)
        // Read whatever the socket holds in one read(2), not a record header and then its body: an xDS proxy's ACKs
        // are small records that often arrive together. `TLSConnection.hasBufferedInput` tells the read loop what
        // OpenSSL holds that no epoll event will announce again.
        transport_ssl_ctx_set_read_ahead(context)
    }

    deinit { SSL_CTX_free(raw) }

    /// A server context: certificate chain + key, client certificates required and verified against `clientCAFile`.
    static func server(_ credentials: TLSServerCredentials) throws(TransportError) -> TLSContext {
        let context = try TLSContext(method: TLS_server_method(), isServer: true)
        try context.useCertificate(chain: credentials.certificateChainFile, key: credentials.privateKeyFile)
        try context.trust(caFile: credentials.clientCAFile)
        SSL_CTX_set_verify(context.raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        // The CA names sent in CertificateRequest help clients holding several certificates pick the right one.
        if let names = SSL_load_client_CA_file(credentials.clientCAFile) {
            SSL_CTX_set_client_CA_list(context.raw, names)
        }
        SSL_CTX_set_alpn_select_cb(context.raw, selectALPN, nil)
        SSL_CTX_set_client_hello_cb(context.raw, requireALPN, nil)
        // No resumption: no session cache (memory grows with clients) and no tickets. A ticket cost ≈ 0.23 ms of
        // server CPU on every full handshake (17 % of one, OpenSSL 3.0: the session, peer certificate included, is
        // serialized and encrypted), a connect storm after a restart can never use one (ticket keys are per process),
        // and a resumed handshake that issues a new ticket saved only ≈ 0.3 ms over a full handshake without one
        // (docs/BENCHMARKS.md, 2026-12-05). Resumption with client certificates would also need a session id
        // context: without one OpenSSL failed every handshake that offered a ticket ("session id context
        // uninitialized"), so Envoys reconnecting to the same process with a cached ticket were refused.
        guard transport_ssl_ctx_disable_resumption(context.raw) == 1 else {
            throw OpenSSLErrorQueue.error(.tlsConfiguration, "cannot turn off TLS session tickets")
        }
        // Proxies would refuse a certificate outside its validity period: better to refuse it here, at start or
        // reload, with the dates, than to have every handshake of the fleet fail.
        if let summary = context.certificateSummary, summary.validity != .valid {
            throw TransportError(.tlsConfiguration,
                                 "certificate \(summary.validity == .expired ? "expired on \(summary.notAfter)" : "is not valid before \(summary.notBefore)") (serial \(summary.serial))",
                                 context: credentials.certificateChainFile)
        }
        return context
    }

    /// The certificate this context presents, described for logs (never key material).
    var certificateSummary: CertificateSummary? {
        SSL_CTX_get0_certificate(raw).map { X509Certificate(retaining: $0).summary }
    }

    /// A client context: trusts `trustedCAFile`, optionally presents a certificate, offers the given ALPN list.
    static func client(_ credentials: TLSClientCredentials) throws(TransportError) -> TLSContext {
        let context = try TLSContext(method: TLS_client_method(), isServer: false)
        if let chain = credentials.certificateChainFile, let key = credentials.privateKeyFile {
            try context.useCertificate(chain: chain, key: key)
            // Present the chain file as it is, as Envoy (BoringSSL) does. OpenSSL would otherwise complete a lone leaf
            // from the trusted CAs and send the root too: useless to a server that must already trust it, and a
            // certificate more for the server to parse and keep for the connection's life (≈ 2.5 KB per proxy in
            // meshctl serve, docs/BENCHMARKS.md session 12). An intermediate belongs in the chain file.
            _ = transport_ssl_ctx_set_mode(context.raw, transport_ssl_mode_no_auto_chain())
        }
        try context.trust(caFile: credentials.trustedCAFile)
        SSL_CTX_set_verify(context.raw, SSL_VERIFY_PEER, nil)
        if !credentials.alpnProtocols.isEmpty {
            var wire: [UInt8] = []
            for name in credentials.alpnProtocols {
                wire.append(UInt8(name.utf8.count))
                wire.append(contentsOf: name.utf8)
            }
            // Unusually, 0 means success here.
            guard SSL_CTX_set_alpn_protos(context.raw, wire, UInt32(wire.count)) == 0 else {
                throw OpenSSLErrorQueue.error(.tlsConfiguration, "cannot set ALPN protocols")
            }
        }
        return context
    }

    private func useCertificate(chain: String, key: String) throws(TransportError) {
        guard SSL_CTX_use_certificate_chain_file(raw, chain) == 1 else {
            throw OpenSSLErrorQueue.error(.tlsConfiguration, "cannot load certificate chain", context: chain)
        }
        // The key's path is reported on failure, never its content.
        guard SSL_CTX_use_PrivateKey_file(raw, key, SSL_FILETYPE_PEM) == 1 else {
            throw OpenSSLErrorQueue.error(.tlsConfiguration, "cannot load private key", context: key)
        }
        guard SSL_CTX_check_private_key(raw) == 1 else {
            throw OpenSSLErrorQueue.error(.tlsConfiguration, "private key does not match certificate", context: key)
        }
    }

    private func trust(caFile: String) throws(TransportError) {
        guard SSL_CTX_load_verify_locations(raw, caFile, nil) == 1 else {
            throw OpenSSLErrorQueue.error(.tlsConfiguration, "cannot load CA certificates", context: caFile)
        }
    }
}
