// YAML (and JSON) text → a tree of nodes with positions, composed from libyaml's
// event stream. The only file of EnvoySchema that touches libyaml. It keeps what
// configuration checking needs — each node's line and column, scalar style and
// tag — and refuses what would silently lose data: duplicate keys, a second
// document, alias bombs, nesting deeper than any configuration.
internal import CYAML

/// A scalar: its text, how it was written, and its explicit tag if any ("!", "!!str", ...).
public struct YAMLScalar: Sendable {
    public enum Style: Sendable, Equatable { case plain, singleQuoted, doubleQuoted, literal, folded }
    public var string: String
    public var style: Style
    public var tag: String?
}

/// One node of a YAML document.
public struct YAMLNode: Sendable {
    // Not `indirect`: the arrays already hold the children out of line, and a box per node was one
    // more allocation for each of a large document's millions of nodes.
    public enum Kind: Sendable {
        case scalar(YAMLScalar)
        case mapping([(key: YAMLNode, value: YAMLNode)])
        case sequence([YAMLNode])
    }

    public var kind: Kind
    /// Where the node starts (1-based line and column, columns in Unicode scalars).
    public var location: SourceLocation

    public var scalar: YAMLScalar? { if case .scalar(let s) = kind { return s } else { return nil } }
    /// The text of a scalar node.
    public var scalarText: String? { scalar?.string }
}

/// Why a text is not a YAML document meshctl reads.
public struct YAMLError: Error, Sendable, Equatable {
    public enum Reason: Sendable, Equatable { case syntax, duplicateKey, multipleDocuments, tooDeep, tooLarge, undefinedAlias }
    public let reason: Reason
    public let message: String
    public let location: SourceLocation?
}

/// Which collections of a document stand for several places in its text. A reader asked to share repeats
/// gives every copy of a flow collection's text at the same depth (`{retry_on: 5xx, num_retries: 3}` written
/// under 10,000 routes), from the third copy on, the node it read for the second: same tree, same storage, and
/// that copy's positions — as an alias carries its anchor's. (The first copy is read before the text is known
/// to repeat.) So a diagnostic inside a repeat may point at another copy: `BootstrapValidation` and
/// `ConfigDocument.decode` share repeats only on the way to a verdict, and read the text again without sharing
/// as soon as there is anything to report.
public struct RepeatedCollections: Sendable {
    /// Mapping storage (its elements' address) → an ID for the text it was read from, from 1.
    private var ids: [Int: Int32] = [:]
    /// Whether any node stands for more than one place (a shared list of scalars has no ID but counts).
    public private(set) var sharesAny = false

    public init() {}

    /// The ID of the text a shared mapping was read from; nil for a mapping written once.
    func id(of mapping: [(key: YAMLNode, value: YAMLNode)]) -> Int32? {
        guard !ids.isEmpty, let address = Self.address(mapping) else { return nil }
        return ids[address]
    }

    /// Marks a shared node: a mapping, or the mappings in a shared sequence (`[{name: a, typed_config: …}]`).
    mutating func mark(_ node: YAMLNode) {
        sharesAny = true
        switch node.kind {
        case .mapping(let mapping):
            guard let address = Self.address(mapping), ids[address] == nil else { return }
            ids[address] = Int32(ids.count + 1)
        case .sequence(let items):
            for item in items { mark(item) }
        case .scalar:
            break
        }
    }

    /// Nil for an empty mapping: every empty array shares one storage, so its address names no text.
    private static func address(_ mapping: [(key: YAMLNode, value: YAMLNode)]) -> Int? {
        guard !mapping.isEmpty else { return nil }
        return mapping.withUnsafeBufferPointer { $0.baseAddress.map { Int(bitPattern: $0) } }
    }
}

public enum YAMLDocument {
    /// Deeper nesting than this is refused: no configuration nests this deep.
    public static let maximumDepth = 1000
    /// Nodes a document may expand to, aliases included (defuses "billion laughs").
    public static let maximumNodes = 20_000_000

    /// Which parser reads the text. Both give the same tree for the input the fast path takes (the
    /// differential tests hold them to it); only libyaml reports errors.
    public enum Reader: Sendable {
        /// `YAMLFastReader` for the block subset generated configuration is written in, libyaml for the rest.
        case fastPathThenLibYAML
        /// libyaml always (the reference the tests compare the fast path with).
        case libYAML
    }

