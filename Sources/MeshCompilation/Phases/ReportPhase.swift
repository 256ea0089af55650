// Phase 8, report: diagnostics mapped back to the user's files, de-duplicated and sorted;
// with encoding asked for and no errors, each group's resources and access record.
import EnvoySchema
import Locking
import Foundation
import MeshModel
import SnapshotStorage

extension Compilation {
    mutating func makeReport(plan: inout JobPlan, groups plans: [ProxyGroupPlan], results: [JobResult], loaded: LoadedMesh,
                             model: CheckedMesh) -> CompileReport {
        let allJobs = plan.jobs, allPlans = plans, services = model.services
        // Each job's resources are its own (shared ones are generated once per config source), so this counts each resource once.
        report.resourceCount = results.reduce(0) { $0 + $1.resources.count }
        if ExitKeepAlive.enabled { MeshCompiler.keepUntilExit((results, allJobs, services, loaded, plan.builder)) }
        if pending.contains(where: { $0.provenance != nil }) {
            for part in plan.provenanceParts { plan.builder.record(part) }
        }
        var final = finish(jobs: allJobs, provenance: plan.builder.provenance)
        final.jobs = allJobs
        if encode && final.errorCount == 0 {
            final.groups = Parallel.map(allPlans.count) { i in
                let plan = allPlans[i]
                var list: [Resource] = []
                for job in plan.jobs { for r in results[job].resources { if let e = r.encoded { list.append(e) } } }
                list.append(Resource(typeURL: GroupAccess.typeURL, name: plan.name,
                                     body: GroupAccess(group: plan.name, identities: plan.identities, nodeIDs: plan.nodeIDs, xds: plan.xds).encoded()))
                // Immediate groups carry no record, so snapshots of meshes without a rollout policy are unchanged.
                if let rollout = plan.rollout {
                    list.append(Resource(typeURL: RolloutPolicy.typeURL, name: plan.name, body: rollout.encoded()))
                }
                return ProxyGroupResources(group: plan.name, resources: list)
            }
            clock.lap("groups assembled")
        }
        return final
    }
}
