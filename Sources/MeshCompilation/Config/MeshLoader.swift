// Configs/mesh.yaml and Configs/services/*.yaml (already parsed to YAML nodes) → the
// typed model, reporting every problem at its key or value.
import EnvoySchema
import Foundation
import MeshModel
import NetworkAddress

enum MeshLoader {
    static let meshKeys = ["mesh", "xds_server", "certificates", "defaults", "templates", "sidecars", "gateways", "rollout"]
    static let serviceKeys = ["name", "description", "owners", "ports", "endpoints", "hosts", "sidecar", "dependencies", "routes",
                              "timeout", "connect_timeout", "retries", "mtls", "security", "envoy", "rollout", "proxyless"]
    /// What a proxyless client (`proxyless: grpc`) cannot have: it has no sidecar and serves nothing.
    /// Its routes' defaults (timeout, retries, connect_timeout) and its mTLS opt-out would apply to nothing.
    static let proxylessForbiddenKeys = ["ports", "endpoints", "hosts", "sidecar", "routes", "security", "timeout", "connect_timeout", "retries", "mtls"]
    static let routeKeys = ["name", "match", "service", "port", "split", "redirect", "direct_response", "timeout", "retries", "mirror", "rewrite_prefix"]
    /// Envoy's `retry_on` conditions (HTTP and gRPC).
    static let retryConditions = ["5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited", "retriable-4xx",
                                  "refused-stream", "retriable-status-codes", "retriable-headers", "http3-post-connect-failure",
                                  "cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"]
    /// The `xds` values: `meshctl bootstrap`'s subscription modes.
    static let xdsModes = SubscriptionMode.allCases.map(\.rawValue)

    // MARK: mesh.yaml

    static func mesh(_ node: YAMLNode, file: String, reader: inout ConfigReader) -> MeshDefinition {
        var mesh = MeshDefinition(file: file)
        mesh.location = node.location
        guard let top = reader.fields(node, path: "", what: "mesh.yaml", known: meshKeys, required: ["mesh"]) else { return mesh }
        if let node = top["mesh"], let f = reader.fields(node, path: "mesh", what: "'mesh'", known: ["name", "trust_domain"], required: ["name"]) {
            if let v = reader.name(f["name"], path: "mesh.name", what: "mesh name") { mesh.name = v.value }
            if let v = reader.string(f["trust_domain"], path: "mesh.trust_domain") {
                if v.value.isEmpty || v.value.contains("/") || v.value.contains(":") {
                    reader.report("config.value", "trust domain '\(v.value)' must be a domain name such as mesh.local (no scheme, no '/')", path: "mesh.trust_domain", at: v.location)
                } else {
                    mesh.trustDomain = v.value
                }
            }
        }
        if let node = top["xds_server"], let f = reader.fields(node, path: "xds_server", what: "'xds_server'", known: ["address", "port"], required: ["address", "port"]) {
            if let v = reader.string(f["address"], path: "xds_server.address") { mesh.xdsAddress = v.value }
            if let v = reader.port(f["port"], path: "xds_server.port", what: "the xDS server port") { mesh.xdsPort = v.value }
        }
        if let node = top["certificates"], let f = reader.fields(node, path: "certificates", what: "'certificates'", known: ["directory", "ca", "certificate", "private_key"], required: ["directory"]) {
            if let v = reader.string(f["directory"], path: "certificates.directory") {
                if v.value.hasPrefix("/") { mesh.certificateDirectory = v.value } else {
                    reader.report("config.value", "certificates.directory must be an absolute path (the directory every proxy has, e.g. /etc/meshctl/certs)", path: "certificates.directory", at: v.location)
                }
            }
            if let v = reader.string(f["ca"], path: "certificates.ca") { mesh.caFile = v.value }
            if let v = reader.string(f["certificate"], path: "certificates.certificate") { mesh.certificatePattern = v.value }
            if let v = reader.string(f["private_key"], path: "certificates.private_key") { mesh.privateKeyPattern = v.value }
        }
        if let node = top["defaults"], let f = reader.fields(node, path: "defaults", what: "'defaults'", known: ["connect_timeout", "timeout", "retries", "mtls"]) {
            if let v = reader.duration(f["connect_timeout"], path: "defaults.connect_timeout") { mesh.connectTimeout = positive(v, path: "defaults.connect_timeout", &reader) ?? mesh.connectTimeout }
            if let v = reader.duration(f["timeout"], path: "defaults.timeout") { mesh.timeout = v.value }
            if let n = f["retries"] { mesh.retries = retries(n, path: "defaults.retries", &reader) }
            if let v = reader.choice(f["mtls"], path: "defaults.mtls", allowed: ["strict", "disabled"]) { mesh.mtlsStrict = v.value == "strict" }
        }
        if let node = top["templates"], let f = reader.fields(node, path: "templates", what: "'templates'", known: ["upstream", "sidecar", "grpc_client"]) {
            if let v = reader.string(f["upstream"], path: "templates.upstream") { mesh.upstreamTemplate = v }
            if let v = reader.string(f["grpc_client"], path: "templates.grpc_client") { mesh.grpcClientTemplate = v }
            if let v = reader.string(f["sidecar"], path: "templates.sidecar") { mesh.sidecarTemplate = v }
        }
        if let node = top["sidecars"], let f = reader.fields(node, path: "sidecars", what: "'sidecars'", known: ["address", "outbound_address", "identity", "node_ids", "xds"]) {
            if let v = reader.string(f["address"], path: "sidecars.address") { mesh.sidecarAddress = v.value }
            if let v = reader.string(f["outbound_address"], path: "sidecars.outbound_address") { mesh.sidecarOutboundAddress = v.value }
            if let v = reader.string(f["identity"], path: "sidecars.identity") {
                if v.value.contains("{service}") { mesh.sidecarIdentity = v.value } else {
                    reader.report("config.value", "sidecars.identity must contain {service} so each service's sidecars have their own identity", path: "sidecars.identity", at: v.location)
                }
            }
            mesh.sidecarNodeIDs = reader.strings(f["node_ids"], path: "sidecars.node_ids").map(\.value)
            if let v = reader.choice(f["xds"], path: "sidecars.xds", allowed: xdsModes) { mesh.sidecarXDS = SubscriptionMode(rawValue: v.value)! }
        }
        if let node = top["rollout"] { mesh.rollout = rollout(node, path: "rollout", &reader) ?? mesh.rollout }
        if let items = reader.list(top["gateways"], path: "gateways") {
            for (i, item) in items.enumerated() {
                if let gateway = self.gateway(item, path: "gateways[\(i)]", mesh: mesh, &reader) { mesh.gateways.append(gateway) }
            }
        }
        return mesh
    }

