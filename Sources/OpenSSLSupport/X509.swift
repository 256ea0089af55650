// X.509 certificates and private keys as Swift objects that own their OpenSSL
// handle. Every part of meshctl that reads a certificate — the transport (the
// serving certificate, a peer's identity), the development CA, the schema
// engine's host-file checks — reads it here, so PEM parsing, SAN extraction and
// validity dates are written once.
import Foundation
internal import COpenSSL

/// One X.509 certificate. Immutable after init: OpenSSL's read accessors on an X509 are safe from any thread.
public final class X509Certificate: @unchecked Sendable {
    // @unchecked Sendable: `raw` is never modified after init (only read by X509_get0_* / X509_check_private_key).
    package let raw: OpaquePointer

    /// Takes ownership of `raw` (freed on deinit).
    package init(taking raw: OpaquePointer) { self.raw = raw }

    /// Shares a certificate OpenSSL owns (e.g. SSL_get0_peer_certificate): takes a reference of its own.
    package init(retaining raw: OpaquePointer) {
        X509_up_ref(raw)
        self.raw = raw
    }

    /// The first certificate of a PEM text (a chain's leaf), or nil when it holds none OpenSSL can parse.
    public convenience init?(pem: some Collection<UInt8>) {
        guard let raw = MemoryBIO.reading(Array(pem), { PEM_read_bio_X509($0, nil, nil, nil) }) else {
            OpenSSLErrorQueue.clear()
            return nil
        }
        self.init(taking: raw)
    }

    deinit { X509_free(raw) }

    /// The URI subject alternative names (SPIFFE IDs), in certificate order.
    public var uriNames: [String] {
        guard let names = X509_get_ext_d2i(raw, NID_subject_alt_name, nil, nil) else { return [] }
        let stack = OpaquePointer(names)
        defer { GENERAL_NAMES_free(stack) }
        var uris: [String] = []
        for index in 0..<OPENSSL_sk_num(stack) {
            guard let name = OPENSSL_sk_value(stack, index)?.assumingMemoryBound(to: GENERAL_NAME.self),
                  name.pointee.type == GEN_URI, let uri = name.pointee.d.uniformResourceIdentifier,
                  let data = ASN1_STRING_get0_data(uri) else { continue }
            uris.append(String(decoding: UnsafeBufferPointer(start: data, count: Int(ASN1_STRING_length(uri))), as: UTF8.self))
        }
        return uris
    }

