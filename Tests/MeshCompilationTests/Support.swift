// Shared test support: the demo mesh copied into a temporary directory and mutated,
// the compiler run in-process, the meshctl binary and the oracles (Envoy).
import EnvoySchema
import Foundation
import MeshCompilation
import MeshTestSupport
import XCTest

enum TestSupport {
    static let pool: DescriptorPool = {
        do { return try DescriptorPool.envoy } catch { fatalError("embedded schema does not load: \(error)") }
    }()

    /// The package root.
    static var root: URL { TestPaths.root }

    /// The built meshctl binary, next to the test bundle (whatever the scratch path), else the default build.
    static var meshctl: URL { URL(fileURLWithPath: TestPaths.meshctl) }

    static var envoy: String { TestPaths.envoy }

    /// Runs a process with a deadline; returns exit status, stdout and stderr.
    static func run(_ executable: String, _ arguments: [String], in directory: URL? = nil, timeout: TimeInterval = 120) throws -> (status: Int32, stdout: String, stderr: String) {
        let result = try ProcessRunner.run(executable, arguments, in: directory, timeout: timeout)
        return (result.status, result.stdoutText, result.stderrText)
    }

    static func temporaryDirectory() throws -> URL { URL(fileURLWithPath: try TestPaths.temporaryDirectory("meshctl-compiler-test")) }
}

/// A copy of the demo mesh (Configs/ and templates/) in a temporary directory, to mutate.
final class MeshFixture {
    let directory: URL
    var configs: URL { directory.appendingPathComponent("Configs") }
    var templates: URL { directory.appendingPathComponent("templates") }

    init() throws {
        directory = try TestSupport.temporaryDirectory()
        let fm = FileManager.default
        try fm.copyItem(at: TestSupport.root.appendingPathComponent("Configs"), to: configs)
        try fm.copyItem(at: TestSupport.root.appendingPathComponent("templates"), to: templates)
    }

    deinit { try? FileManager.default.removeItem(at: directory) }

    func url(_ relative: String) -> URL { directory.appendingPathComponent(relative) }

    /// The path diagnostics use for a file of the fixture.
    func path(_ relative: String) -> String { url(relative).path }

    func read(_ relative: String) throws -> String { String(decoding: try Data(contentsOf: url(relative)), as: UTF8.self) }

    func write(_ relative: String, _ text: String) throws {
        try FileManager.default.createDirectory(at: url(relative).deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url(relative))
    }

    func writeBytes(_ relative: String, _ bytes: [UInt8]) throws { try Data(bytes).write(to: url(relative)) }

    /// Replaces `old` (which must occur) with `new` in a file.
    func replace(_ relative: String, _ old: String, with new: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let text = try read(relative)
        XCTAssertTrue(text.contains(old), "\(relative) does not contain \(old)", file: file, line: line)
        try write(relative, text.replacingOccurrences(of: old, with: new))
    }

    func append(_ relative: String, _ text: String) throws { try write(relative, try read(relative) + text) }

    func remove(_ relative: String) throws { try FileManager.default.removeItem(at: url(relative)) }

    var inputs: CompileInputs { CompileInputs(configs: configs.path, templates: templates.path) }

    func compile(encode: Bool = false) throws -> CompileReport {
        try MeshCompiler.compile(inputs, pool: TestSupport.pool, encode: encode)
    }

    /// The line (1-based) of the first line containing `needle` in a file.
    func line(of needle: String, in relative: String, after: String? = nil) throws -> Int {
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
    var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }

    func summary() -> String { diagnostics.map(\.description).joined(separator: "\n") }
}
