// `meshctl snapshot`: inspect, compare, roll back, garbage-collect and verify the snapshot store.
// Also two hidden modes: `publish-fixture` (TEST HOOK for the crash tests) and `bench`.
import ArgumentParser
import EnvoySchema
import Foundation
import MeshAdmin
import MeshFixtures
import PostgresStorage
import SnapshotStorage

struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Inspect and manage the snapshot store (what the mesh was given, and when).",
        discussion: """
        VERSION is `current`, a full version id, or a unique prefix of one.
        Exit status: 0 success, 1 the store or a version is damaged, 2 usage error or the store cannot be used.
        """,
        subcommands: [List.self, Show.self, Diff.self, Rollback.self, GC.self, Verify.self, History.self, Init.self, Copy.self,
                      PublishFixture.self, Bench.self]
    )

    struct StoreOption: ParsableArguments {
        @Option(help: "Snapshot store: a directory, or postgres://USER@HOST:PORT/DATABASE (see docs/DEPLOYMENT.md).")
        var store: String

        /// The store the argument names (a URL with an unknown scheme is refused here).
        func open(createIfMissing: Bool = false) throws(SnapshotStoreError) -> any SnapshotStoring {
            try openSnapshotStore(store, createIfMissing: createIfMissing)
        }
    }

    // MARK: list

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List stored versions, newest first; * marks the live one.")

        @OptionGroup var options: StoreOption

        func run() throws {
            let versions = try storeCall { try options.open().list() }
            if versions.isEmpty {
                print("no versions in \(StoreArgument.displayed(options.store))")
                return
            }
            var rows = [["", "VERSION", "CREATED", "GROUPS", "RESOURCES", "SOURCE", "AUTHOR", "MESSAGE"]]
            for v in versions {
                let m = v.metadata
                rows.append([v.isCurrent ? "*" : "", String(m.version.prefix(12)), timestamp(m.createdAt), String(v.groupCount),
                             String(v.resourceCount), m.sourceRevision ?? "-", m.author ?? "-", oneLine(m.message ?? "-")])
            }
            printTable(rows)
        }
    }

    // MARK: show

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a version's resources (YAML documents or JSON).")

        @OptionGroup var options: StoreOption

        @Option(help: "Only this proxy group.")
        var group: String?

        @Option(help: "Only this resource type: a type URL, a message name, or cluster/endpoint/route/listener/secret.")
        var type: String?

        @Option(help: "Output format: yaml or json.")
        var format: OutputFormat = .yaml

        @Flag(help: "Print only group, type, name and hash of each resource.")
        var namesOnly = false

        @Argument(help: "The version to show.")
        var version: String = "current"

        enum OutputFormat: String, ExpressibleByArgument { case yaml, json }

        func run() throws {
            let snapshot = try storeCall { try options.open().load(version: version) }
            if let group, snapshot.groups[group] == nil {
                printError("meshctl: version \(snapshot.metadata.version.prefix(12)) has no proxy group \"\(group)\"; it has: \(snapshot.groupNames.joined(separator: ", "))")
                throw Exit.usage
            }
            let groups = snapshot.groupNames.filter { group == nil || $0 == group }
            var ordered: [(String, Resource)] = []
            var typesSeen = Set<String>()
            for g in groups {
                let resources = snapshot.groups[g]!.resources
                for typeURL in resources.keys.sorted() {
                    typesSeen.insert(typeURL)
                    guard type.map({ ResourceTypeFilter.matches(typeURL, $0) }) ?? true else { continue }
                    for name in resources[typeURL]!.keys.sorted() { ordered.append((g, resources[typeURL]![name]!)) }
                }
            }
            if let type, !typesSeen.contains(where: { ResourceTypeFilter.matches($0, type) }) {
                printError("meshctl: no resources of type \"\(type)\"; present: \(typesSeen.sorted().joined(separator: ", "))")
                throw Exit.usage
            }
            let renderer = ResourceRenderer()
            let out = FileHandle.standardOutput
            switch format {
            case .yaml:
                var text = "# version \(snapshot.metadata.version)\n"
                text += "# \(describe(snapshot.metadata))\n"
                out.write(Data(text.utf8))
                for (g, r) in ordered {
                    var doc = "---\ngroup: \(TextQuoting.yamlScalar(g))\ntype: \(r.typeURL)\nname: \(TextQuoting.yamlScalar(r.name))\nhash: \(r.hash)\n"
                    if !namesOnly { doc += renderer.yamlField(r) }
                    out.write(Data(doc.utf8))
                }
            case .json:
                let m = snapshot.metadata
                var text = "{\n  \"version\": \(TextQuoting.json(m.version)),\n  \"created_at\": \(TextQuoting.json(timestamp(m.createdAt))),\n"
                for (key, value) in [("source_revision", m.sourceRevision), ("author", m.author), ("message", m.message)] {
                    if let value { text += "  \"\(key)\": \(TextQuoting.json(value)),\n" }
                }
                text += "  \"compiler_version\": \(TextQuoting.json(m.compilerVersion)),\n  \"resources\": ["
                out.write(Data(text.utf8))
                for (i, (g, r)) in ordered.enumerated() {
                    var item = i == 0 ? "\n" : ",\n"
                    item += "    {\"group\": \(TextQuoting.json(g)), \"type\": \(TextQuoting.json(r.typeURL)), \"name\": \(TextQuoting.json(r.name)), \"hash\": \(TextQuoting.json(r.hash))"
                    if !namesOnly { item += ", " + renderer.jsonField(r) }
                    item += "}"
                    out.write(Data(item.utf8))
                }
                out.write(Data("\n  ]\n}\n".utf8))
            }
        }
    }

    // MARK: diff

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what changed between two versions: per proxy group and type, with a YAML line diff of each changed resource."
        )

        @OptionGroup var options: StoreOption

        @Flag(help: "List changed resource names without their line diffs.")
        var namesOnly = false

        @Option(help: "Unchanged lines shown around each change.")
        var context: Int = 3

        @Argument(help: "The older version.")
        var from: String

        @Argument(help: "The newer version.")
        var to: String = "current"

        func run() throws {
            let store = try storeCall { try options.open() }
            let a = try storeCall { try store.load(version: from) }
            let b = try storeCall { try store.load(version: to) }
            let renderer = ResourceRenderer()
            print(SnapshotDiff(from: a, to: b).render(fieldDiffs: !namesOnly, context: max(0, context)) { renderer.yaml($0) }, terminator: "")
        }
    }

    // MARK: rollback

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make an older version live again (checks it fully first; records who and why)."
        )

        @OptionGroup var options: StoreOption

        @Option(help: "Why (recorded in the store's history).")
        var reason: String?

        @Option(help: "Who (recorded in the store's history; default $USER).")
        var author: String?

        @Argument(help: "The version to make live.")
        var version: String

        func run() throws {
            let who = author ?? ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.environment["LOGNAME"] ?? "unknown"
            let outcome = try storeCall { try options.open().rollback(to: version, reason: reason, author: who) }
            switch outcome {
            case .alreadyCurrent(let v): print("\(v.prefix(12)) is already the live version; nothing changed")
            case .rolledBack(let from, let to):
                print("rolled back: live version is now \(to.prefix(12))" + (from.map { " (was \($0.prefix(12)))" } ?? ""))
            }
        }
    }

    // MARK: gc

    struct GC: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "gc",
            abstract: "Delete all but the newest N versions (never the live one) and objects nothing references."
        )

        @OptionGroup var options: StoreOption

        @Option(help: "Versions to keep, newest first (the live version is kept in addition).")
        var keep: Int

        func validate() throws {
            guard keep >= 0 else { throw ValidationError("--keep must be 0 or more") }
        }

        func run() throws {
            let report = try storeCall { try options.open().gc(keep: keep) }
            print("kept \(report.keptVersions.count) version(s); removed \(report.removedVersions.count) version(s) and \(report.removedObjects) object(s), \(report.freedBytes) bytes freed")
            for v in report.removedVersions { print("  removed \(v.prefix(12))") }
        }
    }

    // MARK: verify

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Hash-check every object and version; clean up what interrupted publishes left behind.",
            discussion: "Exit status 0 when the store is healthy (after clean-up), 1 when problems remain."
        )

        @OptionGroup var options: StoreOption

        func run() throws {
            let report = try storeCall { try options.open() }.verify()
            for line in report.debrisRemoved { print("cleaned: \(line)") }
            for problem in report.problems { printError("problem: \(problem)") }
            let live = report.currentVersion.map { String($0.prefix(12)) } ?? "none"
            print("\(report.isHealthy ? "ok" : "DAMAGED"): \(report.versionsChecked) version(s), \(report.objectsChecked) object(s) checked; live version \(live)")
            if !report.isHealthy {
                if case .store(let error)? = report.problems.first, storeExitCode(error) == Exit.usage { throw Exit.usage }
                throw Exit.invalid
            }
        }
    }

    // MARK: history

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show who made which version live, and when (oldest first).")

        @OptionGroup var options: StoreOption

        func run() throws {
            let events = try storeCall { () throws -> [HistoryEvent] in
                let store = try options.open()
                _ = try store.list()
                return try store.history()
            }
            for e in events {
                var line = "\(timestamp(e.time))  \(e.kind.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(e.version.prefix(12))"
                if let p = e.previous { line += " (was \(p.prefix(12)))" }
                if let a = e.author { line += " by \(a)" }
                if let s = e.sourceRevision { line += " source \(s)" }
                if let r = e.reason { line += ": \(oneLine(r))" }
                print(line)
            }
        }
    }

    // MARK: init

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the store: a directory store's layout, or a PostgreSQL store's tables (also in a database that holds other tables); migrate an older schema."
        )

        @OptionGroup var options: StoreOption

        func run() throws {
            let described = try storeCall { () throws -> String in
                switch try StoreArgument(options.store) {
                case .directory(let path):
                    try SnapshotStore(directory: path, createIfMissing: true).initialize()
                    return "directory store \(path)"
                case .postgres(let url):
                    try PostgresSnapshotStore(url: url, createIfMissing: true).initialize()
                    return "PostgreSQL store \(url.redactedDescription) (schema \(PostgresSnapshotStore.schemaVersion))"
                }
            }
            print("store ready: \(described)")
        }
    }

    // MARK: copy

    struct Copy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy every version with its metadata, the history and the live version to a new, empty store (directory or PostgreSQL, either way).",
            discussion: "Version ids stay identical (they are content hashes). The target must have no history yet; it is created when missing."
        )

        @Option(help: "The store to copy from: a directory or a postgres:// URL.")
        var from: String

        @Option(help: "The store to copy to (new or empty): a directory or a postgres:// URL.")
        var to: String

        func run() throws {
            let source = try storeCall { try openSnapshotStore(from) }
            let target = try storeCall { () throws -> any SnapshotImporting in
                switch try StoreArgument(to) {
                case .directory(let path):
                    let store = SnapshotStore(directory: path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path, createIfMissing: true)
                    try store.initialize()
                    return store
                case .postgres(let url):
                    let store = try PostgresSnapshotStore(url: url, createIfMissing: true)
                    try store.initialize()
                    return store
                }
            }
            try storeCall { () throws in
                guard try target.currentVersion() == nil, try target.history().isEmpty else {
                    throw SnapshotStoreError.notAStore(path: target.location, reason: "it already has a history; copy into a new, empty store")
                }
                let versions = try source.list()
                let history = try source.history()
                let live = try source.currentVersion()
                // Oldest first, so a copy interrupted part-way holds the older versions and can be redone from scratch.
                for (n, summary) in versions.reversed().enumerated() {
                    let snapshot = try source.load(version: summary.metadata.version, check: .hashes)
                    try target.importVersion(snapshot)
                    print("copied \(summary.metadata.version.prefix(12)) (\(n + 1)/\(versions.count))")
                }
                try target.importHistory(history, live: live)
                print("copied \(versions.count) version(s) and \(history.count) history event(s) from \(source.location) to \(target.location); live version \(live.map { String($0.prefix(12)) } ?? "none")")
            }
        }
    }

    // MARK: hidden: publish-fixture (TEST HOOK)

    /// TEST HOOK: publishes a synthetic snapshot through a fault-injecting file system so tests can
    /// kill, stop or fail a real process at any disk-changing step of a publish.
    struct PublishFixture: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "publish-fixture",
            abstract: "TEST HOOK: publish a synthetic snapshot, optionally crashing at step K.",
            shouldDisplay: false
        )

        @OptionGroup var options: StoreOption

        @Option(help: "Services in the synthetic snapshot (two resources each, plus routes and listeners).")
        var services: Int = 20

        @Option(help: "Seed for resource bodies.")
        var seed: UInt64 = 1

        @Option(help: "Change this many services' clusters (revision bump), for a one-resource-change publish.")
        var changed: Int = 0

        @Option(help: "SIGKILL this process at this disk-changing step (1-based).")
        var crashAtStep: Int?

        @Option(help: "SIGSTOP this process just before this step (holding the store lock).")
        var pauseAtStep: Int?

        @Option(help: "Fail this step with ENOSPC.")
        var enospcAtStep: Int?

        @Option(help: "Seconds to wait for another publisher's lock.")
        var lockTimeout: Double = 30

        @Option(name: .customLong("repeat"), help: "Publish this many snapshots (seeds SEED, SEED+1, …), one line each; a failed publish prints `failed: …` and the next is tried.")
        var count: Int = 1

        func run() throws {
            let fault: FaultInjectingFileSystem.Fault
            if let k = crashAtStep { fault = .crash(atStep: k) }
            else if let k = pauseAtStep { fault = .pause(atStep: k) }
            else if let k = enospcAtStep { fault = .fail(errno: ENOSPC, atStep: k) }
            else { fault = .none }
            let fs = FaultInjectingFileSystem(fault: fault)
            // Faults are injected into the directory store's file system; a database store takes the same snapshots.
            let store: any SnapshotStoring = try storeCall { () throws -> any SnapshotStoring in
                switch try StoreArgument(options.store) {
                case .directory(let path): return SnapshotStore(directory: path, createIfMissing: true, lockTimeout: lockTimeout, fileSystem: fs)
                case .postgres: return try openPublishTarget(options.store)
                }
            }
            let revisions = Dictionary(uniqueKeysWithValues: (0..<max(0, changed)).map { ($0, 1) })
            var failures = 0
            for i in 0..<max(1, count) {
                let snapshot = try storeCall {
                    try Snapshot.make(groups: SyntheticSnapshot.groups(services: services, seed: seed + UInt64(i), revisions: revisions),
                                      message: "fixture", compilerVersion: "fixture")
                }
                if count > 1 {
                    do {
                        switch try store.publish(snapshot) {
                        case .published(let v, _): print("published \(v)")
                        case .unchanged(let v): print("unchanged \(v)")
                        }
                    } catch {
                        failures += 1
                        print("failed: \(error)")
                    }
                    continue
                }
                let outcome = try storeCall { try store.publish(snapshot) }
                switch outcome {
                case .published(let v, let bytes): print("published \(v) bytes \(bytes) steps \(fs.steps)")
                case .unchanged(let v): print("unchanged \(v) steps \(fs.steps)")
                }
            }
            if failures > 0 { throw Exit.invalid }
        }
    }

    // MARK: hidden: bench

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Benchmark the store: a 10,000-service snapshot, then one-cluster changes (not a test).",
            shouldDisplay: false
        )

        @Option(help: "Store directory to create (default: a temporary directory, removed afterwards), or an empty PostgreSQL database's postgres:// URL.")
        var store: String?

        @Option(help: "With a postgres:// --store: a second empty database for the notification-latency samples.")
        var noticeStore: String?

        @Option(help: "Services (each a cluster and a ClusterLoadAssignment).")
        var services: Int = 10_000

        @Option(help: "One-cluster-change publishes to time.")
        var changes: Int = 100

        func run() throws {
            if let store, case .postgres(let url) = try storeCall({ try StoreArgument(store) }) {
                let database = try storeCall { try PostgresSnapshotStore(url: url, createIfMissing: true) }
                var figures = try StoreBenchmark.run(store: database, services: services, changes: changes)
                figures.storeBytes = (try? database.databaseBytes()) ?? 0
                if let noticeStore {
                    let notice = try storeCall { try openPublishTarget(noticeStore) }
                    figures.watcherNoticeMs = try StoreBenchmark.noticeLatency(store: notice, samples: 10)
                }
                print("store: \(database.location) (store size = the whole database, tables and indexes)")
                print(figures.report)
                return
            }
            let directory = store ?? NSTemporaryDirectory() + "meshctl-bench-\(getpid())"
            defer { if store == nil { try? FileManager.default.removeItem(atPath: directory) } }
            let figures = try StoreBenchmark.run(directory: directory, services: services, changes: changes)
            print(figures.report)
        }
    }
}

