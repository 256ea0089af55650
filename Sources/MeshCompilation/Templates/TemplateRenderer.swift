// Evaluates a parsed template against a context with Stencil's semantics (lookups,
// truthiness, comparisons, filters, `forloop`), writing bytes. On request it also records
// where each piece of output came from, so a problem found in the rendered YAML can be
// reported at the template line and column that produced it. Rendering is pure: the same
// template and context always give the same bytes.
import Foundation

/// A template ready to render many times (parsed once; immutable, shared across threads).
public final class CompiledTemplate: Sendable {
    public let source: TemplateSource
    let nodes: [TemplateNode]

    /// Parses with meshctl's renderer. Stencil's own parser is run separately (`StencilSyntax`).
    public init(source: TemplateSource) throws(TemplateError) {
        self.source = source
        self.nodes = try TemplateParser.parse(source)
    }

    /// Renders with `roots` as the top-level variables.
    func render(_ roots: [String: TemplateValue], tracking: Bool = false) throws(TemplateError) -> RenderedText {
        var renderer = Renderer(roots: roots, tracking: tracking)
        try renderer.render(nodes)
        return RenderedText(bytes: renderer.output, segments: tracking ? renderer.segments : nil)
    }

    /// Renders to a string (for tests and tools).
    public func renderString(_ roots: [String: TemplateValue]) throws(TemplateError) -> String {
        String(decoding: try render(roots).bytes, as: UTF8.self)
    }
}

/// Rendered output, and (when tracked) which template bytes each part came from.
struct RenderedText: Sendable {
    var bytes: [UInt8]
    /// Ordered by output offset.
    var segments: [RenderSegment]?

    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// The template byte offset that produced output line `line`, column `column` (1-based, scalars).
    func sourceOffset(line: Int, column: Int) -> Int? {
        guard let segments, !segments.isEmpty else { return nil }
        var currentLine = 1
        var i = 0
        while i < bytes.count && currentLine < line {
            if bytes[i] == 0x0A { currentLine += 1 }
            i += 1
        }
        var remaining = column - 1
        while i < bytes.count && remaining > 0 && bytes[i] != 0x0A {
            i += 1
            while i < bytes.count && bytes[i] & 0xC0 == 0x80 { i += 1 }
            remaining -= 1
        }
        // The last segment that starts at or before the offset produced it.
        var low = 0, high = segments.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if segments[mid].outputStart <= i { low = mid } else { high = mid - 1 }
        }
        let segment = segments[low]
        return segment.verbatim ? segment.sourceOffset + (i - segment.outputStart) : segment.sourceOffset
    }
}

struct RenderSegment: Sendable {
    let outputStart: Int
    let sourceOffset: Int
    /// Copied text (offsets map one to one) rather than a substituted value.
    let verbatim: Bool
}

/// The `forloop` variable inside loops.
let forloopType: TemplateObjectType = {
    let type = TemplateObjectType("forloop")
    type.define(["first": .bool, "last": .bool, "counter": .int, "counter0": .int, "length": .int])
    return type
}()

private struct Renderer {
    let roots: [String: TemplateValue]
    let tracking: Bool
    var scopes: [(name: String, value: TemplateValue)] = []
    var output: [UInt8] = []
    var segments: [RenderSegment] = []

    init(roots: [String: TemplateValue], tracking: Bool) {
        self.roots = roots
        self.tracking = tracking
        output.reserveCapacity(4096)
    }

    mutating func render(_ nodes: [TemplateNode]) throws(TemplateError) {
        for node in nodes {
            switch node {
            case .text(let bytes, let offset):
                if tracking { segments.append(RenderSegment(outputStart: output.count, sourceOffset: offset, verbatim: true)) }
                output.append(contentsOf: bytes)
            case .output(let expression):
                let value = try evaluate(expression)
                if tracking { segments.append(RenderSegment(outputStart: output.count, sourceOffset: expression.offset, verbatim: false)) }
                output.append(contentsOf: try stringify(value, expression).utf8)
            case .loop(let loop):
                try render(loop)
            case .conditional(let branches, let otherwise):
                var taken = false
                for branch in branches where try truth(branch.condition) {
                    try render(branch.body)
                    taken = true
                    break
                }
                if !taken, let otherwise { try render(otherwise) }
            }
        }
    }

