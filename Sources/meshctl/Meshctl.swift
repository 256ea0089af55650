// meshctl's command line: argument parsing and output formatting only; the work
// happens in the libraries.
import ArgumentParser
import EnvoySchema
import Foundation

struct Meshctl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshctl",
        abstract: "An Envoy xDS control plane: compile, validate and serve mesh configuration.",
        subcommands: [Compile.self, Validate.self, Import.self, Schema.self, SnapshotCommand.self, Certs.self, Bootstrap.self, Serve.self, Status.self, RolloutCommand.self, Loadgen.self, BenchFixture.self]
    )
}

/// Exit codes shared by every command: 0 success, 1 the input has problems, 2 usage or internal error.
enum Exit {
    static let invalid = ExitCode(1)
    static let usage = ExitCode(2)
}

/// Loads the embedded Envoy API, or explains why it cannot (a broken build).
func loadSchema() throws -> DescriptorPool {
    do {
        return try DescriptorPool.envoy
    } catch {
        FileHandle.standardError.write(Data("meshctl: internal error: \(error)\n".utf8))
        throw Exit.usage
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
}

// ArgumentParser exits 64 on usage errors; meshctl promises 2.
func runMain() -> Int32 {
    do {
        var command = try Meshctl.parseAsRoot()
        try command.run()
        return 0
    } catch {
        let code = Meshctl.exitCode(for: error)
        if code == .success {
            print(Meshctl.fullMessage(for: error))
            return 0
        }
        if let exit = error as? ExitCode { return exit.rawValue }
        printError(Meshctl.fullMessage(for: error))
        return code == .validationFailure || code.rawValue == 64 ? 2 : code.rawValue
    }
}

