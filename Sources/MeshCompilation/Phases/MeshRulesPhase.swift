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
}

extension Compilation {
    mutating func applyMeshRules(_ loaded: LoadedMesh) -> CheckedMesh {
        let mesh = loaded.mesh
        var checks = MeshChecks(mesh: mesh)
        let (services, gateways) = checks.run(loaded.services.compactMap(\.definition))
        checks.diagnostics.forEach { diagnose($0) }
        report.serviceCount = services.count
        report.gatewayCount = gateways.count
        clock.lap("mesh rules")

        return CheckedMesh(mesh: mesh, services: services, gateways: gateways)
    }
}