    /// Parses exactly one document. Empty input (or comments only) yields nil.
    /// - Parameter origin: stamped on every location (see `SourceLocation.origin`).
    public static func parse(_ text: String, origin: Int32 = 0, reader: Reader = .fastPathThenLibYAML) throws(YAMLError) -> YAMLNode? {
        var text = text
        let outcome: Result<YAMLNode?, YAMLError> = text.withUTF8 { bytes in parse(bytes, origin: origin, reader: reader) }
        return try outcome.get()
    }

    /// Parses exactly one document from UTF-8 bytes (text the caller produced, e.g. a rendered template:
    /// no copy into a String first).
    public static func parse(utf8 bytes: [UInt8], origin: Int32 = 0, reader: Reader = .fastPathThenLibYAML) throws(YAMLError) -> YAMLNode? {
        let outcome: Result<YAMLNode?, YAMLError> = bytes.withUnsafeBufferPointer { buffer in parse(buffer, origin: origin, reader: reader) }
        return try outcome.get()
    }

    /// Parses exactly one document, reading repeated flow collections once (see `RepeatedCollections`).
    /// Text outside the fast path's subset is read by libyaml, without sharing.
    public static func parseSharingRepeats(_ text: String, origin: Int32 = 0) throws(YAMLError) -> (root: YAMLNode?, repeats: RepeatedCollections) {
        var text = text
        let shared = text.withUTF8 { YAMLFastReader.read($0, origin: origin, sharingRepeats: true) }
        if let shared { return (shared.root, shared.repeats) }
        return (try parse(text, origin: origin, reader: .libYAML), RepeatedCollections())
    }

    /// Whether the fast path reads this text itself (for the tests: input it declines goes to libyaml).
    public static func fastPathAccepts(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { YAMLFastReader.read($0, origin: 0) != nil }
    }

    private static func parse(_ bytes: UnsafeBufferPointer<UInt8>, origin: Int32, reader: Reader) -> Result<YAMLNode?, YAMLError> {
        if reader == .fastPathThenLibYAML, let node = YAMLFastReader.read(bytes, origin: origin) { return .success(node) }
        var composer = Composer()
        composer.origin = origin
        return Result { () throws(YAMLError) -> YAMLNode? in try composer.compose(bytes) }
    }
}

private struct Composer {
    var parser = yaml_parser_t()
    var anchors: [String: YAMLNode] = [:]
    var nodeCount = 0
    // Children of the collections being composed, stacked (a nested collection pushes above its
    // parent's and pops back): each collection is then copied out once at its final size instead
    // of growing an array of its own by doubling.
    var pendingItems: [YAMLNode] = []
    var pendingPairs: [(key: YAMLNode, value: YAMLNode)] = []
    /// The scalar text (nil for a collection key) and position of each key in `pendingPairs`, stacked
    /// alongside it: the duplicate-key check reads these instead of copying each earlier key node.
    var pendingKeys: [(text: String?, location: SourceLocation)] = []
    var origin: Int32 = 0

