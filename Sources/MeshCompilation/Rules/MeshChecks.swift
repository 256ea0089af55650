// Rules over the mesh model before anything is rendered: unique names, dependencies
// that exist and are declared, route targets, split totals, callers, cycles. Each
// problem points at the user's YAML; a reference that cannot be resolved is dropped from
// the model after it is reported, so it does not cascade into generated-Envoy errors.
import EnvoySchema

struct MeshChecks {
    let mesh: MeshDefinition
    var diagnostics: [Diagnostic] = []

    init(mesh: MeshDefinition) { self.mesh = mesh }

    mutating func report(_ severity: Diagnostic.Severity = .error, _ rule: String, _ message: String, file: String, path: String, at location: SourceLocation?) {
        diagnostics.append(Diagnostic(severity, rule: rule, message: message, path: path, file: file, location: location))
    }

    /// Checks and cleans the services; returns them by name, and the gateways.
    mutating func run(_ definitions: [ServiceDefinition]) -> (services: [String: ServiceDefinition], gateways: [GatewayDefinition]) {
        var services: [String: ServiceDefinition] = [:]
        for service in definitions {
            let name = service.name.value
            if let first = services[name] {
                report(.error, "config.duplicate-service", "service '\(name)' is already defined in \(first.file):\(first.name.location.line); service names must be unique — rename one",
                       file: service.file, path: "name", at: service.name.location)
                continue
            }
            let base = fileStem(service.file)
            if base != name {
                report(.warning, "config.file-name", "the file defines service '\(name)'; name it \(name).yaml so the service is easy to find",
                       file: service.file, path: "name", at: service.name.location)
            }
            services[name] = service
        }
        var gateways: [GatewayDefinition] = []
        var groupNames = Set(services.keys)
        for gateway in mesh.gateways {
            if !groupNames.insert(gateway.name.value).inserted {
                let what = services[gateway.name.value] != nil ? "a service" : "another gateway"
                report(.error, "mesh.duplicate-group", "gateway '\(gateway.name.value)' has the name of \(what); proxy group names (services and gateways) must be unique — rename it",
                       file: mesh.file, path: "gateways", at: gateway.name.location)
                continue
            }
            gateways.append(gateway)
        }
        let callerNames = Set(services.keys).union(gateways.map(\.name.value))
        let gatewayNames = Set(gateways.map(\.name.value))
        var cleaned: [String: ServiceDefinition] = [:]
        for name in services.keys.sorted() {
            var service = services[name]!
            service.dependencies = checkDependencies(service, services)
            service.routes = service.routes.enumerated().compactMap { i, route in
                checkRoute(route, path: "routes[\(i)]", file: service.file, owner: service, services: services)
            }
            if !service.isProxyless, service.outboundPort == nil, let d = service.dependencies.first(where: { services[$0.service.value]?.primaryHTTPPort != nil }) {
                report(.error, "config.missing-key", "'\(name)' calls HTTP/gRPC dependencies but has no sidecar.outbound_port for its application to send them to; add sidecar: {outbound_port: N}",
                       file: service.file, path: "sidecar.outbound_port", at: d.location)
            }
            var callers: [Located<String>] = []
            for caller in service.allowedCallers {
                if callerNames.contains(caller.value) { callers.append(caller) } else {
                    let hint = closestName(caller.value, Array(callerNames)).map { "did you mean '\($0)'? " } ?? ""
                    report(.error, "mesh.unknown-service", "allowed caller '\(caller.value)' is neither a service nor a gateway; \(hint)list services from Configs/services or gateway names from mesh.yaml",
                           file: service.file, path: "security.allowed_callers", at: caller.location)
                }
            }
            service.allowedCallers = callers
            cleaned[name] = service
        }
        for name in cleaned.keys.sorted() {
            let service = cleaned[name]!
            for dependency in service.dependencies {
                guard let target = cleaned[dependency.service.value], !target.allowedCallers.isEmpty else { continue }
                if !target.allowedCallers.contains(where: { $0.value == name }) {
                    report(.warning, "mesh.caller-not-allowed", "'\(target.name.value)' accepts calls only from \(target.allowedCallers.map(\.value).joined(separator: ", ")), so '\(name)' will be refused; add '\(name)' to its security.allowed_callers or remove the dependency",
                           file: service.file, path: "dependencies", at: dependency.service.location)
                }
            }
        }
        gateways = gateways.map { gateway in
            var g = gateway
            g.routes = gateway.routes.enumerated().compactMap { i, route in
                checkRoute(route, path: "gateways[\(gateway.name.value)].routes[\(i)]", file: mesh.file, owner: nil, services: cleaned)
            }
            for route in g.routes {
                for target in Self.targets(route) {
                    guard let t = cleaned[target.service.value], !t.allowedCallers.isEmpty, !t.allowedCallers.contains(where: { $0.value == gateway.name.value }) else { continue }
                    report(.warning, "mesh.caller-not-allowed", "'\(t.name.value)' accepts calls only from \(t.allowedCallers.map(\.value).joined(separator: ", ")), so gateway '\(gateway.name.value)' will be refused; add it to security.allowed_callers of '\(t.name.value)'",
                           file: mesh.file, path: "gateways", at: target.service.location)
                }
            }
            return g
        }
        _ = gatewayNames
        checkProxylessClients(cleaned)
        reportCycles(cleaned)
        return (cleaned, gateways)
    }

