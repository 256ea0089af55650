// Configurations in the shapes teams write (Tests/Corpus/realworld/configs) and 44 mutants of each
// (misspelt keys and enums, deleted keys, duplicated elements, broken references, wrong slots …), every
// one with the verdict the pinned Envoy 1.40 gave it (mutants.jsonl, recorded by `mutants.py record`).
// `meshctl validate --envoy` must give the same verdict — and must never accept what Envoy refuses.
import Foundation
import MeshTestSupport
import XCTest

final class RealWorldCorpusTests: XCTestCase {
    static let corpus = TestPaths.root.appendingPathComponent("Tests/Corpus/realworld")

    /// Cases where meshctl refuses what Envoy accepts, on purpose. The test fails when one of them starts
    /// agreeing, so the list cannot go stale.
    static let deliberateRefusals: [String: String] = [
        // The same listener listed twice: Envoy's listener manager sees the second as an update with an identical
        // hash and keeps the first, silently. meshctl reports the duplicate name (docs/ENVOY_SEMANTICS.md, quirks).
        "tcp-databases--027": "a listener listed twice",
        "tracing--038": "a listener listed twice",
    ]

    struct Case {
        var id: String
        var envoyAccepts: Bool
        var kind: String
    }

    func testMeshctlAgreesWithEnvoyOnRealWorldConfigurationsAndTheirMutants() throws {
        let work = try TestPaths.temporaryDirectory("meshctl-realworld")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let certificates = work + "/certs", cases = work + "/cases"
        let made = try ProcessRunner.run("/bin/bash", [Self.corpus.path + "/../envoy/make-certs.sh", certificates], timeout: 60)
        XCTAssertEqual(made.status, 0, String(decoding: made.stderr, as: UTF8.self))
        let materialized = try ProcessRunner.run(TestPaths.python, [Self.corpus.path + "/mutants.py", "materialize", "--certs", certificates, "--out", cases], timeout: 120)
        XCTAssertEqual(materialized.status, 0, String(decoding: materialized.stderr, as: UTF8.self))

        let index = try String(contentsOfFile: cases + "/index.tsv", encoding: .utf8).split(separator: "\n").map { line in
            let parts = line.split(separator: "\t").map(String.init)
            return Case(id: parts[0], envoyAccepts: parts[1] == "accept", kind: parts[2])
        }
        // The corpus is what it claims: twelve originals Envoy accepts, every mutation kind, most mutants refused.
        XCTAssertEqual(index.filter { $0.kind == "original" }.count, 12)
        XCTAssertTrue(index.filter { $0.kind == "original" }.allSatisfy(\.envoyAccepts))
        XCTAssertEqual(Set(index.map(\.kind)).count, 12, "every mutation kind is represented")
        XCTAssertGreaterThan(index.count, 500)
        XCTAssertGreaterThan(index.filter { !$0.envoyAccepts }.count, 300)

        let files = index.map { "\(cases)/\($0.id).json" }
        let run = try ProcessRunner.run(TestPaths.meshctl, ["validate", "--envoy", "--format", "json"] + files, timeout: 600)
        XCTAssertTrue(run.status == 0 || run.status == 1, "meshctl exited \(run.status): \(String(decoding: run.stderr, as: UTF8.self).prefix(2000))")
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: run.stdout) as? [String: Any])
        var valid: [String: Bool] = [:]
        for file in report["files"] as? [[String: Any]] ?? [] {
            guard let path = file["file"] as? String, let isValid = file["valid"] as? Bool else { continue }
            valid[URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent] = isValid
        }
        var messages: [String: [String]] = [:]
        for diagnostic in report["diagnostics"] as? [[String: Any]] ?? [] where (diagnostic["severity"] as? String ?? "error") == "error" {
            let id = URL(fileURLWithPath: diagnostic["file"] as? String ?? "").deletingPathExtension().lastPathComponent
            messages[id, default: []].append("\(diagnostic["message"] ?? "") [\(diagnostic["rule"] ?? "")]")
        }

        var falseAccepts: [String] = [], falseRejects: [String] = [], agreed = 0
        for item in index {
            let meshctlAccepts = try XCTUnwrap(valid[item.id], "no verdict for \(item.id)")
            if meshctlAccepts == item.envoyAccepts {
                agreed += 1
                XCTAssertNil(Self.deliberateRefusals[item.id], "\(item.id) now agrees with Envoy: remove it from deliberateRefusals")
            } else if meshctlAccepts {
                falseAccepts.append("\(item.id) (\(item.kind)): Envoy refuses it, meshctl accepts it")
            } else if Self.deliberateRefusals[item.id] == nil {
                falseRejects.append("\(item.id) (\(item.kind)): Envoy accepts it, meshctl says \(messages[item.id] ?? [])")
            }
        }
        print("real-world corpus: \(agreed)/\(index.count) agree with Envoy 1.40 (\(Self.deliberateRefusals.count) deliberate refusals)")
        XCTAssertEqual(falseAccepts, [], "meshctl accepted configurations Envoy refuses")
        XCTAssertEqual(falseRejects, [], "meshctl refused configurations Envoy accepts")
        XCTAssertEqual(agreed + Self.deliberateRefusals.count, index.count)
    }
}