    /// `rollout: immediate` or `rollout: {waves: [1, 10%, 100%], bake: 30s, on_failure: rollback|halt, ack_timeout: 10s}`.
    static func rollout(_ node: YAMLNode, path: String, _ reader: inout ConfigReader) -> RolloutChoice? {
        if case .scalar = node.kind {
            guard reader.choice(node, path: path, allowed: ["immediate"]) != nil else { return nil }
            return .immediate
        }
        guard let f = reader.fields(node, path: path, what: "'rollout' (immediate, or a mapping with waves and bake)",
                                    known: ["waves", "bake", "on_failure", "ack_timeout", "gate"], required: ["waves", "bake"]) else { return nil }
        var waves: [RolloutPolicy.WaveSize] = []
        var waveLocations: [SourceLocation] = []
        var ok = true
        for (i, item) in (reader.list(f["waves"], path: path + ".waves") ?? []).enumerated() {
            guard let text = reader.string(item, path: "\(path).waves[\(i)]") else { ok = false; continue }
            guard let wave = RolloutPolicy.WaveSize(text: text.value) else {
                reader.report("config.rollout", "wave '\(text.value)' is neither a number of proxies (e.g. 1) nor a percentage of the group (e.g. 10%)", path: "\(path).waves[\(i)]", at: text.location)
                ok = false
                continue
            }
            waves.append(wave)
            waveLocations.append(text.location)
        }
        if f["waves"] != nil && ok {
            for problem in RolloutPolicy.problems(of: waves) {
                let location = waveLocations.indices.contains(problem.index) ? waveLocations[problem.index] : f["waves"]?.location
                reader.report("config.rollout", problem.message, path: "\(path).waves[\(problem.index)]", at: location)
                ok = false
            }
        }
        let bake = reader.duration(f["bake"], path: path + ".bake")
        var ackTimeout = RolloutPolicy.defaultAckTimeoutMilliseconds
        if let v = reader.duration(f["ack_timeout"], path: path + ".ack_timeout") {
            if let positive = positive(v, path: path + ".ack_timeout", &reader) { ackTimeout = positive.milliseconds } else { ok = false }
        }
        var onFailure = RolloutPolicy.FailureAction.rollback
        if let v = reader.choice(f["on_failure"], path: path + ".on_failure", allowed: RolloutPolicy.FailureAction.allCases.map(\.rawValue)) {
            onFailure = RolloutPolicy.FailureAction(rawValue: v.value)!
        } else if f["on_failure"] != nil { ok = false }
        var gate: RolloutPolicy.Gate?
        if let n = f["gate"], let g = reader.fields(n, path: path + ".gate", what: "'gate' (an HTTP check asked after each wave's bake)", known: ["url", "timeout"], required: ["url"]) {
            if let url = reader.string(g["url"], path: path + ".gate.url") {
                let lower = url.value.lowercased()
                if (lower.hasPrefix("http://") || lower.hasPrefix("https://")) && url.value.count > 8 && !url.value.contains(" ") {
                    var timeout: Int64 = 5000
                    if let v = reader.duration(g["timeout"], path: path + ".gate.timeout") {
                        if let positive = positive(v, path: path + ".gate.timeout", &reader) { timeout = positive.milliseconds } else { ok = false }
                    }
                    gate = RolloutPolicy.Gate(url: url.value, timeoutMilliseconds: timeout)
                } else {
                    reader.report("config.rollout", "gate url '\(url.value)' is not an http:// or https:// URL; the gate is asked with an HTTP GET and passes on a 2xx answer", path: path + ".gate.url", at: url.location)
                    ok = false
                }
            } else { ok = false }
            if let bake, bake.value.milliseconds == 0 {
                reader.report("config.rollout", "a gate needs a bake time longer than 0: it is asked when a wave's bake ends, to judge what the proxies did meanwhile", path: path + ".bake", at: bake.location)
                ok = false
            }
        } else if f["gate"] != nil { ok = false }
        guard ok, let bake, !waves.isEmpty else { return nil }
        return .waves(RolloutPolicy(waves: waves, bakeMilliseconds: bake.value.milliseconds, ackTimeoutMilliseconds: ackTimeout, onFailure: onFailure, gate: gate))
    }

    static func positive(_ v: Located<ConfigDuration>, path: String, _ reader: inout ConfigReader) -> ConfigDuration? {
        guard v.value.milliseconds > 0 else {
            reader.report("config.value", "'\(path)' must be longer than 0", path: path, at: v.location)
            return nil
        }
        return v.value
    }

