// A development certificate authority: the CA, the xDS server's certificate and
// proxy certificates with SPIFFE identities, so a mesh runs with mutual TLS from
// the first `make run`. Keys are EC P-256, written 0600 and never printed. The
// only file of this target that touches OpenSSL: certificates, keys and PEM come
// from OpenSSLSupport; the X.509 fields and extensions of a new certificate are set here.
import Foundation
internal import COpenSSL
import NetworkAddress
import OpenSSLSupport

/// Errors from certificate generation, with OpenSSL's reason when there is one.
public struct CertificateError: Error, CustomStringConvertible, Sendable {
    public let description: String

    init(_ what: String) { description = OpenSSLError(what).description }
    init(_ error: OpenSSLError) { description = error.description }
}

/// A certificate and its private key, PEM-encoded.
public struct IssuedCertificate: Sendable {
    public let certificatePEM: String
    public let privateKeyPEM: String
}

/// What to put in a certificate.
public struct CertificateRequest: Sendable {
    public var commonName: String
    public var dnsNames: [String] = []
    public var ipAddresses: [String] = []
    public var uris: [String] = []
    public var isCA = false
    public var serverAuth = true
    public var clientAuth = true
    /// Validity starts this many seconds from now (negative: in the past, for expired test certificates).
    public var notBeforeOffset: Int = -300
    public var validForSeconds: Int = 365 * 24 * 3600

    public init(commonName: String) { self.commonName = commonName }
}

/// A CA that can issue certificates.
public final class DevelopmentCA: Sendable {
    private let key: PrivateKey
    private let certificate: X509Certificate
    public let issued: IssuedCertificate

    /// A new self-signed CA.
    public init(commonName: String, validForSeconds: Int = 10 * 365 * 24 * 3600) throws(CertificateError) {
        var request = CertificateRequest(commonName: commonName)
        request.isCA = true
        request.serverAuth = false
        request.clientAuth = false
        request.validForSeconds = validForSeconds
        let key = try Self.generateKey()
        let certificate = try Self.make(request, subjectKey: key, issuer: nil, issuerKey: key)
        issued = IssuedCertificate(certificatePEM: try Self.pem(certificate.pem), privateKeyPEM: try Self.pem(key.pem))
        self.key = key
        self.certificate = certificate
    }

    /// A CA written earlier (`ca.crt`, `ca.key`), loaded to issue renewals.
    public init(certificatePEM: String, privateKeyPEM: String) throws(CertificateError) {
        guard let certificate = X509Certificate(pem: Array(certificatePEM.utf8)) else { throw CertificateError("the CA certificate is not PEM") }
        guard let key = PrivateKey(pem: Array(privateKeyPEM.utf8)) else { throw CertificateError("the CA key is not a PEM private key") }
        guard certificate.matches(key) else { throw CertificateError("the CA key does not belong to the CA certificate") }
        self.key = key
        self.certificate = certificate
        issued = IssuedCertificate(certificatePEM: certificatePEM, privateKeyPEM: privateKeyPEM)
    }

    /// The URI SANs of a PEM certificate (a proxy's SPIFFE ID), to renew it with the same identity.
    public static func uriNames(ofCertificatePEM text: String) -> [String] {
        X509Certificate(pem: Array(text.utf8))?.uriNames ?? []
    }

    /// A certificate for `request`, signed by this CA.
    public func issue(_ request: CertificateRequest) throws(CertificateError) -> IssuedCertificate {
        let subjectKey = try Self.generateKey()
        let issuedCertificate = try Self.make(request, subjectKey: subjectKey, issuer: certificate, issuerKey: key)
        return IssuedCertificate(certificatePEM: try Self.pem(issuedCertificate.pem), privateKeyPEM: try Self.pem(subjectKey.pem))
    }

    private static func generateKey() throws(CertificateError) -> PrivateKey {
        do { return try PrivateKey.generateP256() } catch { throw CertificateError(error) }
    }

    private static func pem(_ encode: () throws(OpenSSLError) -> String) throws(CertificateError) -> String {
        do { return try encode() } catch { throw CertificateError(error) }
    }

