// Phase 1, load: find mesh.yaml and services/*.yaml, read and parse them (services in
// parallel) into the mesh definition and one service definition per file.
import EnvoySchema
import Locking
import Foundation
import MeshModel
import SnapshotStorage

/// Where the inputs are, once the Configs/ directory checked out.
struct CompileSources {
    let meshPath: String
    let meshExists: Bool
    let serviceFiles: [String]
    /// Configs/groups/*.yaml: raw proxy groups.
    var groupFiles: [String] = []
}

struct LoadedService: Sendable {
    var definition: ServiceDefinition?
    var diagnostics: [Diagnostic]
}

/// What the load phase read.
struct LoadedMesh {
    var meshExists: Bool
    var mesh: MeshDefinition
    var services: [LoadedService]
    var rawGroups: [RawGroupDefinition] = []
}

extension Compilation {
    /// Checks the Configs/ directory; nil when it holds nothing to compile (the problem is diagnosed).
    mutating func locate() throws(CompileUsageError) -> CompileSources? {
        switch ConfigSources.entry(inputs.configs) {
        case .directory: break
        case .symlinkLoop: throw CompileUsageError(description: "\(inputs.configs): a symbolic link loop, not a directory")
        case .file, .other: throw CompileUsageError(description: "\(inputs.configs) is not a directory; pass the Configs/ directory with --configs")
        case .missing: throw CompileUsageError(description: "\(inputs.configs): no such directory; pass the Configs/ directory with --configs")
        }
        let meshPath = ConfigSources.join(inputs.configs, "mesh.yaml")
        let servicesDirectory = ConfigSources.join(inputs.configs, "services")
        let servicesEntry = ConfigSources.entry(servicesDirectory)
        if servicesEntry == .symlinkLoop {
            diagnose(Diagnostic(.error, rule: "input.symlink-loop", message: "is a symbolic link that leads back to itself (a loop); make services/ a real directory", path: "", file: servicesDirectory))
        }
        let serviceFiles = servicesEntry == .directory ? ConfigSources.yamlFiles(in: servicesDirectory) : []
        let groupsDirectory = ConfigSources.join(inputs.configs, "groups")
        let groupFiles = ConfigSources.entry(groupsDirectory) == .directory ? ConfigSources.yamlFiles(in: groupsDirectory) : []
        let meshExists = ConfigSources.entry(meshPath) != .missing
        if !meshExists && serviceFiles.isEmpty {
            diagnose(Diagnostic(.error, rule: "config.empty", message: "holds no mesh: add mesh.yaml (mesh-wide settings) and services/NAME.yaml (one per service); see docs/CONFIG.md", path: "", file: inputs.configs))
            return nil
        }
        if !meshExists {
            diagnose(Diagnostic(.error, rule: "config.missing-file", message: "no such file; every mesh needs mesh.yaml (xDS server, trust domain, certificates, templates, gateways)", path: "", file: meshPath))
        }
        // A mesh of raw groups only (imported flat Envoy files) needs no services.
        if serviceFiles.isEmpty && groupFiles.isEmpty && servicesEntry != .symlinkLoop {
            diagnose(Diagnostic(.error, rule: "config.empty", message: "has no services: add services/NAME.yaml, one file per service", path: "", file: servicesDirectory))
        }

        return CompileSources(meshPath: meshPath, meshExists: meshExists, serviceFiles: serviceFiles, groupFiles: groupFiles)
    }

    /// Reads and parses mesh.yaml, then every service file in parallel.
    mutating func load(_ sources: CompileSources) -> LoadedMesh {
        let meshPath = sources.meshPath, meshExists = sources.meshExists, serviceFiles = sources.serviceFiles
        // mesh.yaml, then every service file in parallel.
        var mesh = MeshDefinition(file: meshPath)
        if meshExists {
            report.files.append(meshPath)
            fileOrigins[1] = meshPath
            switch ConfigSources.read(meshPath) {
            case .failure(let d): diagnose(d)
            case .success(let text):
                switch Self.parse(text, file: meshPath, origin: 1) {
                case .failure(let d): diagnose(d)
                case .success(let node):
                    var reader = ConfigReader(file: meshPath)
                    mesh = MeshLoader.mesh(node, file: meshPath, reader: &reader)
                    reader.diagnostics.forEach { diagnose($0) }
                }
            }
        }
        for (i, file) in serviceFiles.enumerated() { fileOrigins[Int32(i + 2)] = file }
        report.files += serviceFiles
        let loaded = Parallel.map(serviceFiles.count) { i -> LoadedService in
            let file = serviceFiles[i]
            switch ConfigSources.read(file) {
            case .failure(let d): return LoadedService(definition: nil, diagnostics: [d])
            case .success(let text):
                switch Compilation.parse(text, file: file, origin: Int32(i + 2)) {
                case .failure(let d): return LoadedService(definition: nil, diagnostics: [d])
                case .success(let node):
                    var reader = ConfigReader(file: file)
                    let definition = MeshLoader.service(node, file: file, origin: Int32(i + 2), reader: &reader)
                    return LoadedService(definition: definition, diagnostics: reader.diagnostics)
                }
            }
        }
        for item in loaded { item.diagnostics.forEach { diagnose($0) } }
        // Raw groups after the services (their origins follow the service files'); few and small, read in order.
        var rawGroups: [RawGroupDefinition] = []
        for (i, file) in sources.groupFiles.enumerated() {
            let origin = Int32(serviceFiles.count + 2 + i)
            fileOrigins[origin] = file
            report.files.append(file)
            switch ConfigSources.read(file) {
            case .failure(let d): diagnose(d)
            case .success(let text):
                switch Self.parse(text, file: file, origin: origin) {
                case .failure(let d): diagnose(d)
                case .success(let node):
                    var reader = ConfigReader(file: file)
                    if let group = MeshLoader.rawGroup(node, file: file, mesh: mesh, reader: &reader) { rawGroups.append(group) }
                    reader.diagnostics.forEach { diagnose($0) }
                }
            }
        }
        clock.lap("read + parse \(serviceFiles.count + sources.groupFiles.count + 1) files")

        return LoadedMesh(meshExists: meshExists, mesh: mesh, services: loaded, rawGroups: rawGroups)
    }
}