    mutating func render(_ loop: TemplateLoop) throws(TemplateError) {
        let sequence = try evaluate(loop.sequence)
        var items: [TemplateValue]
        switch sequence {
        case .list(let list): items = list
        case .null: items = []
        default:
            throw TemplateError(kind: .render, message: "'\(loop.sequence.text)' is \(sequence.kindName), not a list; a for loop needs a list", offset: loop.sequence.offset)
        }
        let name = loop.variables[0]
        if let filter = loop.filter {
            var kept: [TemplateValue] = []
            for item in items {
                scopes.append((name, item))
                let keep = try truth(filter)
                scopes.removeLast()
                if keep { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            try render(loop.empty)
            return
        }
        for (index, item) in items.enumerated() {
            // Loops whose body does not read forloop skip building it.
            let forloop: TemplateValue = loop.usesForloop ? .object(TemplateObject(forloopType, [
                "first": .bool(index == 0), "last": .bool(index == items.count - 1),
                "counter": .int(index + 1), "counter0": .int(index), "length": .int(items.count),
            ])) : .null
            scopes.append(("forloop", forloop))
            scopes.append((name, item))
            defer { scopes.removeLast(2) }
            try render(loop.body)
        }
    }

    // MARK: Values

    func lookup(_ root: String) -> TemplateValue? {
        for scope in scopes.reversed() where scope.name == root { return scope.value }
        return roots[root]
    }

    func resolve(_ operand: TemplateOperand, offset: Int) throws(TemplateError) -> TemplateValue {
        switch operand {
        case .literal(let value): return value
        case .path(let root, let members):
            guard var value = lookup(root) else {
                throw TemplateError(kind: .undefinedVariable, message: "undefined variable '\(root)'", offset: offset)
            }
            for member in members {
                value = try Self.member(member, of: value, path: root, offset: offset)
            }
            return value
        }
    }

    static func member(_ member: String, of value: TemplateValue, path: String, offset: Int) throws(TemplateError) -> TemplateValue {
        switch value {
        case .null:
            return .null
        case .object(let object):
            guard let index = object.type.index(of: member) else {
                throw TemplateError(kind: .undefinedVariable, message: "\(object.type.name) has no member '\(member)'", offset: offset)
            }
            return object.value(at: index)
        case .list(let list):
            switch member {
            case "count": return .int(list.count)
            case "first": return list.first ?? .null
            case "last": return list.last ?? .null
            default:
                if let index = Int(member) { return index >= 0 && index < list.count ? list[index] : .null }
            }
        case .string(let string):
            switch member {
            case "count": return .int(string.count)
            case "first": return string.first.map { .string(String($0)) } ?? .null
            case "last": return string.last.map { .string(String($0)) } ?? .null
            default:
                if let index = Int(member) {
                    guard index >= 0 && index < string.count else { return .null }
                    return .string(String(string[string.index(string.startIndex, offsetBy: index)]))
                }
            }
        case .int, .bool:
            break
        }
        throw TemplateError(kind: .undefinedVariable, message: "\(value.kindName) has no member '\(member)'", offset: offset)
    }

    func evaluate(_ expression: FilterExpression) throws(TemplateError) -> TemplateValue {
        var value = try resolve(expression.operand, offset: expression.offset)
        for (filter, arguments) in expression.filters {
            var values: [TemplateValue] = []
            for argument in arguments { values.append(try resolve(argument, offset: expression.offset)) }
            value = try apply(filter, to: value, arguments: values, expression)
        }
        return value
    }

    func apply(_ filter: TemplateFilter, to value: TemplateValue, arguments: [TemplateValue], _ expression: FilterExpression) throws(TemplateError) -> TemplateValue {
        func eachString(_ transform: (String) -> String) throws(TemplateError) -> TemplateValue {
            if case .list(let list) = value {
                var out: [TemplateValue] = []
                for item in list { out.append(.string(transform(try stringify(item, expression)))) }
                return .list(out)
            }
            return .string(transform(try stringify(value, expression)))
        }
        switch filter {
        case .default:
            if !value.isNull { return value }
            return arguments.first { !$0.isNull } ?? .null
        case .uppercase: return try eachString { $0.uppercased() }
        case .lowercase: return try eachString { $0.lowercased() }
        case .capitalize: return try eachString { $0.capitalized }
        case .join:
            guard arguments.count < 2 else {
                throw TemplateError(kind: .render, message: "'join' filter takes at most one argument", offset: expression.offset)
            }
            let separator = try arguments.first.map { v throws(TemplateError) in try stringify(v, expression) } ?? ""
            guard case .list(let list) = value else { return value }
            var parts: [String] = []
            for item in list { parts.append(try stringify(item, expression)) }
            return .string(parts.joined(separator: separator))
        case .json:
            return .string(try Self.json(value, expression))
        }
    }

    static func json(_ value: TemplateValue, _ expression: FilterExpression) throws(TemplateError) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .string(let s): return jsonQuoted(s)
        case .list(let list):
            var parts: [String] = []
            for item in list { parts.append(try json(item, expression)) }
            return "[" + parts.joined(separator: ", ") + "]"
        case .object(let object):
            throw TemplateError(kind: .render, message: "'\(expression.text)' is an object (\(object.type.name)); json renders strings, numbers, booleans and lists", offset: expression.offset)
        }
    }