    /// A new certificate for `request` with `subjectKey`'s public key, signed by `issuerKey` (self-signed when `issuer` is nil).
    private static func make(_ request: CertificateRequest, subjectKey: PrivateKey, issuer: X509Certificate?, issuerKey: PrivateKey) throws(CertificateError) -> X509Certificate {
        guard let raw = X509_new() else { throw CertificateError("X509_new failed") }
        let certificate = X509Certificate(taking: raw)  // frees `raw` on every path below
        try fill(raw, request: request, subjectKey: subjectKey.raw, issuer: issuer?.raw, issuerKey: issuerKey.raw)
        return certificate
    }

    private static func fill(_ x509: OpaquePointer, request: CertificateRequest, subjectKey: OpaquePointer, issuer: OpaquePointer?, issuerKey: OpaquePointer) throws(CertificateError) {
        var serial = [UInt8](repeating: 0, count: 16)
        guard RAND_bytes(&serial, Int32(serial.count)) == 1 else { throw CertificateError("RAND_bytes failed") }
        serial[0] &= 0x7f
        guard X509_set_version(x509, 2) == 1,
              let bignum = BN_bin2bn(serial, Int32(serial.count), nil) else { throw CertificateError("serial number") }
        defer { BN_free(bignum) }
        guard BN_to_ASN1_INTEGER(bignum, X509_get_serialNumber(x509)) != nil,
              X509_gmtime_adj(X509_getm_notBefore(x509), request.notBeforeOffset) != nil,
              X509_gmtime_adj(X509_getm_notAfter(x509), request.notBeforeOffset + request.validForSeconds) != nil,
              X509_set_pubkey(x509, subjectKey) == 1 else { throw CertificateError("certificate fields") }
        let name = X509_get_subject_name(x509)
        guard X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, request.commonName, -1, -1, 0) == 1,
              X509_set_issuer_name(x509, issuer.map { X509_get_subject_name($0) } ?? name) == 1 else { throw CertificateError("certificate names") }

        var context = X509V3_CTX()
        X509V3_set_ctx(&context, issuer ?? x509, x509, nil, nil, 0)
        var extensions: [(Int32, String)] = []
        if request.isCA {
            extensions += [(NID_basic_constraints, "critical,CA:TRUE"), (NID_key_usage, "critical,keyCertSign,cRLSign")]
        } else {
            extensions += [(NID_basic_constraints, "critical,CA:FALSE"), (NID_key_usage, "critical,digitalSignature,keyEncipherment")]
            let usages = (request.serverAuth ? ["serverAuth"] : []) + (request.clientAuth ? ["clientAuth"] : [])
            if !usages.isEmpty { extensions.append((NID_ext_key_usage, usages.joined(separator: ","))) }
        }
        let names = request.dnsNames.map { "DNS:\($0)" } + request.ipAddresses.map { "IP:\($0)" } + request.uris.map { "URI:\($0)" }
        if !names.isEmpty { extensions.append((NID_subject_alt_name, names.joined(separator: ","))) }
        extensions.append((NID_subject_key_identifier, "hash"))
        if issuer != nil { extensions.append((NID_authority_key_identifier, "keyid:always")) }
        for (nid, value) in extensions {
            guard let ext = X509V3_EXT_conf_nid(nil, &context, nid, value) else { throw CertificateError("extension \(value)") }
            defer { X509_EXTENSION_free(ext) }
            guard X509_add_ext(x509, ext, -1) == 1 else { throw CertificateError("adding extension \(value)") }
        }
        guard X509_sign(x509, issuerKey, EVP_sha256()) > 0 else { throw CertificateError("signing the certificate") }
    }
}

/// The files `meshctl certs init` writes.
public enum DevelopmentCertificates {
    public struct Written: Sendable {
        public let directory: String
        public let files: [String]
    }

