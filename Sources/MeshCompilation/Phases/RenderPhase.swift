// Phase 5, render: every job rendered, read as Envoy, validated and encoded (parallel,
// each independent); then the raw patches that matched nothing are reported.
import EnvoySchema
import Locking
import Foundation
import MeshModel
import SnapshotStorage

extension Compilation {
    mutating func render(_ plan: JobPlan, model: CheckedMesh) -> [JobResult] {
        let services = model.services, names = plan.names, upstreamJob = plan.upstreamJob, sidecarJob = plan.sidecarJob
        // Render, read, validate, encode: every job independent.
        let allJobs = plan.jobs
        let pool = self.pool, encode = self.encode, hostFiles = inputs.hostFiles
        // Every sidecar names the same certificate files: each is read once for the whole compile.
        let fileReads = HostFileReads()
        let results = Parallel.map(allJobs.count) {
            ResourceGeneration.run(allJobs[$0], pool: pool, encode: encode, hostFiles: hostFiles, fileReads: fileReads)
        }
        for result in results { pending += result.diagnostics }
        clock.lap("render + read + validate + encode")

        // Raw patches that matched nothing.
        for name in names {
            let service = services[name]!
            guard !service.raw.patches.isEmpty else { continue }
            let own = [upstreamJob[name], sidecarJob[name]].compactMap { $0 }
            guard own.count == (service.isProxyless ? 1 : 2) else { continue }   // a template that failed reports itself
            let applied = own.reduce(into: Set<String>()) { $0.formUnion(results[$1].appliedPatches) }
            for (kind, patches) in service.raw.patches {
                let generated = own.flatMap { results[$0].resources.filter { $0.kind == kind }.map(\.name) }
                for patch in patches where !applied.contains("\(kind.rawValue)/\(patch.name.value)") {
                    let hint = closestName(patch.name.value, generated).map { "did you mean '\($0)'? " } ?? ""
                    diagnose(Diagnostic(.error, rule: "config.raw-unknown-resource", message: "envoy.patch names \(kind.singular) '\(patch.name.value)', which the templates do not generate for '\(name)'; \(hint)generated: \(generated.isEmpty ? "none" : generated.joined(separator: ", ")) (use envoy.add for new resources)",
                                        path: "envoy.patch.\(kind.rawValue)", file: service.file, location: patch.name.location))
                }
            }
        }

        return results
    }
}
