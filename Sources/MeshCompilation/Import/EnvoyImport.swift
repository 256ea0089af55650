// `meshctl import`: a flat Envoy bootstrap (hand-written, deployed to hosts) → a raw proxy group in
// Configs/groups/NAME.yaml, served by `meshctl serve` as LDS/RDS/CDS/EDS/SDS. The bootstrap is read and
// validated by the schema engine (positions exact), then rearranged on its canonical JSON form:
// - listeners become LDS resources (a listener without a name gets one: xDS resources are named);
// - each HTTP connection manager's inline `route_config` becomes an RDS RouteConfiguration, and the HCM
//   names it through the group's config source (`rds`);
// - a STATIC cluster's `load_assignment` becomes its EDS ClusterLoadAssignment (the cluster turns EDS);
//   DNS and other cluster types keep theirs inline — EDS does not resolve host names;
// - static secrets become SDS secrets, and every SDS reference to them gets the group's config source.
// Everything else in the bootstrap is listed by field path with the reason it is not imported: nothing is
// dropped silently. Errors (unusable input) stop the import; what is not imported is a warning.
import EnvoySchema
import Foundation
import MeshModel

/// What an import produced: the group file's text (nil when there are errors) and every finding.
public struct ImportOutcome: Sendable {
    public var text: String?
    /// Errors (the input cannot be imported), warnings (something is not imported), infos (how something was imported).
    public var diagnostics: [Diagnostic] = []
    /// How many resources of each kind the group holds.
    public var counts: [String: Int] = [:]
    /// From the bootstrap: its node id and admin port (carried over to the printed `meshctl bootstrap` command).
    public var nodeID: String?
    public var adminPort: Int?

    public var errorCount: Int { diagnostics.count { $0.severity == .error } }
    public var warningCount: Int { diagnostics.count { $0.severity == .warning } }
}

public enum EnvoyImport {
    static let hcmType = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"

    /// Why a bootstrap field other than `static_resources` is not imported (the default: a bootstrap-only setting).
    static let notImportedReasons: [String: String] = [
        "admin": "the admin interface is part of the bootstrap; the printed meshctl bootstrap command sets its port (--admin-port), always on 127.0.0.1 — its address, access log and socket options are not carried over",
        "dynamic_resources": "meshctl bootstrap points the proxy at meshctl serve (ADS or per-type xDS); the flat file's own LDS/CDS/ADS sources are replaced",
        "layered_runtime": "runtime layers are bootstrap-only (RTDS is not served by meshctl); set them in the proxy's bootstrap by hand",
        "stats_sinks": "stats sinks are bootstrap-only; xDS cannot deliver them",
        "stats_config": "stats tags and matchers are bootstrap-only; xDS cannot deliver them",
        "stats_flush_interval": "a bootstrap-only setting; xDS cannot deliver it",
        "stats_flush_on_admin": "a bootstrap-only setting; xDS cannot deliver it",
        "cluster_manager": "cluster manager settings (local cluster, outlier event log, load stats) are bootstrap-only",
        "overload_manager": "the overload manager is bootstrap-only; xDS cannot deliver it",
        "tracing": "bootstrap-level tracing is deprecated in Envoy and bootstrap-only; configure tracing in each HTTP connection manager (`tracing.provider`) instead",
        "watchdog": "watchdog settings are bootstrap-only",
        "watchdogs": "watchdog settings are bootstrap-only",
        "hds_config": "health discovery (HDS) is bootstrap-only and not served by meshctl",
        "flags_path": "a bootstrap-only setting (a directory on the proxy's host)",
        "bootstrap_extensions": "bootstrap extensions are bootstrap-only",
        "fatal_actions": "fatal actions are bootstrap-only",
        "default_regex_engine": "the regex engine is chosen in the bootstrap only",
        "default_socket_interface": "the socket interface is chosen in the bootstrap only",
        "certificate_provider_instances": "certificate provider instances are bootstrap-only",
        "typed_dns_resolver_config": "the DNS resolver is chosen in the bootstrap only",
        "dns_resolution_config": "the DNS resolver is chosen in the bootstrap only",
        "use_tcp_for_dns_lookups": "the DNS resolver is chosen in the bootstrap only",
        "header_prefix": "a bootstrap-only setting",
        "node_context_params": "meshctl bootstrap writes the node; its xDS context parameters are not carried over",
        "inline_headers": "a bootstrap-only setting",
        "application_log_config": "Envoy's own log format is bootstrap-only",
        "listener_manager": "the listener manager is chosen in the bootstrap only",
    ]