    mutating func checkDependencies(_ service: ServiceDefinition, _ services: [String: ServiceDefinition]) -> [DependencyDefinition] {
        var kept: [DependencyDefinition] = []
        var seen = Set<String>()
        for (i, dependency) in service.dependencies.enumerated() {
            let name = dependency.service.value
            let path = "dependencies[\(i)]"
            guard let target = services[name] else {
                let hint = closestName(name, Array(services.keys)).map { "did you mean '\($0)'? " } ?? ""
                report(.error, "mesh.unknown-dependency", "'\(service.name.value)' depends on '\(name)', which is not a service in Configs/services; \(hint)add the service or fix the name",
                       file: service.file, path: path, at: dependency.service.location)
                continue
            }
            if !seen.insert(name).inserted {
                report(.warning, "mesh.duplicate-dependency", "'\(name)' is listed twice in dependencies; remove one", file: service.file, path: path, at: dependency.service.location)
                continue
            }
            if target.isProxyless {
                report(.error, "mesh.proxyless-dependency", "'\(name)' is a proxyless gRPC client (proxyless: grpc): it serves nothing, so '\(service.name.value)' cannot depend on it; remove the dependency",
                       file: service.file, path: path, at: dependency.service.location)
                continue
            }
            if service.isProxyless {
                let chosen = dependency.port.flatMap { p in target.ports.first { $0.name.value == p.value } } ?? target.primaryHTTPPort
                if dependency.localPort != nil || chosen == nil || chosen?.proto == .tcp {
                    report(.error, "grpc.tcp-dependency", "'\(service.name.value)' is a proxyless gRPC client, which reaches only HTTP/gRPC ports; '\(name)' is reached over TCP (no local_port exists without a sidecar) — give '\(name)' a grpc port or give '\(service.name.value)' a sidecar",
                           file: service.file, path: path, at: dependency.location)
                    continue
                }
                if chosen?.proto == .http {
                    report(.warning, "grpc.http-port", "'\(name)' is reached on its 'http' port; a gRPC client's calls reach the application over HTTP/1.1 there — declare the port as protocol: grpc if the application speaks gRPC",
                           file: service.file, path: path, at: dependency.service.location)
                }
            }
            if let port = dependency.port, !target.ports.contains(where: { $0.name.value == port.value }) {
                report(.error, "mesh.unknown-port", "'\(name)' has no port '\(port.value)'; its ports: \(target.ports.map(\.name.value).joined(separator: ", "))",
                       file: service.file, path: path + ".port", at: port.location)
                continue
            }
            let chosen = dependency.port.flatMap { p in target.ports.first { $0.name.value == p.value } }
            let tcpPorts = chosen.map { $0.proto == .tcp ? [$0] : [] } ?? target.ports.filter { $0.proto == .tcp }
            if !tcpPorts.isEmpty && dependency.localPort == nil && (chosen != nil || target.primaryHTTPPort == nil) {
                report(.error, "mesh.tcp-dependency-port", "'\(name)' is reached over TCP, so '\(service.name.value)' needs a local port for its application to connect to; write the dependency as {service: \(name), local_port: N}",
                       file: service.file, path: path, at: dependency.location)
            }
            kept.append(dependency)
        }
        return kept
    }