    /// Writes ca.crt (+ ca.key), server.crt/key for the xDS server, NAME.crt/key per proxy and operator-NAME.crt/key
    /// per operator (who may read proxy status over CSDS), with SPIFFE URI SANs `spiffe://<trust domain>/xds-server`,
    /// `spiffe://<trust domain>/proxy/<NAME>` and `spiffe://<trust domain>/operator/<NAME>`. Keys are 0600.
    /// Each file is written to a temporary name and renamed into place.
    public static func write(to directory: String, trustDomain: String, proxies: [String], operators: [String] = [],
                             serverHosts: [String] = ["localhost", "127.0.0.1", "::1"]) throws -> Written {
        let fm = FileManager.default
        let ca = try DevelopmentCA(commonName: "meshctl development CA (\(trustDomain))")
        var files: [(String, String, Bool)] = [("ca.crt", ca.issued.certificatePEM, false), ("ca.key", ca.issued.privateKeyPEM, true)]
        var server = CertificateRequest(commonName: "meshctl xDS server")
        server.dnsNames = serverHosts.filter { !isIPAddress($0) }
        server.ipAddresses = serverHosts.filter(isIPAddress)
        server.uris = ["spiffe://\(trustDomain)/xds-server"]
        server.clientAuth = false
        let serverCert = try ca.issue(server)
        files += [("server.crt", serverCert.certificatePEM, false), ("server.key", serverCert.privateKeyPEM, true)]
        for proxy in proxies {
            var request = CertificateRequest(commonName: proxy)
            request.uris = ["spiffe://\(trustDomain)/proxy/\(proxy)"]
            request.dnsNames = ["localhost"]
            request.ipAddresses = ["127.0.0.1"]
            let issued = try ca.issue(request)
            files += [("\(proxy).crt", issued.certificatePEM, false), ("\(proxy).key", issued.privateKeyPEM, true)]
        }
        for name in operators {
            var request = CertificateRequest(commonName: "operator \(name)")
            request.uris = ["spiffe://\(trustDomain)/operator/\(name)"]
            let issued = try ca.issue(request)
            files += [("operator-\(name).crt", issued.certificatePEM, false), ("operator-\(name).key", issued.privateKeyPEM, true)]
        }
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return Written(directory: directory, files: try install(files, in: directory))
    }

    /// Issues new certificates for proxies that already have one in `directory` (same SPIFFE ID, new key and
    /// serial), signed by the CA there, and moves them into place key first, certificate right after — each by
    /// rename, which Envoy's `watched_directory` sees as the signal to reload the pair.
    public static func renew(in directory: String, proxies: [String], validForSeconds: Int = 365 * 24 * 3600) throws -> Written {
        let read = { (name: String) throws -> String in
            let path = (directory as NSString).appendingPathComponent(name)
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw CertificateError("cannot read \(path): renew needs the CA and the proxy certificates that `meshctl certs init` wrote there")
            }
            return text
        }
        let ca = try DevelopmentCA(certificatePEM: try read("ca.crt"), privateKeyPEM: try read("ca.key"))
        var files: [(String, String, Bool)] = []
        for proxy in proxies {
            let uris = DevelopmentCA.uriNames(ofCertificatePEM: try read("\(proxy).crt"))
            guard !uris.isEmpty else { throw CertificateError("\(proxy).crt in \(directory) carries no URI SAN (SPIFFE ID) to renew") }
            var request = CertificateRequest(commonName: proxy)
            request.uris = uris
            request.dnsNames = ["localhost"]
            request.ipAddresses = ["127.0.0.1"]
            request.validForSeconds = validForSeconds
            let issued = try ca.issue(request)
            files += [("\(proxy).key", issued.privateKeyPEM, true), ("\(proxy).crt", issued.certificatePEM, false)]
        }
        return Written(directory: directory, files: try install(files, in: directory))
    }

    /// Writes each file under a temporary name, then renames it into place (a reader never sees half a file).
    private static func install(_ files: [(name: String, content: String, secret: Bool)], in directory: String) throws -> [String] {
        let fm = FileManager.default
        var written: [String] = []
        for (name, content, secret) in files {
            let path = (directory as NSString).appendingPathComponent(name)
            let temporary = path + ".tmp-\(getpid())"
            guard fm.createFile(atPath: temporary, contents: Data(content.utf8), attributes: [.posixPermissions: secret ? 0o600 : 0o644]) else {
                throw CertificateError("cannot write \(temporary)")
            }
            guard rename(temporary, path) == 0 else { throw CertificateError("cannot rename \(temporary) to \(path): \(String(cString: strerror(errno)))") }
            written.append(path)
        }
        return written
    }

    static func isIPAddress(_ text: String) -> Bool { IPAddress.isLiteral(text) }
}
