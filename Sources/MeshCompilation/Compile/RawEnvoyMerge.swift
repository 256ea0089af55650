// The `envoy:` escape hatch: a service's raw Envoy fields merged into the resources the
// templates generated, on the YAML trees (before they are read as Envoy messages) so
// every node keeps its own file and position — a mistake inside the raw block is
// reported in the service file, the rest in the template.
import EnvoySchema

enum RawEnvoyMerge {
    /// Deep merge: mappings merge key by key (the patch wins), lists and scalars are replaced
    /// by the patch's, and a key set to null in the patch removes the key.
    static func merge(_ base: YAMLNode, _ patch: YAMLNode) -> YAMLNode {
        guard case .mapping(var pairs) = base.kind, case .mapping(let patchPairs) = patch.kind else { return patch }
        for (key, value) in patchPairs {
            guard let name = key.scalarText else { continue }
            let index = pairs.firstIndex { $0.key.scalarText == name }
            if isNull(value) {
                if let index { pairs.remove(at: index) }
            } else if let index {
                // A replaced value is the patch's: its key carries the patch's position, so problems with it
                // are reported in the service file. Merged mappings keep the template's key.
                let bothMappings: Bool
                if case .mapping = pairs[index].value.kind, case .mapping = value.kind { bothMappings = true } else { bothMappings = false }
                pairs[index] = (bothMappings ? pairs[index].key : key, merge(pairs[index].value, value))
            } else {
                pairs.append((key, value))
            }
        }
        var merged = base
        merged.kind = .mapping(pairs)
        return merged
    }

    static func isNull(_ node: YAMLNode) -> Bool {
        guard case .scalar(let s) = node.kind, s.style == .plain, s.tag == nil else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(s.string)
    }
}
