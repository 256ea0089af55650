// One rendering job (a template for one service or gateway) from context to checked,
// encoded resources: render → parse the YAML (positions tagged with the job's origin) →
// split the bundle by resource kind → merge the service's raw Envoy patches → read as
// Envoy messages → constraints, Envoy's rules, the compiler's resource rules → encode.
import EnvoySchema
import SnapshotStorage

/// A template rendered for one service or gateway.
struct RenderJob: Sendable {
    let role: TemplateRole
    /// nil for a raw group: its resources are all in `additions`.
    let template: CompiledTemplate?
    let roots: [String: TemplateValue]
    /// Stamped on every position in the rendered text: jobOriginBase + the job's index in the plan.
    var origin: Int32
    /// The service or gateway the job renders for.
    let owner: String
    /// Raw Envoy patches of the owning service (merged by kind and name).
    let patches: [ResourceKind: [(name: Located<String>, node: YAMLNode)]]
    /// Extra resources from the service's `envoy.add` (sidecar jobs only), or a raw group's resources.
    let additions: [ResourceKind: [YAMLNode]]
    /// Mesh listeners and clusters of this job must use mutual TLS.
    let requireMTLS: Bool
    /// Names of the sidecar's inbound listeners (they take mesh traffic).
    let inboundListeners: Set<String>
    /// For a proxyless client: the clusters it renders for services that require mutual TLS, and their service.
    var meshClusters: [String: String] = [:]
    /// For a proxyless client: the clusters of mesh services it does not reach (a raw cluster by such a name would
    /// reach an undeclared dependency), and their service.
    var undeclaredClusters: [String: String] = [:]
}

/// One generated resource, checked (and encoded when it has no errors).
struct GeneratedResource: Sendable {
    let kind: ResourceKind
    let name: String
    let nameLocation: SourceLocation?
    let encoded: Resource?
    let facts: ResourceFacts
}

struct JobResult: Sendable {
    var resources: [GeneratedResource] = []
    var diagnostics: [PendingDiagnostic] = []
    /// `kind/name` of the raw patches this job applied.
    var appliedPatches: Set<String> = []
    var hasErrors: Bool { diagnostics.contains { $0.diagnostic.severity == .error } }
}

