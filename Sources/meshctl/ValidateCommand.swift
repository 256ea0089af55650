// `meshctl validate`: the pre-merge check — a Configs/ directory (default), or Envoy
// bootstrap files with --envoy.
import ArgumentParser
import EnvoySchema
import Foundation
import MeshCompilation

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check configuration without writing anything.",
        discussion: """
        Without --envoy: checks a mesh configuration — Configs/mesh.yaml, Configs/services/*.yaml and the \
        templates they use — exactly as `meshctl compile` does (every template rendered, every generated \
        resource checked against the full Envoy API and the mesh rules), and writes nothing. Problems point \
        at the service file or template that caused them. Warnings fail only with --strict.
        With --envoy, each FILE is an Envoy v3 bootstrap (YAML, or JSON by its .json suffix), checked \
        as `envoy --mode validate` checks static resources: the full schema, protoc-gen-validate \
        constraints, RE2 regexes, and static cross-references.
        Exit status: 0 all valid, 1 at least one problem, 2 usage or internal error.
        """
    )

    @Flag(help: "Validate Envoy bootstrap files.")
    var envoy = false

    @Option(help: "The mesh configuration directory (without --envoy).")
    var configs: String = "Configs"

    @Option(help: "The templates directory (without --envoy).")
    var templates: String = "templates"

    @Option(help: "Files the resources name on the proxies' hosts (certificates, keys, CA bundles, paths), checked on this host: off, warning (they may exist only on the proxies' hosts) or error.")
    var hostFiles: HostFileCheck = .warning

    @Option(help: "Output format: text, json or github.")
    var format: DiagnosticFormat = .text

    @Flag(help: "Fail (exit 1) on warnings too (without --envoy).")
    var strict = false

    @Option(help: "Largest accepted input file, in bytes.")
    var maxFileSize: Int = ConfigDocument.defaultMaximumBytes

    @Argument(help: "Files to validate (with --envoy).")
    var files: [String] = []

    func validate() throws {
        if envoy {
            guard !files.isEmpty else { throw ValidationError("no files given: pass --envoy FILE...") }
        } else if !files.isEmpty {
            throw ValidationError("files are checked with --envoy FILE...; without --envoy, validate checks a Configs/ directory (--configs DIR)")
        }
        guard maxFileSize > 0 else { throw ValidationError("--max-file-size must be positive") }
    }

    func run() throws {
        if !envoy { AllocatorTuning.apply() }
        AllocatorTuning.padHeapGrowth()
        let pool = try loadSchema()
        guard envoy else {
            let report = try compileMesh(CompileInputs(configs: configs, templates: templates, hostFiles: hostFiles), pool: pool, encode: false)
            MeshReportPrinter(format: format).print(report, command: "validate")
            if report.errorCount > 0 || (strict && report.warningCount > 0) { throw Exit.invalid }
            return
        }
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

/// Runs the compiler; a directory that cannot be used is a usage error (exit 2).
func compileMesh(_ inputs: CompileInputs, pool: DescriptorPool, encode: Bool) throws -> CompileReport {
    MeshCompiler.releaseAtExit()
    do {
        let report = try MeshCompiler.compile(inputs, pool: pool, encode: encode)
        MeshCompiler.keepUntilExit(report)
        return report
    } catch {
        printError("meshctl: \(error.description)")
        throw Exit.usage
    }
}

extension HostFileCheck: ExpressibleByArgument {}
