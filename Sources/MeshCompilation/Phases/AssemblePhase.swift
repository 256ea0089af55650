// Phase 6, assemble: the proxy groups — each sidecar with the upstreams it reaches, each
// gateway with its routes' services — as lists of jobs, in the group's subscription mode.
import EnvoySchema
import Foundation
import MeshModel
import SnapshotStorage

extension Compilation {
    mutating func assembleGroups(_ plan: JobPlan, model: CheckedMesh) -> [ProxyGroupPlan] {
        let mesh = model.mesh, gateways = model.gateways, names = plan.names
        let sidecarJob = plan.sidecarJob, sidecarReach = plan.sidecarReach, upstreamJob = plan.upstreamJob
        let gatewayJob = plan.gatewayJob, gatewayReach = plan.gatewayReach, builder = plan.builder
        func upstream(_ service: String, _ mode: SubscriptionMode) -> Int? { plan.upstream(service, mode) }
        // A group is checked only when every template it is made from rendered.
        var plans: [ProxyGroupPlan] = []
        do {
            for name in names {
                guard let own = sidecarJob[name], let reached = sidecarReach[name] else { continue }
                if model.services[name]?.isProxyless == true {
                    // gRPC clients speak state-of-the-world ADS only; their one job holds everything they get.
                    plans.append(ProxyGroupPlan(name: name, kind: TemplateRole.grpcClient.rawValue, jobs: [own], identities: [builder.identity(name)],
                                                nodeIDs: mesh.sidecarNodeIDs.map { $0.replacingOccurrences(of: "{service}", with: name) },
                                                xds: .adsStateOfTheWorld))
                    continue
                }
                guard reached.allSatisfy({ upstreamJob[$0] != nil }) else { continue }
                plans.append(ProxyGroupPlan(name: name, kind: "sidecar", jobs: [own] + reached.compactMap { upstream($0, mesh.sidecarXDS) },
                                            identities: [builder.identity(name)],
                                            nodeIDs: mesh.sidecarNodeIDs.map { $0.replacingOccurrences(of: "{service}", with: name) },
                                            xds: mesh.sidecarXDS,
                                            rollout: (model.services[name]?.rollout ?? mesh.rollout).policy))
            }
            for gateway in gateways {
                guard let own = gatewayJob[gateway.name.value], (gatewayReach[gateway.name.value] ?? []).allSatisfy({ upstreamJob[$0] != nil }) else { continue }
                plans.append(ProxyGroupPlan(name: gateway.name.value, kind: gateway.kind.rawValue,
                                            jobs: [own] + (gatewayReach[gateway.name.value] ?? []).compactMap { upstream($0, gateway.xds) },
                                            identities: gateway.identities, nodeIDs: gateway.nodeIDs, xds: gateway.xds,
                                            rollout: (gateway.rollout ?? mesh.rollout).policy))
            }
            for group in model.rawGroups {
                guard let own = plan.rawGroupJob[group.name.value] else { continue }
                plans.append(ProxyGroupPlan(name: group.name.value, kind: TemplateRole.raw.rawValue, jobs: [own], identities: group.identities,
                                            nodeIDs: group.nodeIDs, xds: group.xds, rollout: (group.rollout ?? mesh.rollout).policy))
            }
        }
        report.groupCount = plans.count
        return plans
    }
}