// MARK: Output helpers

/// Matches `--type` against a type URL: the URL itself, the message name, its last component,
/// or a familiar alias (cluster/cds, endpoint/eds/cla, route/rds, listener/lds, secret/sds), case-insensitively.
enum ResourceTypeFilter {
    static let aliases: [String: String] = [
        "cluster": "envoy.config.cluster.v3.cluster", "cds": "envoy.config.cluster.v3.cluster",
        "endpoint": "envoy.config.endpoint.v3.clusterloadassignment", "eds": "envoy.config.endpoint.v3.clusterloadassignment",
        "cla": "envoy.config.endpoint.v3.clusterloadassignment",
        "route": "envoy.config.route.v3.routeconfiguration", "rds": "envoy.config.route.v3.routeconfiguration",
        "listener": "envoy.config.listener.v3.listener", "lds": "envoy.config.listener.v3.listener",
        "secret": "envoy.extensions.transport_sockets.tls.v3.secret", "sds": "envoy.extensions.transport_sockets.tls.v3.secret",
        "virtualhost": "envoy.config.route.v3.virtualhost", "vhds": "envoy.config.route.v3.virtualhost",
        "runtime": "envoy.service.runtime.v3.runtime",
    ]

    static func matches(_ typeURL: String, _ filter: String) -> Bool {
        let url = typeURL.lowercased()
        let name = url.split(separator: "/").last.map(String.init) ?? url
        var f = filter.lowercased()
        if f == url || f == name || name.split(separator: ".").last.map(String.init) == f { return true }
        if aliases[f] == name { return true }
        if f.hasSuffix("s") {
            f.removeLast()
            return aliases[f] == name || name.split(separator: ".").last.map(String.init) == f
        }
        return false
    }
}

