// Shared test support: the demo mesh copied into a temporary directory and mutated,
// the compiler run in-process, the meshctl binary and the oracles (Envoy).
import EnvoySchema
import Foundation
import MeshCompiler
import XCTest

enum TestSupport {
    static let pool: DescriptorPool = {
        do { return try DescriptorPool.envoy } catch { fatalError("embedded schema does not load: \(error)") }
    }()

    /// The package root (three levels above this file).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The built meshctl binary, next to the test bundle (whatever the scratch path), else the default build.
    static var meshctl: URL {
        let executable = Bundle.main.executableURL ?? Bundle.main.bundleURL
        for directory in [executable.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("meshctl")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return root.appendingPathComponent(".build/debug/meshctl")
    }

    static func tool(_ variable: String, default relative: String) -> String {
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { return path }
        return root.appendingPathComponent(relative).path
    }
    static var envoy: String { tool("MESHCTL_ENVOY", default: ".venv-envoy/bin/envoy") }

    /// Runs a process with a deadline; returns exit status, stdout and stderr.
    static func run(_ executable: String, _ arguments: [String], in directory: URL? = nil, timeout: TimeInterval = 120) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let group = DispatchGroup()
        nonisolated(unsafe) var stdoutData = Data(), stderrData = Data()
        group.enter(); DispatchQueue.global().async { stdoutData = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        group.enter(); DispatchQueue.global().async { stderrData = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw NSError(domain: "TestSupport", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(executable) \(arguments.joined(separator: " ")) did not finish within \(timeout)s"])
        }
        group.wait()
        return (process.terminationStatus, String(decoding: stdoutData, as: UTF8.self), String(decoding: stderrData, as: UTF8.self))
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("meshctl-compiler-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
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