    /// Imports the bootstrap `text` (from `file`) as raw group `group` whose proxies subscribe by `mode`.
    public static func convert(text: String, file: String, group: String, mode: SubscriptionMode, pool: DescriptorPool) -> ImportOutcome {
        var outcome = ImportOutcome()
        guard let bootstrapType = pool.messageID(named: TypeNames.bootstrap),
              let sourceType = pool.messageID(named: "envoy.config.core.v3.ConfigSource") else {
            outcome.diagnostics.append(Diagnostic(.error, rule: "import.schema", message: "the Envoy schema has no Bootstrap or ConfigSource type", path: "", file: file))
            return outcome
        }
        // Every check `meshctl validate --envoy` makes, except the host's files: they live on the proxies' hosts.
        let syntax = InputSyntax(fileName: file)
        let validation = BootstrapValidation.validate(text: text, file: file, syntax: syntax, pool: pool, checkHostFiles: false)
        outcome.diagnostics += validation
        guard !validation.contains(where: { $0.severity == .error }) else { return outcome }
        guard case .success(let root) = ConfigDocument.parseNode(text, file: file) else { return outcome }
        let (message, readDiagnostics) = ConfigDocument.read(node: root, file: file, syntax: syntax, type: bootstrapType, pool: pool)
        guard let message else {
            outcome.diagnostics += readDiagnostics
            return outcome
        }
        let (sourceMessage, _) = ConfigDocument.read(text: mode.configSource, file: nil, syntax: .yaml, type: sourceType, pool: pool)
        guard let sourceMessage else { return outcome }
        // Private keys are imported as written: never redacted here (the group would not work), never printed.
        let writer = TextWriter(pool: pool, redactSensitive: false)
        let source = writer.json(sourceMessage)
        guard case .object(let top) = writer.json(message) else { return outcome }
        var importer = Importer(file: file, group: group, root: root, source: source)
        for (key, value) in top {
            switch key {
            case "static_resources": importer.staticResources(value)
            case "node": importer.node(value)
            case "admin":
                importer.adminPort = value["address"]?["socket_address"]?["port_value"]?.intValue
                importer.notImported(key)
            default: importer.notImported(key)
            }
        }
        outcome.diagnostics += importer.diagnostics
        outcome.nodeID = importer.nodeID
        outcome.adminPort = importer.adminPort
        let kinds: [(ResourceKind, [JSONValue])] = [(.listeners, importer.listeners), (.clusters, importer.clusters),
                                                     (.routeConfigurations, importer.routes), (.clusterLoadAssignments, importer.assignments),
                                                     (.secrets, importer.secrets)]
        for (kind, list) in kinds { outcome.counts[kind.rawValue] = list.count }
        guard kinds.contains(where: { !$0.1.isEmpty }) else {
            outcome.diagnostics.append(Diagnostic(.error, rule: "import.no-resources", message: "the bootstrap has no static_resources (listeners, clusters, secrets): there is nothing to serve; a bootstrap that takes everything from xDS already needs no import",
                                                  path: "static_resources", file: file, location: root.location))
            return outcome
        }
        let resources = JSONValue.object(kinds.filter { !$0.1.isEmpty }.map { ($0.0.rawValue, .array($0.1)) })
        let body = JSONValue.object([("name", .string(group)), ("xds", .string(mode.rawValue)), ("envoy", .object([("add", resources)]))])
        var header = "# Raw proxy group '\(group)', imported by `meshctl import` from \(file).\n"
        header += "# Served as is by meshctl serve (LDS, RDS, CDS, EDS, SDS); see docs/CONFIG.md, \"Raw groups\".\n"
        header += "# Its RDS/EDS/SDS config sources are written for xds: \(mode.rawValue); re-import to change the mode.\n"
        let skipped = outcome.diagnostics.filter { $0.rule == "import.not-imported" }
        if !skipped.isEmpty {
            header += "# Not imported (bootstrap-only; see the import's output for the reasons):\n"
            for d in skipped { header += "#   \(d.path)\(d.location.map { " (line \($0.line))" } ?? "")\n" }
        }
        outcome.text = header + TextWriter.yaml(body)
        outcome.diagnostics.sort(by: Diagnostic.reportOrder)
        return outcome
    }
}

