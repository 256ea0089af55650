// Tokens → a tree meshctl's renderer evaluates: the subset of Stencil that
// configuration templates need — `{{ value|filter:arg }}`, `{% for %}` (with `empty`,
// `where`, `forloop`), `{% if %}`/`elif`/`else` with Stencil's operators and precedence,
// comments, and whitespace control — parsed the way Stencil parses it (words split on
// spaces outside quotes, Stencil's trimming of text next to block tags). Anything else
// Stencil has (include, extends, filter blocks, `x if y else z` …) is refused by name.

/// A value inside a tag: a literal or a dotted path into the context.
enum TemplateOperand: Sendable {
    case literal(TemplateValue)
    /// `service.ports.first.name` → root "service", members ["ports", "first", "name"].
    case path(root: String, members: [String])
}

/// A filter Stencil ships (or meshctl registers with Stencil too) that the renderer implements.
enum TemplateFilter: String, Sendable, CaseIterable {
    case `default`, capitalize, uppercase, lowercase, join
    /// meshctl's: the value as a JSON literal, which is also a valid YAML flow scalar (safe quoting).
    case json
}

/// `operand|filter:arg,arg|filter`. A class: the renderer evaluates one for every `{{ }}` and condition
/// of every rendering, and copying the struct out of its node retained each of its parts (one retain now).
final class FilterExpression: Sendable {
    let operand: TemplateOperand
    let filters: [(filter: TemplateFilter, arguments: [TemplateOperand])]
    /// Byte offset of the expression in the template.
    let offset: Int
    /// The text as written (for messages).
    let text: String

    init(operand: TemplateOperand, filters: [(filter: TemplateFilter, arguments: [TemplateOperand])], offset: Int, text: String) {
        self.operand = operand
        self.filters = filters
        self.offset = offset
        self.text = text
    }
}