    static func targets(_ route: RouteDefinition) -> [RouteTargetDefinition] {
        var out: [RouteTargetDefinition] = []
        switch route.action {
        case .forward(let t?): out.append(t)
        case .split(let s): out += s.targets.map(\.target)
        default: break
        }
        if let m = route.mirror { out.append(m.target) }
        return out
    }

    /// A route whose targets all exist, are declared and are HTTP; nil (after reporting) otherwise.
    mutating func checkRoute(_ route: RouteDefinition, path: String, file: String, owner: ServiceDefinition?, services: [String: ServiceDefinition]) -> RouteDefinition? {
        var valid = true
        for target in Self.targets(route) {
            let name = target.service.value
            guard let service = services[name] else {
                let hint = closestName(name, Array(services.keys)).map { "did you mean '\($0)'? " } ?? ""
                report(.error, "mesh.unknown-service", "route sends traffic to '\(name)', which is not a service in Configs/services; \(hint)fix the name or add the service",
                       file: file, path: path, at: target.service.location)
                valid = false
                continue
            }
            if let owner, name != owner.name.value, !owner.dependencies.contains(where: { $0.service.value == name }) {
                report(.error, "mesh.undeclared-dependency", "route sends traffic to '\(name)', which '\(owner.name.value)' does not declare; add '\(name)' to its dependencies",
                       file: file, path: path, at: target.service.location)
                valid = false
                continue
            }
            let port = target.port.flatMap { p in service.ports.first { $0.name.value == p.value } } ?? (target.port == nil ? service.primaryHTTPPort : nil)
            guard let port else {
                let message = target.port != nil
                    ? "'\(name)' has no port '\(target.port!.value)'; its ports: \(service.ports.map(\.name.value).joined(separator: ", "))"
                    : "'\(name)' has no HTTP or gRPC port, so HTTP routes cannot reach it"
                report(.error, "mesh.unknown-port", message, file: file, path: path, at: target.port?.location ?? target.service.location)
                valid = false
                continue
            }
            if port.proto == .tcp {
                report(.error, "mesh.unknown-port", "port '\(port.name.value)' of '\(name)' is TCP; HTTP routes need an HTTP or gRPC port", file: file, path: path, at: target.port?.location ?? target.service.location)
                valid = false
            }
        }
        if case .split(let split) = route.action {
            let sum = split.targets.reduce(0) { $0 + $1.weight.value }
            let total = split.total?.value ?? 100
            if sum != total {
                report(.error, "route.split-total", "the split weights add up to \(sum), not \(split.total == nil ? "100 (the default total)" : "the declared total \(total)"); adjust the weights or 'total'",
                       file: file, path: path + ".split", at: split.total?.location ?? split.location)
            }
        }
        return valid ? route : nil
    }

    /// gRPC's conditions in an xDS retry policy (gRFC A44); it ignores Envoy's HTTP ones.
    static let grpcRetryConditions: Set<String> = ["cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable"]