    mutating func compose(_ bytes: UnsafeBufferPointer<UInt8>) throws(YAMLError) -> YAMLNode? {
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError(reason: .syntax, message: "out of memory", location: nil) }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_input_string(&parser, bytes.baseAddress, bytes.count)
        var event = try next()  // stream start
        yaml_event_delete(&event)
        event = try next()
        if event.type == YAML_STREAM_END_EVENT { yaml_event_delete(&event); return nil }
        yaml_event_delete(&event)  // document start
        event = try next()
        let root = try node(from: &event, depth: 0)
        event = try next()  // document end
        yaml_event_delete(&event)
        event = try next()
        defer { yaml_event_delete(&event) }
        if event.type != YAML_STREAM_END_EVENT {
            throw YAMLError(reason: .multipleDocuments, message: "a second document starts here", location: location(event.start_mark))
        }
        return root
    }

    mutating func next() throws(YAMLError) -> yaml_event_t {
        var event = yaml_event_t()
        guard yaml_parser_parse(&parser, &event) == 1 else {
            let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
            let context = parser.context.map { String(cString: $0) }
            var message = problem
            if let context { message += " (\(context) at \(parser.context_mark.line + 1):\(parser.context_mark.column + 1))" }
            throw YAMLError(reason: .syntax, message: message, location: location(parser.problem_mark))
        }
        return event
    }

    func location(_ mark: yaml_mark_t) -> SourceLocation {
        SourceLocation(line: Int(mark.line) + 1, column: Int(mark.column) + 1, origin: origin)
    }

    func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }

    mutating func count(_ at: SourceLocation) throws(YAMLError) {
        nodeCount += 1
        if nodeCount > YAMLDocument.maximumNodes {
            throw YAMLError(reason: .tooLarge, message: "the document expands to more than \(YAMLDocument.maximumNodes) nodes (through aliases?)", location: at)
        }
    }

    /// Builds the node starting with `event` (which it consumes).
    mutating func node(from event: inout yaml_event_t, depth: Int) throws(YAMLError) -> YAMLNode {
        defer { yaml_event_delete(&event) }
        let at = location(event.start_mark)
        try count(at)
        switch event.type {
        case YAML_ALIAS_EVENT:
            let name = string(event.data.alias.anchor) ?? ""
            guard let target = anchors[name] else {
                throw YAMLError(reason: .undefinedAlias, message: "alias *\(name) names no anchor defined before it", location: at)
            }
            return target
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let text = scalar.value.map { String(decoding: UnsafeBufferPointer(start: $0, count: scalar.length), as: UTF8.self) } ?? ""
            let style: YAMLScalar.Style
            switch scalar.style {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE: style = .singleQuoted
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE: style = .doubleQuoted
            case YAML_LITERAL_SCALAR_STYLE: style = .literal
            case YAML_FOLDED_SCALAR_STYLE: style = .folded
            default: style = .plain
            }
            let node = YAMLNode(kind: .scalar(YAMLScalar(string: text, style: style, tag: string(scalar.tag))), location: at)
            if let anchor = string(scalar.anchor) { anchors[anchor] = node }
            return node
        case YAML_SEQUENCE_START_EVENT:
            guard depth < YAMLDocument.maximumDepth else { throw tooDeep(at) }
            let anchor = string(event.data.sequence_start.anchor)
            let base = pendingItems.count
            defer { pendingItems.removeSubrange(base...) }
            while true {
                var child = try next()
                if child.type == YAML_SEQUENCE_END_EVENT { yaml_event_delete(&child); break }
                let item = try node(from: &child, depth: depth + 1)
                pendingItems.append(item)
            }
            let node = YAMLNode(kind: .sequence(Array(pendingItems[base...])), location: at)
            if let anchor { anchors[anchor] = node }
            return node
        case YAML_MAPPING_START_EVENT:
            guard depth < YAMLDocument.maximumDepth else { throw tooDeep(at) }
            let anchor = string(event.data.mapping_start.anchor)
            let base = pendingPairs.count
            defer {
                pendingPairs.removeSubrange(base...)
                pendingKeys.removeSubrange(base...)
            }
            var seen: [String: SourceLocation] = [:]  // used once a mapping outgrows a linear scan
            while true {
                var keyEvent = try next()
                if keyEvent.type == YAML_MAPPING_END_EVENT { yaml_event_delete(&keyEvent); break }
                let key = try node(from: &keyEvent, depth: depth + 1)
                let keyText = key.scalarText
                if let text = keyText {
                    var first: SourceLocation?
                    if pendingPairs.count - base < 16 {
                        first = pendingKeys[base...].first(where: { $0.text == text })?.location
                    } else {
                        if seen.isEmpty { for key in pendingKeys[base...] { if let t = key.text { seen[t] = key.location } } }
                        first = seen[text]
                        seen[text] = key.location
                    }
                    if let first {
                        throw YAMLError(reason: .duplicateKey, message: "duplicate key '\(text)' (first at \(first.line):\(first.column)); keep one", location: key.location)
                    }
                }
                var valueEvent = try next()
                let value = try node(from: &valueEvent, depth: depth + 1)
                pendingKeys.append((keyText, key.location))
                pendingPairs.append((key, value))
            }
            let node = YAMLNode(kind: .mapping(Array(pendingPairs[base...])), location: at)
            if let anchor { anchors[anchor] = node }
            return node
        default:
            throw YAMLError(reason: .syntax, message: "unexpected YAML event", location: at)
        }
    }

    func tooDeep(_ at: SourceLocation) -> YAMLError {
        YAMLError(reason: .tooDeep, message: "YAML nesting is deeper than \(YAMLDocument.maximumDepth) levels; a configuration is never nested this deep", location: at)
    }
}
