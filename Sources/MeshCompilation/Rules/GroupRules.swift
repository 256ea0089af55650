// Rules over everything one proxy group receives: names unique per type, every
// reference (route → cluster, HCM rds → RouteConfiguration, EDS cluster →
// ClusterLoadAssignment, SDS → Secret) resolving inside the group, one listener per
// address and port.
import EnvoySchema
import MeshModel

/// Which rendering jobs make up a proxy group, and who may receive it.
struct ProxyGroupPlan: Sendable {
    let name: String
    let kind: String
    /// Indices into the job list; the group's own job first.
    let jobs: [Int]
    let identities: [String]
    let nodeIDs: [String]
    /// How the group's proxies subscribe (recorded in its access record).
    let xds: SubscriptionMode
    /// How new snapshots reach the group's proxies (nil: immediate).
    var rollout: RolloutPolicy? = nil
}

struct GroupRules {
    let plan: ProxyGroupPlan
    var diagnostics: [PendingDiagnostic] = []

    init(plan: ProxyGroupPlan) { self.plan = plan }

    mutating func report(_ rule: String, _ message: String, path: String, at location: SourceLocation?, provenance: String? = nil) {
        diagnostics.append(PendingDiagnostic(diagnostic: Diagnostic(.error, rule: rule, message: message, path: path, location: location), provenance: provenance))
    }

    /// - Parameter clusterOwners: mesh cluster name → the service it reaches (to tell an undeclared dependency from a typo).
    mutating func check(_ results: [JobResult], clusterOwners: [String: String]) {
        var names: [ResourceKind: [String: (job: Int, index: Int)]] = [:]
        for job in plan.jobs {
            for (index, resource) in results[job].resources.enumerated() where !resource.name.isEmpty {
                if let first = names[resource.kind]?[resource.name] {
                    guard first.job != job || first.index != index else { continue }
                    let where_ = first.job == job ? "by another \(resource.kind.singular) of the same template" : "by a \(resource.kind.singular) generated for another service"
                    report("xref.duplicate-resource", "\(resource.kind.singular) name '\(resource.name)' is already used \(where_) in proxy group '\(plan.name)'; names must be unique per type in a group",
                           path: resource.kind.nameField, at: resource.nameLocation)
                    continue
                }
                names[resource.kind, default: [:]][resource.name] = (job, index)
            }
        }
        var addresses: [String: String] = [:]
        for job in plan.jobs {
            for resource in results[job].resources {
                // Shared resources (the upstream bundles) are checked once per group: keep their messages group-free so repeats collapse.
                let group = job == plan.jobs.first ? "proxy group '\(plan.name)'" : "the proxy groups that receive it"
                for reference in resource.facts.references where names[reference.kind.target]?[reference.name] == nil {
                    checkMissing(reference, group: group, clusterOwners: clusterOwners)
                }
                if resource.kind == .listeners, let address = resource.facts.listenerAddress {
                    if let first = addresses[address] {
                        report("xref.duplicate-address", "listener '\(resource.name)' binds \(address), which listener '\(first)' of proxy group '\(plan.name)' already binds; give each listener its own port",
                               path: "address", at: resource.facts.listenerAddressLocation, provenance: "listener:" + resource.name)
                    } else {
                        addresses[address] = resource.name
                    }
                }
            }
        }
    }

    mutating func checkMissing(_ reference: ResourceReference, group: String, clusterOwners: [String: String]) {
        switch reference.kind {
        case .routeCluster, .weightedCluster, .mirrorCluster, .tcpProxyCluster:
            let what: String
            switch reference.kind {
            case .weightedCluster: what = "a weighted split"
            case .mirrorCluster: what = "a mirror policy"
            case .tcpProxyCluster: what = "a TCP proxy"
            default: what = "a route"
            }
            if let service = clusterOwners[reference.name] {
                report("mesh.undeclared-dependency", "\(what) sends traffic to cluster '\(reference.name)' of service '\(service)', but '\(plan.name)' does not declare '\(service)' as a dependency, so its proxies do not have that cluster; add '\(service)' to its dependencies",
                       path: reference.path, at: reference.location, provenance: reference.provenance)
            } else {
                report("xref.route-cluster", "\(what) points at cluster '\(reference.name)', which \(group) does not have; define the cluster or fix the name",
                       path: reference.path, at: reference.location, provenance: reference.provenance)
            }
        case .routeConfiguration:
            report("xref.rds-route-config", "rds.route_config_name '\(reference.name)' names no RouteConfiguration in \(group); generate it in the same group or fix the name",
                   path: reference.path, at: reference.location)
        case .loadAssignment:
            report("xref.eds-assignment", "EDS cluster needs a ClusterLoadAssignment named '\(reference.name)' in \(group), but there is none; generate it (cluster_load_assignments) or use a STATIC/STRICT_DNS cluster",
                   path: reference.path, at: reference.location)
        case .secret:
            report("xref.sds-secret", "SDS secret '\(reference.name)' is not among the secrets of \(group); generate it (secrets:) or fix the name",
                   path: reference.path, at: reference.location)
        }
    }
}