/// One import's state: the resources collected so far and the findings, positioned in the input.
private struct Importer {
    let file: String
    let group: String
    let root: YAMLNode
    /// The group's ConfigSource (RDS, EDS, SDS), as JSON.
    let source: JSONValue
    var diagnostics: [Diagnostic] = []
    var listeners: [JSONValue] = []
    var clusters: [JSONValue] = []
    var routes: [JSONValue] = []
    var assignments: [JSONValue] = []
    var secrets: [JSONValue] = []
    var nodeID: String?
    var adminPort: Int?
    /// Route configuration name → its content (to share identical ones and rename clashing ones).
    var routeContents: [String: JSONValue] = [:]
    var staticSecretNames = Set<String>()

    init(file: String, group: String, root: YAMLNode, source: JSONValue) {
        self.file = file
        self.group = group
        self.root = root
        self.source = source
    }

    /// The position of `path` (field names and list indices) in the input, or of its nearest ancestor found.
    func location(_ path: [PathStep]) -> SourceLocation? {
        var node = root
        for (i, step) in path.enumerated() {
            switch (step, node.kind) {
            case (.field(let name), .mapping(let pairs)):
                let camel = Self.camelCase(name)
                guard let pair = pairs.first(where: { $0.key.scalarText == name || $0.key.scalarText == camel }) else { return node.location }
                // A field is reported at its key.
                if i == path.count - 1 { return pair.key.location }
                node = pair.value
            case (.index(let index), .sequence(let items)) where items.indices.contains(index):
                node = items[index]
            default:
                return node.location
            }
        }
        return node.location
    }

    static func camelCase(_ s: String) -> String {
        var out = "", upper = false
        for c in s {
            if c == "_" { upper = true; continue }
            out += upper ? c.uppercased() : String(c)
            upper = false
        }
        return out
    }

    mutating func note(_ severity: Diagnostic.Severity, _ rule: String, _ message: String, _ path: [PathStep]) {
        diagnostics.append(Diagnostic(severity, rule: rule, message: message, path: PathStep.text(path), file: file, location: location(path)))
    }

    mutating func notImported(_ key: String) {
        let reason = EnvoyImport.notImportedReasons[key] ?? "a bootstrap-only setting: xDS cannot deliver it, and meshctl bootstrap does not write it"
        note(.warning, "import.not-imported", "not imported: \(reason)", [.field(key)])
    }

    mutating func node(_ value: JSONValue) {
        guard case .object(let fields) = value else { return }
        for (key, item) in fields {
            switch key {
            case "id":
                nodeID = item.stringValue
                note(.info, "import.node", "the node id goes to the printed meshctl bootstrap command (--node-id)", [.field("node"), .field(key)])
            case "cluster":
                note(.info, "import.node", "replaced: the node cluster is the proxy group, '\(group)' (--node-cluster)", [.field("node"), .field(key)])
            default:
                note(.warning, "import.not-imported", "not imported: meshctl bootstrap writes the node's id and cluster only", [.field("node"), .field(key)])
            }
        }
    }

