// The mesh configuration compiler: Configs/ and templates/ in, checked and encoded
// per-proxy-group resources out (see docs/CONFIG.md). `Compilation.run()` lists the
// phases, one file each under Phases/: load (read + parse every file, parallel) → mesh
// rules → templates (Stencil's parser, meshctl's renderer, context check) → plan (one
// rendering job per template and service or gateway) → render (rendered, read as Envoy,
// validated and encoded, parallel) → assemble (proxy groups) → group rules (parallel) →
// report (diagnostics mapped back to the user's files, ProxyGroupResources for the store).
import EnvoySchema
import Foundation
import MeshModel
import SnapshotStorage

/// The outcome of compiling (or validating) a Configs/ directory.
public struct CompileReport: Sendable {
    /// Every problem, mapped to the user's files, sorted by file and position.
    public var diagnostics: [Diagnostic] = []
    /// Each proxy group's resources (when encoding was asked for and nothing is wrong).
    public var groups: [ProxyGroupResources] = []
    public var serviceCount = 0
    public var gatewayCount = 0
    /// Raw proxy groups (Configs/groups/).
    public var rawGroupCount = 0
    /// Proxy groups checked (one per service and gateway).
    public var groupCount = 0
    /// Distinct resources generated (a shared cluster counts once).
    public var resourceCount = 0
    /// The files read (for the summary line).
    public var files: [String] = []
    /// The rendering jobs (for tests that compare the renderer with Stencil).
    var jobs: [RenderJob] = []

    public var errorCount: Int { diagnostics.count { $0.severity == .error } }
    public var warningCount: Int { diagnostics.count { $0.severity == .warning } }
}

/// The compiler's entry points: compile a Configs/ directory, and turn the result into a snapshot.
public enum MeshCompiler {
    /// Recorded in every snapshot's metadata.
    public static let compilerVersion = "meshctl-compiler 1"

    /// Compiles `inputs`. With `encode: false` (validate) nothing is encoded; every check still runs.
    /// Throws only when the inputs cannot be used at all (a missing directory: a usage error).
    public static func compile(_ inputs: CompileInputs, pool: DescriptorPool, encode: Bool = true) throws(CompileUsageError) -> CompileReport {
        var compilation = Compilation(inputs: inputs, pool: pool, encode: encode)
        return try compilation.run()
    }

    /// The configuration phases only — load (read and parse every file) and mesh rules — with diagnostics mapped like a
    /// full compile's. For the fuzz harness of the configuration loader: a full compile also renders every template
    /// for every service, which makes each input hundreds of times slower to explore.
    package static func checkConfiguration(_ inputs: CompileInputs, pool: DescriptorPool) throws(CompileUsageError) -> CompileReport {
        var compilation = Compilation(inputs: inputs, pool: pool, encode: false)
        return try compilation.runConfigurationPhases()
    }

    /// Called by one-shot commands (the CLI) before compiling: see `keepUntilExit`.
    public static func releaseAtExit() { ExitKeepAlive.enabled = true }

    /// For one-shot commands: everything a compile builds (hundreds of thousands of small
    /// objects for a large mesh) is left for the process exit to release, instead of being
    /// freed one object at a time on one thread after the work is done.
    public static func keepUntilExit(_ value: Any) {
        ExitKeepAlive.lock.lock()
        ExitKeepAlive.values.append(value)
        ExitKeepAlive.lock.unlock()
    }

    /// The snapshot for the store (its version is the content hash: equal input, equal version).
    public static func snapshot(_ report: CompileReport, sourceRevision: String? = nil, author: String? = nil, message: String? = nil,
                                createdAt: Date = Date()) throws(SnapshotStoreError) -> Snapshot {
        try Snapshot.make(groups: report.groups, sourceRevision: sourceRevision, author: author, message: message,
                          compilerVersion: compilerVersion, createdAt: createdAt)
    }
}

struct Compilation {
    let inputs: CompileInputs
    let pool: DescriptorPool
    let encode: Bool
    var report = CompileReport()
    var pending: [PendingDiagnostic] = []
    var clock = PhaseClock()
    /// origin → file, for YAML read straight from the user's files.
    var fileOrigins: [Int32: String] = [:]
    static let jobOriginBase: Int32 = 1_000_000

    init(inputs: CompileInputs, pool: DescriptorPool, encode: Bool) {
        self.inputs = inputs
        self.pool = pool
        self.encode = encode
    }

    mutating func diagnose(_ d: Diagnostic) { pending.append(PendingDiagnostic(diagnostic: d, provenance: nil)) }

    /// The compile as a list of named phases, each in its own file under Phases/.
    mutating func run() throws(CompileUsageError) -> CompileReport {
        guard let sources = try locate() else { return finish(jobs: []) }     // Phases/LoadPhase.swift
        let loaded = load(sources)                                            // Phases/LoadPhase.swift
        let model = applyMeshRules(loaded)                                    // Phases/MeshRulesPhase.swift
        guard loaded.meshExists, !model.services.isEmpty || !model.gateways.isEmpty || !model.rawGroups.isEmpty else { return finish(jobs: []) }
        let templates = loadTemplates(model)                                  // Phases/TemplatesPhase.swift
        var plan = planJobs(model, templates: templates)                      // Phases/PlanPhase.swift
        let results = render(plan, model: model)                              // Phases/RenderPhase.swift
        let groups = assembleGroups(plan, model: model)                       // Phases/AssemblePhase.swift
        checkGroupRules(groups, results: results, model: model)               // Phases/GroupRulesPhase.swift
        return makeReport(plan: &plan, groups: groups, results: results, loaded: loaded, model: model)  // Phases/ReportPhase.swift
    }

