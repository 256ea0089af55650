// `meshctl validate --envoy` and `meshctl schema` end to end: exit codes, messages and output for good and bad input.
import Foundation
import MeshTestSupport
import XCTest

final class EnvoyCommandLineTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = URL(fileURLWithPath: try TestPaths.temporaryDirectory("meshctl-test"))
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    func write(_ name: String, _ data: Data) throws -> String {
        let url = directory.appendingPathComponent(name)
        try data.write(to: url)
        return url.path
    }

    func meshctl(_ arguments: [String], stdin: Data? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        let result = try ProcessRunner.run(TestPaths.meshctl, arguments, stdin: stdin, timeout: 60)
        return (result.status, String(decoding: result.stdout, as: UTF8.self), String(decoding: result.stderr, as: UTF8.self))
    }

    var example: String { TestPaths.root.appendingPathComponent("examples/envoy/front-proxy.yaml").path }

    func testValidBootstrapExitsZero() throws {
        let result = try meshctl(["validate", "--envoy", example])
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        XCTAssertTrue(result.stdout.contains("front-proxy.yaml: valid"))
    }

    func testInvalidBootstrapListsEveryErrorWithPositionAndExitsOne() throws {
        let broken = try String(contentsOfFile: example, encoding: .utf8)
            .replacingOccurrences(of: "lb_policy: ROUND_ROBIN", with: "lb_policy: ROUND_ROBINN")
            .replacingOccurrences(of: "cluster: service_a, timeout", with: "cluster: service_b, timeout")
        let path = try write("broken.yaml", Data(broken.utf8))
        let result = try meshctl(["validate", "--envoy", path, example])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stdout.contains("\(path):31:16: error: static_resources.clusters[0].lb_policy"), result.stdout)
        XCTAssertTrue(result.stdout.contains("[xref.route-cluster]"), result.stdout)
        XCTAssertTrue(result.stdout.contains("front-proxy.yaml: valid"), "the valid file is still reported")
        XCTAssertTrue(result.stderr.contains("2 errors in 1 of 2 files"), result.stderr)
    }

    func testJSONOutputIsMachineReadable() throws {
        let path = try write("bad.yaml", Data("static_resources:\n  clusters:\n  - name: \"\"\n".utf8))
        let result = try meshctl(["validate", "--envoy", "--format", "json", path])
        XCTAssertEqual(result.status, 1)
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        let diagnostics = try XCTUnwrap(object?["diagnostics"] as? [[String: Any]])
        XCTAssertEqual(diagnostics.first?["rule"] as? String, "pgv.string.min_len")
        XCTAssertEqual(diagnostics.first?["line"] as? Int, 3)
        XCTAssertEqual(diagnostics.first?["path"] as? String, "static_resources.clusters[0].name")
    }

    struct BadInput {
        let name: String
        let make: () -> Data
        let expectedStatus: Int32
        let messageContains: String
    }

    func testBadInputGetsAOneLineReasonNeverACrash() throws {
        let cases: [BadInput] = [
            BadInput(name: "malformed.yaml", make: { Data("static_resources:\n  clusters: [\n    - name: a\n".utf8) }, expectedStatus: 1, messageContains: "malformed.yaml:"),
            BadInput(name: "tabs.yaml", make: { Data("admin:\n\taddress: {}\n".utf8) }, expectedStatus: 1, messageContains: "tabs.yaml:2:1: error: YAML syntax error"),
            BadInput(name: "binary.yaml", make: { Data([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0xff]) }, expectedStatus: 1, messageContains: "binary file"),
            BadInput(name: "latin1.yaml", make: { Data([0x6e, 0x61, 0x6d, 0x65, 0x3a, 0x20, 0xe9, 0x0a]) }, expectedStatus: 1, messageContains: "not valid UTF-8"),
            BadInput(name: "empty.yaml", make: { Data() }, expectedStatus: 1, messageContains: "empty"),
            BadInput(name: "comments-only.yaml", make: { Data("# nothing here\n".utf8) }, expectedStatus: 1, messageContains: "no document"),
            BadInput(name: "scalar.yaml", make: { Data("hello\n".utf8) }, expectedStatus: 1, messageContains: "expected an object"),
            BadInput(name: "two-documents.yaml", make: { Data("admin: {}\n---\nadmin: {}\n".utf8) }, expectedStatus: 1, messageContains: "more than one YAML document"),
            BadInput(name: "huge.yaml", make: { Data(repeating: 0x61, count: 50 << 20) }, expectedStatus: 1, messageContains: "over the 32.0 MiB limit"),
            BadInput(name: "deep-flow.yaml", make: { Data((String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)).utf8) }, expectedStatus: 1, messageContains: "nesting is deeper than 1000"),
            BadInput(name: "deep-block.yaml", make: {
                var s = ""
                for i in 0..<10_000 { s += String(repeating: " ", count: i) + "a:\n" }
                return Data(s.utf8)
            }, expectedStatus: 1, messageContains: "deep-block.yaml:"),
        ]
        for c in cases {
            let path = try write(c.name, c.make())
            let result = try meshctl(["validate", "--envoy", path])
            XCTAssertEqual(result.status, c.expectedStatus, "\(c.name): \(result.stdout) \(result.stderr)")
            XCTAssertTrue(result.stdout.contains(c.messageContains), "\(c.name): \(result.stdout.prefix(400))")
            XCTAssertTrue(result.stdout.contains(path), "\(c.name): the file is named")
        }
    }

    func testUsageErrorsExitTwo() throws {
        XCTAssertEqual(try meshctl(["validate", "--envoy", directory.appendingPathComponent("missing.yaml").path]).status, 2)
        XCTAssertEqual(try meshctl(["validate", example]).status, 2, "validate without --envoy is a usage error")
        XCTAssertEqual(try meshctl(["validate", "--envoy"]).status, 2)
        XCTAssertEqual(try meshctl(["validate", "--bogus"]).status, 2)
        let unknownType = try meshctl(["schema", "encode", "--type", "envoy.config.cluster.v3.Clustr", example])
        XCTAssertEqual(unknownType.status, 2)
        XCTAssertTrue(unknownType.stderr.contains("did you mean envoy.config.cluster.v3.Cluster"), unknownType.stderr)
    }

    func testSchemaEncodeAndDecodeRoundTripThroughStandardIO() throws {
        let type = "envoy.config.bootstrap.v3.Bootstrap"
        let encoded = try ProcessRunner.run(TestPaths.meshctl, ["schema", "encode", "--type", type, example])
        XCTAssertEqual(encoded.status, 0)
        let decoded = try meshctl(["schema", "decode", "--type", type, "-"], stdin: encoded.stdout)
        XCTAssertEqual(decoded.status, 0)
        XCTAssertTrue(decoded.stdout.contains("\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"), decoded.stdout)
        let reencoded = try ProcessRunner.run(TestPaths.meshctl, ["schema", "encode", "--type", type, "-"], stdin: Data(decoded.stdout.utf8))
        XCTAssertEqual(reencoded.stdout, encoded.stdout, "decode then encode gives the same bytes")
    }

    func testEncodeRefusesInvalidInputAndWritesNothing() throws {
        let path = try write("c.yaml", Data("name: \"\"\n".utf8))
        let result = try ProcessRunner.run(TestPaths.meshctl, ["schema", "encode", "--type", "envoy.config.cluster.v3.Cluster", path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stdout.isEmpty)
        XCTAssertTrue(String(decoding: result.stderr, as: UTF8.self).contains("c.yaml:1:1: error: name: value must not be empty"))
    }

    func testDecodeRefusesGarbage() throws {
        let result = try meshctl(["schema", "decode", "--type", "envoy.config.cluster.v3.Cluster", "-"], stdin: Data([0x0a, 0xff, 0xff, 0x01]))
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("not a valid envoy.config.cluster.v3.Cluster"), result.stderr)
    }
}
