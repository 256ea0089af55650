// Snapshot diffs: which resources changed per group and type, and line diffs of changed ones.
import Foundation
import MeshFixtures
import MeshTestSupport
@testable import SnapshotStorage
import XCTest

final class DiffTests: XCTestCase {
    typealias S = StoreTestSupport

    func testLineDiffProducesUnifiedHunks() {
        let cases: [(String, [String], [String], [String])] = [
            ("equal", ["a", "b"], ["a", "b"], []),
            ("one line changed", ["a", "b", "c"], ["a", "x", "c"], ["@@ -1,3 +1,3 @@", " a", "-b", "+x", " c"]),
            ("line added at end", ["a"], ["a", "b"], ["@@ -1,1 +1,2 @@", " a", "+b"]),
            ("everything removed", ["a", "b"], [], ["@@ -1,2 +0,0 @@", "-a", "-b"]),
            ("from nothing", [], ["a"], ["@@ -0,0 +1,1 @@", "+a"]),
            ("far apart changes make two hunks",
             ["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"], ["x", "2", "3", "4", "5", "6", "7", "8", "9", "y"],
             ["@@ -1,2 +1,2 @@", "-1", "+x", " 2", "@@ -9,2 +9,2 @@", " 9", "-10", "+y"]),
            ("moved line", ["a", "b", "c"], ["b", "c", "a"], ["@@ -1,3 +1,3 @@", "-a", " b", " c", "+a"]),
        ]
        for (label, old, new, expected) in cases {
            XCTAssertEqual(LineDiff.unified(old, new, context: 1), expected, label)
        }
    }

    func testLineDiffEditScriptsRebuildBothSides() {
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<50 {
            let old = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in String(Int.random(in: 0..<6, using: &rng)) }
            let new = (0..<Int.random(in: 0..<40, using: &rng)).map { _ in String(Int.random(in: 0..<6, using: &rng)) }
            for limit in [2000, 3] {
                let script = LineDiff.edits(old, new, maxEdits: limit)
                let rebuiltOld = script.compactMap { if case .same(let s) = $0 { return s }; if case .removed(let s) = $0 { return s }; return nil }
                let rebuiltNew = script.compactMap { if case .same(let s) = $0 { return s }; if case .added(let s) = $0 { return s }; return nil }
                XCTAssertEqual(rebuiltOld, old, "trial \(trial) limit \(limit)")
                XCTAssertEqual(rebuiltNew, new, "trial \(trial) limit \(limit)")
            }
        }
    }

    func testSnapshotDiffListsChangesPerGroupAndType() throws {
        let old = try Snapshot.make(groups: [
            ProxyGroupResources(group: "web", resources: [S.cluster("same", "s"), S.cluster("changed", "line1\nold\nline3\n"), S.cluster("gone", "g")]),
            ProxyGroupResources(group: "retired", resources: [S.cluster("x", "x")]),
        ], compilerVersion: "t")
        let new = try Snapshot.make(groups: [
            ProxyGroupResources(group: "web", resources: [S.cluster("same", "s"), S.cluster("changed", "line1\nnew\nline3\n"), S.endpoint("fresh", "f")]),
            ProxyGroupResources(group: "added", resources: [S.cluster("y", "y")]),
        ], compilerVersion: "t")
        let diff = SnapshotDiff(from: old, to: new)
        XCTAssertEqual(diff.groups.map(\.group), ["added", "retired", "web"])
        XCTAssertEqual(diff.groups.map(\.status), [.added, .removed, .changed])
        let web = diff.groups[2]
        XCTAssertEqual(web.types.map(\.typeURL), [SyntheticSnapshot.clusterType, SyntheticSnapshot.endpointType])
        XCTAssertEqual(web.types[0].removed.map(\.name), ["gone"])
        XCTAssertEqual(web.types[0].changed.map(\.old.name), ["changed"])
        XCTAssertEqual(web.types[1].added.map(\.name), ["fresh"])
        XCTAssertEqual(diff.totals.added, 2)
        XCTAssertEqual(diff.totals.removed, 2)
        XCTAssertEqual(diff.totals.changed, 1)

        let text = diff.render { String(decoding: $0.body, as: UTF8.self) }
        for expected in ["group web: 1 added, 1 removed, 1 changed", "    - gone", "    + fresh", "    ~ changed",
                         "      -old", "      +new", "group added: new group, 1 added", "group retired: group removed"] {
            XCTAssertTrue(text.contains(expected), "missing \"\(expected)\" in:\n\(text)")
        }
        XCTAssertFalse(diff.render(fieldDiffs: false) { _ in "" }.contains("-old"))
        XCTAssertTrue(SnapshotDiff(from: old, to: old).isEmpty)
        XCTAssertTrue(SnapshotDiff(from: old, to: old).render { _ in "" }.contains("no differences"))
    }
}
