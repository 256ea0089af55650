// Template text → tokens, split exactly where Stencil's lexer splits them (text,
// `{{ variable }}`, `{% block %}`, `{# comment #}`, with `-`/`+` whitespace control on
// blocks), but with every token's byte range kept so errors and rendered output can be
// traced to line and column. Unlike Stencil, an unclosed tag is an error instead of
// silently dropping the rest of the template.

/// A template file's text with a line index for positions.
public struct TemplateSource: Sendable {
    public let path: String
    public let text: String
    let bytes: [UInt8]
    /// Byte offset where each line starts.
    let lineStarts: [Int]

    public init(path: String, text: String) {
        self.path = path
        self.text = text
        bytes = Array(text.utf8)
        var starts = [0]
        for (i, b) in bytes.enumerated() where b == 0x0A { starts.append(i + 1) }
        lineStarts = starts
    }

    /// 1-based line and column (in Unicode scalars) of a byte offset.
    func position(ofByte offset: Int) -> (line: Int, column: Int) {
        let clamped = max(0, min(offset, bytes.count))
        var low = 0, high = lineStarts.count - 1
        while low < high {
            let mid = (low + high + 1) / 2
            if lineStarts[mid] <= clamped { low = mid } else { high = mid - 1 }
        }
        var column = 1
        var i = lineStarts[low]
        while i < clamped {
            if bytes[i] & 0xC0 != 0x80 { column += 1 }
            i += 1
        }
        // A position inside a multi-byte character counts as that character.
        if clamped < bytes.count, bytes[clamped] & 0xC0 == 0x80 { column -= 1 }
        return (low + 1, column)
    }
}

/// How a block tag asks the text next to it to be trimmed (`{%-`, `-%}`, `{%+`, `+%}`).
enum WhitespaceControl: Sendable { case unspecified, trim, keep }

struct TemplateToken: Sendable {
    enum Kind: Sendable { case text, variable, block, comment }
    let kind: Kind
    /// For text: the text; for tags: the inside, as Stencil gives it (lines trimmed of spaces, joined by one space).
    let contents: String
    /// Byte range in the source, delimiters included.
    let range: Range<Int>
    /// Where the contents start (for error positions inside a tag).
    let contentStart: Int
    var leading: WhitespaceControl = .unspecified
    var trailing: WhitespaceControl = .unspecified
}

/// A template that cannot be read: where and why.
public struct TemplateError: Error, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// Not valid template syntax (Stencil refuses it, or a tag is not closed).
        case syntax = "template.syntax"
        /// Valid Stencil that meshctl's renderer does not implement.
        case unsupported = "template.unsupported"
        /// A variable (or member) that the template context does not have.
        case undefinedVariable = "template.undefined-variable"
        /// Failed while rendering (e.g. looping over something that is not a list).
        case render = "template.render"
    }
    public let kind: Kind
    public let message: String
    /// Byte offset in the template.
    public let offset: Int
}

enum TemplateLexer {
    static func tokenize(_ source: TemplateSource) throws(TemplateError) -> [TemplateToken] {
        let bytes = source.bytes
        var tokens: [TemplateToken] = []
        var textStart = 0
        var i = 0
        let n = bytes.count
        while i + 1 < n {
            guard bytes[i] == UInt8(ascii: "{") else { i += 1; continue }
            let kindByte = bytes[i + 1]
            let closing: UInt8
            let kind: TemplateToken.Kind
            switch kindByte {
            case UInt8(ascii: "{"): closing = UInt8(ascii: "}"); kind = .variable
            case UInt8(ascii: "%"): closing = UInt8(ascii: "%"); kind = .block
            case UInt8(ascii: "#"): closing = UInt8(ascii: "#"); kind = .comment
            default: i += 1; continue
            }
            if i > textStart { tokens.append(textToken(source, textStart..<i)) }
            // The end is the first `}` right after the closing character (Stencil's scan).
            var j = i + 2
            var end: Int?
            var previous = kindByte
            while j < n {
                if previous == closing && bytes[j] == UInt8(ascii: "}") { end = j + 1; break }
                previous = bytes[j]
                j += 1
            }
            guard let end else {
                let what = kind == .variable ? "'{{' has no closing '}}'" : kind == .block ? "'{%' has no closing '%}'" : "'{#' has no closing '#}'"
                throw TemplateError(kind: .syntax, message: "\(what); close the tag", offset: i)
            }
            tokens.append(tagToken(source, kind: kind, range: i..<end))
            i = end
            textStart = end
        }
        if textStart < n { tokens.append(textToken(source, textStart..<n)) }
        return tokens
    }

    static func textToken(_ source: TemplateSource, _ range: Range<Int>) -> TemplateToken {
        TemplateToken(kind: .text, contents: String(decoding: source.bytes[range], as: UTF8.self), range: range, contentStart: range.lowerBound)
    }

    static func tagToken(_ source: TemplateSource, kind: TemplateToken.Kind, range: Range<Int>) -> TemplateToken {
        let bytes = source.bytes
        // `{%}` is a whole (empty) tag to Stencil.
        var inner = (range.lowerBound + 2)..<max(range.lowerBound + 2, range.upperBound - 2)
        var leading = WhitespaceControl.unspecified, trailing = WhitespaceControl.unspecified
        if kind == .block {
            // Stencil reads the control character right after `{%` and right before `%}`.
            func control(_ b: UInt8) -> WhitespaceControl { b == UInt8(ascii: "-") ? .trim : b == UInt8(ascii: "+") ? .keep : .unspecified }
            if !inner.isEmpty { leading = control(bytes[inner.lowerBound]) }
            if !inner.isEmpty { trailing = control(bytes[inner.upperBound - 1]) }
            if leading != .unspecified { inner = (inner.lowerBound + 1)..<inner.upperBound }
            if trailing != .unspecified && !inner.isEmpty { inner = inner.lowerBound..<(inner.upperBound - 1) }
        }
        // Stencil: split the inside into lines, drop empty ones, trim spaces, join with one space.
        let raw = String(decoding: bytes[inner], as: UTF8.self)
        let contents = raw.split(separator: "\n", omittingEmptySubsequences: true)
            .map { trimSpaces($0) }
            .joined(separator: " ")
        var contentStart = inner.lowerBound
        while contentStart < inner.upperBound && (bytes[contentStart] == 0x20 || bytes[contentStart] == 0x0A) { contentStart += 1 }
        return TemplateToken(kind: kind, contents: contents, range: range, contentStart: contentStart, leading: leading, trailing: trailing)
    }

    static func trimSpaces(_ s: Substring) -> Substring {
        var start = s.startIndex, end = s.endIndex
        while start < end && s[start] == " " { start = s.index(after: start) }
        while end > start && s[s.index(before: end)] == " " { end = s.index(before: end) }
        return s[start..<end]
    }
}