    static func gateway(_ node: YAMLNode, path: String, mesh: MeshDefinition, _ reader: inout ConfigReader) -> GatewayDefinition? {
        let keys = ["name", "kind", "template", "identities", "node_ids", "listen", "tls", "hosts", "routes", "cors", "xds", "rollout"]
        guard let f = reader.fields(node, path: path, what: "a gateway", known: keys, required: ["name", "kind", "template", "listen", "tls", "routes"]) else { return nil }
        guard let name = reader.name(f["name"], path: path + ".name", what: "gateway name"),
              let kindText = reader.choice(f["kind"], path: path + ".kind", allowed: ["ingress", "internal-web"]),
              let template = reader.string(f["template"], path: path + ".template") else { return nil }
        var listenAddress = "0.0.0.0"
        var listenPort: Located<Int>?
        if let n = f["listen"], let l = reader.fields(n, path: path + ".listen", what: "'listen'", known: ["address", "port"], required: ["port"]) {
            if let v = reader.string(l["address"], path: path + ".listen.address") { listenAddress = v.value }
            listenPort = reader.port(l["port"], path: path + ".listen.port", what: "the gateway's listener port")
        }
        var certificate = mesh.certificatePath(mesh.certificatePattern, proxy: name.value)
        var privateKey = mesh.certificatePath(mesh.privateKeyPattern, proxy: name.value)
        if let n = f["tls"], let t = reader.fields(n, path: path + ".tls", what: "'tls'", known: ["certificate", "private_key"], required: ["certificate", "private_key"]) {
            if let v = reader.string(t["certificate"], path: path + ".tls.certificate") { certificate = mesh.certificatePath(v.value, proxy: name.value) }
            if let v = reader.string(t["private_key"], path: path + ".tls.private_key") { privateKey = mesh.certificatePath(v.value, proxy: name.value) }
        }
        var identities = reader.strings(f["identities"], path: path + ".identities").map(\.value)
        if f["identities"] == nil {
            identities = [mesh.sidecarIdentity.replacingOccurrences(of: "{trust_domain}", with: mesh.trustDomain).replacingOccurrences(of: "{service}", with: name.value)]
        }
        var routes: [RouteDefinition] = []
        if let items = reader.list(f["routes"], path: path + ".routes") {
            if items.isEmpty { reader.report("config.value", "a gateway needs at least one route", path: path + ".routes", at: f["routes"]?.location) }
            for (i, item) in items.enumerated() {
                if let route = self.route(item, path: "\(path).routes[\(i)]", gateway: true, &reader) { routes.append(route) }
            }
        }
        var cors: CORSDefinition?
        if let n = f["cors"], let c = reader.fields(n, path: path + ".cors", what: "'cors'", known: ["allow_origins", "allow_methods", "allow_headers", "max_age", "allow_credentials"], required: ["allow_origins"]) {
            let origins = reader.strings(c["allow_origins"], path: path + ".cors.allow_origins")
            for origin in origins where origin.value == "*" {
                reader.report("config.value", "allow_origins '*' lets every web site call this application; list the origins that may", path: path + ".cors.allow_origins", at: origin.location)
            }
            cors = CORSDefinition(allowOrigins: origins.map(\.value),
                                  allowMethods: reader.strings(c["allow_methods"], path: path + ".cors.allow_methods").map(\.value),
                                  allowHeaders: reader.strings(c["allow_headers"], path: path + ".cors.allow_headers").map(\.value),
                                  maxAge: reader.duration(c["max_age"], path: path + ".cors.max_age")?.value,
                                  allowCredentials: reader.bool(c["allow_credentials"], path: path + ".cors.allow_credentials")?.value ?? false)
        }
        let xds = reader.choice(f["xds"], path: path + ".xds", allowed: xdsModes).flatMap { SubscriptionMode(rawValue: $0.value) }
        guard let listenPort else { return nil }
        return GatewayDefinition(name: name, kind: GatewayKind(rawValue: kindText.value)!, template: template, identities: identities,
                                 nodeIDs: reader.strings(f["node_ids"], path: path + ".node_ids").map(\.value),
                                 listenAddress: listenAddress, listenPort: listenPort, certificate: certificate, privateKey: privateKey,
                                 hosts: f["hosts"].map { reader.strings($0, path: path + ".hosts") } ?? [Located(value: "*", location: node.location)],
                                 routes: routes, cors: cors, xds: xds ?? .adsStateOfTheWorld,
                                 rollout: f["rollout"].flatMap { rollout($0, path: path + ".rollout", &reader) }, location: node.location)
    }

    // MARK: raw groups

    static let rawGroupKeys = ["name", "description", "identities", "node_ids", "xds", "rollout", "envoy"]

