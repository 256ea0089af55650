// docs/ARCHITECTURE.md's target table is checked against Package.swift: every target is a
// row, every row is a target, each row's imports are exactly the target's dependencies, and
// a target imports only targets listed above it (nothing imports upward).
import Foundation
import MeshTestSupport
import XCTest

final class ArchitectureDocumentTests: XCTestCase {
    /// name → dependencies (in-package targets and external products by product name), in declaration order.
    static func packageTargets() throws -> [(name: String, dependencies: Set<String>)] {
        let text = try String(contentsOf: TestPaths.root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let body = text[text.range(of: "targets: [")!.lowerBound...]
        var targets: [(String, Set<String>)] = []
        let declaration = /\.(target|systemLibrary|executableTarget|testTarget)\(\s*name:\s*"([^"]+)"/
        for match in body.matches(of: declaration) {
            let rest = body[match.range.upperBound...]
            let end = balancedEnd(rest, open: "(", close: ")", depth: 1)
            let block = rest[..<end]
            var dependencies = Set<String>()
            if let list = block.range(of: "dependencies:") {
                let afterLabel = block[list.upperBound...]
                let open = afterLabel.firstIndex(of: "[")!
                let inner = afterLabel[afterLabel.index(after: open)..<balancedEnd(afterLabel[afterLabel.index(after: open)...], open: "[", close: "]", depth: 1)]
                for product in inner.matches(of: /\.product\(name:\s*"([^"]+)"/) { dependencies.insert(String(product.1)) }
                let withoutProducts = inner.replacing(/\.product\([^)]*\)/, with: "")
                for name in withoutProducts.matches(of: /"([^"]+)"/) { dependencies.insert(String(name.1)) }
            }
            targets.append((String(match.2), dependencies))
        }
        return targets
    }

    static func balancedEnd(_ text: Substring, open: Character, close: Character, depth start: Int) -> Substring.Index {
        var depth = start
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == open { depth += 1 }
            if text[index] == close { depth -= 1; if depth == 0 { return index } }
            index = text.index(after: index)
        }
        return text.endIndex
    }

    /// The rows of the table under "## Targets": (target, imports), in order.
    static func documentedTargets() throws -> [(name: String, imports: Set<String>)] {
        let text = try String(contentsOf: TestPaths.root.appendingPathComponent("docs/ARCHITECTURE.md"), encoding: .utf8)
        let section = text.components(separatedBy: "\n## Targets\n")[1].components(separatedBy: "\n## ")[0]
        var rows: [(String, Set<String>)] = []
        for line in section.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            let name = cells[1].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            let imports = cells[3] == "—" ? [] : cells[3].components(separatedBy: ", ").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "` ")) }
            rows.append((name, Set(imports)))
        }
        return rows
    }

    func testTargetTableMatchesPackageSwift() throws {
        let package = try Self.packageTargets()
        let documented = try Self.documentedTargets()
        XCTAssertGreaterThan(package.count, 20, "Package.swift parsed")
        XCTAssertEqual(Set(documented.map(\.name)), Set(package.map(\.name)), "docs/ARCHITECTURE.md lists every target, and only targets")
        let declared = Dictionary(uniqueKeysWithValues: package.map { ($0.name, $0.dependencies) })
        for row in documented {
            XCTAssertEqual(row.imports, declared[row.name], "\(row.name): the imports column must list its Package.swift dependencies")
        }
    }

    func testNoTargetImportsATargetListedBelowIt() throws {
        let documented = try Self.documentedTargets()
        let position = Dictionary(uniqueKeysWithValues: documented.enumerated().map { ($1.name, $0) })
        for (index, row) in documented.enumerated() {
            for dependency in row.imports {
                guard let at = position[dependency] else { continue }  // an external product
                XCTAssertLessThan(at, index, "\(row.name) imports \(dependency), which the table lists below it (an upward import)")
            }
        }
    }
}

/// ARCHITECTURE's "Sharing state between threads": every `@unchecked Sendable` in Sources/ says, right beside it,
/// which rule makes it safe — so a new one cannot slip in unexplained.
final class UncheckedSendableReasonTests: XCTestCase {
    func testEveryUncheckedSendableCarriesItsReason() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let sources = root.appendingPathComponent("Sources")
        let walker = try XCTUnwrap(FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil))
        var unexplained: [String] = []
        var checked = 0
        for case let file as URL in walker where file.pathExtension == "swift" && !file.path.contains("/generated/") {
            let lines = try String(contentsOf: file, encoding: .utf8).components(separatedBy: "\n")
            for (index, line) in lines.enumerated() where line.contains("@unchecked Sendable") && !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                checked += 1
                let neighbours = lines[max(0, index - 1)...min(lines.count - 1, index + 1)]
                if !neighbours.contains(where: { $0.contains("// @unchecked Sendable:") }) {
                    unexplained.append("\(file.path.replacingOccurrences(of: root.path + "/", with: "")):\(index + 1)")
                }
            }
        }
        XCTAssertGreaterThan(checked, 30, "the scan found the declarations")
        XCTAssertEqual(unexplained, [], "add a '// @unchecked Sendable: <why it is safe>' line beside each")
    }
}
