// `meshctl compile`: Configs/ + templates/ → checked, encoded per-proxy-group resources,
// published to the snapshot store that `meshctl serve --store` serves.
import ArgumentParser
import EnvoySchema
import Foundation
import MeshAdmin
import MeshCompilation
import MeshModel
import PostgresStorage
import SnapshotStorage

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile the mesh configuration and publish it to the snapshot store.",
        discussion: """
        Renders the templates for every service and gateway, checks every generated resource (the full \
        Envoy API, its constraints and the mesh rules — everything `meshctl validate` checks), encodes \
        each one as the xDS server sends it and publishes one snapshot holding every proxy group to the \
        store (--out). Resource versions are content hashes: an unchanged resource keeps its version, and \
        compiling unchanged input publishes nothing new. On any error nothing is written.
        Exit status: 0 compiled, 1 the configuration has errors, 2 usage error or the store cannot be used.
        """
    )

    @Option(help: "The mesh configuration directory.")
    var configs: String = "Configs"

    @Option(help: "The templates directory.")
    var templates: String = "templates"

    @Option(help: "Files the resources name on the proxies' hosts (certificates, keys, CA bundles, paths), checked on this host: off, warning (they may exist only on the proxies' hosts) or error.")
    var hostFiles: HostFileCheck = .warning

    @Option(help: "The snapshot store: a directory (created if missing) or postgres://USER@HOST:PORT/DATABASE (tables created in an empty database).")
    var out: String = ".meshctl/store"

    @Option(help: "Also write every resource as YAML to DIR/<group>/<type>/<name>.yaml (replaced on success).")
    var dump: String?

    @Option(name: .customLong("source-rev"), help: "The configuration repository revision (snapshot metadata).")
    var sourceRevision: String?

    @Option(help: "Who made the change (snapshot metadata).")
    var author: String?

    @Option(help: "Why (snapshot metadata).")
    var message: String?

    @Option(help: "Output format: text, json or github.")
    var format: DiagnosticFormat = .text

    @Flag(help: "Treat warnings as errors: publish nothing when there are warnings.")
    var strict = false

    @Option(help: "Emergency override of mesh.yaml's rollout policy: `immediate` sends this version to every proxy at once (needs --reason; recorded in history).")
    var rollout: String?

    @Option(help: "Why the rollout policy is overridden (required with --rollout; recorded in history).")
    var reason: String?

    func validate() throws {
        if let rollout {
            guard rollout == "immediate" else { throw ValidationError("--rollout: the only override is 'immediate' (waves come from mesh.yaml)") }
            guard let reason, !reason.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw ValidationError("--rollout immediate needs --reason: say why every proxy must get this version at once (it is recorded in history)")
            }
        } else if reason != nil {
            throw ValidationError("--reason goes with --rollout immediate")
        }
    }

    func run() throws {
        AllocatorTuning.apply()
        AllocatorTuning.padHeapGrowth()
        let pool = try loadSchema()
        let report = try compileMesh(CompileInputs(configs: configs, templates: templates, hostFiles: hostFiles), pool: pool, encode: true)
        guard report.errorCount == 0 && !(strict && report.warningCount > 0) else {
            MeshReportPrinter(format: format).print(report, command: "compile")
            if format == .text { printError("compile: nothing written") }
            throw Exit.invalid
        }
        let snapshot: Snapshot
        let outcome: PublishOutcome
        do {
            var report = report
            var message = message
            if rollout == "immediate", let reason {
                // Without its policy records the server serves the version to every proxy at once.
                report.groups = report.groups.map { group in
                    var resources = group.resources
                    resources[RolloutPolicy.typeURL] = nil
                    return ProxyGroupResources(group: group.group, resources: resources)
                }
                message = (message.map { $0 + " " } ?? "") + "[rollout override: immediate, by \(author ?? NSUserName()): \(reason)]"
            }
            snapshot = try MeshCompiler.snapshot(report, sourceRevision: sourceRevision, author: author, message: message)
            MeshCompiler.keepUntilExit(snapshot)
            outcome = try openPublishTarget(out).publish(snapshot)
        } catch {
            printError("meshctl: compile: \(error)")
            throw Exit.usage
        }
        if let dump {
            do { try ResourceDump.write(snapshot, pool: pool, to: dump) } catch {
                printError("meshctl: compile: cannot write the YAML dump to \(dump): \(error)")
                throw Exit.usage
            }
        }
        let published: String
        switch outcome {
        case .published(let version, let bytes): published = "published version \(version.prefix(12)) to \(StoreArgument.displayed(out)) (\(bytes) bytes written)"
        case .unchanged(let version): published = "unchanged: version \(version.prefix(12)) in \(StoreArgument.displayed(out)) is already current"
        }
        switch format {
        case .json:
            MeshReportPrinter(format: .json).print(report, command: "compile", extra: [
                "version": outcome.version, "store": StoreArgument.displayed(out), "outcome": { if case .published = outcome { return "published" } else { return "unchanged" } }(),
            ])
        default:
            MeshReportPrinter(format: format).print(report, command: "compile")
            if format == .text {
                Swift.print("compile: \(snapshot.groups.count) proxy groups, \(report.resourceCount) resources; \(published)")
            }
        }
    }
}

/// The readable copy of a snapshot: DIR/<group>/<type>/<name>.yaml.
enum ResourceDump {
    static func write(_ snapshot: Snapshot, pool: DescriptorPool, to directory: String) throws {
        let fm = FileManager.default
        let staging = directory + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: staging)
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        // The one renderer `meshctl snapshot show` and the admin endpoint use (secrets in full: the dump is the operator's).
        let renderer = ResourceRenderer()
        for group in snapshot.groupNames {
            let resources = snapshot.groups[group]!.resources
            // Types the Envoy schema does not know (the access records) are not Envoy configuration.
            for typeURL in resources.keys.sorted() where pool.messageID(typeURL: typeURL) != nil {
                let folder = "\(staging)/\(safe(group))/\(safe(String(typeURL.split(separator: ".").last ?? "")))"
                try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
                for name in resources[typeURL]!.keys.sorted() {
                    let resource = resources[typeURL]![name]!
                    let text = "# \(typeURL) \(name)\n# version \(resource.hash)\n" + renderer.yaml(resource)
                    try Data(text.utf8).write(to: URL(fileURLWithPath: "\(folder)/\(safe(name)).yaml"))
                }
            }
        }
        try? fm.removeItem(atPath: directory)
        try fm.moveItem(atPath: staging, toPath: directory)
    }

    static func safe(_ name: String) -> String {
        name.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "/", with: "%2F")
    }
}