    /// Configs/groups/NAME.yaml: a proxy group of raw Envoy resources (`envoy.add` only: there is nothing to patch).
    static func rawGroup(_ node: YAMLNode, file: String, mesh: MeshDefinition, reader: inout ConfigReader) -> RawGroupDefinition? {
        guard let f = reader.fields(node, path: "", what: "a raw proxy group", known: rawGroupKeys, required: ["name", "envoy"]),
              let name = reader.name(f["name"], path: "name", what: "group name") else { return nil }
        _ = reader.string(f["description"], path: "description")
        var identities = reader.strings(f["identities"], path: "identities").map(\.value)
        if f["identities"] == nil { identities = [mesh.identity(ofService: name.value)] }
        let xds = reader.choice(f["xds"], path: "xds", allowed: xdsModes).flatMap { SubscriptionMode(rawValue: $0.value) }
        var resources: [ResourceKind: [YAMLNode]] = [:]
        if let n = f["envoy"] {
            let raw = self.raw(n, &reader)
            for (kind, patches) in raw.patches {
                for patch in patches {
                    reader.report("config.value", "a raw group has no generated resources to patch; write the whole \(kind.singular) '\(patch.name.value)' under envoy.add.\(kind.rawValue)",
                                  path: "envoy.patch.\(kind.rawValue)", at: patch.name.location)
                }
            }
            resources = raw.additions
            if resources.values.allSatisfy(\.isEmpty) {
                reader.report("config.value", "a raw group needs resources: list them under envoy.add (listeners, clusters, route_configurations, cluster_load_assignments, secrets)", path: "envoy", at: n.location)
            }
        }
        let mode = xds ?? .adsStateOfTheWorld
        for items in resources.values { for item in items { checkConfigSources(item, mode: mode, reader: &reader) } }
        let base = (file as NSString).lastPathComponent
        let stem = base.hasSuffix(".yaml") ? String(base.dropLast(5)) : base.hasSuffix(".yml") ? String(base.dropLast(4)) : base
        if stem != name.value {
            reader.report("config.file-name", "the group '\(name.value)' is in \(base); name the file \(name.value).yaml so it is found by its name", path: "name", at: name.location, severity: .warning)
        }
        return RawGroupDefinition(file: file, name: name, identities: identities, nodeIDs: reader.strings(f["node_ids"], path: "node_ids").map(\.value),
                                  xds: xds ?? .adsStateOfTheWorld, rollout: f["rollout"].flatMap { rollout($0, path: "rollout", &reader) },
                                  resources: resources, location: node.location)
    }

    /// The fields that hold a ConfigSource through which an Envoy fetches more resources from meshctl serve.
    static let configSourceFields: Set<String> = ["config_source", "eds_config", "sds_config", "lds_config", "cds_config", "rtds_config"]

    /// A raw group's config sources must be the ones its proxies can follow: ADS for the ads modes, the bootstrap's
    /// `meshctl_xds` cluster (GRPC, or DELTA_GRPC for per-type-delta) for the per-type modes — what the templates get
    /// as `config_source`. Sources that name another server are the group's own business.
    static func checkConfigSources(_ node: YAMLNode, mode: SubscriptionMode, reader: inout ConfigReader) {
        switch node.kind {
        case .mapping(let pairs):
            for (key, value) in pairs {
                if let name = key.scalarText, configSourceFields.contains(name), case .mapping(let source) = value.kind {
                    let keys = Set(source.compactMap { $0.key.scalarText })
                    let api = source.first { $0.key.scalarText == "api_config_source" }?.value
                    let namesMeshctl = api.map { render($0).contains(SubscriptionMode.xdsClusterName) } ?? false
                    let apiType = api.flatMap { n -> String? in
                        guard case .mapping(let fields) = n.kind else { return nil }
                        return fields.first { $0.key.scalarText == "api_type" }?.value.scalarText
                    }
                    let expected = !mode.isAggregated ? (mode.isDelta ? "DELTA_GRPC" : "GRPC") : nil
                    var problem: String?
                    if keys.contains("ads") && !mode.isAggregated {
                        problem = "names ADS, but the group's proxies subscribe per type (xds: \(mode.rawValue)) and have no ADS stream"
                    } else if namesMeshctl && mode.isAggregated {
                        problem = "names the \(SubscriptionMode.xdsClusterName) API source, but the group's proxies subscribe by ADS (xds: \(mode.rawValue))"
                    } else if namesMeshctl, let expected, apiType != expected {
                        problem = "uses api_type \(apiType ?? "(none)"), but xds: \(mode.rawValue) proxies subscribe with \(expected)"
                    }
                    if let problem {
                        reader.report("config.raw-group-source", "this config source \(problem); write \(mode.configSource) (or change the group's xds)",
                                      path: "envoy.add", at: value.location)
                    }
                }
                checkConfigSources(value, mode: mode, reader: &reader)
            }
        case .sequence(let items):
            for item in items { checkConfigSources(item, mode: mode, reader: &reader) }
        case .scalar:
            break
        }
    }

    /// The scalars of a node, joined (to look for a name anywhere inside it).
    static func render(_ node: YAMLNode) -> String {
        switch node.kind {
        case .scalar(let s): return s.string
        case .mapping(let pairs): return pairs.map { render($0.key) + " " + render($0.value) }.joined(separator: " ")
        case .sequence(let items): return items.map(render).joined(separator: " ")
        }
    }

    // MARK: services

