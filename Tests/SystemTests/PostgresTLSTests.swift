// `sslmode=verify-full` against a real PostgreSQL serving TLS with a certificate from a test CA (made with
// openssl here, for the name localhost): the right CA connects; a CA that did not sign the certificate, or a host name
// the certificate does not carry, is refused with one clear line and exit status 2; the password never shows.
import Foundation
import MeshTestSupport
import XCTest

final class PostgresTLSTests: XCTestCase {
    var directory = ""

    override class func tearDown() {
        SharedPostgres.shutdown()
        super.tearDown()
    }

    override func tearDown() {
        if !directory.isEmpty { try? FileManager.default.removeItem(atPath: directory) }
    }

    func openssl(_ arguments: [String]) throws {
        let result = try ProcessRunner.run("/usr/bin/openssl", arguments, in: URL(fileURLWithPath: directory), timeout: 60)
        guard result.status == 0 else { throw TestFailure("openssl \(arguments.joined(separator: " ")): \(result.stderrText)") }
    }

    /// A self-signed CA.
    func makeCA(_ name: String) throws {
        try openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(name).key", "-out", "\(name).crt", "-days", "2",
                     "-subj", "/CN=meshctl test \(name)", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    func testVerifyFullConnectsWithTheRightCAAndRefusesAWrongCAOrHostName() throws {
        guard FileManager.default.isExecutableFile(atPath: E2E.meshctl) else { throw TestFailure("meshctl is not built at \(E2E.meshctl)") }
        let (server, socketURL) = try SharedPostgres.database()
        let database = String(socketURL.split(separator: "/").last!)
        directory = server.directory + "/tls"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try makeCA("ca")
        try makeCA("other-ca")
        try openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
        // DNS name only: swift-nio-ssl also accepts an IP SAN that matches the address connected to, whatever host
        // name the URL gives, so a certificate with IP:127.0.0.1 could not show a host-name mismatch on loopback.
        try "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n".write(toFile: directory + "/server.ext", atomically: true, encoding: .utf8)
        try openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
                     "-days", "2", "-extfile", "server.ext"])
        chmod(directory + "/server.key", 0o600)
        if getuid() == 0 {
            // The cluster runs as nobody (PostgreSQL refuses root) and insists on owning its key.
            let chown = try ProcessRunner.run("/bin/chown", ["-R", "nobody:nogroup", directory], timeout: 30)
            XCTAssertEqual(chown.status, 0, chown.stderrText)
        }
        try server.sql("ALTER SYSTEM SET ssl_cert_file = '\(directory)/server.crt'")
        try server.sql("ALTER SYSTEM SET ssl_key_file = '\(directory)/server.key'")
        try server.sql("ALTER SYSTEM SET ssl = on")
        try server.sql("SELECT pg_reload_conf()")
        E2E.waitUntil(10, "PostgreSQL serves TLS") { (try? server.sql("SHOW ssl")) == "on" }
        defer {
            _ = try? server.sql("ALTER SYSTEM RESET ssl")
            _ = try? server.sql("SELECT pg_reload_conf()")
        }
        let password = "tls-Secret-pw-4410"
        try server.sql("CREATE ROLE tlsuser LOGIN PASSWORD '\(password)'")
        try server.sql("GRANT ALL ON DATABASE \(database) TO tlsuser")
        try server.sql("GRANT ALL ON SCHEMA public TO tlsuser", database: database)

        func list(host: String, mode: String, ca: String) throws -> ProcessOutput {
            let url = "postgres://tlsuser:\(password)@\(host):\(server.port)/\(database)?sslmode=\(mode)&sslrootcert=\(directory)/\(ca).crt"
            return try ProcessRunner.run(E2E.meshctl, ["snapshot", "publish-fixture", "--store", url, "--services", "2"], timeout: 60, kill: SIGKILL)
        }
        func assertRefused(_ r: ProcessOutput, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertEqual(r.status, 2, "\(what): \(r.stdoutText)\(r.stderrText)", file: file, line: line)
            XCTAssertEqual(r.stderrText.split(separator: "\n").count, 1, "\(what): one line: \(r.stderrText)", file: file, line: line)
            XCTAssertTrue(r.stderrText.lowercased().contains("certificate") || r.stderrText.contains("TLS"), "\(what): says it is the certificate: \(r.stderrText)", file: file, line: line)
            XCTAssertFalse(r.stderrText.contains(password) || r.stdoutText.contains(password), "\(what): the password leaked", file: file, line: line)
        }

        let right = try list(host: "localhost", mode: "verify-full", ca: "ca")
        XCTAssertEqual(right.status, 0, right.stderrText)
        XCTAssertFalse(right.stdoutText.contains(password) || right.stderrText.contains(password))
        // (The server has ssl on and verify-full refuses a connection without TLS: this one was TLS.)
        assertRefused(try list(host: "localhost", mode: "verify-full", ca: "other-ca"), "a CA that did not sign the server's certificate")
        assertRefused(try list(host: "127.0.0.1", mode: "verify-full", ca: "ca"), "an address the certificate does not carry")
        // verify-ca checks the chain only: the same address passes.
        let chainOnly = try list(host: "127.0.0.1", mode: "verify-ca", ca: "ca")
        XCTAssertEqual(chainOnly.status, 0, chainOnly.stderrText)
        XCTAssertEqual(try server.sql("SELECT count(*) FROM meshctl_versions", database: database), "1", "the refused connections wrote nothing")
    }
}