    mutating func staticResources(_ value: JSONValue) {
        guard case .object(let fields) = value else { return }
        // Secrets first: references to them are rewritten while listeners and clusters are read.
        for (i, secret) in (value["secrets"]?.arrayValue ?? []).enumerated() {
            let path: [PathStep] = [.field("static_resources"), .field("secrets"), .index(i)]
            if let name = secret["name"]?.stringValue { staticSecretNames.insert(name) }
            if Self.hasInlinePrivateKey(secret) {
                note(.warning, "import.inline-private-key", "this secret holds a private key inline: it is imported as written, so it is kept in Configs/, in the snapshot store and sent over xDS; put the key in a file on the proxy's host (private_key: {filename: ...}) instead", path)
            }
            secrets.append(secret)
        }
        for (key, list) in fields {
            switch key {
            case "listeners":
                for (i, listener) in (list.arrayValue ?? []).enumerated() { self.listener(listener, index: i) }
            case "clusters":
                for (i, cluster) in (list.arrayValue ?? []).enumerated() { self.cluster(cluster, index: i) }
            case "secrets":
                break
            default:
                note(.warning, "import.not-imported", "not imported: meshctl import knows listeners, clusters and secrets", [.field("static_resources"), .field(key)])
            }
        }
    }

    mutating func listener(_ original: JSONValue, index: Int) {
        let path: [PathStep] = [.field("static_resources"), .field("listeners"), .index(index)]
        var listener = original
        var name = listener["name"]?.stringValue ?? ""
        if name.isEmpty {
            // Envoy names an unnamed static listener itself; xDS resources need a name, so the import gives one.
            let address = listener["address"]?["socket_address"]
            let host = address?["address"]?.stringValue ?? "listener"
            let port = address?["port_value"]?.intValue.map(String.init) ?? "\(index)"
            name = "\(host)_\(port)"
            while listeners.contains(where: { $0["name"]?.stringValue == name }) { name += "_\(index)" }
            listener = listener.setting("name", .string(name), first: true)
            note(.info, "import.named", "the listener has no name; it is served as '\(name)' (LDS names every listener)", path)
        }
        if Self.hasInlinePrivateKey(listener) {
            note(.warning, "import.inline-private-key", "this listener's TLS context holds a private key inline: it is imported as written, so it is kept in Configs/, in the snapshot store and sent over xDS; put the key in a file on the proxy's host, or in an SDS secret that names a file", path)
        }
        var routeIndex = 0
        listener = rewriteConnectionManagers(listener, listenerName: name, routeIndex: &routeIndex, path: path)
        listener = withSecretSources(listener)
        listeners.append(listener)
    }

    /// Each HTTP connection manager with an inline route_config: the routes become an RDS resource and the HCM names it.
    mutating func rewriteConnectionManagers(_ value: JSONValue, listenerName: String, routeIndex: inout Int, path: [PathStep]) -> JSONValue {
        switch value {
        case .object(var members):
            if value["@type"]?.stringValue == EnvoyImport.hcmType, let at = members.firstIndex(where: { $0.0 == "route_config" }) {
                let routeConfig = members[at].1
                var name = routeConfig["name"]?.stringValue ?? ""
                routeIndex += 1
                if name.isEmpty {
                    name = routeIndex == 1 ? listenerName : "\(listenerName).\(routeIndex)"
                    note(.info, "import.named", "the inline route_config has no name; it is served by RDS as '\(name)'", path)
                }
                var content = routeConfig.setting("name", .string(name), first: true)
                if let existing = routeContents[name], existing != content {
                    // Flat files often call every listener's routes `local_route`; RDS names must be unique.
                    let renamed = "\(name).\(listenerName)"
                    note(.info, "import.named", "another listener has different routes named '\(name)'; these are served by RDS as '\(renamed)'", path)
                    name = renamed
                    content = content.setting("name", .string(name), first: true)
                }
                if routeContents[name] == nil {
                    routeContents[name] = content
                    routes.append(withSecretSources(content))
                }
                members[at] = ("rds", .object([("config_source", source), ("route_config_name", .string(name))]))
            }
            for i in members.indices {
                members[i].1 = rewriteConnectionManagers(members[i].1, listenerName: listenerName, routeIndex: &routeIndex, path: path)
            }
            return .object(members)
        case .array(var items):
            for i in items.indices { items[i] = rewriteConnectionManagers(items[i], listenerName: listenerName, routeIndex: &routeIndex, path: path) }
            return .array(items)
        default:
            return value
        }
    }

