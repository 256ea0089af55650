// `meshctl import`: a flat Envoy bootstrap onto meshctl, as a raw proxy group in Configs/groups/.
import ArgumentParser
import EnvoySchema
import Foundation
import MeshCompilation
import MeshModel

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Import a flat Envoy bootstrap's static resources as a raw proxy group (Configs/groups/GROUP.yaml).",
        discussion: """
        FILE is an Envoy v3 bootstrap (YAML, or JSON by its .json suffix), checked as `meshctl validate --envoy` \
        checks it (except files on the proxy's host). Its static listeners, clusters and secrets become the group's \
        LDS, CDS and SDS resources; each HTTP connection manager's inline route_config becomes an RDS route \
        configuration, and each STATIC cluster's load_assignment its EDS assignment. Everything else in the \
        bootstrap (admin, runtime, stats sinks, overload manager, …) is listed by field path with the reason it \
        is not imported. Then compile and serve as usual, and start the proxies with the printed `meshctl bootstrap` \
        command instead of the flat file.
        Exit status: 0 imported (warnings list what was not imported; they fail only with --strict), \
        1 the bootstrap has errors (nothing written), 2 usage error (no such file, the group exists, …).
        """
    )

    @Option(help: "The proxy group to create: the proxies' node cluster (lowercase letters, digits, '-').")
    var group: String

    @Option(help: "The mesh configuration directory; the group is written to DIR/groups/GROUP.yaml.")
    var configs: String = "Configs"

    @Option(help: "How the group's proxies subscribe: ads (default), ads-delta, per-type or per-type-delta; the imported RDS/EDS/SDS sources are written for it.")
    var xds: String = SubscriptionMode.adsStateOfTheWorld.rawValue

    @Flag(help: "Replace Configs/groups/GROUP.yaml if it exists.")
    var force = false

    @Flag(help: "Fail (exit 1, nothing written) when anything is not imported.")
    var strict = false

    @Option(help: "Output format: text, json or github.")
    var format: DiagnosticFormat = .text

    @Argument(help: "The Envoy bootstrap to import.")
    var file: String

    func run() throws {
        guard let mode = SubscriptionMode(rawValue: xds) else {
            printError("meshctl: --xds \(xds): use one of \(SubscriptionMode.allCases.map(\.rawValue).joined(separator: ", "))")
            throw Exit.usage
        }
        let pool = try loadSchema()
        let result: ImportResult
        do {
            result = try EnvoyImport.run(file: file, group: group, configs: configs, mode: mode, force: force, strict: strict, pool: pool)
        } catch {
            printError("meshctl: \(error.description)")
            throw Exit.usage
        }
        let outcome = result.outcome
        let written = result.groupFile != nil
        let printer = DiagnosticPrinter(format: format)
        if format == .json {
            // The diagnostics as `validate --format json` writes them, with the import's results first.
            let q = DiagnosticPrinter.jsonString
            let counts = outcome.counts.sorted { $0.key < $1.key }.map { "\(q($0.key)): \($0.value)" }.joined(separator: ", ")
            printer.printJSON(outcome.diagnostics, files: [(file, written)],
                              extra: [("schema", q("meshctl.import/v1")), ("ok", "\(written)"), ("group", q(group)),
                                      ("group_file", result.groupFile.map(q) ?? "null"), ("resources", "{\(counts)}"),
                                      ("bootstrap_command", result.bootstrapCommand.map(q) ?? "null")])
        } else {
            printer.print(outcome.diagnostics, files: format == .text ? [] : [(file, written)])
        }
        if format == .text {
            let warnings = outcome.warningCount, errors = outcome.errorCount
            if let groupFile = result.groupFile, let command = result.bootstrapCommand {
                let counts = ["listeners", "route_configurations", "clusters", "cluster_load_assignments", "secrets"]
                    .compactMap { kind in outcome.counts[kind].flatMap { $0 > 0 ? "\($0) \(kind)" : nil } }.joined(separator: ", ")
                print("imported \(file) as raw group '\(group)': \(groupFile) (\(counts))")
                let skipped = outcome.diagnostics.count { $0.rule == "import.not-imported" }
                if skipped > 0 { print("\(skipped) setting\(skipped == 1 ? "" : "s") not imported (listed above): carry \(skipped == 1 ? "it" : "them") into the proxies' bootstrap by hand, or accept the change") }
                print("next: meshctl compile --configs \(configs), then start the proxies with")
                print("  \(command)")
            } else {
                let reason = errors > 0 ? "\(errors) error\(errors == 1 ? "" : "s")" : "\(warnings) warning\(warnings == 1 ? "" : "s") with --strict"
                printError("import: \(reason); nothing written")
            }
        }
        if !written { throw Exit.invalid }
    }
}
