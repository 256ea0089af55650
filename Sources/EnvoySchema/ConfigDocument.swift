// One configuration file, from bytes on disk to a checked message: size and
// encoding checks, YAML/JSON parsing with positions, the proto3 JSON mapping,
// and the protoc-gen-validate rules. Every problem is a Diagnostic; nothing
// here throws or traps on bad input.
import Foundation
import Yams

public enum ConfigDocument {
    /// Files larger than this are refused before parsing (a configuration, not a data dump).
    public static let defaultMaximumBytes = 32 << 20

    /// Reads a text file, refusing what cannot be configuration: missing, unreadable, too large,
    /// binary, not UTF-8, or empty.
    public static func readText(path: String, maximumBytes: Int = defaultMaximumBytes) -> Result<String, Diagnostic> {
        func problem(_ rule: String, _ message: String, _ location: SourceLocation? = nil) -> Result<String, Diagnostic> {
            .failure(Diagnostic(.error, rule: rule, message: message, path: "", file: path, location: location))
        }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return problem("input.missing", "no such file")
        }
        if isDirectory.boolValue { return problem("input.not-a-file", "is a directory, not a configuration file") }
        guard let handle = FileHandle(forReadingAtPath: path) else { return problem("input.unreadable", "cannot be opened for reading (check its permissions)") }
        defer { try? handle.close() }
        // Read at most one byte past the limit, so a huge file is refused without loading it.
        let data: Data
        do { data = try handle.read(upToCount: maximumBytes + 1) ?? Data() } catch {
            return problem("input.unreadable", "cannot be read: \(error.localizedDescription)")
        }
        if data.count > maximumBytes {
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? data.count
            return problem("input.too-large", "is \(formatBytes(size)), over the \(formatBytes(maximumBytes)) limit for one configuration file; split it, or raise the limit with --max-file-size")
        }
        return decodeText(Array(data), file: path)
    }

    /// Bytes → text, refusing binary and non-UTF-8 input with the position of the first bad byte.
    public static func decodeText(_ bytes: [UInt8], file: String) -> Result<String, Diagnostic> {
        func position(_ offset: Int) -> SourceLocation {
            var line = 1, column = 1
            for b in bytes[..<offset] {
                if b == 10 { line += 1; column = 1 } else if b & 0xC0 != 0x80 { column += 1 }
            }
            return SourceLocation(line: line, column: column)
        }
        if let nul = bytes.firstIndex(of: 0) {
            return .failure(Diagnostic(.error, rule: "input.binary", message: "looks like a binary file (NUL byte at offset \(nul)); expected YAML or JSON text", path: "", file: file, location: position(nul)))
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            var iterator = bytes.makeIterator()
            var decoder = UTF8()
            var offset = 0
            var bad = 0
            loop: while true {
                switch decoder.decode(&iterator) {
                case .scalarValue(let s): offset += UTF8.width(s)
                case .emptyInput: break loop
                case .error: bad = offset; break loop
                }
            }
            return .failure(Diagnostic(.error, rule: "input.encoding", message: "is not valid UTF-8 (first bad byte at offset \(bad)); save the file as UTF-8", path: "", file: file, location: position(bad)))
        }
        if text.allSatisfy({ $0.isWhitespace }) {
            return .failure(Diagnostic(.error, rule: "input.empty", message: "is empty; expected a YAML or JSON document", path: "", file: file, location: nil))
        }
        return .success(text)
    }

    /// Parses YAML (or JSON) text into a node tree. A syntax error is one diagnostic at its position.
    public static func parseNode(_ text: String, file: String?) -> Result<Node, Diagnostic> {
        do {
            guard let node = try Parser(yaml: text).singleRoot() else {
                return .failure(Diagnostic(.error, rule: "input.empty", message: "contains no document; expected a YAML or JSON document", path: "", file: file))
            }
            return .success(node)
        } catch let error as YamlError {
            return .failure(diagnostic(for: error, file: file))
        } catch {
            return .failure(Diagnostic(.error, rule: "yaml.syntax", message: "\(error)", path: "", file: file))
        }
    }

    static func diagnostic(for error: YamlError, file: String?) -> Diagnostic {
        func make(_ context: YamlError.Context?, _ problem: String, _ mark: Mark) -> Diagnostic {
            let contextText = context.map { " (\($0.text) at \($0.mark.line):\($0.mark.column))" } ?? ""
            var message = "YAML syntax error: \(problem)\(contextText)"
            if problem.contains("Maximum nesting level") { message = "YAML nesting is deeper than 1000 levels; a configuration is never nested this deep" }
            if problem.contains("found character that cannot start any token") && problem.contains("\t") == false {
                message += "; check for tabs used as indentation (YAML allows spaces only)"
            }
            return Diagnostic(.error, rule: "yaml.syntax", message: message, path: "", file: file, location: SourceLocation(line: mark.line, column: mark.column))
        }
        switch error {
        case .composer(_, let problem, let mark, _) where problem.contains("another document"):
            return Diagnostic(.error, rule: "yaml.multiple-documents", message: "the file holds more than one YAML document; Envoy would silently use only the first, so keep one document per file", path: "", file: file, location: SourceLocation(line: mark.line, column: mark.column))
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
            return make(context, problem, mark)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return Diagnostic(.error, rule: "yaml.duplicate-key", message: "duplicate key\(duplicates.count > 1 ? "s" : "") \(duplicates.map { "'\($0)'" }.joined(separator: ", ")) in one mapping; keep one", path: "", file: file, location: SourceLocation(line: context.mark.line, column: context.mark.column))
        case .reader(let problem, let offset, _, _):
            return Diagnostic(.error, rule: "yaml.syntax", message: "unreadable input: \(problem)\(offset.map { " at byte \($0)" } ?? "")", path: "", file: file)
        default:
            return Diagnostic(.error, rule: "yaml.syntax", message: "\(error)", path: "", file: file)
        }
    }

    /// Text → message of `type`, with every schema and constraint problem.
    public static func decode(text: String, file: String?, syntax: InputSyntax, type: MessageID, pool: DescriptorPool) -> (message: DynamicMessage?, diagnostics: [Diagnostic]) {
        let (message, diagnostics) = read(text: text, file: file, syntax: syntax, type: type, pool: pool)
        guard let message else { return (nil, diagnostics) }
        var validator = ConstraintValidator(pool: pool, file: file)
        validator.validate(message)
        return (message, diagnostics + validator.diagnostics)
    }

    /// Text → message of `type` with schema problems only (no protoc-gen-validate rules yet).
    public static func read(text: String, file: String?, syntax: InputSyntax, type: MessageID, pool: DescriptorPool) -> (message: DynamicMessage?, diagnostics: [Diagnostic]) {
        let node: Node
        switch parseNode(text, file: file) {
        case .success(let n): node = n
        case .failure(let d): return (nil, [d])
        }
        var reader = TextReader(pool: pool, syntax: syntax, file: file)
        guard let message = reader.readMessage(node, type: type) else {
            return (nil, reader.diagnostics.isEmpty
                    ? [Diagnostic(.error, rule: "schema.type-mismatch", message: "the document is empty (null); expected an object", path: "", file: file, location: node.mark.map { SourceLocation(line: $0.line, column: $0.column) })]
                    : reader.diagnostics)
        }
        return (message, reader.diagnostics)
    }

    static func formatBytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / Double(1 << 20)) : n >= 1024 ? "\(n / 1024) KiB" : "\(n) bytes"
    }
}