    mutating func cluster(_ original: JSONValue, index: Int) {
        let path: [PathStep] = [.field("static_resources"), .field("clusters"), .index(index)]
        var cluster = withSecretSources(original)
        let name = cluster["name"]?.stringValue ?? ""
        // `type` sits in a oneof with `cluster_type`: written when set, STATIC when neither is.
        let type = cluster["type"]?.stringValue ?? (cluster["cluster_type"] == nil ? "STATIC" : "custom")
        if Self.hasInlinePrivateKey(cluster) {
            note(.warning, "import.inline-private-key", "this cluster's TLS context holds a private key inline: it is imported as written, so it is kept in Configs/, in the snapshot store and sent over xDS; put the key in a file on the proxy's host instead", path)
        }
        let addresses = Self.endpointAddresses(cluster["load_assignment"])
        if type == "STATIC", cluster["load_assignment"] != nil, Set(addresses).count < addresses.count {
            // Seen with Envoy 1.40: endpoints sharing an address are kept apart in a static load_assignment, merged when
            // they come by EDS — so such a cluster stays as written.
            note(.info, "import.inline-endpoints", "two endpoints of this STATIC cluster share an address: it keeps its load_assignment inline (CDS), because Envoy merges endpoints with one address when they come by EDS", path + [.field("load_assignment")])
        } else if type == "STATIC", let assignment = cluster["load_assignment"] {
            cluster = cluster.removing("load_assignment").removing("type")
            cluster = cluster.setting("type", .string("EDS"), after: "name")
            cluster = cluster.setting("eds_cluster_config", .object([("eds_config", source)]), after: "type")
            assignments.append(assignment.setting("cluster_name", .string(name), first: true))
        } else if cluster["load_assignment"] != nil {
            note(.info, "import.inline-endpoints", "a \(type) cluster keeps its load_assignment inline (CDS): EDS serves addresses and does not resolve host names", path + [.field("load_assignment")])
        }
        clusters.append(cluster)
    }

    /// Each endpoint's socket address (`host:port`) in a load assignment.
    static func endpointAddresses(_ assignment: JSONValue?) -> [String] {
        var out: [String] = []
        for locality in assignment?["endpoints"]?.arrayValue ?? [] {
            for endpoint in locality["lb_endpoints"]?.arrayValue ?? [] {
                guard let socket = endpoint["endpoint"]?["address"]?["socket_address"] else { continue }
                out.append("\(socket["address"]?.stringValue ?? ""):\(socket["port_value"]?.intValue ?? 0)")
            }
        }
        return out
    }

    /// SDS references (`…_sds_secret_config(s)`) to the bootstrap's static secrets, which become SDS resources: they
    /// name the group's config source (a reference without `sds_config` means "a static secret" to Envoy).
    func withSecretSources(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let members):
            return .object(members.map { key, item in
                if key.hasSuffix("sds_secret_config") { return (key, withSource(item)) }
                if key.hasSuffix("sds_secret_configs"), case .array(let list) = item { return (key, .array(list.map(withSource))) }
                return (key, withSecretSources(item))
            })
        case .array(let items):
            return .array(items.map(withSecretSources))
        default:
            return value
        }
    }

    func withSource(_ reference: JSONValue) -> JSONValue {
        guard reference["sds_config"] == nil, let name = reference["name"]?.stringValue, staticSecretNames.contains(name) else { return reference }
        return reference.setting("sds_config", source, after: "name")
    }

    /// A `private_key` (or PKCS#12 / key-pair) data source written inline rather than as a file.
    static func hasInlinePrivateKey(_ value: JSONValue) -> Bool {
        switch value {
        case .object(let members):
            for (key, item) in members {
                if ["private_key", "pkcs12"].contains(key), item["inline_string"] != nil || item["inline_bytes"] != nil { return true }
                if hasInlinePrivateKey(item) { return true }
            }
            return false
        case .array(let items):
            return items.contains(where: hasInlinePrivateKey)
        default:
            return false
        }
    }
}

