// The demo mesh (Configs/ and templates/) copied into a temporary directory to mutate and
// compile in process; shared by the compiler's tests and the system tests that run
// `meshctl compile`/`validate` on it.
import EnvoySchema
import Foundation
import MeshCompilation
import XCTest

/// A copy of the demo mesh (Configs/ and templates/) in a temporary directory, to mutate.
public final class MeshFixture {
    public let directory: URL
    public var configs: URL { directory.appendingPathComponent("Configs") }
    public var templates: URL { directory.appendingPathComponent("templates") }

    public init() throws {
        directory = URL(fileURLWithPath: try TestPaths.temporaryDirectory("meshctl-compiler-test"))
        let fm = FileManager.default
        try fm.copyItem(at: TestPaths.root.appendingPathComponent("Configs"), to: configs)
        try fm.copyItem(at: TestPaths.root.appendingPathComponent("templates"), to: templates)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    public func url(_ relative: String) -> URL { directory.appendingPathComponent(relative) }

    /// The path diagnostics use for a file of the fixture.
    public func path(_ relative: String) -> String { url(relative).path }

    public func read(_ relative: String) throws -> String { String(decoding: try Data(contentsOf: url(relative)), as: UTF8.self) }

    public func write(_ relative: String, _ text: String) throws {
        try FileManager.default.createDirectory(at: url(relative).deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url(relative))
    }

    public func writeBytes(_ relative: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: url(relative)) }

    /// Replaces `old` (which must occur) with `new` in a file.
    public func replace(_ relative: String, _ old: String, with new: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = try read(relative)
        XCTAssertTrue(text.contains(old), "\(relative) does not contain \(old)", file: file, line: line)
        try write(relative, text.replacingOccurrences(of: old, with: new))
    }

    public func append(_ relative: String, _ text: String) throws { try write(relative, try read(relative) + text) }

    public func remove(_ relative: String) throws { try FileManager.default.removeItem(at: url(relative)) }

    /// Host files off: the fixture's certificate paths name files on proxies' hosts, absent here (HostFileCheckTests
    /// tests that check on its own).
    public var inputs: CompileInputs { CompileInputs(configs: configs.path, templates: templates.path, hostFiles: .off) }

    public func compile(encode: Bool = false) throws -> CompileReport {
        try MeshCompiler.compile(inputs, pool: E2E.pool, encode: encode)
    }

    /// The line (1-based) of the first line containing `needle` in a file.
    public func line(of needle: String, in relative: String, after: String? = nil) throws -> Int {
        let lines = try read(relative).split(separator: "\n", omittingEmptySubsequences: false)
        var start = 0
        if let after, let i = lines.firstIndex(where: { $0.contains(after) }) { start = i }
        guard let index = lines[start...].firstIndex(where: { $0.contains(needle) }) else {
            XCTFail("\(relative) has no line containing \(needle)")
            return 0
        }
        return index + 1
    }
}

extension CompileReport {
    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }

    public func summary() -> String { diagnostics.map(\.description).joined(separator: "\n") }
}
