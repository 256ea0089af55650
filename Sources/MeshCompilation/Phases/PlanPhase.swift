// Phase 4, plan: the template contexts (per service in parallel) and one rendering job
// per (template, service or gateway), plus the upstream renderings groups that do not
// subscribe by ADS need with their own config source.
import EnvoySchema
import Locking
import Foundation
import MeshModel
import SnapshotStorage

/// Every rendering job and which job renders what.
struct JobPlan {
    var builder: ContextBuilder
    let names: [String]
    let jobs: [RenderJob]
    let provenanceParts: [[String: Provenance]]
    let upstreamJob: [String: Int]
    let sidecarJob: [String: Int]
    let gatewayJob: [String: Int]
    let gatewayReach: [String: [String]]
    let sidecarReach: [String: [String]]
    let variantJob: [String: Int]
    /// Each raw group's one job.
    var rawGroupJob: [String: Int] = [:]

    /// The job with `service`'s upstream resources as a group subscribing by `mode` needs them.
    func upstream(_ service: String, _ mode: SubscriptionMode) -> Int? {
        variantJob["\(service)|\(mode.configSource)"] ?? upstreamJob[service]
    }
}

extension Compilation {
    mutating func planJobs(_ model: CheckedMesh, templates: [String: CompiledTemplate]) -> JobPlan {
        let mesh = model.mesh, services = model.services, gateways = model.gateways
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
        let grpcClientTemplate = templates[ConfigSources.join(inputs.templates, mesh.grpcClientTemplate.value)]
        let perService = (upstreamTemplate != nil ? 1 : 0) + (sidecarTemplate != nil || grpcClientTemplate != nil ? 1 : 0)
        var serviceValueByName: [String: TemplateValue] = [:]
        for (i, name) in names.enumerated() { serviceValueByName[name] = built[i].service }
        let serviceValues = serviceValueByName, reachFromClients = Reach(services: services)
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
            if service.isProxyless {
                // gRPC's own xDS client: no upstream resources of its own (nothing calls it), no sidecar;
                // one job renders everything it needs in gRPC's dialect.
                guard let grpcClientTemplate else { return [] }
                let upstreams = service.dependencies.compactMap { upstreamsByName[$0.service.value] }
                let reachedNames = reachFromClients.closure(of: service.dependencies.map(\.service.value))
                var meshClusters: [String: String] = [:], undeclaredClusters: [String: String] = [:]
                let reachedSet = Set(reachedNames)
                for (callee, definition) in services {
                    for port in definition.ports {
                        let cluster = ResourceNames.cluster(service: callee, port: port.name.value)
                        if !reachedSet.contains(callee) { undeclaredClusters[cluster] = callee }
                        else if mtlsStrict && definition.mtlsDisabled == nil { meshClusters[cluster] = callee }
                    }
                }
                return [RenderJob(role: .grpcClient, template: grpcClientTemplate,
                                  roots: ["mesh": meshValue, "service": built[i].service, "upstreams": .list(upstreams),
                                          "services": .list(reachedNames.compactMap { serviceValues[$0] })],
                                  origin: origin, owner: name, patches: service.raw.patches, additions: service.raw.additions,
                                  requireMTLS: requireMTLS, inboundListeners: [], meshClusters: meshClusters,
                                  undeclaredClusters: undeclaredClusters)]
            }
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
            for var job in serviceJobs[i] {
                // A proxyless client has one job where other services have two: the origin is the job's final index.
                job.origin = Self.jobOriginBase + Int32(jobs.count)
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
        needs += names.compactMap { name in services[name]!.isProxyless ? nil : sidecarReach[name].map { ($0, mesh.sidecarXDS) } }
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
        // Raw groups: one template-less job each, holding the group's resources.
        var rawGroupJob: [String: Int] = [:]
        for group in model.rawGroups {
            rawGroupJob[group.name.value] = jobs.count
            jobs.append(RenderJob(role: .raw, template: nil, roots: [:], origin: Self.jobOriginBase + Int32(jobs.count), owner: group.name.value,
                                  patches: [:], additions: group.resources, requireMTLS: false, inboundListeners: []))
        }
        clock.lap("contexts (\(jobs.count) jobs)")

        return JobPlan(builder: builder, names: names, jobs: jobs, provenanceParts: provenanceParts, upstreamJob: upstreamJob,
                       sidecarJob: sidecarJob, gatewayJob: gatewayJob, gatewayReach: gatewayReach, sidecarReach: sidecarReach,
                       variantJob: variantJob, rawGroupJob: rawGroupJob)
    }
}