    /// The subject's common name, or nil when it has none.
    public var commonName: String? {
        guard let subject = X509_get_subject_name(raw) else { return nil }
        let index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(subject, index), let data = X509_NAME_ENTRY_get_data(entry) else { return nil }
        var utf8: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&utf8, data)
        guard length >= 0, let utf8 else { return nil }
        defer { CRYPTO_free(utf8, #fileID, #line) }
        return String(decoding: UnsafeBufferPointer(start: utf8, count: Int(length)), as: UTF8.self)
    }

    /// The subject in OpenSSL's one-line form ("/CN=meshctl xDS server").
    public var subject: String {
        guard let name = X509_get_subject_name(raw) else { return "" }
        var buffer = [CChar](repeating: 0, count: 512)
        X509_NAME_oneline(name, &buffer, Int32(buffer.count))
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The serial number, upper-case hex.
    public var serial: String {
        guard let number = ASN1_INTEGER_to_BN(X509_get0_serialNumber(raw), nil) else { return "" }
        defer { BN_free(number) }
        guard let hex = BN_bn2hex(number) else { return "" }
        defer { CRYPTO_free(hex, #fileID, #line) }
        return String(cString: hex)
    }

    /// Start of the validity period.
    public var notBefore: Date? { Self.date(X509_get0_notBefore(raw)) }
    /// End of the validity period.
    public var notAfter: Date? { Self.date(X509_get0_notAfter(raw)) }

    /// Whether the certificate is inside its validity period now (by OpenSSL's comparison, as peers judge it).
    public var validity: CertificateSummary.Validity {
        if X509_cmp_current_time(X509_get0_notBefore(raw)) > 0 { return .notYetValid }
        if X509_cmp_current_time(X509_get0_notAfter(raw)) < 0 { return .expired }
        return .valid
    }

    /// Who, which one and when, for logs and start-up checks (never key material).
    public var summary: CertificateSummary {
        CertificateSummary(subject: subject, serial: serial,
                           notBefore: Self.text(X509_get0_notBefore(raw)), notAfter: Self.text(X509_get0_notAfter(raw)),
                           notAfterDate: notAfter, validity: validity)
    }

    /// Whether `key` is the private key of this certificate's public key.
    public func matches(_ key: PrivateKey) -> Bool {
        let matches = X509_check_private_key(raw, key.raw) == 1
        OpenSSLErrorQueue.clear()  // a mismatch queues KEY_VALUES_MISMATCH; the Bool says it all
        return matches
    }

    /// The certificate PEM-encoded.
    public func pem() throws(OpenSSLError) -> String {
        try MemoryBIO.writing("PEM encoding the certificate") { PEM_write_bio_X509($0, raw) == 1 }
    }

    /// A time as OpenSSL (and Envoy's admin output) prints it.
    private static func text(_ time: UnsafePointer<ASN1_TIME>?) -> String {
        guard let time else { return "?" }
        return (try? MemoryBIO.writing("printing a time") { ASN1_TIME_print($0, time) == 1 }) ?? "?"
    }

    private static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date? {
        guard let time else { return nil }
        var parts = tm()
        guard ASN1_TIME_to_tm(time, &parts) == 1 else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }
}

/// A certificate as logs show it: who, which one, and when it is valid.
public struct CertificateSummary: Sendable, Equatable, CustomStringConvertible {
    public enum Validity: Sendable, Equatable { case valid, notYetValid, expired }
    public let subject: String
    /// Serial number, upper-case hex.
    public let serial: String
    /// Validity dates as text ("Dec  4 21:38:05 2026 GMT", the form OpenSSL and Envoy print).
    public let notBefore: String
    public let notAfter: String
    /// The end of validity as a date (for the expiry metric), when OpenSSL could read it.
    public let notAfterDate: Date?
    public let validity: Validity

    public var description: String { "\(subject) serial \(serial), valid \(notBefore) – \(notAfter)" }
}

/// A private key. Immutable after init, like `X509Certificate`.
public final class PrivateKey: @unchecked Sendable {
    // @unchecked Sendable: `raw` is never modified after init; signing and PEM writing only read it.
    package let raw: OpaquePointer

    package init(taking raw: OpaquePointer) { self.raw = raw }

    /// The first private key of a PEM text, or nil when it holds none OpenSSL can parse (unencrypted keys only).
    public convenience init?(pem: some Collection<UInt8>) {
        guard let raw = MemoryBIO.reading(Array(pem), { PEM_read_bio_PrivateKey($0, nil, nil, nil) }) else {
            OpenSSLErrorQueue.clear()
            return nil
        }
        self.init(taking: raw)
    }

    deinit { EVP_PKEY_free(raw) }

    /// A new EC P-256 key.
    public static func generateP256() throws(OpenSSLError) -> PrivateKey {
        guard let context = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nil) else { throw OpenSSLError("EVP_PKEY_CTX_new_id failed") }
        defer { EVP_PKEY_CTX_free(context) }
        var key: OpaquePointer?
        guard EVP_PKEY_keygen_init(context) == 1,
              EVP_PKEY_CTX_set_ec_paramgen_curve_nid(context, NID_X9_62_prime256v1) == 1,
              EVP_PKEY_keygen(context, &key) == 1, let key else { throw OpenSSLError("EC key generation failed") }
        return PrivateKey(taking: key)
    }

    /// The key PEM-encoded (PKCS#8, unencrypted: callers write it 0600 and never log it).
    public func pem() throws(OpenSSLError) -> String {
        try MemoryBIO.writing("PEM encoding the private key") { PEM_write_bio_PrivateKey($0, raw, nil, nil, 0, nil, nil) == 1 }
    }
}

/// A failed OpenSSL operation, with OpenSSL's queued reasons.
public struct OpenSSLError: Error, CustomStringConvertible, Sendable {
    public let description: String

    /// `what` failed; appends (and empties) OpenSSL's error queue.
    public init(_ what: String) {
        let reasons = OpenSSLErrorQueue.drain(.full)
        description = reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))"
    }
}

extension MemoryBIO {
    /// Text written by `write` into a fresh memory BIO (PEM encoders).
    static func writing(_ what: String, _ write: (OpaquePointer) -> Bool) throws(OpenSSLError) -> String {
        guard let bio = BIO_new(BIO_s_mem()) else { throw OpenSSLError("BIO_new failed") }
        defer { BIO_free(bio) }
        guard write(bio) else { throw OpenSSLError(what) }
        let pending = Int(BIO_ctrl_pending(bio))
        var bytes = [UInt8](repeating: 0, count: pending)
        guard BIO_read(bio, &bytes, Int32(pending)) == Int32(pending) else { throw OpenSSLError("\(what): reading the BIO") }
        return String(decoding: bytes, as: UTF8.self)
    }
}