/// A step of a field path in the input bootstrap.
enum PathStep: Equatable {
    case field(String)
    case index(Int)

    static func text(_ path: [PathStep]) -> String {
        var out = ""
        for step in path {
            switch step {
            case .field(let name): out += (out.isEmpty ? "" : ".") + name
            case .index(let i): out += "[\(i)]"
            }
        }
        return out
    }
}

extension JSONValue {
    subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    /// Numbers, and 64-bit integers (which proto JSON writes as strings).
    var intValue: Int? {
        switch self {
        case .number(let n): return Int(n)
        case .string(let s): return Int(s)
        default: return nil
        }
    }

    /// The object with `key` set to `value`: replaced in place, else inserted first or after `after` (else last).
    func setting(_ key: String, _ value: JSONValue, first: Bool = false, after: String? = nil) -> JSONValue {
        guard case .object(var members) = self else { return self }
        if let i = members.firstIndex(where: { $0.0 == key }) {
            members[i].1 = value
        } else if first {
            members.insert((key, value), at: 0)
        } else if let after, let i = members.firstIndex(where: { $0.0 == after }) {
            members.insert((key, value), at: i + 1)
        } else {
            members.append((key, value))
        }
        return .object(members)
    }

    func removing(_ key: String) -> JSONValue {
        guard case .object(let members) = self else { return self }
        return .object(members.filter { $0.0 != key })
    }
}

/// Why an import cannot start (a usage error: exit 2).
public struct ImportUsageError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// An import into a Configs/ directory: the outcome, and when it was written, where and how to bootstrap its proxies.
public struct ImportResult: Sendable {
    public var outcome: ImportOutcome
    /// Configs/groups/GROUP.yaml, when written.
    public var groupFile: String?
    /// The `meshctl bootstrap` command line that replaces the flat file (when written).
    public var bootstrapCommand: String?
}

