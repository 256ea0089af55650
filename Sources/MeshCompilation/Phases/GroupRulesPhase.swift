// Phase 7, group rules: each proxy group's cross-references (routes to clusters,
// clusters to endpoints, listeners to routes) checked in parallel.
import EnvoySchema
import Locking
import Foundation
import MeshModel
import SnapshotStorage

extension Compilation {
    mutating func checkGroupRules(_ plans: [ProxyGroupPlan], results: [JobResult], model: CheckedMesh) {
        let services = model.services
        var clusterOwners: [String: String] = [:]
        for (name, service) in services {
            for port in service.ports { clusterOwners[ResourceNames.cluster(service: name, port: port.name.value)] = name }
        }
        let allPlans = plans, owners = clusterOwners
        let groupDiagnostics = Parallel.map(allPlans.count) { i -> [PendingDiagnostic] in
            var rules = GroupRules(plan: allPlans[i])
            rules.check(results, clusterOwners: owners)
            return rules.diagnostics
        }
        for list in groupDiagnostics { pending += list }
        clock.lap("group rules (\(plans.count) groups)")

    }
}
