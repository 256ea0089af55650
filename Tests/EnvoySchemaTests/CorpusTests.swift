// The corpus in Tests/Corpus/envoy checked against the two references:
// - Python protobuf over the same descriptor set (extracted from Envoy): byte-identical encodings of every valid file;
// - the real Envoy 1.40 (`envoy --mode validate`): the same verdict on every file, valid and invalid.
import EnvoySchema
import Foundation
import XCTest

final class CorpusTests: XCTestCase {
    static func files(_ folder: String) -> [URL] {
        let url = TestSupport.corpus.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json") }.sorted().map { url.appendingPathComponent($0) }
    }

    static var valid: [URL] { files("valid") }
    static var invalid: [URL] { files("invalid") }

    /// Certificates generated for this run; corpus files name them as __CERTS__/….
    static let certificates: URL = {
        let directory = try! TestSupport.temporaryDirectory()
        let script = TestSupport.corpus.appendingPathComponent("make-certs.sh").path
        let result = try! TestSupport.run("/bin/bash", [script, directory.path], timeout: 120)
        precondition(result.status == 0, "make-certs.sh failed: \(String(decoding: result.stderr, as: UTF8.self))")
        return directory
    }()

    /// The corpus file with __CERTS__ replaced, written next to the certificates.
    static func materialize(_ file: URL) throws -> URL {
        let text = try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: "__CERTS__", with: certificates.path)
        let out = certificates.appendingPathComponent(file.deletingLastPathComponent().lastPathComponent + "-" + file.lastPathComponent)
        try text.write(to: out, atomically: true, encoding: .utf8)
        return out
    }

    override class func tearDown() {
        try? FileManager.default.removeItem(at: certificates)
        super.tearDown()
    }

    func testCorpusIsBroad() {
        XCTAssertGreaterThanOrEqual(Self.valid.count, 40, "valid corpus")
        XCTAssertGreaterThanOrEqual(Self.invalid.count, 40, "invalid corpus")
    }

    func testEncodingsAreByteIdenticalToPythonProtobuf() throws {
        let python = TestSupport.python
        guard FileManager.default.isExecutableFile(atPath: python) else {
            return XCTFail("the Python oracle is missing at \(python); run the tests through `make test`")
        }
        let files = try Self.valid.map(Self.materialize)
        let oracle = TestSupport.root.appendingPathComponent("Tests/Oracle/encode_oracle.py").path
        let result = try TestSupport.run(python, [oracle, TypeNames.bootstrap] + files.map(\.path), timeout: 300)
        XCTAssertEqual(result.status, 0, String(decoding: result.stderr, as: UTF8.self))
        var expected: [String: String] = [:]
        for line in String(decoding: result.stdout, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard parts.count == 3 else { continue }
            XCTAssertEqual(parts[1], "ok", "Python refused \(parts[0]): \(parts[2])")
            expected[parts[0]] = parts[2]
        }
        XCTAssertEqual(expected.count, files.count, "the oracle answered for every file")
        let pool = TestSupport.pool
        for file in files {
            let text = try String(contentsOf: file, encoding: .utf8)
            XCTAssertEqual(BootstrapValidation.validate(path: file.path, pool: pool).filter { $0.severity == .error }, [], file.lastPathComponent)
            let (message, _) = ConfigDocument.read(text: text, file: file.path, syntax: InputSyntax(fileName: file.path),
                                                   type: TestSupport.type(TypeNames.bootstrap), pool: pool)
            guard let message else { continue }
            XCTAssertEqual(TestSupport.hex(message.serialized(pool: pool)), expected[file.path], "bytes differ for \(file.lastPathComponent)")
        }
    }

    /// Where meshctl deliberately refuses what Envoy accepts: each is something Envoy does silently
    /// and a user would not want (a dropped listener, a lost value, a random winner, ignored text).
    static let deliberateDivergences: [String: String] = [
        "01-duplicate-listener-names.yaml": "xref.duplicate-listener",   // Envoy silently drops the second listener
        "02-duplicate-yaml-keys.yaml": "yaml.duplicate-key",             // the first value is silently lost
        "03-snake-and-camel-same-field.yaml": "schema.duplicate-field",  // Envoy picks a winner at random
        "13-multi-document-yaml.yaml": "yaml.multiple-documents",        // Envoy ignores every document but the first
        "32-json-duplicate-keys.json": "yaml.duplicate-key",             // the first value is silently lost
    ]

    /// Envoy's surprising-but-accepted inputs: meshctl agrees with Envoy on every one except the
    /// deliberate divergences above, and those it refuses with the named rule.
    func testQuirksAgreeWithRealEnvoyExceptDeliberateDivergences() throws {
        let envoy = TestSupport.envoy
        guard FileManager.default.isExecutableFile(atPath: envoy) else {
            return XCTFail("Envoy is missing at \(envoy); run the tests through `make test`")
        }
        let quirks = Self.files("quirks")
        XCTAssertGreaterThanOrEqual(quirks.count, 30)
        var problems: [String] = []
        for file in quirks {
            let path = try Self.materialize(file)
            let run = try TestSupport.run(envoy, ["--mode", "validate", "-c", path.path, "-l", "critical", "--disable-hot-restart"], timeout: 60)
            let diagnostics = BootstrapValidation.validate(path: path.path, pool: TestSupport.pool)
            let errors = diagnostics.filter { $0.severity == .error }
            let name = file.lastPathComponent
            if let rule = Self.deliberateDivergences[name] {
                if run.status != 0 { problems.append("\(name): Envoy now rejects it; drop it from the divergence list") }
                if !errors.contains(where: { $0.rule == rule }) { problems.append("\(name): expected meshctl to refuse it with \(rule), got \(errors.map(\.rule))") }
            } else if (run.status == 0) != errors.isEmpty {
                problems.append("\(name): Envoy \(run.status == 0 ? "accepts" : "rejects"), meshctl \(errors.isEmpty ? "accepts" : "rejects: \(errors.map(\.description))")")
            }
        }
        XCTAssertEqual(problems, [], "\n" + problems.joined(separator: "\n"))
    }

    /// meshctl and `envoy --mode validate` give the same verdict on every file; no false accepts.
    func testVerdictsAgreeWithRealEnvoy() throws {
        let envoy = TestSupport.envoy
        guard FileManager.default.isExecutableFile(atPath: envoy) else {
            return XCTFail("Envoy is missing at \(envoy); run the tests through `make test`")
        }
        let pool = TestSupport.pool
        var disagreements: [String] = []
        for (file, expectValid) in Self.valid.map({ ($0, true) }) + Self.invalid.map({ ($0, false) }) {
            let path = try Self.materialize(file)
            let run = try TestSupport.run(envoy, ["--mode", "validate", "-c", path.path, "-l", "critical", "--disable-hot-restart"], timeout: 60)
            let envoyAccepts = run.status == 0
            let diagnostics = BootstrapValidation.validate(path: path.path, pool: pool)
            let meshctlAccepts = !diagnostics.contains { $0.severity == .error }
            let name = "\(file.deletingLastPathComponent().lastPathComponent)/\(file.lastPathComponent)"
            if envoyAccepts != expectValid {
                disagreements.append("\(name): the corpus says \(expectValid ? "valid" : "invalid") but Envoy \(envoyAccepts ? "accepts" : "rejects") it: \(String(decoding: run.stdout + run.stderr, as: UTF8.self).suffix(300))")
            }
            if meshctlAccepts != envoyAccepts {
                let detail = meshctlAccepts ? "meshctl accepts (FALSE ACCEPT); Envoy says: \(String(decoding: run.stdout + run.stderr, as: UTF8.self).suffix(300))"
                                            : "meshctl rejects: \(diagnostics.filter { $0.severity == .error }.map(\.description).joined(separator: " | "))"
                disagreements.append("\(name): \(detail)")
            }
        }
        XCTAssertEqual(disagreements, [], "\n" + disagreements.joined(separator: "\n"))
    }
}