/// `meshctl validate --envoy`: a bootstrap file checked the way `envoy --mode validate` checks
/// its static resources.
public enum BootstrapValidation {
    /// - Parameter checkHostFiles: also load the TLS files the bootstrap names, as Envoy would on this host.
    public static func validate(path: String, pool: DescriptorPool, maximumBytes: Int = ConfigDocument.defaultMaximumBytes, checkHostFiles: Bool = true) -> [Diagnostic] {
        let text: String
        switch ConfigDocument.readText(path: path, maximumBytes: maximumBytes) {
        case .success(let t): text = t
        case .failure(let d): return [d]
        }
        return validate(text: text, file: path, syntax: InputSyntax(fileName: path), pool: pool, checkHostFiles: checkHostFiles)
    }

    public static func validate(text: String, file: String?, syntax: InputSyntax, pool: DescriptorPool, checkHostFiles: Bool = false) -> [Diagnostic] {
        guard let type = pool.messageID(named: TypeNames.bootstrap) else { return [] }
        let (message, diagnostics) = ConfigDocument.read(text: text, file: file, syntax: syntax, type: type, pool: pool)
        guard let message else { return diagnostics }
        var validator = ConstraintValidator(pool: pool, file: file)
        validator.maxRegexProgramSize = BootstrapChecks.regexProgramSizeLimit(bootstrap: message, pool: pool) ?? ConstraintValidator.defaultMaxRegexProgramSize
        validator.validate(message)
        var checks = BootstrapChecks(pool: pool, file: file)
        checks.check(bootstrap: message)
        if checkHostFiles { checks.checkHostFiles(root: MessageView(pool: pool, message: message, path: "")) }
        return (diagnostics + validator.diagnostics + checks.diagnostics).sorted(by: Diagnostic.reportOrder)
    }
}