/// Runs a store call; a store error is printed and becomes exit status 1 (damage) or 2 (usage, unusable store).
func storeCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as SnapshotStoreError {
        printError("meshctl: \(error)")
        throw storeExitCode(error)
    }
}

func storeExitCode(_ error: SnapshotStoreError) -> ExitCode {
    switch error {
    case .objectMissing, .objectCorrupt, .manifestCorrupt, .currentVersionMissing, .currentPointerCorrupt, .invalidSnapshot:
        return Exit.invalid
    default:
        return Exit.usage
    }
}

private func timestamp(_ date: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime]
    return f.string(from: date)
}

private func describe(_ m: SnapshotMetadata) -> String {
    var parts = ["created \(timestamp(m.createdAt))", "compiler \(m.compilerVersion)"]
    if let s = m.sourceRevision { parts.append("source \(s)") }
    if let a = m.author { parts.append("by \(a)") }
    if let msg = m.message { parts.append(oneLine(msg)) }
    return parts.joined(separator: ", ")
}

private func oneLine(_ text: String) -> String {
    text.split(whereSeparator: \.isNewline).joined(separator: " ")
}

private func printTable(_ rows: [[String]]) {
    let widths = (0..<rows[0].count).map { c in rows.map { $0[c].count }.max() ?? 0 }
    for row in rows {
        let cells = row.enumerated().map { c, cell in c == row.count - 1 ? cell : cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }
        var line = cells.joined(separator: "  ")
        while line.hasSuffix(" ") { line.removeLast() }
        print(line)
    }
}