    static func service(_ node: YAMLNode, file: String, origin: Int32, reader: inout ConfigReader) -> ServiceDefinition? {
        // A proxyless gRPC client has no ports; every other service needs them.
        var proxyless: Located<String>?
        if case .mapping(let pairs) = node.kind, let value = pairs.first(where: { $0.0.scalarText == "proxyless" })?.1 {
            // An unknown kind is reported here; the service is still read as proxyless, so no "needs ports" follows.
            proxyless = reader.choice(value, path: "proxyless", allowed: ["grpc"]) ?? Located(value: "grpc", location: value.location)
        }
        let required = proxyless == nil ? ["name", "owners", "ports"] : ["name", "owners"]
        guard let f = reader.fields(node, path: "", what: "a service", known: serviceKeys, required: required) else { return nil }
        if proxyless != nil {
            for key in proxylessForbiddenKeys where f[key] != nil {
                reader.report("config.value", "'\(key)' does not apply to a proxyless gRPC client (proxyless: grpc): it has no sidecar and nothing calls it; remove '\(key)', or remove 'proxyless' to give the service a sidecar",
                              path: key, at: f.keyLocation(key))
            }
        }
        let name = reader.name(f["name"], path: "name", what: "service name")
        var owners = reader.strings(f["owners"], path: "owners", what: "'owners'").map(\.value)
        if f["owners"] != nil && owners.isEmpty, let n = f["owners"], case .sequence = n.kind {
            reader.report("config.value", "a service needs at least one owner (a team or person to ask about it)", path: "owners", at: n.location)
        }
        owners = owners.filter { !$0.isEmpty }
        var ports: [PortDefinition] = []
        if let items = reader.list(f["ports"], path: "ports") {
            if items.isEmpty { reader.report("config.value", "a service needs at least one port", path: "ports", at: f["ports"]?.location) }
            var seen: [String: SourceLocation] = [:]
            for (i, item) in items.enumerated() {
                guard let port = self.port(item, path: "ports[\(i)]", &reader) else { continue }
                if let first = seen[port.name.value] {
                    reader.report("config.duplicate-name", "port name '\(port.name.value)' is already used (line \(first.line)); give each port its own name", path: "ports[\(i)].name", at: port.name.location)
                    continue
                }
                seen[port.name.value] = port.name.location
                ports.append(port)
            }
        }
        let endpoints = f["endpoints"].flatMap { self.endpoints($0, path: "endpoints", &reader) }
        for (i, port) in ports.enumerated() where port.endpoints == nil && endpoints == nil && f["endpoints"] == nil {
            reader.report("config.missing-key", "port '\(port.name.value)' has no endpoints; add 'endpoints' to the service (or to this port)", path: "ports[\(i)]", at: port.location)
        }
        var outboundPort: Located<Int>?
        if let n = f["sidecar"], let s = reader.fields(n, path: "sidecar", what: "'sidecar'", known: ["outbound_port"]) {
            outboundPort = reader.port(s["outbound_port"], path: "sidecar.outbound_port", what: "the sidecar's outbound port")
        }
        var dependencies: [DependencyDefinition] = []
        if let items = reader.list(f["dependencies"], path: "dependencies") {
            for (i, item) in items.enumerated() {
                if let dependency = self.dependency(item, path: "dependencies[\(i)]", &reader) { dependencies.append(dependency) }
            }
        }
        var routes: [RouteDefinition] = []
        if let items = reader.list(f["routes"], path: "routes") {
            for (i, item) in items.enumerated() {
                if let route = self.route(item, path: "routes[\(i)]", gateway: false, &reader) { routes.append(route) }
            }
        }
        var mtlsDisabled: Located<String>?
        if let n = f["mtls"], let m = reader.fields(n, path: "mtls", what: "'mtls'", known: ["mode", "reason"], required: ["mode"]) {
            if let mode = reader.choice(m["mode"], path: "mtls.mode", allowed: ["strict", "disabled"]), mode.value == "disabled" {
                if let reason = reader.string(m["reason"], path: "mtls.reason"), !reason.value.trimmingCharacters(in: .whitespaces).isEmpty {
                    mtlsDisabled = Located(value: reason.value, location: mode.location)
                } else {
                    reader.report("config.missing-key", "turning mutual TLS off needs a 'reason' (recorded for reviewers); add mtls.reason", path: "mtls.reason", at: mode.location)
                    mtlsDisabled = Located(value: "", location: mode.location)
                }
            }
        }
        var allowedCallers: [Located<String>] = []
        if let n = f["security"], let s = reader.fields(n, path: "security", what: "'security'", known: ["allowed_callers"]) {
            allowedCallers = reader.strings(s["allowed_callers"], path: "security.allowed_callers")
        }
        let raw = f["envoy"].map { self.raw($0, &reader) } ?? RawEnvoyDefinition()
        guard let name else { return nil }
        var hosts: [Located<String>] = []
        for (i, host) in reader.strings(f["hosts"], path: "hosts").enumerated() {
            // What callers may send as Host: a DNS name, optionally with a leading "*." or trailing ".*" wildcard.
            var bare = Substring(host.value)
            if bare.hasPrefix("*.") { bare = bare.dropFirst(2) } else if bare.hasSuffix(".*") { bare = bare.dropLast(2) }
            if isHostName(String(bare)) { hosts.append(host) } else {
                reader.report("config.value", "'\(host.value)' is not a host name; write a DNS name such as orders.example.internal (a leading *. or trailing .* is allowed)", path: "hosts[\(i)]", at: host.location)
            }
        }
        return ServiceDefinition(file: file, origin: origin, name: name, description: reader.string(f["description"], path: "description")?.value,
                                 owners: owners, ports: ports, endpoints: endpoints, hosts: hosts,
                                 outboundPort: outboundPort, dependencies: dependencies, routes: routes,
                                 timeout: reader.duration(f["timeout"], path: "timeout")?.value,
                                 connectTimeout: reader.duration(f["connect_timeout"], path: "connect_timeout").flatMap { positive($0, path: "connect_timeout", &reader) },
                                 retries: f["retries"].flatMap { retries($0, path: "retries", &reader) },
                                 mtlsDisabled: mtlsDisabled, allowedCallers: allowedCallers, raw: raw,
                                 rollout: f["rollout"].flatMap { rollout($0, path: "rollout", &reader) }, location: node.location,
                                 proxyless: proxyless)
    }