enum ResourceGeneration {
    static func run(_ job: RenderJob, pool: DescriptorPool, encode: Bool, hostFiles: HostFileCheck, fileReads: HostFileReads? = nil) -> JobResult {
        var result = JobResult()
        func fail(_ rule: String, _ message: String, at location: SourceLocation?) {
            result.diagnostics.append(PendingDiagnostic(diagnostic: Diagnostic(.error, rule: rule, message: message, path: "", location: location), provenance: nil))
        }
        guard let template = job.template else {
            // A raw group: its resources as written in its file (positions are the file's own).
            for (kind, items) in job.additions.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
                for node in items { checkResource(kind: kind, node: node, job: job, pool: pool, encode: encode, hostFiles: hostFiles, fileReads: fileReads, into: &result) }
            }
            return result
        }
        let text: [UInt8]
        do {
            // Parsed as the bytes rendered (valid UTF-8: template text and string values), not copied into a String.
            text = try template.render(job.roots).bytes
        } catch {
            let (line, column) = template.source.position(ofByte: error.offset)
            result.diagnostics.append(PendingDiagnostic(diagnostic: Diagnostic(.error, rule: error.kind.rawValue, message: "rendering for '\(job.owner)': \(error.message)", path: "",
                                                                              file: template.source.path, location: SourceLocation(line: line, column: column)), provenance: nil))
            return result
        }
        let root: YAMLNode
        do {
            guard let node = try YAMLDocument.parse(utf8: text, origin: job.origin) else { return result }
            root = node
        } catch {
            fail("template.output", "the template's output for '\(job.owner)' is not valid YAML (\(error.message)); check the indentation and quoting around this line (values with ':' or '#' need |json)", at: error.location)
            return result
        }
        guard case .mapping(let sections) = root.kind else {
            fail("template.output", "a template must produce a mapping of resource lists (listeners:, clusters:, route_configurations:, cluster_load_assignments:, secrets:)", at: root.location)
            return result
        }
        var nodes: [(kind: ResourceKind, node: YAMLNode)] = []
        for (key, value) in sections {
            guard let kindName = key.scalarText, let kind = ResourceKind(rawValue: kindName) else {
                let known = ResourceKind.allCases.map(\.rawValue)
                let hint = key.scalarText.flatMap { closestName($0, known) }.map { "did you mean '\($0)'? " } ?? ""
                fail("template.output", "unknown resource list '\(key.scalarText ?? "?")' in the template's output; \(hint)use \(known.joined(separator: ", "))", at: key.location)
                continue
            }
            switch value.kind {
            case .sequence(let items): nodes += items.map { (kind, $0) }
            case .scalar where RawEnvoyMerge.isNull(value): continue
            default: fail("template.output", "'\(kindName)' must be a list of resources", at: value.location)
            }
        }
        // Merge raw patches into the resources they name.
        for i in nodes.indices {
            let (kind, node) = nodes[i]
            guard let patches = job.patches[kind], !patches.isEmpty, let name = resourceName(node, kind: kind) else { continue }
            for patch in patches where patch.name.value == name.value {
                nodes[i].node = RawEnvoyMerge.merge(nodes[i].node, patch.node)
                result.appliedPatches.insert("\(kind.rawValue)/\(name.value)")
            }
        }
        for (kind, items) in job.additions.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            nodes += items.map { (kind, $0) }
        }
        for (kind, node) in nodes {
            checkResource(kind: kind, node: node, job: job, pool: pool, encode: encode, hostFiles: hostFiles, fileReads: fileReads, into: &result)
        }
        return result
    }

    static func resourceName(_ node: YAMLNode, kind: ResourceKind) -> Located<String>? {
        guard case .mapping(let pairs) = node.kind else { return nil }
        for (key, value) in pairs where key.scalarText == kind.nameField {
            if let text = value.scalarText { return Located(value: text, location: value.location) }
        }
        return nil
    }

    static func checkResource(kind: ResourceKind, node: YAMLNode, job: RenderJob, pool: DescriptorPool, encode: Bool, hostFiles: HostFileCheck,
                              fileReads: HostFileReads?, into result: inout JobResult) {
        guard let type = pool.messageID(named: kind.typeName) else { return }
        let errorsBefore = result.diagnostics.count { $0.diagnostic.severity == .error }
        var reader = TextReader(pool: pool, syntax: .yaml, file: nil)
        let message = reader.readMessage(node, type: type)
        let pending = reader.diagnostics.map { PendingDiagnostic(diagnostic: $0, provenance: nil) }
        result.diagnostics += pending
        guard let message else { return }
        let name = resourceName(node, kind: kind)
        if name == nil || name!.value.isEmpty {
            result.diagnostics.append(PendingDiagnostic(diagnostic: Diagnostic(.error, rule: "xref.resource-name", message: "every \(kind.singular) needs a '\(kind.nameField)' (the name proxies ask for); add one", path: "", location: node.location), provenance: nil))
        }
        var validator = ConstraintValidator(pool: pool, file: nil)
        validator.validate(message)
        var envoyRules = BootstrapChecks(pool: pool, file: nil)
        envoyRules.checkHostFiles = hostFiles != .off
        envoyRules.hostFileReads = fileReads
        envoyRules.check(resource: message)
        // Duplicate domains are checked by the compiler's route rules, which know which service file declared them.
        let envoyDiagnostics = envoyRules.diagnostics.filter { $0.rule != "xref.duplicate-domain" }.map { diagnostic in
            guard HostFileCheck.rules.contains(diagnostic.rule) else { return diagnostic }
            // Checked here, needed there: say which host was looked at and how to make it an error.
            var onProxyHost = diagnostic
            onProxyHost.message += " (checked on \(HostFileCheck.thisHost), the host running meshctl; every proxy of the group needs it on its own host\(hostFiles == .warning ? "; --host-files error makes this an error" : ""))"
            if hostFiles == .warning { onProxyHost.severity = .warning }
            return onProxyHost
        }
        result.diagnostics += (validator.diagnostics + envoyDiagnostics).map { PendingDiagnostic(diagnostic: $0, provenance: nil) }
        var rules = ResourceRules(pool: pool)
        let view = MessageView(pool: pool, message: message, path: "")
        let facts = rules.analyze(view, kind: kind)
        if job.requireMTLS {
            switch (job.role, kind) {
            case (.upstream, .clusters):
                rules.checkMeshCluster(view, service: job.owner)
            case (.grpcClient, .clusters):
                if let service = job.meshClusters[name?.value ?? ""] { rules.checkMeshCluster(view, service: service) }
            case (.sidecar, .listeners):
                let inbound = view.enumNumber("traffic_direction") == 1 || job.inboundListeners.contains(name?.value ?? "")
                if inbound { rules.checkMeshListener(view, service: job.owner) }
            default:
                break
            }
        }
        if job.role == .grpcClient, kind == .clusters, let service = job.undeclaredClusters[name?.value ?? ""] {
            // Raw Envoy (envoy.add) in a proxyless group obeys the same dependency rule as generated resources.
            rules.report(.error, "mesh.undeclared-dependency", "cluster '\(name!.value)' reaches service '\(service)', which '\(job.owner)' does not declare; add '\(service)' to its dependencies (its routes, cluster and endpoints are then generated)",
                         path: "name", at: name?.location)
        }
        // A proxyless gRPC client's group is read by gRPC, not Envoy: its rules too, for everything in the job.
        if job.role == .grpcClient { rules.checkGRPCProfile(view, kind: kind) }
        result.diagnostics += rules.diagnostics
        let hasErrors = result.diagnostics.count { $0.diagnostic.severity == .error } > errorsBefore
        var encoded: Resource?
        if encode && !hasErrors, let name {
            encoded = Resource(typeURL: kind.typeURL, name: name.value, body: message.serialized(pool: pool))
        }
        result.resources.append(GeneratedResource(kind: kind, name: name?.value ?? "", nameLocation: name?.location ?? node.location, encoded: encoded, facts: facts))
    }
}

