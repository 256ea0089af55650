// Owns the test PKI: real certificates generated with the `openssl` CLI into a
// temporary directory once per test process (CA, server, mTLS client with a
// SPIFFE URI SAN, a client from another CA, an expired client).
import Foundation
import MeshTestSupport
@testable import Transport

struct TestCertificates: Sendable {
    let directory: URL

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    var serverCredentials: TLSServerCredentials {
        TLSServerCredentials(certificateChainFile: path("server.crt"), privateKeyFile: path("server.key"), clientCAFile: path("ca.crt"))
    }

    /// Client credentials named by file stem ("client", "foreign", "expired"), or none.
    func client(_ stem: String?, alpn: [String] = ["h2"]) -> TLSClientCredentials {
        var credentials = TLSClientCredentials(
            certificateChainFile: stem.map { path("\($0).crt") }, privateKeyFile: stem.map { path("\($0).key") },
            trustedCAFile: path("ca.crt"), serverName: "localhost")
        credentials.alpnProtocols = alpn
        return credentials
    }

    static let shared: TestCertificates = {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("transport-tests-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try! FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let result = runProcess("/bin/sh", ["-c", script], in: directory, timeout: 60)
        precondition(result.status == 0, "certificate generation failed: \(result.output)")
        atexit { try? FileManager.default.removeItem(atPath: FileManager.default.temporaryDirectory.appendingPathComponent("transport-tests-\(getpid())").path) }
        return TestCertificates(directory: directory)
    }()

    private static let script = #"""
    set -eu
    key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
    ca() {
      key "$1.key"
      openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 30 -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    }
    leaf() {
      key "$1.key"
      openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$3"
      printf '%s\n' "$4" > "$1.ext"
      openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -out "$1.crt" -days 30 -extfile "$1.ext" 2>/dev/null
    }
    ca ca "Test Mesh CA"
    ca otherca "Other CA"
    leaf server ca localhost "subjectAltName=DNS:localhost,IP:127.0.0.1
    extendedKeyUsage=serverAuth"
    leaf client ca test-client "subjectAltName=URI:spiffe://mesh.local/ns/default/sa/test
    extendedKeyUsage=clientAuth"
    leaf foreign otherca test-client "subjectAltName=URI:spiffe://mesh.local/ns/default/sa/test
    extendedKeyUsage=clientAuth"
    # An expired client certificate: `openssl ca` sets both validity dates in the past.
    key expired.key
    openssl req -new -key expired.key -out expired.csr -subj "/CN=expired-client"
    mkdir -p cadb && : > cadb/index.txt && echo 01 > cadb/serial
    printf '%s\n' '[ ca ]' 'default_ca = test' '[ test ]' 'dir = .' 'database = cadb/index.txt' \
      'serial = cadb/serial' 'new_certs_dir = cadb' 'default_md = sha256' 'policy = anything' \
      'x509_extensions = client_ext' '[ anything ]' 'commonName = supplied' '[ client_ext ]' \
      'subjectAltName = URI:spiffe://mesh.local/ns/default/sa/expired' 'extendedKeyUsage = clientAuth' > ca.cnf
    openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr -out expired.crt \
      -startdate 20200101000000Z -enddate 20200201000000Z -notext 2>/dev/null
    """#
}

/// Runs a process with a deadline (killed when exceeded); returns its exit status and output (stdout, then stderr).
func runProcess(_ executable: String, _ arguments: [String], in directory: URL? = nil, timeout: TimeInterval) -> (status: Int32, output: String) {
    do {
        let result = try ProcessRunner.run(executable, arguments, in: directory, timeout: timeout)
        return (result.status, result.stdoutText + result.stderrText)
    } catch let timeout as ProcessTimeout {
        return (-2, timeout.description)
    } catch {
        return (-1, "cannot run \(executable): \(error)")
    }
}