    static func port(_ node: YAMLNode, path: String, _ reader: inout ConfigReader) -> PortDefinition? {
        guard let f = reader.fields(node, path: path, what: "a port", known: ["name", "protocol", "port", "endpoints"], required: ["name", "protocol", "port"]) else { return nil }
        let name = reader.name(f["name"], path: path + ".name", what: "port name")
        let proto = reader.choice(f["protocol"], path: path + ".protocol", allowed: ServiceProtocol.allCases.map(\.rawValue))
        let number = reader.port(f["port"], path: path + ".port", what: "the port (where the service's sidecars accept mesh traffic)")
        let endpoints = f["endpoints"].flatMap { self.endpoints($0, path: path + ".endpoints", &reader) }
        guard let name, let proto, let number else { return nil }
        return PortDefinition(name: name, proto: ServiceProtocol(rawValue: proto.value)!, port: number, endpoints: endpoints, location: node.location)
    }

    static func endpoints(_ node: YAMLNode, path: String, _ reader: inout ConfigReader) -> EndpointsDefinition? {
        guard let f = reader.fields(node, path: path, what: "'endpoints'", known: ["static", "dns"]) else { return nil }
        if f.has("static") && f.has("dns") {
            reader.report("config.value", "endpoints are either a 'static' list or a 'dns' name, not both; keep one", path: path, at: f.keyLocation("dns"))
            return nil
        }
        if let items = reader.list(f["static"], path: path + ".static") {
            var addresses: [Located<EndpointAddress>] = []
            for (i, item) in items.enumerated() {
                let itemPath = "\(path).static[\(i)]"
                var address: EndpointAddress?
                if case .scalar = item.kind, let text = reader.string(item, path: itemPath) {
                    address = hostPort(text.value)
                    if address == nil {
                        reader.report("config.value", "'\(text.value)' is not an IP:port endpoint; write e.g. 10.0.0.5:8080 or [::1]:8080 (use 'dns' for host names)", path: itemPath, at: item.location)
                    }
                } else if let e = reader.fields(item, path: itemPath, what: "an endpoint", known: ["address", "port"], required: ["address", "port"]) {
                    if let a = reader.string(e["address"], path: itemPath + ".address"), let p = reader.port(e["port"], path: itemPath + ".port", what: "the endpoint port") {
                        if isIPAddress(a.value) { address = EndpointAddress(address: a.value, port: p.value) } else {
                            reader.report("config.value", "'\(a.value)' is not an IP address; static endpoints are IPs (use 'dns' for host names)", path: itemPath + ".address", at: a.location)
                        }
                    }
                }
                if let address { addresses.append(Located(value: address, location: item.location)) }
            }
            if items.isEmpty { reader.report("config.value", "the static endpoint list is empty; add at least one IP:port", path: path + ".static", at: f["static"]?.location) }
            return addresses.isEmpty ? nil : .addresses(addresses)
        }
        if let n = f["dns"], let d = reader.fields(n, path: path + ".dns", what: "'dns'", known: ["name", "port"], required: ["name", "port"]) {
            guard let name = reader.string(d["name"], path: path + ".dns.name"), let port = reader.port(d["port"], path: path + ".dns.port", what: "the endpoint port") else { return nil }
            guard isHostName(name.value) else {
                reader.report("config.value", "'\(name.value)' is not a DNS name", path: path + ".dns.name", at: name.location)
                return nil
            }
            return .dns(name: name.value, port: port.value, location: n.location)
        }
        if !f.has("static") && !f.has("dns") {
            reader.report("config.missing-key", "endpoints need 'static' (a list of IP:port) or 'dns' ({name, port})", path: path, at: node.location)
        }
        return nil
    }

    static func hostPort(_ text: String) -> EndpointAddress? {
        var host: Substring, port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard let number = Int(port), (1...65535).contains(number), isIPAddress(String(host)) else { return nil }
        return EndpointAddress(address: String(host), port: number)
    }

    static func isIPAddress(_ s: String) -> Bool { IPAddress.isLiteral(s) }