    /// What a proxyless gRPC client cannot do with the routes of the services it reaches (gRFC A28, A31, A44):
    /// a redirect, direct response, mirror or prefix rewrite would be NACKed or silently ignored, so each is an
    /// error at the route, naming the clients; retry conditions gRPC does not know are dropped, with a warning.
    mutating func checkProxylessClients(_ services: [String: ServiceDefinition]) {
        let reach = Reach(services: services)
        var clientsOf: [String: [String]] = [:]
        for name in services.keys.sorted() where services[name]!.isProxyless {
            for reached in reach.closure(of: services[name]!.dependencies.map(\.service.value)) { clientsOf[reached, default: []].append(name) }
        }
        for callee in clientsOf.keys.sorted() {
            let service = services[callee]!, clients = clientsOf[callee]!.map { "'\($0)'" }.joined(separator: ", ")
            for (i, route) in service.routes.enumerated() {
                let path = "routes[\(i)]"
                var unsupported: [String] = []
                switch route.action {
                case .redirect: unsupported.append("a redirect")
                case .directResponse: unsupported.append("a direct response")
                default: break
                }
                if route.mirror != nil { unsupported.append("mirroring") }
                if route.rewritePrefix != nil { unsupported.append("a prefix rewrite") }
                if !unsupported.isEmpty {
                    report(.error, "grpc.unsupported-route", "route \(route.name.map { "'\($0.value)' " } ?? "")of '\(callee)' uses \(unsupported.joined(separator: " and ")), which gRPC's xDS client does not support, and the proxyless gRPC client(s) \(clients) reach '\(callee)'; move the route to a gateway, or route those clients elsewhere",
                           file: service.file, path: path, at: route.location)
                }
                if let retries = route.retries ?? service.retries {
                    let dropped = retries.on.filter { !Self.grpcRetryConditions.contains($0) }
                    if !dropped.isEmpty {
                        report(.warning, "grpc.retry-condition", "retry conditions \(dropped.joined(separator: ", ")) of '\(callee)' mean nothing to gRPC (it retries on status codes: \(Self.grpcRetryConditions.sorted().joined(separator: ", "))); the proxyless client(s) \(clients) retry only on the others",
                               file: service.file, path: route.retries != nil ? path + ".retries" : "retries", at: retries.location)
                    }
                }
            }
        }
    }

    /// Dependency cycles (services that call each other, directly or not) are legal but worth knowing.
    mutating func reportCycles(_ services: [String: ServiceDefinition]) {
        // Tarjan's strongly connected components, visiting in name order for determinism.
        var index = 0
        var indices: [String: Int] = [:], low: [String: Int] = [:]
        var stack: [String] = [], onStack = Set<String>()
        var components: [[String]] = []
        func connect(_ v: String) {
            indices[v] = index; low[v] = index; index += 1
            stack.append(v); onStack.insert(v)
            for d in services[v]?.dependencies ?? [] {
                let w = d.service.value
                guard services[w] != nil else { continue }
                if indices[w] == nil { connect(w); low[v] = min(low[v]!, low[w]!) } else if onStack.contains(w) { low[v] = min(low[v]!, indices[w]!) }
            }
            if low[v] == indices[v] {
                var component: [String] = []
                while let w = stack.popLast() { onStack.remove(w); component.append(w); if w == v { break } }
                let selfLoop = component.count == 1 && (services[v]?.dependencies.contains { $0.service.value == v } ?? false)
                if component.count > 1 || selfLoop { components.append(component.sorted()) }
            }
        }
        for name in services.keys.sorted() where indices[name] == nil { connect(name) }
        for component in components.sorted(by: { $0[0] < $1[0] }) {
            let first = services[component[0]]!
            let members = Set(component)
            // Show the shortest cycle through the first service (breadth first), abridged when long.
            var previous: [String: String] = [:]
            var queue = [first.name.value], head = 0
            var closing: String?
            search: while head < queue.count {
                let v = queue[head]
                head += 1
                for d in services[v]?.dependencies.map(\.service.value) ?? [] where members.contains(d) {
                    if d == first.name.value { closing = v; break search }
                    if previous[d] == nil && d != first.name.value { previous[d] = v; queue.append(d) }
                }
            }
            var path = [first.name.value]
            var node = closing
            while let n = node, n != first.name.value { path.insert(n, at: 1); node = previous[n] }
            path.append(first.name.value)
            if path.count > 8 { path = Array(path.prefix(4)) + ["…"] + Array(path.suffix(3)) }
            let size = component.count > path.count - 1 ? " (\(component.count) services are in this cycle)" : ""
            let at = first.dependencies.first { members.contains($0.service.value) }
            report(.info, "mesh.dependency-cycle", "services call each other in a cycle: \(path.joined(separator: " → "))\(size); that works, but a failure in one can cascade around the loop and timeouts add up",
                   file: first.file, path: "dependencies", at: at?.service.location ?? first.name.location)
        }
    }
}

/// A file name without its directory and extension (`Configs/services/orders.yaml` → `orders`).
func fileStem(_ path: String) -> String {
    let last = path.split(separator: "/").last.map(String.init) ?? path
    guard let dot = last.lastIndex(of: ".") else { return last }
    return String(last[..<dot])
}