/// An `if`/`elif`/`where` condition with Stencil's operators.
indirect enum TemplateCondition: Sendable {
    case value(FilterExpression)
    case not(TemplateCondition)
    case and(TemplateCondition, TemplateCondition)
    case or(TemplateCondition, TemplateCondition)
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`, `in` (Stencil compares only when both sides are plain values).
    case binary(String, TemplateCondition, TemplateCondition)
}

indirect enum TemplateNode: Sendable {
    /// Text after Stencil's trimming; `offset` is where its first byte stands in the template.
    case text([UInt8], offset: Int)
    case output(FilterExpression)
    case loop(TemplateLoop)
    case conditional(branches: [(condition: TemplateCondition, body: [TemplateNode])], otherwise: [TemplateNode]?)
}

struct TemplateLoop: Sendable {
    let variables: [String]
    let sequence: FilterExpression
    let filter: TemplateCondition?
    let body: [TemplateNode]
    let empty: [TemplateNode]
    let offset: Int
    /// The body reads `forloop` (else the renderer does not build it for every iteration).
    let usesForloop: Bool
}

extension TemplateNode {
    /// True when `root` is read anywhere in these nodes.
    static func reads(_ root: String, in nodes: [TemplateNode]) -> Bool {
        func operand(_ o: TemplateOperand) -> Bool { if case .path(let r, _) = o { return r == root } else { return false } }
        func expression(_ e: FilterExpression) -> Bool { operand(e.operand) || e.filters.contains { $0.arguments.contains(where: operand) } }
        func condition(_ c: TemplateCondition) -> Bool {
            switch c {
            case .value(let e): return expression(e)
            case .not(let x): return condition(x)
            case .and(let a, let b), .or(let a, let b), .binary(_, let a, let b): return condition(a) || condition(b)
            }
        }
        return nodes.contains { node in
            switch node {
            case .text: return false
            case .output(let e): return expression(e)
            case .loop(let l): return expression(l.sequence) || (l.filter.map(condition) ?? false) || reads(root, in: l.body) || reads(root, in: l.empty)
            case .conditional(let branches, let otherwise):
                return branches.contains { condition($0.condition) || reads(root, in: $0.body) } || reads(root, in: otherwise ?? [])
            }
        }
    }
}

struct TemplateParser {
    let source: TemplateSource
    let tokens: [TemplateToken]
    var position = 0

    init(source: TemplateSource, tokens: [TemplateToken]) {
        self.source = source
        self.tokens = tokens
    }

    static func parse(_ source: TemplateSource) throws(TemplateError) -> [TemplateNode] {
        var parser = TemplateParser(source: source, tokens: try TemplateLexer.tokenize(source))
        let (nodes, stop) = try parser.parseNodes(until: [])
        if let stop {
            throw TemplateError(kind: .syntax, message: "'{% \(stop.contents) %}' has no matching opening tag", offset: stop.range.lowerBound)
        }
        return nodes
    }

    // MARK: Nodes

    /// Parses until a block tag whose first word is in `stops` (returned, consumed) or the end.
    mutating func parseNodes(until stops: Set<String>) throws(TemplateError) -> ([TemplateNode], TemplateToken?) {
        var nodes: [TemplateNode] = []
        while position < tokens.count {
            let token = tokens[position]
            position += 1
            switch token.kind {
            case .comment:
                continue
            case .text:
                let (bytes, offset) = trimmedText(at: position - 1)
                if !bytes.isEmpty { nodes.append(.text(bytes, offset: offset)) }
            case .variable:
                nodes.append(.output(try variableExpression(token)))
            case .block:
                let words = Self.words(token.contents)
                guard let tag = words.first else { continue }
                if stops.contains(tag) { return (nodes, token) }
                switch tag {
                case "for": nodes.append(try parseFor(token, words: words))
                case "if": nodes.append(try parseIf(token, words: words))
                case "endfor", "endif", "elif", "else", "empty":
                    throw TemplateError(kind: .syntax, message: "'{% \(token.contents) %}' has no matching opening tag", offset: token.range.lowerBound)
                case "include", "extends", "block", "endblock", "filter", "endfilter", "ifnot", "now", "break", "continue":
                    throw TemplateError(kind: .unsupported, message: "the '\(tag)' tag is valid Stencil, but meshctl's renderer supports only for/if (see docs/CONFIG.md, \"Templates\"); rewrite it with for/if", offset: token.range.lowerBound)
                default:
                    throw TemplateError(kind: .syntax, message: "unknown template tag '\(tag)'", offset: token.range.lowerBound)
                }
            }
        }
        return (nodes, nil)
    }

    /// A text token with Stencil's trimming next to block tags applied (`.smart` by default,
    /// `-` trims all whitespace, `+` keeps it).
    func trimmedText(at index: Int) -> ([UInt8], Int) {
        let token = tokens[index]
        var start = token.range.lowerBound, end = token.range.upperBound
        let bytes = source.bytes
        func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 }
        func isSpace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }
        if index > 0 {
            // The last token before this text decides its leading trim (only a block tag trims).
            let previous = tokens[index - 1]
            if previous.kind == .block {
                switch previous.trailing {
                case .unspecified:  // smart: spaces and one newline
                    var i = start
                    while i < end && isBlank(bytes[i]) { i += 1 }
                    if i < end && bytes[i] == 0x0A { start = i + 1 }
                case .trim:
                    while start < end && isSpace(bytes[start]) { start += 1 }
                case .keep: break
                }
            }
        }
        if index + 1 < tokens.count, tokens[index + 1].kind == .block {
            switch tokens[index + 1].leading {
            case .unspecified:  // smart: spaces and tabs at the end (or before a final newline)
                var i = end
                while i > start && isBlank(bytes[i - 1]) { i -= 1 }
                if i < end {
                    end = i
                } else if end > start && bytes[end - 1] == 0x0A {
                    let newline = end - 1
                    var j = newline
                    while j > start && isBlank(bytes[j - 1]) { j -= 1 }
                    if j < newline {
                        // Remove the blanks, keep the newline: the text is no longer contiguous.
                        return (Array(bytes[start..<j]) + [0x0A], start)
                    }
                }
            case .trim:
                while end > start && isSpace(bytes[end - 1]) { end -= 1 }
            case .keep: break
            }
        }
        return (Array(bytes[start..<end]), start)
    }

    mutating func parseFor(_ token: TemplateToken, words: [String]) throws(TemplateError) -> TemplateNode {
        if words.first?.hasSuffix(":") == true {
            throw TemplateError(kind: .unsupported, message: "labelled for loops are not supported by meshctl's renderer", offset: token.range.lowerBound)
        }
        guard words.count >= 4, words[2] == "in", words.count == 4 || (words.count > 5 && words[4] == "where") else {
            throw TemplateError(kind: .syntax, message: "'for' statements should use the syntax: `for <x> in <y> [where <condition>]`", offset: token.range.lowerBound)
        }
        let variables = words[1].split(separator: ",").map { String(TemplateLexer.trimSpaces($0)) }
        for name in variables where !Self.isIdentifier(name) {
            throw TemplateError(kind: .syntax, message: "'\(name)' is not a valid loop variable name", offset: token.contentStart)
        }
        if variables.count != 1 {
            throw TemplateError(kind: .unsupported, message: "loops with several variables (over dictionaries or tuples) are not supported; the context has only lists", offset: token.contentStart)
        }
        let sequence = try filterExpression(words[3], in: token)
        let filter = words.count > 5 ? try condition(Array(words[5...]), in: token) : nil
        let (body, stop) = try parseNodes(until: ["endfor", "empty"])
        guard let stop else {
            throw TemplateError(kind: .syntax, message: "'{% \(token.contents) %}' has no '{% endfor %}'", offset: token.range.lowerBound)
        }
        var empty: [TemplateNode] = []
        if stop.contents == "empty" {
            let (nodes, end) = try parseNodes(until: ["endfor"])
            guard end != nil else {
                throw TemplateError(kind: .syntax, message: "'{% \(token.contents) %}' has no '{% endfor %}'", offset: token.range.lowerBound)
            }
            empty = nodes
        }
        return .loop(TemplateLoop(variables: variables, sequence: sequence, filter: filter, body: body, empty: empty, offset: token.range.lowerBound,
                                  usesForloop: TemplateNode.reads("forloop", in: body)))
    }

    mutating func parseIf(_ token: TemplateToken, words: [String]) throws(TemplateError) -> TemplateNode {
        var branches: [(condition: TemplateCondition, body: [TemplateNode])] = []
        var current = try condition(Array(words.dropFirst()), in: token)
        while true {
            let (body, stop) = try parseNodes(until: ["endif", "elif", "else"])
            branches.append((current, body))
            guard let stop else {
                throw TemplateError(kind: .syntax, message: "'{% \(token.contents) %}' has no '{% endif %}'", offset: token.range.lowerBound)
            }
            if stop.contents.hasPrefix("elif") {
                current = try condition(Array(Self.words(stop.contents).dropFirst()), in: stop)
                continue
            }
            if stop.contents == "else" {
                let (otherwise, end) = try parseNodes(until: ["endif"])
                guard let end, end.contents == "endif" else {
                    throw TemplateError(kind: .syntax, message: "'{% \(token.contents) %}' has no '{% endif %}'", offset: token.range.lowerBound)
                }
                return .conditional(branches: branches, otherwise: otherwise)
            }
            guard stop.contents == "endif" else {
                throw TemplateError(kind: .syntax, message: "expected '{% endif %}', found '{% \(stop.contents) %}'", offset: stop.range.lowerBound)
            }
            return .conditional(branches: branches, otherwise: nil)
        }
    }

    // MARK: Expressions

    func variableExpression(_ token: TemplateToken) throws(TemplateError) -> FilterExpression {
        let words = Self.words(token.contents)
        guard !words.isEmpty else {
            throw TemplateError(kind: .syntax, message: "empty variable tag '{{ }}'; write a variable name", offset: token.range.lowerBound)
        }
        if words.count > 1 {
            let what = words.count > 2 && words[1] == "if" ? "conditional expressions (`x if y else z`)" : "expressions with operators"
            throw TemplateError(kind: .unsupported, message: "\(what) in '{{ \(token.contents) }}' are not supported in {{ }}; use {% if %}", offset: token.contentStart)
        }
        return try filterExpression(words[0], in: token)
    }

    /// `value|filter:arg,arg|filter`, split the way Stencil's FilterExpression splits it.
    func filterExpression(_ text: String, in token: TemplateToken) throws(TemplateError) -> FilterExpression {
        let offset = offsetOf(text, in: token)
        let bits = Self.split(text, on: "|").map { String(TemplateLexer.trimSpaces(Substring($0))) }
        guard let first = bits.first, !first.isEmpty else {
            throw TemplateError(kind: .syntax, message: "'\(text)' has no value before its filters", offset: offset)
        }
        let base = try operand(first, offset: offset)
        var filters: [(TemplateFilter, [TemplateOperand])] = []
        for bit in bits.dropFirst() {
            let parts = Self.split(bit, on: ":")
            let name = String(TemplateLexer.trimSpaces(Substring(parts.first ?? "")))
            guard let filter = TemplateFilter(rawValue: name) else {
                let known = TemplateFilter.allCases.map(\.rawValue)
                let stencilFilters = ["default", "capitalize", "uppercase", "lowercase", "join", "split", "indent", "filter"]
                if stencilFilters.contains(name) {
                    throw TemplateError(kind: .unsupported, message: "the '\(name)' filter is not supported by meshctl's renderer; supported: \(known.joined(separator: ", "))", offset: offset)
                }
                throw TemplateError(kind: .syntax, message: "unknown filter '\(name)'\(suggestion(name, known)); filters: \(known.joined(separator: ", "))", offset: offset)
            }
            let argumentText = parts.dropFirst().joined(separator: ":")
            var arguments: [TemplateOperand] = []
            if !parts.dropFirst().isEmpty {
                for argument in Self.split(argumentText, on: ",") {
                    arguments.append(try operand(String(TemplateLexer.trimSpaces(Substring(argument))), offset: offset))
                }
            }
            filters.append((filter, arguments))
        }
        return FilterExpression(operand: base, filters: filters, offset: offset, text: text)
    }

    /// Stencil's Variable: a quoted string, an integer, true/false, else a dotted path.
    func operand(_ text: String, offset: Int) throws(TemplateError) -> TemplateOperand {
        if text.count > 1, let quote = text.first, quote == "'" || quote == "\"", text.last == quote {
            return .literal(.string(String(text.dropFirst().dropLast())))
        }
        if let number = Int(text) { return .literal(.int(number)) }
        if Double(text) != nil {
            throw TemplateError(kind: .unsupported, message: "non-integer number '\(text)' is not supported in templates", offset: offset)
        }
        if text == "true" { return .literal(.bool(true)) }
        if text == "false" { return .literal(.bool(false)) }
        if text.contains("[") || text.contains("]") {
            throw TemplateError(kind: .unsupported, message: "subscripts ('\(text)') are not supported; use dotted names (list.first, list.0)", offset: offset)
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !parts.contains(where: \.isEmpty), Self.isIdentifier(parts[0]) else {
            throw TemplateError(kind: .syntax, message: "'\(text)' is not a variable name (names are letters, digits and _, joined by '.')", offset: offset)
        }
        return .path(root: parts[0], members: Array(parts.dropFirst()))
    }

    /// An if/elif/where expression: Stencil's Pratt parser with its binding powers
    /// (in 5, or 6, and 7, not 8, comparisons 10) and parenthesised sub-expressions.
    func condition(_ words: [String], in token: TemplateToken) throws(TemplateError) -> TemplateCondition {
        let tokenOffset = token.contentStart
        enum Item { case infix(String, Int), prefix, operand(TemplateCondition), end }
        func items(_ words: ArraySlice<String>) throws(TemplateError) -> [Item] {
            var result: [Item] = []
            var i = words.startIndex
            while i < words.endIndex {
                let word = words[i]
                switch word {
                case "(":
                    var depth = 1, j = i + 1
                    while j < words.endIndex { if words[j] == "(" { depth += 1 } else if words[j] == ")" { depth -= 1; if depth == 0 { break } }; j += 1 }
                    guard j < words.endIndex else { throw TemplateError(kind: .syntax, message: "'if' expression error: missing closing bracket", offset: token.contentStart) }
                    result.append(.operand(try parse(try items(words[(i + 1)..<j]))))
                    i = j + 1
                    continue
                case ")": throw TemplateError(kind: .syntax, message: "'if' expression error: missing opening bracket", offset: token.contentStart)
                case "in": result.append(.infix(word, 5))
                case "or": result.append(.infix(word, 6))
                case "and": result.append(.infix(word, 7))
                case "not": result.append(.prefix)
                case "==", "!=", ">", ">=", "<", "<=": result.append(.infix(word, 10))
                default: result.append(.operand(.value(try filterExpression(word, in: token))))
                }
                i += 1
            }
            return result
        }
        func parse(_ items: [Item]) throws(TemplateError) -> TemplateCondition {
            var position = 0
            func power(_ item: Item) -> Int { if case .infix(_, let p) = item { return p }; if case .prefix = item { return 8 }; return 0 }
            func current() -> Item { position < items.count ? items[position] : .end }
            func expression(_ binding: Int) throws(TemplateError) -> TemplateCondition {
                let token = current()
                position += 1
                var left: TemplateCondition
                switch token {
                case .operand(let c): left = c
                case .prefix: left = .not(try expression(8))
                case .infix(let name, _): throw TemplateError(kind: .syntax, message: "'if' expression error: infix operator '\(name)' doesn't have a left hand side", offset: tokenOffset)
                case .end: throw TemplateError(kind: .syntax, message: "'if' expression error: end", offset: tokenOffset)
                }
                while binding < power(current()) {
                    let next = current()
                    position += 1
                    switch next {
                    case .infix(let name, let p):
                        let right = try expression(p)
                        switch name {
                        case "and": left = .and(left, right)
                        case "or": left = .or(left, right)
                        default: left = .binary(name, left, right)
                        }
                    default:
                        throw TemplateError(kind: .syntax, message: "'if' expression error: prefix operator 'not' was called with a left hand side", offset: tokenOffset)
                    }
                }
                return left
            }
            let result = try expression(0)
            if position < items.count {
                throw TemplateError(kind: .syntax, message: "'if' expression error: dangling token", offset: tokenOffset)
            }
            return result
        }
        guard !words.isEmpty else { throw TemplateError(kind: .syntax, message: "'\(token.contents)' needs a condition", offset: tokenOffset) }
        return try parse(try items(words[...]))
    }

    // MARK: Words

    /// Stencil's split of a tag into words: on spaces outside quotes, with `,`, `|` and `:`
    /// gluing their neighbours into one word and `(`/`)` split off as words of their own.
    static func words(_ text: String) -> [String] {
        var result: [String] = []
        func append(_ word: String) {
            guard !result.isEmpty else { result.append(word); return }
            let glue: Set<Character> = [",", "|", ":"]
            if let last = result.last?.last, glue.contains(last) {
                result[result.count - 1] += word
            } else if word.count == 1, glue.contains(word.first!) {
                result[result.count - 1] += word
            } else if word != "(" && word.first == "(" || word != ")" && word.first == ")" {
                result.append(String(word.prefix(1)))
                append(String(word.dropFirst()))
            } else if word != "(" && word.last == "(" || word != ")" && word.last == ")" {
                append(String(word.dropLast()))
                result.append(String(word.suffix(1)))
            } else {
                result.append(word)
            }
        }
        for word in split(text, on: " ") { append(word) }
        return result
    }

    /// Splits on `separator` outside single or double quotes; quotes stay in the words.
    static func split(_ text: String, on separator: Character) -> [String] {
        var words: [String] = []
        var word = ""
        var quote: Character?
        for c in text {
            if let q = quote {
                word.append(c)
                if c == q { quote = nil }
            } else if c == separator {
                if !word.isEmpty { words.append(word); word = "" }
            } else {
                if c == "'" || c == "\"" { quote = c }
                word.append(c)
            }
        }
        if !word.isEmpty { words.append(word) }
        return words
    }

    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, first == "_" || (first.properties.isAlphabetic && first.isASCII) else { return false }
        return s.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }

    /// Where `text` stands inside the tag (first occurrence), for error positions.
    func offsetOf(_ text: String, in token: TemplateToken) -> Int {
        let needle = Array(text.utf8)
        let bytes = source.bytes
        guard !needle.isEmpty, token.range.count >= needle.count else { return token.contentStart }
        var i = token.contentStart
        while i + needle.count <= token.range.upperBound {
            if bytes[i] == needle[0] && Array(bytes[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return token.contentStart
    }

    func suggestion(_ name: String, _ candidates: [String]) -> String {
        closestName(name, candidates).map { "; did you mean '\($0)'?" } ?? ""
    }
}

/// The candidate closest to `name` by edit distance, when close enough to be a likely typo.
func closestName(_ name: String, _ candidates: [String]) -> String? {
    // Edit distance where swapping two neighbours counts as one typo (optimal string alignment).
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
    let target = Array(name.lowercased())
    var best: (String, Int)?
    for candidate in candidates {
        let d = distance(target, Array(candidate.lowercased()))
        if d <= max(1, min(3, name.count / 3)), best == nil || d < best!.1 { best = (candidate, d) }
    }
    return best?.0
}
