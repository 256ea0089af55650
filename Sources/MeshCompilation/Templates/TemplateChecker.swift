// Checks every variable a template uses against the context schema before anything is
// rendered: a misspelt member (`service.prot`) is an error at its line and column even
// in a branch no service takes, instead of Stencil's silent empty string.

struct TemplateChecker {
    let roots: [String: TemplateType]
    private(set) var errors: [TemplateError] = []
    private var scopes: [(name: String, type: TemplateType)] = []

    init(roots: [String: TemplateType]) {
        self.roots = roots
    }

    static func check(_ template: CompiledTemplate, roots: [String: TemplateType]) -> [TemplateError] {
        var checker = TemplateChecker(roots: roots)
        checker.check(template.nodes)
        return checker.errors
    }

    mutating func check(_ nodes: [TemplateNode]) {
        for node in nodes {
            switch node {
            case .text: break
            case .output(let expression):
                if let type = self.type(of: expression) {
                    switch type {
                    case .list(let element):
                        errors.append(TemplateError(kind: .render, message: "'\(expression.text)' is a list of \(element.name); render it with a for loop, '|join:\", \"' or '|json'", offset: expression.offset))
                    case .object(let object):
                        errors.append(TemplateError(kind: .render, message: "'\(expression.text)' is an object (\(object.name)); render one of its members: \(object.fields.keys.sorted().joined(separator: ", "))", offset: expression.offset))
                    default: break
                    }
                }
            case .loop(let loop):
                var element = TemplateType.any
                if let sequence = type(of: loop.sequence) {
                    switch sequence {
                    case .list(let e): element = e
                    case .any: element = .any
                    default:
                        errors.append(TemplateError(kind: .render, message: "'\(loop.sequence.text)' is a \(sequence.name), not a list; a for loop needs a list", offset: loop.sequence.offset))
                    }
                }
                scopes.append((loop.variables[0], element))
                if let filter = loop.filter { check(filter) }
                scopes.append(("forloop", .object(forloopType)))
                check(loop.body)
                scopes.removeLast(2)
                check(loop.empty)
            case .conditional(let branches, let otherwise):
                for branch in branches {
                    check(branch.condition)
                    check(branch.body)
                }
                if let otherwise { check(otherwise) }
            }
        }
    }

    mutating func check(_ condition: TemplateCondition) {
        switch condition {
        case .value(let expression): _ = type(of: expression)
        case .not(let inner): check(inner)
        case .and(let a, let b), .or(let a, let b), .binary(_, let a, let b):
            check(a)
            check(b)
        }
    }

    /// The expression's type, or nil after reporting why it has none.
    mutating func type(of expression: FilterExpression) -> TemplateType? {
        guard var type = type(of: expression.operand, offset: expression.offset) else { return nil }
        for (filter, arguments) in expression.filters {
            var argumentTypes: [TemplateType] = []
            for argument in arguments {
                guard let t = self.type(of: argument, offset: expression.offset) else { return nil }
                argumentTypes.append(t)
            }
            switch filter {
            case .default: break
            case .join, .json: type = .string
            case .uppercase, .lowercase, .capitalize:
                if case .list = type { type = .list(.string) } else { type = .string }
            }
        }
        return type
    }

    mutating func type(of operand: TemplateOperand, offset: Int) -> TemplateType? {
        switch operand {
        case .literal(let value):
            switch value {
            case .string: return .string
            case .int: return .int
            case .bool: return .bool
            default: return .any
            }
        case .path(let root, let members):
            guard var type = scopes.last(where: { $0.name == root })?.type ?? roots[root] else {
                let names = Set(scopes.map(\.name)).union(roots.keys).sorted()
                let hint = closestName(root, names).map { "; did you mean '\($0)'?" } ?? ""
                errors.append(TemplateError(kind: .undefinedVariable, message: "undefined variable '\(root)'\(hint) (defined here: \(names.joined(separator: ", ")))", offset: offset))
                return nil
            }
            var path = root
            for member in members {
                switch type {
                case .any:
                    return .any
                case .object(let object):
                    guard let next = object.fields[member] else {
                        let hint = closestName(member, Array(object.fields.keys)).map { "; did you mean '\(path).\($0)'?" } ?? ""
                        errors.append(TemplateError(kind: .undefinedVariable, message: "undefined variable '\(path).\(member)': \(object.name) has no member '\(member)'\(hint)", offset: offset))
                        return nil
                    }
                    type = next
                case .list(let element):
                    switch member {
                    case "count": type = .int
                    case "first", "last": type = element
                    default:
                        guard Int(member) != nil else {
                            errors.append(TemplateError(kind: .undefinedVariable, message: "undefined variable '\(path).\(member)': '\(path)' is a list (members: count, first, last, or an index)", offset: offset))
                            return nil
                        }
                        type = element
                    }
                case .string:
                    switch member {
                    case "count": type = .int
                    case "first", "last": type = .string
                    default:
                        guard Int(member) != nil else {
                            errors.append(TemplateError(kind: .undefinedVariable, message: "undefined variable '\(path).\(member)': '\(path)' is a string", offset: offset))
                            return nil
                        }
                        type = .string
                    }
                case .int, .bool:
                    errors.append(TemplateError(kind: .undefinedVariable, message: "undefined variable '\(path).\(member)': '\(path)' is a \(type.name) and has no members", offset: offset))
                    return nil
                }
                path += "." + member
            }
            return type
        }
    }
}