    /// Load and mesh rules, then the report: `MeshCompiler.checkConfiguration`.
    mutating func runConfigurationPhases() throws(CompileUsageError) -> CompileReport {
        guard let sources = try locate() else { return finish(jobs: []) }
        _ = applyMeshRules(load(sources))
        return finish(jobs: [])
    }

    static func parse(_ text: String, file: String, origin: Int32) -> Result<YAMLNode, Diagnostic> {
        do {
            guard let node = try YAMLDocument.parse(text, origin: origin) else {
                return .failure(Diagnostic(.error, rule: "input.empty", message: "contains no YAML document (only comments?)", path: "", file: file))
            }
            return .success(node)
        } catch {
            // Same rule ids and wording as the schema engine's reader.
            var diagnostic: Diagnostic
            switch ConfigDocument.parseNode(text, file: file) {
            case .failure(let d): diagnostic = d
            case .success: diagnostic = Diagnostic(.error, rule: "yaml.syntax", message: error.message, path: "", file: file, location: error.location)
            }
            diagnostic.location = error.location.map { SourceLocation(line: Int($0.line), column: Int($0.column)) }
            return .failure(diagnostic)
        }
    }

    // MARK: Diagnostics

    /// Maps every diagnostic to the user's file and position, de-duplicates and sorts them.
    mutating func finish(jobs: [RenderJob], provenance: [String: Provenance] = [:]) -> CompileReport {
        var mapper = LocationMapper(files: fileOrigins, jobs: jobs, base: Self.jobOriginBase)
        var seen = Set<String>()
        var out: [Diagnostic] = []
        for item in pending {
            var d = item.diagnostic
            var owner: String?
            if let key = item.provenance, let p = provenance[key] {
                d.file = p.file
                d.location = SourceLocation(line: Int(p.location.line), column: Int(p.location.column))
            } else {
                owner = mapper.map(&d)
            }
            // One template mistake shows once, not once per service it renders for.
            let key = "\(d.severity)|\(d.rule)|\(d.file ?? "")|\(d.location?.line ?? 0)|\(d.location?.column ?? 0)|\(d.message)"
            guard seen.insert(key).inserted else { continue }
            if let owner, !d.message.contains("'\(owner)'") { d.message += " (rendering for '\(owner)')" }
            out.append(d)
        }
        report.diagnostics = out.sorted(by: Diagnostic.reportOrder)
        clock.lap("diagnostics")
        return report
    }
}

/// Which services a proxy must be able to reach: the ones it routes to, and transitively the
/// ones their routes send traffic to (canary splits, mirrors).
struct Reach {
    let services: [String: ServiceDefinition]

    init(services: [String: ServiceDefinition]) { self.services = services }

    func closure(of roots: [String]) -> [String] {
        var out = Set<String>()
        var stack = roots.filter { services[$0] != nil }
        while let name = stack.popLast() {
            guard out.insert(name).inserted, let service = services[name] else { continue }
            for route in service.routes {
                for target in MeshChecks.targets(route) where target.service.value != name && services[target.service.value] != nil {
                    stack.append(target.service.value)
                }
            }
        }
        return out.sorted()
    }
}

/// Positions in rendered text or merged YAML → the user's file and position.
struct LocationMapper {
    let files: [Int32: String]
    let jobs: [RenderJob]
    let base: Int32
    var rendered: [Int32: RenderedText] = [:]

    init(files: [Int32: String], jobs: [RenderJob], base: Int32) {
        self.files = files
        self.jobs = jobs
        self.base = base
    }

    /// Rewrites the diagnostic's file and position; returns the job's owner when it points into rendered text.
    mutating func map(_ d: inout Diagnostic) -> String? {
        guard let location = d.location, location.origin != 0 else { return nil }
        if let file = files[location.origin] {
            d.file = file
            d.location = SourceLocation(line: Int(location.line), column: Int(location.column))
            return nil
        }
        let index = Int(location.origin - base)
        guard index >= 0 && index < jobs.count else { return nil }
        let job = jobs[index]
        // A raw group's job renders nothing: its positions carry its file's origin and were mapped above.
        guard let template = job.template else { return job.owner }
        d.file = template.source.path
        if rendered[location.origin] == nil {
            // Rendering is deterministic: render again, this time recording where output came from.
            rendered[location.origin] = try? template.render(job.roots, tracking: true)
        }
        if let text = rendered[location.origin], let offset = text.sourceOffset(line: Int(location.line), column: Int(location.column)) {
            let (line, column) = template.source.position(ofByte: offset)
            d.location = SourceLocation(line: line, column: column)
        } else {
            d.location = nil
        }
        return job.owner
    }
}

/// What `MeshCompiler.keepUntilExit` holds.
enum ExitKeepAlive {
    static let lock = NSLock()
    nonisolated(unsafe) static var values: [Any] = []
    nonisolated(unsafe) static var enabled = false
}
