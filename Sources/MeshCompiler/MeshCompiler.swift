// The mesh configuration compiler: Configs/ and templates/ in, checked and encoded
// per-proxy-group resources out (see docs/CONFIG.md). The phases:
//   read + parse every file (parallel) → the mesh model and its rules →
//   templates (Stencil's parser, meshctl's renderer, context check) →
//   one rendering job per (template, service or gateway), each rendered, read as Envoy,
//   validated and encoded (parallel) → per-group reference rules (parallel) →
//   diagnostics mapped back to the user's files → ProxyGroupResources for the store.
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

/// Timings on stderr with MESHCTL_TIMING set (profiling only).
struct CompileClock {
    private static let enabled = ProcessInfo.processInfo.environment["MESHCTL_TIMING"] != nil
    private var last = DispatchTime.now().uptimeNanoseconds

    mutating func lap(_ phase: String) {
        guard Self.enabled else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        FileHandle.standardError.write(Data("meshctl timing: \(phase) \((now - last) / 1_000_000) ms\n".utf8))
        last = now
    }
}

private struct LoadedService: Sendable {
    var definition: ServiceDefinition?
    var diagnostics: [Diagnostic]
}

struct Compilation {
    let inputs: CompileInputs
    let pool: DescriptorPool
    let encode: Bool
    var report = CompileReport()
    var pending: [PendingDiagnostic] = []
    var clock = CompileClock()
    /// origin → file, for YAML read straight from the user's files.
    var fileOrigins: [Int32: String] = [:]
    static let jobOriginBase: Int32 = 1_000_000

    init(inputs: CompileInputs, pool: DescriptorPool, encode: Bool) {
        self.inputs = inputs
        self.pool = pool
        self.encode = encode
    }

    mutating func diagnose(_ d: Diagnostic) { pending.append(PendingDiagnostic(diagnostic: d, provenance: nil)) }

