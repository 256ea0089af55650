// `meshctl validate`: the pre-merge check.
import ArgumentParser
import EnvoySchema
import Foundation

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check configuration without writing anything.",
        discussion: """
        With --envoy, each FILE is an Envoy v3 bootstrap (YAML, or JSON by its .json suffix), checked \
        as `envoy --mode validate` checks static resources: the full schema, protoc-gen-validate \
        constraints, RE2 regexes, and static cross-references.
        Exit status: 0 all valid, 1 at least one problem, 2 usage or internal error.
        """
    )

    @Flag(help: "Validate Envoy bootstrap files.")
    var envoy = false

    @Option(help: "Output format: text or json.")
    var format: DiagnosticFormat = .text

    @Option(help: "Largest accepted input file, in bytes.")
    var maxFileSize: Int = ConfigDocument.defaultMaximumBytes

    @Argument(help: "Files to validate.")
    var files: [String] = []

    func validate() throws {
        guard envoy else {
            throw ValidationError("validate checks Envoy bootstrap files: pass --envoy FILE...")
        }
        guard !files.isEmpty else { throw ValidationError("no files given: pass --envoy FILE...") }
        guard maxFileSize > 0 else { throw ValidationError("--max-file-size must be positive") }
    }

    func run() throws {
        let pool = try loadSchema()
        var all: [Diagnostic] = []
        var results: [(String, Bool)] = []
        for file in files {
            let diagnostics = BootstrapValidation.validate(path: file, pool: pool, maximumBytes: maxFileSize)
            // A file that does not exist is a usage error, not an invalid configuration.
            if diagnostics.count == 1, diagnostics[0].rule == "input.missing" {
                printError("meshctl: \(file): no such file")
                throw Exit.usage
            }
            results.append((file, !diagnostics.contains { $0.severity == .error }))
            all += diagnostics
        }
        DiagnosticPrinter(format: format).print(all, files: results)
        if results.contains(where: { !$0.1 }) { throw Exit.invalid }
    }
}
