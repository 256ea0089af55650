// `meshctl schema`: the Envoy API codec on the command line.
import ArgumentParser
import EnvoySchema
import Foundation

struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Encode and decode Envoy v3 messages (proto3 JSON/YAML ⇄ protobuf binary).",
        subcommands: [Encode.self, Decode.self, Types.self]
    )

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "YAML/JSON → deterministic protobuf binary on stdout.",
            discussion: "The input is checked first (schema and constraints); nothing is written when it has errors (exit 1)."
        )

        @Option(help: "Full message name, e.g. envoy.config.cluster.v3.Cluster.")
        var type: String

        @Flag(help: "Skip protoc-gen-validate constraint checks (schema errors still fail).")
        var noConstraints = false

        @Argument(help: "Input file, or - for standard input.")
        var input: String = "-"

        func run() throws {
            AllocatorTuning.padHeapGrowth()
            let pool = try loadSchema()
            guard let id = pool.messageID(named: type) else { throw ValidationError(unknownTypeMessage(type, pool)) }
            let file = input == "-" ? "<stdin>" : input
            let text: String
            switch input == "-" ? ConfigDocument.decodeText(Array(FileHandle.standardInput.readDataToEndOfFile()), file: file)
                                : ConfigDocument.readText(path: input) {
            case .success(let t): text = t
            case .failure(let d):
                printError(d.description)
                throw d.rule == "input.missing" ? Exit.usage : Exit.invalid
            }
            let syntax = input == "-" ? InputSyntax.yaml : InputSyntax(fileName: input)
            let (message, diagnostics) = ConfigDocument.decode(text: text, file: file, syntax: syntax, type: id, pool: pool, sharingRepeats: true)
            let errors = diagnostics.filter { $0.severity == .error && (!noConstraints || !$0.rule.hasPrefix("pgv.")) }
            for d in diagnostics.sorted(by: Diagnostic.reportOrder) where d.severity != .error || errors.contains(d) { printError(d.description) }
            guard let message, errors.isEmpty else { throw Exit.invalid }
            FileHandle.standardOutput.write(Data(message.serialized(pool: pool)))
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Protobuf binary → YAML (or JSON) on stdout.")

        @Option(help: "Full message name, e.g. envoy.config.cluster.v3.Cluster.")
        var type: String

        @Option(help: "Output format: yaml or json.")
        var format: OutputFormat = .yaml

        @Argument(help: "Input file, or - for standard input.")
        var input: String = "-"

        enum OutputFormat: String, ExpressibleByArgument { case yaml, json }

        func run() throws {
            let pool = try loadSchema()
            guard let id = pool.messageID(named: type) else { throw ValidationError(unknownTypeMessage(type, pool)) }
            let data: Data
            if input == "-" {
                data = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let d = FileManager.default.contents(atPath: input) else {
                    printError("meshctl: \(input): no such file or not readable")
                    throw Exit.usage
                }
                data = d
            }
            do {
                let message = try DynamicMessage(serialized: Array(data), type: id, pool: pool)
                let writer = TextWriter(pool: pool)
                print(format == .yaml ? writer.yaml(message) : writer.jsonText(message), terminator: "")
            } catch {
                printError("meshctl: \(input == "-" ? "<stdin>" : input): not a valid \(type): \(error)")
                throw Exit.invalid
            }
        }
    }

    struct Types: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the message types of the embedded Envoy API.")

        @Argument(help: "Only names containing this text.")
        var filter: String = ""

        func run() throws {
            let pool = try loadSchema()
            for name in pool.messageNames where filter.isEmpty || name.contains(filter) { print(name) }
        }
    }
}

func unknownTypeMessage(_ type: String, _ pool: DescriptorPool) -> String {
    let candidates = pool.similarMessageNames(to: type).prefix(3)
    return "unknown message type '\(type)'" + (candidates.isEmpty ? "; list types with `meshctl schema types`" : "; did you mean \(candidates.joined(separator: " or "))?")
}