extension EnvoyImport {
    /// Imports `file` as raw group `group` into `configs`: refuses a name a service, gateway or raw group already has
    /// and an existing group file (unless `force`), writes Configs/groups/GROUP.yaml (temporary file, then rename)
    /// only when the import has no errors.
    /// - Parameter strict: warnings (something not imported) also stop the import before anything is written.
    public static func run(file: String, group: String, configs: String, mode: SubscriptionMode, force: Bool, strict: Bool = false,
                           pool: DescriptorPool) throws(ImportUsageError) -> ImportResult {
        guard ConfigReader.isName(group) else {
            throw ImportUsageError(description: "'\(group)' is not a valid group name; use lowercase letters, digits and '-' (start with a letter, at most 63 characters) — it becomes the proxies' node cluster")
        }
        switch ConfigSources.entry(configs) {
        case .directory: break
        case .missing: throw ImportUsageError(description: "\(configs): no such directory; pass the Configs/ directory with --configs")
        default: throw ImportUsageError(description: "\(configs) is not a directory; pass the Configs/ directory with --configs")
        }
        guard ConfigSources.entry(ConfigSources.join(configs, "mesh.yaml")) == .file else {
            throw ImportUsageError(description: "\(configs) has no mesh.yaml: a raw group joins a mesh (its xDS server and certificates come from mesh.yaml); create it first, see docs/CONFIG.md")
        }
        let text: String
        switch ConfigSources.read(file) {
        case .success(let t): text = t
        case .failure(let d):
            if d.rule == "input.missing" || d.rule == "input.not-a-file" { throw ImportUsageError(description: "\(file): \(d.message)") }
            return ImportResult(outcome: ImportOutcome(diagnostics: [d]))
        }
        // Which proxy groups exist: the compiler's own reading of Configs/ (load and mesh rules).
        var compilation = Compilation(inputs: CompileInputs(configs: configs, templates: "templates"), pool: pool, encode: false)
        var mesh = MeshDefinition(file: ConfigSources.join(configs, "mesh.yaml"))
        var owners: [String: String] = [:]
        do {
            if let sources = try compilation.locate() {
                let loaded = compilation.load(sources)
                mesh = loaded.mesh
                for service in loaded.services.compactMap(\.definition) { owners[service.name.value] = "service '\(service.name.value)' in \(service.file)" }
                for gateway in loaded.mesh.gateways { owners[gateway.name.value] = "gateway '\(gateway.name.value)' in \(loaded.mesh.file)" }
                for raw in loaded.rawGroups where owners[raw.name.value] == nil { owners[raw.name.value] = "raw group '\(raw.name.value)' in \(raw.file)" }
            }
        } catch {
            throw ImportUsageError(description: error.description)
        }
        let groupsDirectory = ConfigSources.join(configs, "groups")
        let target = ConfigSources.join(groupsDirectory, group + ".yaml")
        let targetExists = ConfigSources.entry(target) != .missing
        if let owner = owners[group], !(force && targetExists && owner.hasSuffix(" in \(target)")) {
            let hint = owner.hasPrefix("raw group") && owner.hasSuffix(" in \(target)") ? "pass --force to replace it, or choose another --group" : "choose another --group"
            throw ImportUsageError(description: "proxy group '\(group)' already exists: \(owner); \(hint)")
        }
        if targetExists && !force {
            throw ImportUsageError(description: "\(target) already exists; pass --force to replace it, or choose another --group")
        }
        let outcome = convert(text: text, file: file, group: group, mode: mode, pool: pool)
        guard outcome.errorCount == 0, !(strict && outcome.warningCount > 0), let body = outcome.text else { return ImportResult(outcome: outcome) }
        do {
            try FileManager.default.createDirectory(atPath: groupsDirectory, withIntermediateDirectories: true)
            try writeReplacing(target, body)
        } catch {
            throw ImportUsageError(description: "\(target): cannot write the group (\(error.localizedDescription)); nothing was changed")
        }
        var command = ["meshctl", "bootstrap", "--node-id", outcome.nodeID.flatMap { $0.isEmpty ? nil : $0 } ?? "\(group)-1", "--node-cluster", group,
                       "--server", "\(mesh.xdsAddress):\(mesh.xdsPort)",
                       "--cert", mesh.certificatePath(mesh.certificatePattern, proxy: group),
                       "--key", mesh.certificatePath(mesh.privateKeyPattern, proxy: group),
                       "--ca", mesh.certificatePath(mesh.caFile, proxy: group)]
        if mode != .adsStateOfTheWorld { command += ["--mode", mode.rawValue] }
        if let port = outcome.adminPort, port > 0 { command += ["--admin-port", String(port)] }
        return ImportResult(outcome: outcome, groupFile: target,
                            bootstrapCommand: command.map { $0.contains(" ") || $0.isEmpty ? "'\($0)'" : $0 }.joined(separator: " "))
    }

    /// Writes `path` through a temporary file in the same directory, renamed into place: a reader (or a crash) sees the
    /// old file or the new one, never half of one.
    static func writeReplacing(_ path: String, _ text: String) throws {
        let directory = (path as NSString).deletingLastPathComponent
        let temporary = ConfigSources.join(directory, ".\((path as NSString).lastPathComponent).\(getpid()).tmp")
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary])
        }
        let fd = open(temporary, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
    }
}
