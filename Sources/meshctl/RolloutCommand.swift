// `meshctl rollout status|pause|resume|promote|abort`: the progressive rollout as the store
// records it. Commands go through the store, not the xDS port: the server that runs the
// rollout takes them from there (within its tick), they need no new RPC surface, they work
// against a shared store with several replicas, and the person's name is recorded with
// the command. `status --wait` blocks until the rollout is over, with exit codes CI gates on.
import ArgumentParser
import Foundation
import MeshModel
import PostgresStorage
import RolloutPlanning
import SnapshotStorage

/// A store that keeps rollout state: the directory store or the PostgreSQL one.
typealias RolloutStore = any SnapshotStoring & RolloutStateStoring

struct RolloutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollout",
        abstract: "Show and steer the progressive rollout of the live snapshot (mesh.yaml `rollout:`).",
        discussion: """
        The server (`meshctl serve --store DIR|URL`) runs the rollout and keeps its state in the store; these commands \
        read it there and leave requests there that the server takes within a second (with several replicas on a \
        PostgreSQL store: the replica that leads the rollout).
        Exit status of `status`: 0 the version is everywhere (rollout completed, or published immediately), \
        1 the rollout failed (rolled back, or halted waiting for a person), 2 usage error or no store/rollout, \
        3 still in progress (running or paused; with --wait: the wait timed out), 4 ended without being everywhere \
        (aborted by a person, or replaced by a newer publish).
        """,
        subcommands: [Status.self, Pause.self, Resume.self, Promote.self, Abort.self]
    )

    static let exitFailed = ExitCode(1)
    static let exitInProgress = ExitCode(3)
    static let exitEnded = ExitCode(4)

    struct StoreOption: ParsableArguments {
        @Option(help: "Snapshot store: a directory or a postgres:// URL (the one `meshctl serve --store` serves).")
        var store: String = ".meshctl/store"

        func open() throws -> RolloutStore {
            let argument: StoreArgument
            do { argument = try StoreArgument(store) } catch {
                printError("meshctl: rollout: \(error)")
                throw Exit.usage
            }
            switch argument {
            case .directory(let path):
                let directory = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
                guard FileManager.default.fileExists(atPath: directory + "/FORMAT") else {
                    printError("meshctl: rollout: \(store) is not a snapshot store (nothing was published there); give --store")
                    throw Exit.usage
                }
                return SnapshotStore(directory: directory)
            case .postgres(let url):
                do { return try PostgresSnapshotStore(url: url) } catch {
                    printError("meshctl: rollout: \(error)")
                    throw Exit.usage
                }
            }
        }

        func state(_ store: RolloutStore) throws -> RolloutState? {
            do {
                guard let data = try store.loadRolloutState() else { return nil }
                guard let state = RolloutState.decode(data) else {
                    printError("meshctl: rollout: the rollout state in \(self.store) cannot be read (written by another meshctl version?)")
                    throw Exit.usage
                }
                return state
            } catch let error as SnapshotStoreError {
                printError("meshctl: rollout: \(error)")
                throw Exit.usage
            }
        }
    }

    // MARK: status

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the wave plan, where each proxy is, and timing; exit codes CI can gate on.")

        @OptionGroup var options: StoreOption

        @Option(help: "The version to report on (default: the latest published one).")
        var version: String?

        @Flag(help: "Block until the rollout of the version is over (completed, failed, aborted or replaced).")
        var wait = false

        @Option(help: "Seconds --wait waits at most (exit 3 when it runs out).")
        var timeout: Double = 600

        @Option(help: "Output: text or json.")
        var format = "text"

        func validate() throws {
            guard format == "text" || format == "json" else { throw ValidationError("--format must be text or json") }
            guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        }

        func run() throws {
            let store = try options.open()
            let version: String
            do {
                if let reference = self.version { version = try store.resolve(reference) } else {
                    guard let published = try store.history().last(where: { $0.kind == .publish })?.version ?? store.currentVersion() else {
                        printError("meshctl: rollout: nothing was published to \(options.store)")
                        throw Exit.usage
                    }
                    version = published
                }
            } catch let error as SnapshotStoreError {
                printError("meshctl: rollout: \(error)")
                throw Exit.usage
            }
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let state = try options.state(store)
                let verdict = try Self.verdict(version: version, state: state, store: store)
                if !wait || verdict.done || Date() >= deadline {
                    if format == "json" { print(String(decoding: state.map { $0.target == version ? $0.encoded() : Data("{}".utf8) } ?? Data("{}".utf8), as: UTF8.self)) }
                    else { print(verdict.text + Self.leadership(store), terminator: "") }
                    if wait && !verdict.done { printError("meshctl: rollout: still \(verdict.phase) after \(Int(timeout))s") }
                    if verdict.exit != .success { throw verdict.exit }
                    return
                }
                usleep(200_000)
            }
        }

        struct Verdict {
            var text: String
            var exit: ExitCode
            var done: Bool
            var phase: String
        }

        static func verdict(version: String, state: RolloutState?, store: RolloutStore) throws -> Verdict {
            if let state, state.target == version {
                let exit: ExitCode
                switch state.phase {
                case .completed: exit = .success
                case .rolledBack, .halted: exit = RolloutCommand.exitFailed
                case .running, .paused: exit = RolloutCommand.exitInProgress
                case .aborted, .superseded: exit = RolloutCommand.exitEnded
                }
                return Verdict(text: describe(state), exit: exit, done: !(state.phase == .running || state.phase == .paused), phase: state.phase.rawValue)
            }
            if let state, state.queued == version || state.collapsed.contains(version) {
                let waiting = state.queued == version && (state.phase.isActive || state.phase == .completed)
                if state.queued == version && !state.phase.isActive && state.phase != .completed {
                    return Verdict(text: "version \(version.prefix(12)): waited behind the rollout of \(state.target.prefix(12)), which ended \(state.phase.rawValue); it was dropped (publish it again)\n" + describe(state),
                                   exit: RolloutCommand.exitEnded, done: true, phase: "dropped")
                }
                let text = waiting ? "version \(version.prefix(12)): queued behind the rollout of \(state.target.prefix(12)) (\(state.phase.rawValue))\n"
                                   : "version \(version.prefix(12)): replaced in the queue by a newer publish (\(state.queued?.prefix(12) ?? "none")); it will not roll out\n"
                return Verdict(text: text + describe(state), exit: waiting ? RolloutCommand.exitInProgress : RolloutCommand.exitEnded,
                               done: !waiting, phase: waiting ? "queued" : "collapsed")
            }
            // No rollout of this version recorded: published without a policy, or the server has not started it yet.
            let snapshot: Snapshot
            do { snapshot = try store.load(version: version) } catch {
                printError("meshctl: rollout: \(error)")
                throw Exit.usage
            }
            let hasPolicy = snapshot.groups.values.contains { $0.resources[RolloutPolicy.typeURL] != nil }
            if !hasPolicy {
                return Verdict(text: "version \(version.prefix(12)): no rollout policy; served to every proxy at once\n", exit: .success, done: true, phase: "immediate")
            }
            return Verdict(text: "version \(version.prefix(12)): rollout not started yet (is meshctl serve running on this store?)\n",
                           exit: RolloutCommand.exitInProgress, done: false, phase: "not started")
        }

        /// On a store several replicas share: which one drives rollouts now (or that none does — then nothing
        /// advances until one takes the lease).
        static func leadership(_ store: RolloutStore) -> String {
            guard let shared = store as? any RolloutCoordinating else { return "" }
            do {
                guard let lease = try shared.currentRolloutLease() else {
                    return "leader: none (no serve replica holds the rollout lease: rollouts wait until one does)\n"
                }
                return "leader: \(lease.holder) (lease term \(lease.term), renewed within \(seconds(lease.remainingMilliseconds)))\n"
            } catch {
                return "leader: unknown (\(error))\n"
            }
        }

        static func describe(_ state: RolloutState) -> String {
            var out = "rollout \(state.previous.prefix(12)) → \(state.target.prefix(12)): \(state.phase.rawValue)"
            out += ", started \(time(state.startedAt))"
            if let finished = state.finishedAt { out += ", ended \(time(finished)) (\(seconds(finished - state.startedAt)))" }
            out += "\n"
            if let failure = state.failure { out += "FAILED: \(failure.summary)\n" }
            if let queued = state.queued { out += "queued behind it: \(queued.prefix(12))\n" }
            if !state.collapsed.isEmpty { out += "replaced in the queue (collapsed to the newest): \(state.collapsed.map { String($0.prefix(12)) }.joined(separator: ", "))\n" }
            for group in state.groups.keys.sorted() {
                let plan = state.groups[group]!
                let position = plan.isComplete ? "complete" : "wave \(plan.wave + 1) of \(plan.policy.waves.count)"
                out += "group \(group): \(position); \(plan.policy.summary)\(plan.changed ? "" : " (nothing changed)")\n"
                for wave in plan.policy.waves.indices {
                    let started = plan.waveStartedAt.indices.contains(wave) ? "started \(time(plan.waveStartedAt[wave]))" : "not started"
                    let members = plan.members(ofWave: wave)
                    out += "  wave \(wave + 1) (\(plan.policy.waves[wave])): \(started)\(members.isEmpty ? ", no proxies" : "")\n"
                    for node in members {
                        let p = plan.proxies[node]!
                        var where_: String
                        if wave < plan.wave || plan.isComplete { where_ = "passed" }
                        else if wave > plan.wave { where_ = "waiting (previous version)" }
                        else if let settled = p.settledAt { where_ = "ACKed at \(time(settled)), baking" }
                        else if let received = p.receivedAt { where_ = "received at \(time(received)), awaiting ACK" }
                        else { where_ = "not connected" }
                        out += "    \(node): \(where_)\n"
                    }
                }
            }
            for action in state.actions {
                out += "\(time(action.at)) \(action.action) by \(action.by)\(action.reason.map { ": \($0)" } ?? "")\n"
            }
            return out
        }

        static func time(_ ms: Int64) -> String {
            Date(timeIntervalSince1970: Double(ms) / 1000).formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        }

        static func seconds(_ ms: Int64) -> String { String(format: "%.1fs", Double(ms) / 1000) }
    }

    // MARK: commands

    /// What the operator commands share: who, why, and the request's round trip through the store.
    struct CommandOptions: ParsableArguments {
        @OptionGroup var store: StoreOption

        @Option(help: "Who gives the command (required; recorded in the rollout and in history).")
        var `operator`: String

        @Option(help: "Why (recorded).")
        var reason: String?

        @Option(help: "Seconds to wait for the server to take the command.")
        var timeout: Double = 10

        func validate() throws {
            guard !`operator`.trimmingCharacters(in: .whitespaces).isEmpty else { throw ValidationError("--operator must name a person") }
            guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        }

        func send(_ action: String, check: (inout RolloutMachine) throws(RolloutCommandError) -> [RolloutChange]) throws {
            let snapshots = try store.open()
            guard let state = try store.state(snapshots) else {
                printError("meshctl: rollout \(action): no rollout has run on the store \(store.store); there is nothing to \(action)")
                throw RolloutCommand.exitFailed
            }
            // The machine's own rules say whether the command can apply, with the same words the server would log.
            var copy = RolloutMachine(restoring: state)
            do { _ = try check(&copy) } catch {
                printError("meshctl: rollout \(action): \(error)")
                throw RolloutCommand.exitFailed
            }
            let sent = Date()
            do {
                try snapshots.submitRolloutRequest(RolloutRequest(action: action, by: `operator`, reason: reason, target: state.target, time: sent))
            } catch {
                printError("meshctl: rollout \(action): cannot leave the request in the store: \(error)")
                throw Exit.usage
            }
            let sentMilliseconds = Int64((sent.timeIntervalSince1970 * 1000).rounded(.down))
            // Taken: the server consumed the request. Recorded: it is in the rollout's actions, or it ended the
            // rollout and the next queued one replaced the state.
            var takenAt: Date?
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if takenAt == nil, (try? snapshots.pendingRolloutRequestCount()) == 0 { takenAt = Date() }
                if let now = try store.state(snapshots) {
                    if now.actions.contains(where: { $0.action == action && $0.by == `operator` && $0.at >= sentMilliseconds }) {
                        print("rollout \(action): taken by the server; the rollout of \(now.target.prefix(12)) is \(now.phase.rawValue)")
                        return
                    }
                    if now.target != state.target {
                        print("rollout \(action): taken by the server; the rollout of \(state.target.prefix(12)) is over and the queued \(now.target.prefix(12)) is \(now.phase.rawValue)")
                        return
                    }
                }
                if let takenAt, Date().timeIntervalSince(takenAt) > 2 {
                    printError("meshctl: rollout \(action): the server took the request but did not apply it (its log says why: rollout.request-refused)")
                    throw RolloutCommand.exitFailed
                }
                usleep(100_000)
            }
            printError("meshctl: rollout \(action): the server has not taken the request within \(Int(timeout))s (is meshctl serve running on \(store.store)?)")
            throw Exit.usage
        }
    }

    /// pause, resume, promote, abort: one command each, all sent the same way.
    protocol OperatorCommand: ParsableCommand {
        static var action: String { get }
        var options: CommandOptions { get }
        /// The machine's rule for the command (checked locally first, for the same refusal the server would give).
        static func apply(_ machine: inout RolloutMachine, by: String, reason: String?) throws(RolloutCommandError) -> [RolloutChange]
    }

    struct Pause: OperatorCommand {
        static let configuration = CommandConfiguration(abstract: "Hold every group at its current wave (failures are still detected).")
        static let action = "pause"
        @OptionGroup var options: CommandOptions
        static func apply(_ m: inout RolloutMachine, by: String, reason: String?) throws(RolloutCommandError) -> [RolloutChange] {
            try m.pause(by: by, reason: reason, now: 0)
        }
    }

    struct Resume: OperatorCommand {
        static let configuration = CommandConfiguration(abstract: "Let a paused rollout advance again.")
        static let action = "resume"
        @OptionGroup var options: CommandOptions
        static func apply(_ m: inout RolloutMachine, by: String, reason: String?) throws(RolloutCommandError) -> [RolloutChange] {
            try m.resume(by: by, reason: reason, now: 0)
        }
    }

    struct Promote: OperatorCommand {
        static let configuration = CommandConfiguration(abstract: "Start the next wave now (skip the rest of the bake); a halted rollout goes everywhere.")
        static let action = "promote"
        @OptionGroup var options: CommandOptions
        static func apply(_ m: inout RolloutMachine, by: String, reason: String?) throws(RolloutCommandError) -> [RolloutChange] {
            try m.promote(by: by, reason: reason, now: 0)
        }
    }

    struct Abort: OperatorCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the rollout and roll the live version back to the previous one.")
        static let action = "abort"
        @OptionGroup var options: CommandOptions
        static func apply(_ m: inout RolloutMachine, by: String, reason: String?) throws(RolloutCommandError) -> [RolloutChange] {
            try m.abort(by: by, reason: reason, now: 0)
        }
    }
}

extension RolloutCommand.OperatorCommand {
    func run() throws {
        let (by, reason) = (options.operator, options.reason)
        try options.send(Self.action) { (m: inout RolloutMachine) throws(RolloutCommandError) in try Self.apply(&m, by: by, reason: reason) }
    }
}