    func stringify(_ value: TemplateValue, _ expression: FilterExpression) throws(TemplateError) -> String {
        switch value {
        case .null: return ""
        case .string(let s): return s
        case .int(let i): return String(i)
        case .bool(let b): return b ? "true" : "false"
        case .list:
            throw TemplateError(kind: .render, message: "'\(expression.text)' is a list; render it with a for loop, '|join:\", \"' or '|json'", offset: expression.offset)
        case .object(let object):
            throw TemplateError(kind: .render, message: "'\(expression.text)' is an object (\(object.type.name)); render one of its members", offset: expression.offset)
        }
    }

    // MARK: Conditions

    mutating func truth(_ condition: TemplateCondition) throws(TemplateError) -> Bool {
        switch condition {
        case .value(let expression): return try evaluate(expression).isTruthy
        case .not(let inner): return try !truth(inner)
        case .and(let a, let b): return try truth(a) ? try truth(b) : false
        case .or(let a, let b): return try truth(a) ? true : try truth(b)
        case .binary(let op, let a, let b):
            // Stencil compares only plain values; any other operand makes the comparison false.
            guard case .value(let left) = a, case .value(let right) = b else { return op == "!=" }
            let l = try evaluate(left), r = try evaluate(right)
            switch op {
            case "==": return Self.equal(l, r)
            case "!=": return !Self.equal(l, r)
            case "in":
                switch (l, r) {
                case (.null, .null): return true
                case (.string(let needle), .string(let haystack)): return haystack.contains(needle)
                case (_, .list(let list)):
                    guard !l.isNull, Self.isHashable(l), list.allSatisfy(Self.isHashable) else { return false }
                    return list.contains { Self.equal(l, $0) }
                default: return false
                }
            default:
                guard case .int(let x) = l, case .int(let y) = r else { return false }
                switch op {
                case "<": return x < y
                case "<=": return x <= y
                case ">": return x > y
                default: return x >= y
                }
            }
        }
    }

    static func equal(_ a: TemplateValue, _ b: TemplateValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.int(let x), .int(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        default: return false
        }
    }

    static func isHashable(_ v: TemplateValue) -> Bool {
        switch v {
        case .string, .int, .bool: return true
        default: return false
        }
    }
}

/// A JSON string literal (also a valid YAML double-quoted scalar).
func jsonQuoted(_ s: String) -> String {
    // Most values (names, paths, addresses) need no escaping.
    if s.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
        return "\"" + s + "\""
    }
    var out = "\""
    out.reserveCapacity(s.utf8.count + 2)
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029 || scalar.value == 0xFEFF {
                out += String(format: "\\u%04x", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
