// Files a bootstrap names on the host that will run Envoy: TLS certificates,
// keys and CA bundles. Envoy reads them when it starts and refuses a missing or
// unreadable file or a key that does not belong to its certificate, so
// `validate --envoy` (which runs on that host) checks them too. The only file
// of EnvoySchema that reads certificates (through OpenSSLSupport).
import Foundation
import OpenSSLSupport

extension BootstrapChecks {
    mutating func checkTLSCertificateFiles(_ view: MessageView) {
        let chainSource = view.child("certificate_chain"), keySource = view.child("private_key")
        let chain = chainSource.flatMap { loadSource($0, what: "certificate chain") }
        let key = keySource.flatMap { loadSource($0, what: "private key") }
        guard let chainSource, let keySource, let chain, let key else { return }
        switch PEMMaterial.check(certificate: chain, key: key) {
        case .ok: break
        case .badCertificate:
            report("envoy.tls-file", "the certificate chain is not a PEM certificate Envoy can load", path: chainSource.path, at: chainSource.location)
        case .badKey:
            report("envoy.tls-file", "the private key is not a PEM private key Envoy can load", path: keySource.path, at: keySource.location)
        case .mismatch:
            report("envoy.tls-key-mismatch", "the private key does not belong to the certificate (KEY_VALUES_MISMATCH); pair each certificate with its own key", path: keySource.path, at: keySource.location)
        }
    }

    mutating func checkValidationContextFiles(_ view: MessageView) {
        if let ca = view.child("trusted_ca"), let pem = loadSource(ca, what: "trusted CA bundle"), !PEMMaterial.hasCertificate(pem) {
            report("envoy.tls-file", "the trusted CA bundle contains no PEM certificate", path: ca.path, at: ca.location)
        }
        if let crl = view.child("crl") { _ = loadSource(crl, what: "CRL") }
    }

    /// The bytes of a DataSource, or nil (with a diagnostic when a named file cannot be read).
    mutating func loadSource(_ source: MessageView, what: String) -> SourceBytes? {
        if let path = source.string("filename") {
            let outcome = hostFileReads?.read(path) ?? HostFileReads.readNow(path)
            switch outcome {
            case .missing:
                report("envoy.tls-file", "the \(what) file \(path) does not exist on this host; Envoy refuses to start without it", path: source.path + ".filename", at: source.location(of: "filename"))
                return nil
            case .unreadable:
                report("envoy.tls-file", "the \(what) file \(path) cannot be read (check its permissions)", path: source.path + ".filename", at: source.location(of: "filename"))
                return nil
            case .contents(let bytes):
                return bytes
            }
        }
        if let text = source.string("inline_string") { return SourceBytes(Array(text.utf8)) }
        if case .bytes(let bytes)? = source.value("inline_bytes") { return SourceBytes(bytes) }
        return nil  // environment variables and SDS-provided material are not on this host's disk
    }
}

/// TLS material and its SHA-256 (what PEMMaterial remembers verdicts by), hashed once.
struct SourceBytes: Sendable {
    let bytes: [UInt8]
    let digest: [UInt8]

    init(_ bytes: [UInt8]) {
        self.bytes = bytes
        digest = bytes.withUnsafeBytes { SHA256.digest($0.baseAddress, count: $0.count) }
    }
}

/// The TLS files host checks read, each read once: a mesh's generated resources name the same
/// certificate, key and CA files tens of thousands of times, and opening and reading them again for
/// each was 3% of a 10,000-service `meshctl validate`. One instance serves one run (a compile, one
/// bootstrap file), so a file is read as it was when the run looked at it first, and a later run
/// sees later changes. Shared by the threads that check resources.
public final class HostFileReads: @unchecked Sendable {
    // @unchecked Sendable: `outcomes` is only touched under `lock`.
    enum Outcome: Sendable { case missing, unreadable, contents(SourceBytes) }

    private let lock = NSLock()
    private var outcomes: [String: Outcome] = [:]

    public init() {}

    func read(_ path: String) -> Outcome {
        lock.lock()
        let known = outcomes[path]
        lock.unlock()
        if let known { return known }
        let outcome = Self.readNow(path)
        lock.lock()
        outcomes[path] = outcome
        lock.unlock()
        return outcome
    }

    static func readNow(_ path: String) -> Outcome {
        guard FileManager.default.fileExists(atPath: path) else { return .missing }
        guard let data = FileManager.default.contents(atPath: path) else { return .unreadable }
        return .contents(SourceBytes(Array(data)))
    }
}

/// PEM certificates and keys, parsed with OpenSSL as Envoy parses them.
///
/// Verdicts are remembered by the SHA-256 of the bytes they were given (never the bytes: no key
/// material is kept): a mesh's generated resources name the same few files thousands of times,
/// and parsing them again each time through OpenSSL 3's decoders (which take a read lock per
/// lookup) was most of a 10,000-service `meshctl validate`.
enum PEMMaterial {
    enum Verdict: Sendable { case ok, badCertificate, badKey, mismatch }

    static func check(certificate: SourceBytes, key: SourceBytes) -> Verdict {
        let digest = certificate.digest + key.digest
        if let known = verdicts.value(for: digest) { return known }
        let verdict: Verdict
        if let x509 = X509Certificate(pem: certificate.bytes) {
            if let privateKey = PrivateKey(pem: key.bytes) {
                verdict = x509.matches(privateKey) ? .ok : .mismatch
            } else {
                verdict = .badKey
            }
        } else {
            verdict = .badCertificate
        }
        verdicts.store(verdict, for: digest)
        return verdict
    }

    static func hasCertificate(_ pem: SourceBytes) -> Bool {
        if let known = bundles.value(for: pem.digest) { return known }
        let found = X509Certificate(pem: pem.bytes) != nil
        bundles.store(found, for: pem.digest)
        return found
    }

    private static let verdicts = Memo<Verdict>()
    private static let bundles = Memo<Bool>()

    /// Digest → verdict, shared by the threads that check resources; bounded (a long-running
    /// process that sees many files starts over rather than growing).
    private final class Memo<Value: Sendable>: @unchecked Sendable {
        // @unchecked Sendable: `entries` is only touched under `lock`.
        private let lock = NSLock()
        private var entries: [[UInt8]: Value] = [:]

        func value(for digest: [UInt8]) -> Value? {
            lock.lock()
            defer { lock.unlock() }
            return entries[digest]
        }

        func store(_ value: Value, for digest: [UInt8]) {
            lock.lock()
            defer { lock.unlock() }
            if entries.count >= 1024 { entries.removeAll() }
            entries[digest] = value
        }
    }
}