    mutating func run() throws(CompileUsageError) -> CompileReport {
        switch ConfigSources.entry(inputs.configs) {
        case .directory: break
        case .symlinkLoop: throw CompileUsageError(description: "\(inputs.configs): a symbolic link loop, not a directory")
        case .file, .other: throw CompileUsageError(description: "\(inputs.configs) is not a directory; pass the Configs/ directory with --configs")
        case .missing: throw CompileUsageError(description: "\(inputs.configs): no such directory; pass the Configs/ directory with --configs")
        }
        let meshPath = ConfigSources.join(inputs.configs, "mesh.yaml")
        let servicesDirectory = ConfigSources.join(inputs.configs, "services")
        let servicesEntry = ConfigSources.entry(servicesDirectory)
        if servicesEntry == .symlinkLoop {
            diagnose(Diagnostic(.error, rule: "input.symlink-loop", message: "is a symbolic link that leads back to itself (a loop); make services/ a real directory", path: "", file: servicesDirectory))
        }
        let serviceFiles = servicesEntry == .directory ? ConfigSources.yamlFiles(in: servicesDirectory) : []
        let meshExists = ConfigSources.entry(meshPath) != .missing
        if !meshExists && serviceFiles.isEmpty {
            diagnose(Diagnostic(.error, rule: "config.empty", message: "holds no mesh: add mesh.yaml (mesh-wide settings) and services/NAME.yaml (one per service); see docs/CONFIG.md", path: "", file: inputs.configs))
            return finish(jobs: [])
        }
        if !meshExists {
            diagnose(Diagnostic(.error, rule: "config.missing-file", message: "no such file; every mesh needs mesh.yaml (xDS server, trust domain, certificates, templates, gateways)", path: "", file: meshPath))
        }
        if serviceFiles.isEmpty && servicesEntry != .symlinkLoop {
            diagnose(Diagnostic(.error, rule: "config.empty", message: "has no services: add services/NAME.yaml, one file per service", path: "", file: servicesDirectory))
        }

        // mesh.yaml, then every service file in parallel.
        var mesh = MeshDefinition(file: meshPath)
        if meshExists {
            report.files.append(meshPath)
            fileOrigins[1] = meshPath
            switch ConfigSources.read(meshPath) {
            case .failure(let d): diagnose(d)
            case .success(let text):
                switch Self.parse(text, file: meshPath, origin: 1) {
                case .failure(let d): diagnose(d)
                case .success(let node):
                    var reader = ConfigReader(file: meshPath)
                    mesh = MeshLoader.mesh(node, file: meshPath, reader: &reader)
                    reader.diagnostics.forEach { diagnose($0) }
                }
            }
        }
        for (i, file) in serviceFiles.enumerated() { fileOrigins[Int32(i + 2)] = file }
        report.files += serviceFiles
        let loaded = Parallel.map(serviceFiles.count) { i -> LoadedService in
            let file = serviceFiles[i]
            switch ConfigSources.read(file) {
            case .failure(let d): return LoadedService(definition: nil, diagnostics: [d])
            case .success(let text):
                switch Compilation.parse(text, file: file, origin: Int32(i + 2)) {
                case .failure(let d): return LoadedService(definition: nil, diagnostics: [d])
                case .success(let node):
                    var reader = ConfigReader(file: file)
                    let definition = MeshLoader.service(node, file: file, origin: Int32(i + 2), reader: &reader)
                    return LoadedService(definition: definition, diagnostics: reader.diagnostics)
                }
            }
        }
        for item in loaded { item.diagnostics.forEach { diagnose($0) } }
        clock.lap("read + parse \(serviceFiles.count + 1) files")

        var checks = MeshChecks(mesh: mesh)
        let (services, gateways) = checks.run(loaded.compactMap(\.definition))
        checks.diagnostics.forEach { diagnose($0) }
        report.serviceCount = services.count
        report.gatewayCount = gateways.count
        clock.lap("mesh rules")

        guard meshExists, !services.isEmpty || !gateways.isEmpty else { return finish(jobs: []) }
        // Templates: each parsed once, checked against the context of every role it renders for.
        var templates: [String: CompiledTemplate] = [:]
        var failedTemplates = Set<String>()
        var roles: [(Located<String>, TemplateRole)] = []
        if !services.isEmpty { roles += [(mesh.upstreamTemplate, .upstream), (mesh.sidecarTemplate, .sidecar)] }
        roles += gateways.map { ($0.template, .gateway) }
        var checkedRoles = Set<String>()
        for (name, role) in roles {
            let path = ConfigSources.join(inputs.templates, name.value)
            if templates[path] == nil && !failedTemplates.contains(path) {
                if let template = loadTemplate(path, reference: name, meshFile: mesh.file) { templates[path] = template } else { failedTemplates.insert(path) }
            }
            guard let template = templates[path], checkedRoles.insert("\(path)|\(role.rawValue)").inserted else { continue }
            let errors = TemplateChecker.check(template, roots: ContextSchema.roots(role))
            for error in errors { diagnose(templateDiagnostic(error, template.source)) }
            if !errors.isEmpty {
                // Rendering it would only repeat the same mistakes once per service.
                failedTemplates.insert(path)
                templates[path] = nil
            }
        }
        clock.lap("templates")

        // Contexts and jobs.
        var builder = ContextBuilder(mesh: mesh, services: services)
        let names = services.keys.sorted()
        // Each service's values are independent: built on all cores, provenance merged after.
        let base = builder
        let built = Parallel.map(names.count) { i -> (upstream: TemplateValue, service: TemplateValue, provenance: [String: Provenance]) in
            var local = base
            let service = services[names[i]]!
            let routes = local.serviceRoutes(service)
            let upstream = local.upstreamValue(service, routes: routes)
            let value = local.serviceValue(service, routes: routes)
            return (upstream, value, local.provenance)
        }
        var upstreamValues: [String: TemplateValue] = [:]
        upstreamValues.reserveCapacity(names.count)
        for (i, name) in names.enumerated() { upstreamValues[name] = built[i].upstream }
        let meshValue = builder.meshValue
        let upstreamTemplate = templates[ConfigSources.join(inputs.templates, mesh.upstreamTemplate.value)]
        let sidecarTemplate = templates[ConfigSources.join(inputs.templates, mesh.sidecarTemplate.value)]
        // Each service's jobs sit at fixed positions (its index × jobs per service), so they too are built in parallel.
        let perService = (upstreamTemplate != nil ? 1 : 0) + (sidecarTemplate != nil ? 1 : 0)
        let upstreamsByName = upstreamValues, mtlsStrict = mesh.mtlsStrict
        // The upstream resources every group shares are rendered with the default (ADS) config source;
        // groups that subscribe otherwise get their own renderings below.
        let defaultSource = TemplateValue.string(SubscriptionMode.adsStateOfTheWorld.configSource)
        let sidecarSource = TemplateValue.string(mesh.sidecarXDS.configSource)
        let serviceJobs = Parallel.map(names.count) { i -> [RenderJob] in
            let name = names[i]
            let service = services[name]!
            let requireMTLS = mtlsStrict && service.mtlsDisabled == nil
            let inbound = Set(service.ports.map { ResourceNames.inbound(service: name, port: $0.name.value) })
            var out: [RenderJob] = []
            var origin = Compilation.jobOriginBase + Int32(i * perService)
            if let upstreamTemplate {
                out.append(RenderJob(role: .upstream, template: upstreamTemplate, roots: ["mesh": meshValue, "service": built[i].service, "config_source": defaultSource],
                                     origin: origin, owner: name, patches: service.raw.patches, additions: [:],
                                     requireMTLS: requireMTLS, inboundListeners: inbound))
                origin += 1
            }
            if let sidecarTemplate {
                let upstreams = service.dependencies.compactMap { d in services[d.service.value]?.primaryHTTPPort != nil ? upstreamsByName[d.service.value] : nil }
                out.append(RenderJob(role: .sidecar, template: sidecarTemplate, roots: ["mesh": meshValue, "service": built[i].service, "upstreams": .list(upstreams), "config_source": sidecarSource],
                                     origin: origin, owner: name, patches: service.raw.patches, additions: service.raw.additions,
                                     requireMTLS: requireMTLS, inboundListeners: inbound))
            }
            return out
        }
        var jobs: [RenderJob] = []
        jobs.reserveCapacity(names.count * perService + gateways.count)
        var upstreamJob: [String: Int] = [:], sidecarJob: [String: Int] = [:], gatewayJob: [String: Int] = [:]
        for (i, name) in names.enumerated() {
            for job in serviceJobs[i] {
                if job.role == .upstream { upstreamJob[name] = jobs.count } else { sidecarJob[name] = jobs.count }
                jobs.append(job)
            }
        }
        // Provenance is needed only to place diagnostics: merged when there are any.
        let provenanceParts = built.map(\.provenance)
        let reach = Reach(services: services)
        var gatewayReach: [String: [String]] = [:]
        for gateway in gateways {
            let targets = gateway.routes.flatMap { MeshChecks.targets($0).map(\.service.value) }
            let reached = reach.closure(of: targets)
            gatewayReach[gateway.name.value] = reached
            guard let template = templates[ConfigSources.join(inputs.templates, gateway.template.value)] else { continue }
            let value = builder.gatewayValue(gateway)
            let upstreams = reached.compactMap { services[$0]?.primaryHTTPPort != nil ? upstreamValues[$0] : nil }
            gatewayJob[gateway.name.value] = jobs.count
            jobs.append(RenderJob(role: .gateway, template: template, roots: ["mesh": meshValue, "group": value, "upstreams": .list(upstreams),
                                                                           "config_source": .string(gateway.xds.configSource)],
                                  origin: Self.jobOriginBase + Int32(jobs.count), owner: gateway.name.value, patches: [:], additions: [:],
                                  requireMTLS: false, inboundListeners: []))
        }
        // Groups whose proxies do not subscribe by ADS: the upstream resources they reach, rendered
        // again with their config source (same names, other content; one job per service and source).
        var sidecarReach: [String: [String]] = [:]
        for name in names where sidecarJob[name] != nil {
            sidecarReach[name] = reach.closure(of: services[name]!.dependencies.map(\.service.value))
        }
        var needs: [(reached: [String], mode: SubscriptionMode)] = gateways.map { (gatewayReach[$0.name.value] ?? [], $0.xds) }
        needs += names.compactMap { sidecarReach[$0].map { ($0, mesh.sidecarXDS) } }
        var variantJob: [String: Int] = [:]
        for (reached, mode) in needs where mode.configSource != SubscriptionMode.adsStateOfTheWorld.configSource {
            for service in reached {
                guard let primary = upstreamJob[service].map({ jobs[$0] }), variantJob["\(service)|\(mode.configSource)"] == nil else { continue }
                var roots = primary.roots
                roots["config_source"] = .string(mode.configSource)
                variantJob["\(service)|\(mode.configSource)"] = jobs.count
                jobs.append(RenderJob(role: .upstream, template: primary.template, roots: roots, origin: Self.jobOriginBase + Int32(jobs.count),
                                      owner: primary.owner, patches: primary.patches, additions: primary.additions,
                                      requireMTLS: primary.requireMTLS, inboundListeners: primary.inboundListeners))
            }
        }
        // The job with `service`'s upstream resources as a group subscribing by `mode` needs them.
        func upstream(_ service: String, _ mode: SubscriptionMode) -> Int? {
            variantJob["\(service)|\(mode.configSource)"] ?? upstreamJob[service]
        }
        clock.lap("contexts (\(jobs.count) jobs)")

        // Render, read, validate, encode: every job independent.
        let allJobs = jobs
        let pool = self.pool, encode = self.encode
        let results = Parallel.map(allJobs.count) { ResourceGeneration.run(allJobs[$0], pool: pool, encode: encode) }
        for result in results { pending += result.diagnostics }
        clock.lap("render + read + validate + encode")

        // Raw patches that matched nothing.
        for name in names {
            let service = services[name]!
            guard !service.raw.patches.isEmpty else { continue }
            let own = [upstreamJob[name], sidecarJob[name]].compactMap { $0 }
            guard own.count == 2 else { continue }
            let applied = own.reduce(into: Set<String>()) { $0.formUnion(results[$1].appliedPatches) }
            for (kind, patches) in service.raw.patches {
                let generated = own.flatMap { results[$0].resources.filter { $0.kind == kind }.map(\.name) }
                for patch in patches where !applied.contains("\(kind.rawValue)/\(patch.name.value)") {
                    let hint = closestName(patch.name.value, generated).map { "did you mean '\($0)'? " } ?? ""
                    diagnose(Diagnostic(.error, rule: "config.raw-unknown-resource", message: "envoy.patch names \(kind.singular) '\(patch.name.value)', which the templates do not generate for '\(name)'; \(hint)generated: \(generated.isEmpty ? "none" : generated.joined(separator: ", ")) (use envoy.add for new resources)",
                                        path: "envoy.patch.\(kind.rawValue)", file: service.file, location: patch.name.location))
                }
            }
        }

        // Proxy groups and their reference rules.
        // A group is checked only when every template it is made from rendered.
        var plans: [ProxyGroupPlan] = []
        do {
            for name in names {
                guard let own = sidecarJob[name], let reached = sidecarReach[name] else { continue }
                guard reached.allSatisfy({ upstreamJob[$0] != nil }) else { continue }
                plans.append(ProxyGroupPlan(name: name, kind: "sidecar", jobs: [own] + reached.compactMap { upstream($0, mesh.sidecarXDS) },
                                            identities: [builder.identity(name)],
                                            nodeIDs: mesh.sidecarNodeIDs.map { $0.replacingOccurrences(of: "{service}", with: name) },
                                            xds: mesh.sidecarXDS))
            }
            for gateway in gateways {
                guard let own = gatewayJob[gateway.name.value], (gatewayReach[gateway.name.value] ?? []).allSatisfy({ upstreamJob[$0] != nil }) else { continue }
                plans.append(ProxyGroupPlan(name: gateway.name.value, kind: gateway.kind.rawValue,
                                            jobs: [own] + (gatewayReach[gateway.name.value] ?? []).compactMap { upstream($0, gateway.xds) },
                                            identities: gateway.identities, nodeIDs: gateway.nodeIDs, xds: gateway.xds))
            }
        }
        var clusterOwners: [String: String] = [:]
        for (name, service) in services {
            for port in service.ports { clusterOwners[ResourceNames.cluster(service: name, port: port.name.value)] = name }
        }
        report.groupCount = plans.count
        let allPlans = plans, owners = clusterOwners
        let groupDiagnostics = Parallel.map(allPlans.count) { i -> [PendingDiagnostic] in
            var rules = GroupRules(plan: allPlans[i])
            rules.check(results, clusterOwners: owners)
            return rules.diagnostics
        }
        for list in groupDiagnostics { pending += list }
        clock.lap("group rules (\(plans.count) groups)")

        // Each job's resources are its own (shared ones are generated once per config source), so this counts each resource once.
        report.resourceCount = results.reduce(0) { $0 + $1.resources.count }
        if ExitKeepAlive.enabled { MeshCompiler.keepUntilExit((results, allJobs, services, loaded, builder)) }
        if pending.contains(where: { $0.provenance != nil }) {
            for part in provenanceParts { builder.record(part) }
        }
        var final = finish(jobs: allJobs, provenance: builder.provenance)
        final.jobs = allJobs
        if encode && final.errorCount == 0 {
            final.groups = Parallel.map(allPlans.count) { i in
                let plan = allPlans[i]
                var list: [Resource] = []
                for job in plan.jobs { for r in results[job].resources { if let e = r.encoded { list.append(e) } } }
                list.append(Resource(typeURL: GroupAccess.typeURL, name: plan.name,
                                     body: GroupAccess(group: plan.name, identities: plan.identities, nodeIDs: plan.nodeIDs, xds: plan.xds).encoded()))
                return ProxyGroupResources(group: plan.name, resources: list)
            }
            clock.lap("groups assembled")
        }
        return final
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

    // MARK: Templates

    mutating func loadTemplate(_ path: String, reference: Located<String>, meshFile: String) -> CompiledTemplate? {
        let text: String
        switch ConfigSources.read(path) {
        case .success(let t): text = t
        case .failure(let d):
            if d.rule == "input.missing" {
                diagnose(Diagnostic(.error, rule: "config.missing-template", message: "template '\(reference.value)' does not exist in \(inputs.templates); add it or fix the name", path: "templates", file: meshFile, location: reference.location))
            } else {
                diagnose(d)
            }
            return nil
        }
        report.files.append(path)
        let source = TemplateSource(path: path, text: text)
        let tokens: [TemplateToken]
        do { tokens = try TemplateLexer.tokenize(source) } catch {
            diagnose(templateDiagnostic(error, source))
            return nil
        }
        if let stencil = StencilReference.syntaxError(text) {
            var offset = 0
            if let index = stencil.tokenIndex, index < tokens.count {
                offset = tokens[index].range.lowerBound
            } else if let contents = stencil.tokenContents, let token = tokens.first(where: { $0.kind != .text && $0.contents.contains(contents) }) {
                offset = token.range.lowerBound
            }
            diagnose(templateDiagnostic(TemplateError(kind: .syntax, message: "Stencil: \(stencil.message)", offset: offset), source))
            return nil
        }
        do {
            return try CompiledTemplate(source: source)
        } catch {
            diagnose(templateDiagnostic(error, source))
            return nil
        }
    }

    func templateDiagnostic(_ error: TemplateError, _ source: TemplateSource) -> Diagnostic {
        let (line, column) = source.position(ofByte: error.offset)
        return Diagnostic(.error, rule: error.kind.rawValue, message: error.message, path: "", file: source.path, location: SourceLocation(line: line, column: column))
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
        d.file = job.template.source.path
        if rendered[location.origin] == nil {
            // Rendering is deterministic: render again, this time recording where output came from.
            rendered[location.origin] = try? job.template.render(job.roots, tracking: true)
        }
        if let text = rendered[location.origin], let offset = text.sourceOffset(line: Int(location.line), column: Int(location.column)) {
            let (line, column) = job.template.source.position(ofByte: offset)
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
