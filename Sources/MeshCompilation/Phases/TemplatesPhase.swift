// Phase 3, templates: each template the mesh names is read and parsed once (meshctl's
// parser, with Stencil's as the reference for syntax errors) and checked against the
// context of every role it renders for. A template with errors is not rendered.
import EnvoySchema
import Foundation
import MeshModel
import SnapshotStorage

extension Compilation {
    /// The usable templates by path.
    mutating func loadTemplates(_ model: CheckedMesh) -> [String: CompiledTemplate] {
        let mesh = model.mesh, services = model.services, gateways = model.gateways
        var templates: [String: CompiledTemplate] = [:]
        var failedTemplates = Set<String>()
        var roles: [(Located<String>, TemplateRole)] = []
        if !services.isEmpty { roles += [(mesh.upstreamTemplate, .upstream), (mesh.sidecarTemplate, .sidecar)] }
        if services.values.contains(where: \.isProxyless) { roles.append((mesh.grpcClientTemplate, .grpcClient)) }
        roles += gateways.map { ($0.template, .gateway) }
        var checkedRoles = Set<String>()
        for (name, role) in roles {
            let path = ConfigSources.join(inputs.templates, name.value)
            if templates[path] == nil && !failedTemplates.contains(path) {
                if let template = loadTemplate(path, reference: name, meshFile: mesh.file) { templates[path] = template } else { failedTemplates.insert(path) }
            }
            guard let template = templates[path], checkedRoles.insert("\(path)|\(role.rawValue)").inserted else { continue }
            let errors = TemplateChecker.check(template, roots: ContextSchema.roots(role))
            for error in errors { diagnose(templateDiagnostic(error, template.source)) }
            if !errors.isEmpty {
                // Rendering it would only repeat the same mistakes once per service.
                failedTemplates.insert(path)
                templates[path] = nil
            }
        }
        clock.lap("templates")

        return templates
    }

    mutating func loadTemplate(_ path: String, reference: Located<String>, meshFile: String) -> CompiledTemplate? {
        let text: String
        switch ConfigSources.read(path) {
        case .success(let t): text = t
        case .failure(let d):
            if d.rule == "input.missing" {
                diagnose(Diagnostic(.error, rule: "config.missing-template", message: "template '\(reference.value)' does not exist in \(inputs.templates); add it or fix the name", path: "templates", file: meshFile, location: reference.location))
            } else {
                diagnose(d)
            }
            return nil
        }
        report.files.append(path)
        let source = TemplateSource(path: path, text: text)
        let tokens: [TemplateToken]
        do { tokens = try TemplateLexer.tokenize(source) } catch {
            diagnose(templateDiagnostic(error, source))
            return nil
        }
        if let stencil = StencilReference.syntaxError(text) {
            var offset = 0
            if let index = stencil.tokenIndex, index < tokens.count {
                offset = tokens[index].range.lowerBound
            } else if let contents = stencil.tokenContents, let token = tokens.first(where: { $0.kind != .text && $0.contents.contains(contents) }) {
                offset = token.range.lowerBound
            }
            diagnose(templateDiagnostic(TemplateError(kind: .syntax, message: "Stencil: \(stencil.message)", offset: offset), source))
            return nil
        }
        do {
            return try CompiledTemplate(source: source)
        } catch {
            diagnose(templateDiagnostic(error, source))
            return nil
        }
    }

    func templateDiagnostic(_ error: TemplateError, _ source: TemplateSource) -> Diagnostic {
        let (line, column) = source.position(ofByte: error.offset)
        return Diagnostic(.error, rule: error.kind.rawValue, message: error.message, path: "", file: source.path, location: SourceLocation(line: line, column: column))
    }

}
