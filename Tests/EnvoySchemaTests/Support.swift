// Shared test support: the schema, paths into the repository, external tools.
import EnvoySchema
import Foundation
import MeshTestSupport
import XCTest

enum TestSupport {
    static let pool: DescriptorPool = {
        do { return try DescriptorPool.envoy } catch { fatalError("embedded schema does not load: \(error)") }
    }()

    /// The package root.
    static var root: URL { TestPaths.root }

    static var corpus: URL { root.appendingPathComponent("Tests/Corpus/envoy") }

    static var python: String { TestPaths.python }
    static var envoy: String { TestPaths.envoy }

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
        let result = try ProcessRunner.run(executable, arguments, stdin: stdin, timeout: timeout)
        return (result.status, result.stdout, result.stderr)
    }

    static func temporaryDirectory() throws -> URL { URL(fileURLWithPath: try TestPaths.temporaryDirectory("meshctl-test")) }
}
