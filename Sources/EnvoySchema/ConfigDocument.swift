// One configuration file, from bytes on disk to a checked message: size and
// encoding checks, YAML/JSON parsing with positions, the proto3 JSON mapping,
// and the protoc-gen-validate rules. Every problem is a Diagnostic; nothing
// here throws or traps on bad input.
import Foundation

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
    public static func parseNode(_ text: String, file: String?) -> Result<YAMLNode, Diagnostic> {
        do {
            guard let node = try YAMLDocument.parse(text) else { return .failure(noDocument(file: file)) }
            return .success(node)
        } catch {
            return .failure(diagnostic(for: error, file: file))
        }
    }

    /// `parseNode`, with repeated flow collections read once (see `RepeatedCollections`: only for a
    /// verdict, since positions inside a repeat are another copy's).
    static func parseNodeSharingRepeats(_ text: String, file: String?) -> Result<(YAMLNode, RepeatedCollections), Diagnostic> {
        do {
            let (root, repeats) = try YAMLDocument.parseSharingRepeats(text)
            guard let root else { return .failure(noDocument(file: file)) }
            return .success((root, repeats))
        } catch {
            return .failure(diagnostic(for: error, file: file))
        }
    }

    private static func noDocument(file: String?) -> Diagnostic {
        Diagnostic(.error, rule: "input.empty", message: "contains no document; expected a YAML or JSON document", path: "", file: file)
    }

    private static func diagnostic(for error: YAMLError, file: String?) -> Diagnostic {
        let rule: String
        var message = error.message
        switch error.reason {
        case .duplicateKey: rule = "yaml.duplicate-key"
        case .multipleDocuments:
            rule = "yaml.multiple-documents"
            message = "the file holds more than one YAML document; Envoy would silently use only the first, so keep one document per file"
        case .tooDeep, .tooLarge: rule = "yaml.too-large"
        case .undefinedAlias: rule = "yaml.undefined-alias"
        case .syntax:
            rule = "yaml.syntax"
            message = "YAML syntax error: " + message
            if error.message.contains("cannot start any token") { message += "; check for tabs used as indentation (YAML allows spaces only)" }
        }
        return Diagnostic(.error, rule: rule, message: message, path: "", file: file, location: error.location)
    }

    /// Text → message of `type`, with every schema and constraint problem.
    /// - Parameter sharingRepeats: read repeated flow collections once and check each once per context
    ///   (see `RepeatedCollections`); when anything is reported, the text is read again without sharing, so
    ///   the result is the same either way, positions included.
    public static func decode(text: String, file: String?, syntax: InputSyntax, type: MessageID, pool: DescriptorPool, sharingRepeats: Bool = false) -> (message: DynamicMessage?, diagnostics: [Diagnostic]) {
        func check(_ node: YAMLNode, _ repeats: RepeatedCollections) -> (message: DynamicMessage?, diagnostics: [Diagnostic]) {
            let (message, diagnostics) = read(node: node, file: file, syntax: syntax, type: type, pool: pool, repeats: repeats)
            guard let message else { return (nil, diagnostics) }
            var validator = ConstraintValidator(pool: pool, file: file)
            validator.validate(message)
            return (message, diagnostics + validator.diagnostics)
        }
        switch readSharingRepeats(text, file: file, sharing: sharingRepeats, isClean: { $0.diagnostics.isEmpty }, check) {
        case .success(let result): return result
        case .failure(let problem): return (nil, [problem])
        }
    }

    /// Parses `text` and runs `check` on the tree. With `sharing`, repeated flow collections are read once
    /// (see `RepeatedCollections`); a shared node carries another copy's positions, so whenever the shared
    /// reading's result is not clean the text is parsed and checked again without sharing, and that second
    /// result is returned — what is reported is the same either way, positions included.
    static func readSharingRepeats<Checked>(_ text: String, file: String?, sharing: Bool, isClean: (Checked) -> Bool,
                                            _ check: (YAMLNode, RepeatedCollections) -> Checked) -> Result<Checked, Diagnostic> {
        if sharing {
            switch parseNodeSharingRepeats(text, file: file) {
            case .failure(let problem): return .failure(problem)
            case .success(let (node, repeats)):
                let result = check(node, repeats)
                if !repeats.sharesAny || isClean(result) { return .success(result) }
            }
        }
        return parseNode(text, file: file).map { check($0, RepeatedCollections()) }
    }

    /// Text → message of `type` with schema problems only (no protoc-gen-validate rules yet).
    public static func read(text: String, file: String?, syntax: InputSyntax, type: MessageID, pool: DescriptorPool) -> (message: DynamicMessage?, diagnostics: [Diagnostic]) {
        switch parseNode(text, file: file) {
        case .success(let node): return read(node: node, file: file, syntax: syntax, type: type, pool: pool)
        case .failure(let d): return (nil, [d])
        }
    }

    /// A parsed document → message of `type` with schema problems only.
    public static func read(node: YAMLNode, file: String?, syntax: InputSyntax, type: MessageID, pool: DescriptorPool) -> (message: DynamicMessage?, diagnostics: [Diagnostic]) {
        read(node: node, file: file, syntax: syntax, type: type, pool: pool, repeats: RepeatedCollections())
    }

    static func read(node: YAMLNode, file: String?, syntax: InputSyntax, type: MessageID, pool: DescriptorPool, repeats: RepeatedCollections) -> (message: DynamicMessage?, diagnostics: [Diagnostic]) {
        var reader = TextReader(pool: pool, syntax: syntax, file: file)
        reader.repeats = repeats
        guard let message = reader.readMessage(node, type: type) else {
            return (nil, reader.diagnostics.isEmpty
                    ? [Diagnostic(.error, rule: "schema.type-mismatch", message: "the document is empty (null); expected an object", path: "", file: file, location: node.location)]
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

    /// - Parameter sharingRepeats: read and check repeated flow collections once (see RepeatedCollections); what
    ///   is reported comes from a second reading without sharing, so the result is the same either way.
    public static func validate(text: String, file: String?, syntax: InputSyntax, pool: DescriptorPool, checkHostFiles: Bool = false,
                                sharingRepeats: Bool = true) -> [Diagnostic] {
        guard let type = pool.messageID(named: TypeNames.bootstrap) else { return [] }
        var clock = PhaseClock()
        var readings = 0
        let checked = ConfigDocument.readSharingRepeats(text, file: file, sharing: sharingRepeats, isClean: \.isEmpty) { node, repeats in
            clock.lap(readings == 0 ? "yaml" : "yaml again, to report")
            readings += 1
            return validate(node: node, repeats: repeats, file: file, syntax: syntax, type: type, pool: pool, checkHostFiles: checkHostFiles, clock: &clock)
        }
        switch checked {
        case .success(let diagnostics): return diagnostics
        case .failure(let problem): return [problem]
        }
    }

    private static func validate(node: YAMLNode, repeats: RepeatedCollections, file: String?, syntax: InputSyntax, type: MessageID, pool: DescriptorPool,
                                 checkHostFiles: Bool, clock: inout PhaseClock) -> [Diagnostic] {
        let (message, diagnostics) = ConfigDocument.read(node: node, file: file, syntax: syntax, type: type, pool: pool, repeats: repeats)
        clock.lap("read")
        guard let message else { return diagnostics }
        var validator = ConstraintValidator(pool: pool, file: file)
        validator.maxRegexProgramSize = BootstrapChecks.regexProgramSizeLimit(bootstrap: message, pool: pool) ?? ConstraintValidator.defaultMaxRegexProgramSize
        var checks = BootstrapChecks(pool: pool, file: file)
        checks.checkHostFiles = checkHostFiles
        checks.hostFileReads = HostFileReads()
        // Both passes only read the message: run them side by side.
        let (constraintPass, referencePass) = (validator, checks)
        let results = ParallelPair.run({ () -> [Diagnostic] in
            var pass = constraintPass
            pass.validate(message)
            return pass.diagnostics
        }, { () -> [Diagnostic] in
            var pass = referencePass
            pass.check(bootstrap: message)
            return pass.diagnostics
        })
        clock.lap("constraints + cross-references")
        // The trees are freed when the caller is done with the result, not on this path.
        retainUntilExit(node, message)
        return (diagnostics + results.0 + results.1).sorted(by: Diagnostic.reportOrder)
    }
}

/// Phase timings on stderr when MESHCTL_TIMING is set (for profiling, never in normal output); the schema
/// engine's and the compiler's phases are timed with it.
package struct PhaseClock {
    private static let enabled = ProcessInfo.processInfo.environment["MESHCTL_TIMING"] != nil
    private var last = DispatchTime.now().uptimeNanoseconds

    package init() {}

    package mutating func lap(_ phase: String) {
        guard Self.enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        FileHandle.standardError.write(Data("meshctl timing: \(phase) \((now - last) / 1_000_000) ms\n".utf8))
        last = now
    }
}

/// Large trees built for a one-shot command are released by the process exit, not freed node by node.
private final class ExitArena: @unchecked Sendable {
    // @unchecked Sendable: `kept` is only touched under `lock`.
    static let shared = ExitArena()
    private let lock = NSLock()
    private var kept: [Any] = []
    func keep(_ values: Any...) { lock.lock(); kept.append(contentsOf: values); lock.unlock() }
}

func retainUntilExit(_ values: Any...) {
    guard ProcessInfo.processInfo.environment["MESHCTL_FREE_TREES"] == nil else { return }
    ExitArena.shared.keep(values)
}

/// Two independent computations on two threads.
enum ParallelPair {
    static func run<A: Sendable, B: Sendable>(_ first: @escaping @Sendable () -> A, _ second: @escaping @Sendable () -> B) -> (A, B) {
        let box = PairBox<A, B>()
        DispatchQueue.concurrentPerform(iterations: 2) { index in
            if index == 0 { box.setFirst(first()) } else { box.setSecond(second()) }
        }
        return box.values
    }

    private final class PairBox<A, B>: @unchecked Sendable {
        // @unchecked Sendable: `a` and `b` are only touched under `lock`.
        private let lock = NSLock()
        private var a: A?
        private var b: B?
        func setFirst(_ value: A) { lock.lock(); a = value; lock.unlock() }
        func setSecond(_ value: B) { lock.lock(); b = value; lock.unlock() }
        var values: (A, B) { lock.lock(); defer { lock.unlock() }; return (a!, b!) }
    }
}
