// Phase 2, mesh rules: the mesh-wide checks over every service and gateway (names,
// ports, dependencies, routes), leaving the services and gateways that can be rendered.
import EnvoySchema
import Foundation
import MeshModel
import SnapshotStorage

/// The mesh as the later phases see it.
struct CheckedMesh {
    let mesh: MeshDefinition
    let services: [String: ServiceDefinition]
    let gateways: [GatewayDefinition]
    /// Raw proxy groups (Configs/groups/), after the name check.
    var rawGroups: [RawGroupDefinition] = []
}

extension Compilation {
    mutating func applyMeshRules(_ loaded: LoadedMesh) -> CheckedMesh {
        let mesh = loaded.mesh
        var checks = MeshChecks(mesh: mesh)
        let (services, gateways) = checks.run(loaded.services.compactMap(\.definition))
        checks.diagnostics.forEach { diagnose($0) }
        // Raw groups share the proxy group namespace with services and gateways.
        var names: [String: String] = [:]
        for name in services.keys { names[name] = "service '\(name)' (\(services[name]!.file))" }
        for gateway in gateways { names[gateway.name.value] = "gateway '\(gateway.name.value)' (\(mesh.file))" }
        var rawGroups: [RawGroupDefinition] = []
        for group in loaded.rawGroups {
            if let other = names[group.name.value] {
                diagnose(Diagnostic(.error, rule: "mesh.duplicate-group", message: "raw group '\(group.name.value)' has the name of \(other); proxy group names (services, gateways and raw groups) must be unique — rename it",
                                    path: "name", file: group.file, location: group.name.location))
                continue
            }
            names[group.name.value] = "raw group '\(group.name.value)' (\(group.file))"
            rawGroups.append(group)
        }
        report.serviceCount = services.count
        report.gatewayCount = gateways.count
        report.rawGroupCount = rawGroups.count
        clock.lap("mesh rules")

        return CheckedMesh(mesh: mesh, services: services, gateways: gateways, rawGroups: rawGroups)
    }
}
