// Shared test support: the schema, paths into the repository, external tools.
import EnvoySchema
import Foundation
import XCTest

enum TestSupport {
    static let pool: DescriptorPool = {
        do { return try DescriptorPool.envoy } catch { fatalError("embedded schema does not load: \(error)") }
    }()

    /// The package root (three levels above this file).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var corpus: URL { root.appendingPathComponent("Tests/Corpus/envoy") }

    /// The built meshctl binary, next to the test bundle.
    static var meshctl: URL {
        // The binary built next to the test bundle (whatever the scratch path), else the default build.
        let executable = Bundle.main.executableURL ?? Bundle.main.bundleURL
        for directory in [executable.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("meshctl")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return root.appendingPathComponent(".build/debug/meshctl")
    }

    /// A tool from the project's venvs (the Makefile exports their paths).
    static func tool(_ variable: String, default relative: String) -> String {
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { return path }
        return root.appendingPathComponent(relative).path
    }
    static var python: String { tool("MESHCTL_PYTHON", default: ".venv/bin/python") }
    static var envoy: String { tool("MESHCTL_ENVOY", default: ".venv-envoy/bin/envoy") }

    static func type(_ name: String) -> MessageID {
        guard let id = pool.messageID(named: name) else { fatalError("no type \(name)") }
        return id
    }

    /// Decodes YAML text as `type`, returning the message and every diagnostic.
    static func decode(_ yaml: String, as typeName: String, syntax: InputSyntax = .yaml, file: String = "test.yaml") -> (DynamicMessage?, [Diagnostic]) {
        ConfigDocument.decode(text: yaml, file: file, syntax: syntax, type: type(typeName), pool: pool)
    }

    static func encode(_ yaml: String, as typeName: String, syntax: InputSyntax = .yaml, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
        let (message, diagnostics) = decode(yaml, as: typeName, syntax: syntax)
        let errors = diagnostics.filter { $0.severity == .error }
        XCTAssertEqual(errors, [], "unexpected diagnostics", file: file, line: line)
        return message?.serialized(pool: pool) ?? []
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// Runs a process with a deadline; returns exit status, stdout and stderr.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], stdin: Data? = nil, timeout: TimeInterval = 60) throws -> (status: Int32, stdout: Data, stderr: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try? input.fileHandleForWriting.close()
        // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
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
        return (process.terminationStatus, stdoutData, stderrData)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("meshctl-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
