// Stencil itself, as the authority on the template language: every template must
// parse with Stencil's own parser (so templates stay portable Stencil), and tests render
// the shipped templates with Stencil and with meshctl's renderer and require identical
// bytes. meshctl renders with its own evaluator because Stencil's (reflection and
// dynamic casts per lookup) costs ~0.2 ms per small template: too slow for 10,000
// services in the time budget (see docs/BENCHMARKS.md).
import Foundation
import Stencil

/// Stencil's parser and renderer, configured as meshctl renders (the reference for its renderer).
public enum StencilReference {
    /// Stencil configured the way meshctl renders: smart trimming, plus the `json` filter.
    static func environment() -> Environment {
        let filters = Extension()
        filters.registerFilter("json") { (value: Any?) throws -> Any? in try json(value) }
        return Environment(extensions: [filters], trimBehaviour: .smart)
    }

    /// Stencil's verdict on a template: nil when it parses, else its message and the index of
    /// the token it blames (in the token order both lexers share), when it names one.
    static func syntaxError(_ text: String) -> (message: String, tokenIndex: Int?, tokenContents: String?)? {
        let environment = environment()
        let template = Template(templateString: text, environment: environment)
        do {
            _ = try TokenParser(tokens: template.tokens, environment: environment).parse()
            return nil
        } catch let error as TemplateSyntaxError {
            let index = error.token.flatMap { token in template.tokens.firstIndex { $0 === token } }
            return (error.reason, index, error.token?.contents)
        } catch {
            return ("\(error)", nil, nil)
        }
    }

    /// Renders with Stencil itself (the reference the renderer is tested against).
    public static func render(_ text: String, roots: [String: TemplateValue]) throws -> String {
        let environment = environment()
        let template = Template(templateString: text, environment: environment)
        let nodes = try TokenParser(tokens: template.tokens, environment: environment).parse()
        var dictionary: [String: Any] = [:]
        for (name, value) in roots { dictionary[name] = stencilValue(value) }
        return try renderNodes(nodes, Context(dictionary: dictionary, environment: environment))
    }

    static func stencilValue(_ value: TemplateValue) -> Any? {
        switch value {
        case .null: return nil
        case .string(let s): return s
        case .int(let i): return i
        case .bool(let b): return b
        case .list(let l): return l.compactMap(stencilValue) as [Any]
        case .object(let o): return StencilObject(o)
        }
    }

    /// The `json` filter over Stencil's values (same output as the renderer's).
    static func json(_ value: Any?) throws -> String {
        switch value {
        case nil: return "null"
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let s as String: return jsonQuoted(s)
        case let l as [Any]: return "[" + (try l.map { try json($0) }).joined(separator: ", ") + "]"
        default: throw TemplateSyntaxError("json renders strings, numbers, booleans and lists")
        }
    }
}

/// A context object as Stencil reads it (member lookup by name).
final class StencilObject: DynamicMemberLookup {
    let object: TemplateObject
    init(_ object: TemplateObject) { self.object = object }
    subscript(dynamicMember member: String) -> Any? { StencilReference.stencilValue(object[member]) }
}
