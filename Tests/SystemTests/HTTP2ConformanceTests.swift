// HTTP/2 conformance of `meshctl serve`, judged by an HTTP/2 implementation nobody here wrote: hyper-h2's framing
// and HPACK libraries craft the frame sequences of the h2spec 2.6 cases (Tests/Conformance/h2_conformance.py), over
// the plaintext listener and over mutual TLS. The same RFC 9113 cases run against nghttpd, the reference server on
// the same libnghttp2, so a case that is wrong fails there too.
import Foundation
import MeshCertificates
import MeshTestSupport
import XCTest

final class HTTP2ConformanceTests: XCTestCase {
    struct CaseResult: Decodable {
        let `case`: String
        let description: String
        let passed: Bool
        let detail: String
    }

    static let script = E2E.root.appendingPathComponent("Tests/Conformance/h2_conformance.py").path

    private var directory = ""

    override func setUpWithError() throws {
        directory = try E2E.temporaryDirectory()
        try E2E.publishFrontendMesh(in: directory)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func python() throws -> String {
        guard let python = TestPaths.installedPython else {
            throw XCTSkip("no Python with h2 and xds-protos: set MESHCTL_PYTHON (make test does)")
        }
        return python
    }

    /// Runs the cases against 127.0.0.1:`port`; returns them by id.
    private func runCases(port: Int, arguments: [String]) throws -> [String: CaseResult] {
        let python = try python()
        let listed = E2E.run(python, [Self.script, "--list"] + arguments.filter { $0 == "--http2-only" }, timeout: 30)
        let expectedCount = listed?.output.split(separator: "\n").count ?? 0
        XCTAssertGreaterThan(expectedCount, 15, "the case list")
        guard let run = E2E.run(python, [Self.script, "--port", "\(port)", "--first-request-timeout", "2"] + arguments, timeout: 180) else {
            XCTFail("the conformance script did not finish within 180 s")
            return [:]
        }
        let results = try run.output.split(separator: "\n").map { try JSONDecoder().decode(CaseResult.self, from: Data($0.utf8)) }
        XCTAssertEqual(results.count, expectedCount, "every case ran: \(run.output)")
        return Dictionary(results.map { ($0.case, $0) }, uniquingKeysWith: { first, _ in first })
    }

    private func startServe(_ security: [String]) throws -> (ChildProcess, Int) {
        let port = E2E.freePort()
        let server = try ChildProcess(E2E.meshctl, ["serve", "--store", directory + "/store", "--listen", "127.0.0.1:\(port)", "--admin", "off",
                                                    "--first-request-timeout", "2"] + security,
                                      log: directory + "/serve-\(port).log")
        E2E.waitUntil(15, "serve to listen") { server.output.contains("server.listening") }
        return (server, port)
    }

    private func assertAllPassed(_ results: [String: CaseResult], _ listener: String, file: StaticString = #filePath, line: UInt = #line) {
        for result in results.values.sorted(by: { $0.case < $1.case }) where !result.passed {
            XCTFail("\(listener): h2spec \(result.case) \(result.description): \(result.detail)", file: file, line: line)
        }
        // The cases the issue named must be among those that ran.
        for id in ["5.1/6", "5.1/8", "5.1/9", "5.1/11", "5.1/12", "5.1.1/2", "5.1.2/1", "6.1/2", "6.1/3", "8.1.2.1/3", "8.1.2.6/1", "8.1.2.6/2"] {
            XCTAssertNotNil(results[id], "\(listener): case \(id) ran", file: file, line: line)
        }
    }

    func testPlaintextListenerPassesEveryCase() throws {
        let (server, port) = try startServe(["--insecure-plaintext"])
        defer { server.stop() }
        let results = try runCases(port: port, arguments: [])
        assertAllPassed(results, "plaintext")
        for id in ["grpc/get", "grpc/post-not-grpc-in-pieces", "grpc/post-not-grpc-one-write", "grpc/half-closed-before-first-request",
                   "grpc/no-first-request", "grpc/ads-byte-by-byte"] {
            XCTAssertEqual(results[id]?.passed, true, "plaintext: \(id)")
        }
        XCTAssertTrue(server.process.isRunning, "serve survives every case")
    }

    func testMutualTLSListenerPassesEveryCase() throws {
        let certs = directory + "/certs"
        let (server, port) = try startServe(["--tls-cert", certs + "/server.crt", "--tls-key", certs + "/server.key", "--client-ca", certs + "/ca.crt"])
        defer { server.stop() }
        let results = try runCases(port: port, arguments: ["--tls", "--cert", certs + "/frontend.crt", "--key", certs + "/frontend.key", "--ca", certs + "/ca.crt"])
        assertAllPassed(results, "mTLS")
        XCTAssertEqual(results["grpc/ads-byte-by-byte"]?.passed, true, "an ADS request split into single bytes is served over TLS")
        XCTAssertTrue(server.process.isRunning, "serve survives every case")
    }

    /// The RFC 9113 cases are right: nghttpd (libnghttp2's own server) passes them too.
    func testReferenceServerPassesTheHTTP2Cases() throws {
        let nghttpd = "/usr/sbin/nghttpd"
        guard FileManager.default.isExecutableFile(atPath: nghttpd) else {
            XCTFail("nghttpd is not installed (make test installs nghttp2-server)")
            return
        }
        let root = directory + "/www"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try "hello\n".write(toFile: root + "/index.html", atomically: true, encoding: .utf8)
        let port = E2E.freePort()
        let server = try ChildProcess(nghttpd, ["--no-tls", "-a", "127.0.0.1", "-d", root, "\(port)"], log: directory + "/nghttpd.log")
        defer { server.stop() }
        E2E.waitUntil(10, "nghttpd to listen") { E2E.run("/usr/bin/curl", ["-s", "--http2-prior-knowledge", "-m", "2", "http://127.0.0.1:\(port)/"], timeout: 5)?.output == "hello\n" }
        let results = try runCases(port: port, arguments: ["--http2-only"])
        assertAllPassed(results, "nghttpd")
    }
}