    static func isHostName(_ s: String) -> Bool {
        !s.isEmpty && s.count <= 253 && s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") } && !label.hasPrefix("-")
        }
    }

    static func dependency(_ node: YAMLNode, path: String, _ reader: inout ConfigReader) -> DependencyDefinition? {
        if case .scalar = node.kind {
            guard let name = reader.string(node, path: path, what: "a dependency") else { return nil }
            return DependencyDefinition(service: name, port: nil, localPort: nil, location: node.location)
        }
        guard let f = reader.fields(node, path: path, what: "a dependency", known: ["service", "port", "local_port"], required: ["service"]),
              let service = reader.string(f["service"], path: path + ".service") else { return nil }
        return DependencyDefinition(service: service, port: reader.string(f["port"], path: path + ".port"),
                                    localPort: reader.port(f["local_port"], path: path + ".local_port", what: "the local port"), location: node.location)
    }

    static func retries(_ node: YAMLNode, path: String, _ reader: inout ConfigReader) -> RetryDefinition? {
        guard let f = reader.fields(node, path: path, what: "'retries'", known: ["attempts", "on", "per_try_timeout"], required: ["attempts"]) else { return nil }
        guard let attempts = reader.int(f["attempts"], path: path + ".attempts", range: 0...100) else { return nil }
        var on: [String] = []
        if let n = f["on"] {
            let conditions: [Located<String>]
            if case .scalar = n.kind, let text = reader.string(n, path: path + ".on") {
                conditions = text.value.split(separator: ",").map { Located(value: $0.trimmingCharacters(in: .whitespaces), location: text.location) }
            } else {
                conditions = reader.strings(n, path: path + ".on")
            }
            for condition in conditions {
                if retryConditions.contains(condition.value) { on.append(condition.value) } else {
                    let hint = closestName(condition.value, retryConditions).map { "did you mean '\($0)'? " } ?? ""
                    reader.report("config.value", "'\(condition.value)' is not a retry condition Envoy knows; \(hint)see docs/CONFIG.md for the list", path: path + ".on", at: condition.location)
                }
            }
        } else {
            on = ["connect-failure", "refused-stream", "reset"]
        }
        let perTry = reader.duration(f["per_try_timeout"], path: path + ".per_try_timeout").flatMap { positive($0, path: path + ".per_try_timeout", &reader) }
        return RetryDefinition(attempts: attempts.value, on: on, perTryTimeout: perTry, location: node.location)
    }

    static func target(_ node: YAMLNode?, port: YAMLNode?, path: String, _ reader: inout ConfigReader) -> RouteTargetDefinition? {
        guard let service = reader.string(node, path: path) else { return nil }
        return RouteTargetDefinition(service: service, port: reader.string(port, path: path.replacingOccurrences(of: ".service", with: ".port")))
    }

    static func route(_ node: YAMLNode, path: String, gateway: Bool, _ reader: inout ConfigReader) -> RouteDefinition? {
        guard let f = reader.fields(node, path: path, what: "a route", known: routeKeys) else { return nil }
        var route = RouteDefinition(location: node.location)
        if let n = f["name"] {
            guard let name = reader.string(n, path: path + ".name") else { return nil }
            if name.value.isEmpty || !name.value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
                reader.report("config.value", "route name '\(name.value)' may use letters, digits, '-', '_' and '.'", path: path + ".name", at: name.location)
            } else {
                route.name = name
            }
        }
        if let n = f["match"], let m = reader.fields(n, path: path + ".match", what: "'match'", known: ["prefix", "path", "regex", "case_sensitive", "headers"]) {
            let kinds = ["prefix", "path", "regex"].filter { m.has($0) }
            if kinds.count > 1 {
                reader.report("config.value", "a match takes one of prefix, path or regex; found \(kinds.joined(separator: " and "))", path: path + ".match", at: m.keyLocation(kinds[1]))
            }
            if let p = reader.string(m["prefix"], path: path + ".match.prefix") {
                if !p.value.hasPrefix("/") { reader.report("config.value", "prefix '\(p.value)' must start with '/'", path: path + ".match.prefix", at: p.location) }
                route.match.path = .prefix(p.value)
            } else if let p = reader.string(m["path"], path: path + ".match.path") {
                if !p.value.hasPrefix("/") { reader.report("config.value", "path '\(p.value)' must start with '/'", path: path + ".match.path", at: p.location) }
                route.match.path = .path(p.value)
            } else if let p = reader.string(m["regex"], path: path + ".match.regex") {
                route.match.path = .regex(p.value)
            }
            route.match.caseSensitive = reader.bool(m["case_sensitive"], path: path + ".match.case_sensitive")?.value
            if let items = reader.list(m["headers"], path: path + ".match.headers") {
                for (i, item) in items.enumerated() {
                    let hp = "\(path).match.headers[\(i)]"
                    guard let h = reader.fields(item, path: hp, what: "a header match", known: ["name"] + HeaderMatchDefinition.Kind.allCases.map(\.rawValue) + ["invert"], required: ["name"]),
                          let name = reader.string(h["name"], path: hp + ".name") else { continue }
                    let kinds = HeaderMatchDefinition.Kind.allCases.filter { h.has($0.rawValue) }
                    guard kinds.count == 1, let kind = kinds.first else {
                        reader.report("config.value", "a header match takes exactly one of exact, prefix, suffix, regex or present", path: hp, at: item.location)
                        continue
                    }
                    var value = ""
                    if kind == .present {
                        guard let b = reader.bool(h["present"], path: hp + ".present") else { continue }
                        if !b.value { reader.report("config.value", "present: false never matches anything useful; use present: true with invert: true", path: hp + ".present", at: b.location) }
                    } else {
                        guard let v = reader.string(h[kind.rawValue], path: hp + "." + kind.rawValue) else { continue }
                        value = v.value
                    }
                    route.match.headers.append(HeaderMatchDefinition(name: name.value, kind: kind, value: value, invert: reader.bool(h["invert"], path: hp + ".invert")?.value ?? false))
                }
            }
        }
        let actions = ["service", "split", "redirect", "direct_response"].filter { f.has($0) }
        if actions.count > 1 {
            reader.report("config.value", "a route has one action; found \(actions.joined(separator: " and ")) — keep one", path: path, at: f.keyLocation(actions[1]))
            return nil
        }
        if gateway && actions.isEmpty {
            reader.report("config.missing-key", "a gateway route needs an action: service, split, redirect or direct_response", path: path, at: node.location)
            return nil
        }
        if f.has("port") && !f.has("service") {
            reader.report("config.value", "'port' chooses the port of 'service'; add service or remove port", path: path + ".port", at: f.keyLocation("port"))
        }
        if let n = f["service"] {
            guard let target = target(n, port: f["port"], path: path + ".service", &reader) else { return nil }
            route.action = .forward(target)
        } else if let n = f["split"] {
            guard let s = reader.fields(n, path: path + ".split", what: "'split'", known: ["total", "targets"], required: ["targets"]) else { return nil }
            var split = SplitDefinition(total: reader.int(s["total"], path: path + ".split.total", range: 1...1_000_000), targets: [], location: n.location)
            if let items = reader.list(s["targets"], path: path + ".split.targets") {
                for (i, item) in items.enumerated() {
                    let tp = "\(path).split.targets[\(i)]"
                    guard let t = reader.fields(item, path: tp, what: "a split target", known: ["service", "port", "weight"], required: ["service", "weight"]),
                          let target = target(t["service"], port: t["port"], path: tp + ".service", &reader),
                          let weight = reader.int(t["weight"], path: tp + ".weight", range: 0...1_000_000) else { continue }
                    split.targets.append((target, weight))
                }
                if items.count < 2 { reader.report("config.value", "a split needs at least two targets; route to one service with 'service'", path: path + ".split.targets", at: s["targets"]?.location) }
            }
            guard !split.targets.isEmpty else { return nil }
            route.action = .split(split)
        } else if let n = f["redirect"] {
            guard let r = reader.fields(n, path: path + ".redirect", what: "'redirect'", known: ["scheme", "host", "path", "prefix", "code"]) else { return nil }
            var redirect = RedirectDefinition(scheme: reader.choice(r["scheme"], path: path + ".redirect.scheme", allowed: ["http", "https"])?.value,
                                              host: reader.string(r["host"], path: path + ".redirect.host")?.value,
                                              path: reader.string(r["path"], path: path + ".redirect.path")?.value,
                                              prefix: reader.string(r["prefix"], path: path + ".redirect.prefix")?.value, code: 301)
            if redirect.path != nil && redirect.prefix != nil {
                reader.report("config.value", "a redirect rewrites either 'path' or 'prefix', not both", path: path + ".redirect", at: r.keyLocation("prefix"))
            }
            if let code = reader.int(r["code"], path: path + ".redirect.code", range: 300...399) {
                if [301, 302, 303, 307, 308].contains(code.value) { redirect.code = code.value } else {
                    reader.report("config.value", "redirect code \(code.value) is not one Envoy sends; use 301, 302, 303, 307 or 308", path: path + ".redirect.code", at: code.location)
                }
            }
            if r.pairs.isEmpty { reader.report("config.value", "an empty redirect sends clients back to the same URL; set scheme, host, path or prefix", path: path + ".redirect", at: n.location) }
            route.action = .redirect(redirect)
        } else if let n = f["direct_response"] {
            guard let d = reader.fields(n, path: path + ".direct_response", what: "'direct_response'", known: ["status", "body"], required: ["status"]),
                  let status = reader.int(d["status"], path: path + ".direct_response.status", range: 200...599) else { return nil }
            route.action = .directResponse(status: status.value, body: reader.string(d["body"], path: path + ".direct_response.body")?.value)
        }
        let forwards: Bool
        switch route.action {
        case .forward, .split: forwards = true
        default: forwards = false
        }
        for key in ["timeout", "retries", "mirror", "rewrite_prefix"] where f.has(key) && !forwards {
            reader.report("config.value", "'\(key)' applies to routes that forward traffic (service or split), not to redirects or direct responses; remove it", path: path + "." + key, at: f.keyLocation(key))
        }
        route.timeout = reader.duration(f["timeout"], path: path + ".timeout")
        route.retries = f["retries"].flatMap { retries($0, path: path + ".retries", &reader) }
        if let n = f["mirror"], let m = reader.fields(n, path: path + ".mirror", what: "'mirror'", known: ["service", "port", "percent"], required: ["service"]) {
            if let target = target(m["service"], port: m["port"], path: path + ".mirror.service", &reader) {
                let percent = reader.int(m["percent"], path: path + ".mirror.percent", range: 0...100)?.value ?? 100
                route.mirror = (target, percent)
            }
        }
        if let v = reader.string(f["rewrite_prefix"], path: path + ".rewrite_prefix") { route.rewritePrefix = v.value }
        return route
    }

    // MARK: envoy escape hatch

    static func raw(_ node: YAMLNode, _ reader: inout ConfigReader) -> RawEnvoyDefinition {
        var raw = RawEnvoyDefinition()
        let kinds = ResourceKind.allCases.map(\.rawValue)
        guard let f = reader.fields(node, path: "envoy", what: "'envoy'", known: ["patch", "add"]) else { return raw }
        if let n = f["patch"], let p = reader.fields(n, path: "envoy.patch", what: "'envoy.patch'", known: kinds) {
            for (key, value) in p.pairs {
                let kind = ResourceKind(rawValue: key.scalarText!)!
                guard case .mapping(let pairs) = value.kind else {
                    reader.report("config.type", "'envoy.patch.\(kind.rawValue)' must map \(kind.singular) names to the fields to merge, got \(ConfigReader.describe(value))", path: "envoy.patch." + kind.rawValue, at: value.location)
                    continue
                }
                for (nameNode, body) in pairs {
                    guard let name = nameNode.scalarText else { continue }
                    guard case .mapping = body.kind else {
                        reader.report("config.type", "a patch for \(kind.singular) '\(name)' must be a mapping of Envoy fields, got \(ConfigReader.describe(body))", path: "envoy.patch.\(kind.rawValue).\(name)", at: body.location)
                        continue
                    }
                    raw.patches[kind, default: []].append((Located(value: name, location: nameNode.location), body))
                }
            }
        }
        if let n = f["add"], let a = reader.fields(n, path: "envoy.add", what: "'envoy.add'", known: kinds) {
            for (key, value) in a.pairs {
                let kind = ResourceKind(rawValue: key.scalarText!)!
                guard let items = reader.list(value, path: "envoy.add." + kind.rawValue) else { continue }
                raw.additions[kind, default: []].append(contentsOf: items)
            }
        }
        return raw
    }
}
