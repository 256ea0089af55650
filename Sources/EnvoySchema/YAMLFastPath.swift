// A strict fast path for the YAML meshctl reads most: rendered templates and generated
// bootstraps, written as block mappings and sequences with flow collections and plain or
// quoted scalars on one line. libyaml stays the authority: this reader returns nil ("not
// mine") for anything outside that subset or anything it would have to judge — comments,
// tabs, non-ASCII bytes, multi-line scalars, block scalars, anchors, aliases, tags, document
// markers, complex keys, empty collection entries, duplicate keys, deep nesting, every
// syntax error — and the caller then parses the same bytes with libyaml, so errors and
// their messages always come from libyaml. For input it accepts it builds the tree libyaml's
// events compose to: the same scalar texts and styles, the same node positions (libyaml
// counts columns in characters; the subset is ASCII, so bytes). Checked against libyaml by
// the differential tests in YAMLFastPathTests.
//
// Why: libyaml was two thirds of the YAML time and the YAML parse a third of `meshctl
// validate` (one event allocated and freed per node, a UTF-8 input buffer, a token queue).

import Foundation

struct YAMLFastReader {
    /// Out of the subset: let libyaml read it.
    struct Outside: Error {}

    /// Nesting this deep leaves the fast path (libyaml reports the limit, at a depth far beyond this).
    static let maximumDepth = 128
    /// libyaml only takes a simple key of at most 1024 characters; stay well inside it.
    static let maximumKeyLength = 1000

    // The buffer is only read, within its bounds (`byte(at:)` answers 0 past the end); `UnsafeBufferPointer`
    // because it is the caller's (a String's or an array's storage), not copied.
    private let text: UnsafeBufferPointer<UInt8>
    private let end: Int
    private let origin: Int32
    private var index = 0
    private var line = 1
    private var lineStart = 0
    private var nodeCount = 0
    // Children of the collections being built, stacked as in the libyaml composer: each collection is copied
    // out once at its final size.
    private var pendingItems: [YAMLNode] = []
    private var pendingPairs: [(key: YAMLNode, value: YAMLNode)] = []
    private var pendingKeys: [String] = []
    /// With `sharesRepeats`: the flow collections read so far, by their text, depth and hash.
    private var sharesRepeats = false
    private var readCollections = ReadCollections()
    /// One bit per hash (its top 21 bits) of the flow collections met so far.
    private var seenHashes: [UInt64] = []
    private var repeats = RepeatedCollections()
    /// The spans of the collections nested in the last one scanned, in the order their brackets open (which
    /// is the order they are read in), so that a nested collection is not scanned again; `nextSpan` is the
    /// next one to be read.
    private var scannedSpans: [(start: Int, length: Int)] = []
    private var nextSpan = 0
    /// While scanning: the indices in `scannedSpans` of the collections not closed yet.
    private var openedSpans: [Int] = []

    /// A flow collection read once: where its text starts, its node and how many nodes it counted.
    private struct ReadCollection {
        let hash: Int
        let start: Int
        let length: Int
        let depth: Int
        let node: YAMLNode
        let nodes: Int
    }

    /// Flow collections by hash, length and depth: an open-addressing table on the reader's own hash (a
    /// Dictionary would hash the key again with SipHash, which showed up). A second text with the same
    /// hash, length and depth is not kept: its copies are read, not shared.
    private struct ReadCollections {
        private var slots = [Int32](repeating: -1, count: 1024)
        private var entries: [ReadCollection] = []

        /// Probes at most this many slots: a text whose neighbourhood is full is read, not shared (colliding hashes
        /// cost a miss, never a long probe).
        static let maximumProbes = 16

        /// The collection kept for this key, or the empty slot to add it at (-1: none within reach).
        func find(hash: Int, length: Int, depth: Int) -> (found: ReadCollection?, slot: Int) {
            let mask = slots.count - 1
            var slot = hash & mask
            for _ in 0..<Self.maximumProbes {
                let entry = slots[slot]
                if entry < 0 { return (nil, slot) }
                let candidate = entries[Int(entry)]
                if candidate.hash == hash && candidate.length == length && candidate.depth == depth { return (candidate, slot) }
                slot = (slot + 1) & mask
            }
            return (nil, -1)
        }

        /// Adds `entry` at the empty `slot` that `find` returned for its key (nothing when it found none).
        mutating func add(_ entry: ReadCollection, at slot: Int) {
            guard slot >= 0 else { return }
            slots[slot] = Int32(entries.count)
            entries.append(entry)
            guard entries.count * 2 > slots.count else { return }
            slots = [Int32](repeating: -1, count: slots.count * 2)
            let mask = slots.count - 1
            for (index, entry) in entries.enumerated() {
                var slot = entry.hash & mask
                while slots[slot] >= 0 { slot = (slot + 1) & mask }
                slots[slot] = Int32(index)
            }
        }
    }

    /// Flow collections shorter than this are read again: looking them up costs about what reading does.
    static let shortestSharedCollection = 24

    private init(_ text: UnsafeBufferPointer<UInt8>, origin: Int32) {
        self.text = text
        self.end = text.count
        self.origin = origin
    }

    /// The document's root node, or nil when the text is outside the subset (including empty text).
    static func read(_ text: UnsafeBufferPointer<UInt8>, origin: Int32) -> YAMLNode? {
        read(text, origin: origin, sharingRepeats: false)?.root
    }

    /// The document's root node and, with `sharingRepeats`, which of its collections stand for several
    /// places in the text (see `RepeatedCollections`); nil when the text is outside the subset.
    static func read(_ text: UnsafeBufferPointer<UInt8>, origin: Int32, sharingRepeats: Bool) -> (root: YAMLNode, repeats: RepeatedCollections)? {
        // Printable ASCII and line feeds only: no tabs, carriage returns, control or non-ASCII bytes (which
        // libyaml checks, decodes and counts as characters).
        guard isPrintableASCII(text) else { return nil }
        var reader = YAMLFastReader(text, origin: origin)
        reader.sharesRepeats = sharingRepeats
        guard let root = try? reader.document() else { return nil }
        return (root, reader.repeats)
    }

    /// Whether every byte is printable ASCII or a line feed. Branch-free per byte, with an exit per block:
    /// ~1 instruction a byte in callgrind, against ~11 for a test and branch per byte.
    static func isPrintableASCII(_ text: UnsafeBufferPointer<UInt8>) -> Bool {
        var start = 0
        while start < text.count {
            let stop = min(start + 4096, text.count)
            var outside: UInt8 = 0
            for offset in start..<stop {
                let b = text[offset]
                // 0x7F and above, or below 0x20 except 0x0A.
                outside |= (b >= 0x7F ? 1 : 0) | (b < 0x20 && b != 0x0A ? 1 : 0)
            }
            if outside != 0 { return false }
            start = stop
        }
        return true
    }

    // MARK: lines and bytes

    @inline(__always) private func byte(at offset: Int) -> UInt8 { offset < end ? text[offset] : 0 }
    @inline(__always) private var current: UInt8 { byte(at: index) }
    /// A space, a line feed or the end of the text.
    @inline(__always) private func isBlankOrEnd(_ offset: Int) -> Bool {
        let b = byte(at: offset)
        return b == 0x20 || b == 0x0A || b == 0
    }
    private var location: SourceLocation { SourceLocation(line: line, column: index - lineStart + 1, origin: origin) }
    private var indent: Int { index - lineStart }
    private var atEnd: Bool { index >= end }

    private mutating func skipSpaces() { while current == 0x20 { index += 1 } }

    /// After a node ends on its line: only spaces may follow, then the line feed (or the end).
    private mutating func finishLine() throws(Outside) {
        skipSpaces()
        if atEnd { return }
        guard current == 0x0A else { throw Outside() }
        index += 1
        line += 1
        lineStart = index
    }

    /// From the start of a line: skips lines of spaces only and stops at the next line's first non-space
    /// byte (or the end). Document markers and directives at column 1 leave the subset.
    private mutating func toNextContent() throws(Outside) {
        while true {
            skipSpaces()
            if atEnd { return }
            if current != 0x0A { break }
            index += 1
            line += 1
            lineStart = index
        }
        if indent == 0 {
            let b = current
            if b == UInt8(ascii: "%") { throw Outside() }
            if (b == UInt8(ascii: "-") || b == UInt8(ascii: ".")) && byte(at: index + 1) == b && byte(at: index + 2) == b && isBlankOrEnd(index + 3) {
                throw Outside()
            }
        }
    }

    /// A block sequence entry starts here ('-' then a space, line feed or the end).
    private var atEntry: Bool { current == UInt8(ascii: "-") && isBlankOrEnd(index + 1) }

    private mutating func counted(_ node: YAMLNode) throws(Outside) -> YAMLNode {
        nodeCount += 1
        guard nodeCount <= YAMLDocument.maximumNodes else { throw Outside() }
        return node
    }

    // MARK: block structure

    private mutating func document() throws(Outside) -> YAMLNode {
        try toNextContent()
        guard !atEnd else { throw Outside() }
        let root = try blockNode(indent: indent, depth: 0)
        guard atEnd else { throw Outside() }
        return root
    }

    /// A block collection whose first line starts here, at column `indent` + 1.
    private mutating func blockNode(indent: Int, depth: Int) throws(Outside) -> YAMLNode {
        guard depth < Self.maximumDepth else { throw Outside() }
        if atEntry { return try blockSequence(indent: indent, depth: depth) }
        let at = location
        let key = try scalar(flow: false)
        guard current == UInt8(ascii: ":"), isBlankOrEnd(index + 1) else { throw Outside() }  // a lone scalar
        return try blockMapping(indent: indent, firstKey: key, at: at, depth: depth)
    }

    /// A block mapping at column `indent` + 1 whose first key has been read (the reader is at its ':').
    private mutating func blockMapping(indent: Int, firstKey: YAMLNode, at: SourceLocation, depth: Int) throws(Outside) -> YAMLNode {
        let base = pendingPairs.count
        defer {
            pendingPairs.removeSubrange(base...)
            pendingKeys.removeSubrange(base...)
        }
        var key = firstKey
        var seen: Set<String> = []
        while true {
            guard let text = key.scalarText else { throw Outside() }
            try checkKey(text, base: base, seen: &seen)
            index += 1  // the ':'
            let value = try blockValue(indent: indent, depth: depth + 1)
            pendingKeys.append(text)
            pendingPairs.append((key, value))
            // At the next line's content, or the end.
            if atEnd || self.indent < indent { break }
            guard self.indent == indent, !atEntry else { throw Outside() }
            key = try scalar(flow: false)
            guard current == UInt8(ascii: ":"), isBlankOrEnd(index + 1) else { throw Outside() }
        }
        return try counted(YAMLNode(kind: .mapping(Array(pendingPairs[base...])), location: at))
    }

    /// A key of the mapping whose keys are stacked from `base`: a duplicate is libyaml's composer's error to
    /// report, and an overlong key libyaml's.
    private func checkKey(_ text: String, base: Int, seen: inout Set<String>) throws(Outside) {
        guard text.utf8.count <= Self.maximumKeyLength else { throw Outside() }
        if pendingKeys.count - base < 16 {
            if pendingKeys[base...].contains(text) { throw Outside() }
        } else {
            if seen.isEmpty { seen = Set(pendingKeys[base...]) }  // once a mapping outgrows a linear scan
            guard seen.insert(text).inserted else { throw Outside() }
        }
    }

    /// The value after a block mapping key's ':' (the mapping is at column `indent` + 1). Leaves the reader at
    /// the next line's content.
    private mutating func blockValue(indent: Int, depth: Int) throws(Outside) -> YAMLNode {
        let afterColon = location
        skipSpaces()
        if atEnd || current == 0x0A {
            try finishLine()
            try toNextContent()
            if !atEnd {
                if self.indent > indent { return try blockNode(indent: self.indent, depth: depth) }
                if self.indent == indent && atEntry { return try blockSequence(indent: indent, depth: depth) }
            }
            // No value: libyaml's empty plain scalar, placed just after the ':'.
            return try counted(YAMLNode(kind: .scalar(YAMLScalar(string: "", style: .plain, tag: nil)), location: afterColon))
        }
        let value = try inlineNode(depth: depth)
        try endOfInlineValue(indent: indent)
        return value
    }

    /// After a value written on its line, in a collection at column `indent` + 1: the rest of the line must be
    /// blank, and the next content no deeper than the collection (a deeper line would continue a plain scalar
    /// or be an error: libyaml's to judge). Leaves the reader at the next line's content.
    private mutating func endOfInlineValue(indent: Int) throws(Outside) {
        try finishLine()
        try toNextContent()
        guard atEnd || self.indent <= indent else { throw Outside() }
    }

    /// A block sequence at column `indent` + 1 (the reader is at its first '-').
    private mutating func blockSequence(indent: Int, depth: Int) throws(Outside) -> YAMLNode {
        guard depth < Self.maximumDepth else { throw Outside() }
        let at = location
        let base = pendingItems.count
        defer { pendingItems.removeSubrange(base...) }
        while true {
            index += 1  // the '-'
            skipSpaces()
            // An entry on the following lines, an empty entry, or a nested entry on the same line: not here.
            guard !atEnd, current != 0x0A, !atEntry else { throw Outside() }
            let item: YAMLNode
            let column = self.indent
            let start = location
            if current == UInt8(ascii: "{") || current == UInt8(ascii: "[") {
                item = try flowCollection(depth: depth + 1)
                try endOfInlineValue(indent: indent)
            } else {
                let first = try scalar(flow: false)
                if current == UInt8(ascii: ":") && isBlankOrEnd(index + 1) {
                    guard depth + 1 < Self.maximumDepth else { throw Outside() }
                    item = try blockMapping(indent: column, firstKey: first, at: start, depth: depth + 1)
                    guard atEnd || self.indent <= indent else { throw Outside() }
                } else {
                    item = first
                    try endOfInlineValue(indent: indent)
                }
            }
            pendingItems.append(item)
            if atEnd || self.indent < indent || !atEntry { break }
        }
        return try counted(YAMLNode(kind: .sequence(Array(pendingItems[base...])), location: at))
    }

    /// A value written on its key's line: a flow collection or a scalar.
    private mutating func inlineNode(depth: Int) throws(Outside) -> YAMLNode {
        if current == UInt8(ascii: "{") || current == UInt8(ascii: "[") { return try flowCollection(depth: depth) }
        let value = try scalar(flow: false)
        // "a: b: c" — libyaml's error.
        if current == UInt8(ascii: ":") && isBlankOrEnd(index + 1) { throw Outside() }
        return value
    }

    // MARK: flow collections (on one line)

    private mutating func flowCollection(depth: Int) throws(Outside) -> YAMLNode {
        guard sharesRepeats, let length = flowCollectionLength(), length >= Self.shortestSharedCollection else {
            return try readFlowCollection(depth: depth)
        }
        // The same text at the same depth reads to the same tree: a repeat shares the node read for an earlier copy
        // (and its positions, as an alias shares its anchor's; see RepeatedCollections).
        let start = index
        let hash = Self.hash(text.baseAddress! + start, length)
        // Most texts are written once: only a hash seen before is looked up (and then kept), so the table
        // holds the repeated texts, not every collection of the document.
        let bit = UInt64(truncatingIfNeeded: hash) >> 43  // 21 bits
        let (word, mask) = (Int(bit >> 6), UInt64(1) << (bit & 63))
        if seenHashes.isEmpty { seenHashes = [UInt64](repeating: 0, count: 1 << 15) }
        guard seenHashes[word] & mask != 0 else {
            seenHashes[word] |= mask
            return try readFlowCollection(depth: depth)
        }
        let (earlier, slot) = readCollections.find(hash: hash, length: length, depth: depth)
        if let earlier, memcmp(text.baseAddress! + earlier.start, text.baseAddress! + start, length) == 0 {
            nodeCount += earlier.nodes
            guard nodeCount <= YAMLDocument.maximumNodes else { throw Outside() }
            index = start + length
            repeats.mark(earlier.node)
            return earlier.node
        }
        let nodesBefore = nodeCount
        let node = try readFlowCollection(depth: depth)
        // Kept only when the reading ended where the scan did: then it read exactly these bytes. A different
        // text with the same hash keeps the first (its copies are read, not shared).
        if index == start + length, earlier == nil {
            readCollections.add(ReadCollection(hash: hash, start: start, length: length, depth: depth, node: node, nodes: nodeCount - nodesBefore), at: slot)
        }
        return node
    }

    /// Chosen per process, so that no text can be written to collide in the table on purpose.
    private static let hashSeed = UInt64.random(in: .min ... .max)

    /// A seeded word-at-a-time multiplicative hash (the lookup compares the bytes, so only spread matters).
    private static func hash(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int {
        var h: UInt64 = (hashSeed ^ UInt64(truncatingIfNeeded: count)) &* 0x9E37_79B9_7F4A_7C15
        var offset = 0
        let raw = UnsafeRawPointer(bytes)
        while offset + 8 <= count {
            h = (h ^ raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 29
            offset += 8
        }
        var tail: UInt64 = 0
        while offset < count {
            tail = tail << 8 | UInt64(bytes[offset])
            offset += 1
        }
        h = (h ^ tail) &* 0xC4CE_B9FE_1A85_EC53
        return Int(truncatingIfNeeded: h ^ (h >> 32))
    }

    /// The length of the flow collection starting here, closing bracket included, by brackets and quotes
    /// alone; nil when it does not close on its line (the skip after a backslash may step over a line feed; the
    /// reading then declines the text). Only a bound: the reading decides what the text is.
    /// Scanning a collection also notes the spans of those nested in it, for when they are read.
    private mutating func flowCollectionLength() -> Int? {
        if nextSpan < scannedSpans.count, scannedSpans[nextSpan].start == index {
            nextSpan += 1
            return scannedSpans[nextSpan - 1].length
        }
        scannedSpans.removeAll(keepingCapacity: true)
        nextSpan = 0
        openedSpans.removeAll(keepingCapacity: true)
        var offset = index
        while offset < end {
            let b = text[offset]
            switch b {
            case UInt8(ascii: "{"), UInt8(ascii: "["):
                openedSpans.append(scannedSpans.count)
                scannedSpans.append((offset, 0))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                guard let innermost = openedSpans.popLast() else { return nil }
                scannedSpans[innermost].length = offset + 1 - scannedSpans[innermost].start
                if openedSpans.isEmpty {
                    nextSpan = 1  // the first span is this collection's own
                    return scannedSpans[0].length
                }
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                offset += 1
                while offset < end, text[offset] != b, text[offset] != 0x0A {
                    if b == UInt8(ascii: "\"") && text[offset] == UInt8(ascii: "\\") { offset += 1 }
                    offset += 1
                }
                if offset >= end || text[offset] == 0x0A { scannedSpans.removeAll(keepingCapacity: true); return nil }
            case 0x0A:
                scannedSpans.removeAll(keepingCapacity: true)
                return nil
            default:
                break
            }
            offset += 1
        }
        scannedSpans.removeAll(keepingCapacity: true)
        return nil
    }

    private mutating func readFlowCollection(depth: Int) throws(Outside) -> YAMLNode {
        guard depth < Self.maximumDepth else { throw Outside() }
        let at = location
        let isMapping = current == UInt8(ascii: "{")
        let close = isMapping ? UInt8(ascii: "}") : UInt8(ascii: "]")
        index += 1
        skipSpaces()
        if current == close {
            index += 1
            return try counted(YAMLNode(kind: isMapping ? .mapping([]) : .sequence([]), location: at))
        }
        if isMapping {
            let base = pendingPairs.count
            defer {
                pendingPairs.removeSubrange(base...)
                pendingKeys.removeSubrange(base...)
            }
            var seen: Set<String> = []
            while true {
                let b = current
                guard b != UInt8(ascii: "{"), b != UInt8(ascii: "[") else { throw Outside() }  // a collection as key
                let key = try scalar(flow: true)
                // "key: value" with a space after the ':' (libyaml versions differ on "key":value).
                guard current == UInt8(ascii: ":"), byte(at: index + 1) == 0x20, let text = key.scalarText else { throw Outside() }
                try checkKey(text, base: base, seen: &seen)
                index += 1
                skipSpaces()
                let value = try flowNode(depth: depth + 1)
                pendingKeys.append(text)
                pendingPairs.append((key, value))
                skipSpaces()
                if current == close { index += 1; break }
                guard current == UInt8(ascii: ",") else { throw Outside() }
                index += 1
                skipSpaces()
                guard current != close else { throw Outside() }  // a trailing comma
            }
            return try counted(YAMLNode(kind: .mapping(Array(pendingPairs[base...])), location: at))
        } else {
            let base = pendingItems.count
            defer { pendingItems.removeSubrange(base...) }
            while true {
                let item = try flowNode(depth: depth + 1)
                pendingItems.append(item)
                skipSpaces()
                if current == close { index += 1; break }
                guard current == UInt8(ascii: ",") else { throw Outside() }  // ':' (a single-pair mapping) too
                index += 1
                skipSpaces()
                guard current != close else { throw Outside() }
            }
            return try counted(YAMLNode(kind: .sequence(Array(pendingItems[base...])), location: at))
        }
    }

    private mutating func flowNode(depth: Int) throws(Outside) -> YAMLNode {
        if current == UInt8(ascii: "{") || current == UInt8(ascii: "[") { return try flowCollection(depth: depth) }
        return try scalar(flow: true)
    }

    // MARK: scalars (on one line)

    /// A plain, single- or double-quoted scalar starting here. The reader stops just after it (after the
    /// closing quote, or at the first byte that ends a plain scalar, its trailing spaces skipped).
    private mutating func scalar(flow: Bool) throws(Outside) -> YAMLNode {
        let at = location
        let b = current
        if b == UInt8(ascii: "\"") { return try counted(YAMLNode(kind: .scalar(YAMLScalar(string: try doubleQuoted(), style: .doubleQuoted, tag: nil)), location: at)) }
        if b == UInt8(ascii: "'") { return try counted(YAMLNode(kind: .scalar(YAMLScalar(string: try singleQuoted(), style: .singleQuoted, tag: nil)), location: at)) }
        return try counted(YAMLNode(kind: .scalar(YAMLScalar(string: try plain(flow: flow), style: .plain, tag: nil)), location: at))
    }

    private mutating func plain(flow: Bool) throws(Outside) -> String {
        let start = index
        switch current {
        case UInt8(ascii: "-"):
            // "-x" starts a plain scalar; "- " is an entry, and "-," "-]" are left to libyaml.
            let next = byte(at: index + 1)
            guard next != 0x20, next != 0x0A, next != 0, !Self.isFlowIndicator(next) else { throw Outside() }
        case 0, 0x0A, 0x20, UInt8(ascii: "?"), UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "["), UInt8(ascii: "]"),
             UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "#"), UInt8(ascii: "&"), UInt8(ascii: "*"), UInt8(ascii: "!"),
             UInt8(ascii: "|"), UInt8(ascii: ">"), UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "%"), UInt8(ascii: "@"),
             UInt8(ascii: "`"):
            throw Outside()
        default:
            break
        }
        var last = index  // one past the last non-space byte
        while index < end {
            let b = text[index]
            // Letters, digits and '.', '/', '-', '_' (most of a scalar) end nothing: one range test first.
            if Self.isWordByte(b) { index += 1; last = index; continue }
            if b == 0x0A { break }
            if b == UInt8(ascii: "#") { throw Outside() }  // a comment, or a '#' libyaml would have to judge
            if b == UInt8(ascii: ":") {
                let next = byte(at: index + 1)
                if next == 0x20 || next == 0x0A || next == 0 { break }
                if flow { throw Outside() }  // "a:b" in a flow collection: libyaml versions differ
            }
            if flow {
                if Self.isFlowIndicator(b) { break }
                if b == UInt8(ascii: "?") { throw Outside() }
            }
            index += 1
            if b != 0x20 { last = index }
        }
        let value = String(decoding: UnsafeBufferPointer(rebasing: text[start..<last]), as: UTF8.self)
        index = last
        skipSpaces()
        return value
    }

    @inline(__always) private static func isWordByte(_ b: UInt8) -> Bool {
        let letter = (b | 0x20) &- UInt8(ascii: "a")  // folds upper case onto lower case
        return letter < 26 || (b >= UInt8(ascii: "-") && b <= UInt8(ascii: "9")) || b == UInt8(ascii: "_")  // "-./0123456789"
    }

    private static func isFlowIndicator(_ b: UInt8) -> Bool {
        b == UInt8(ascii: ",") || b == UInt8(ascii: "[") || b == UInt8(ascii: "]") || b == UInt8(ascii: "{") || b == UInt8(ascii: "}")
    }

    private mutating func singleQuoted() throws(Outside) -> String {
        index += 1
        var bytes: [UInt8] = []
        var start = index
        while true {
            guard index < end else { throw Outside() }
            let b = text[index]
            if b == 0x0A { throw Outside() }  // a multi-line scalar: libyaml folds it
            if b == UInt8(ascii: "'") {
                if byte(at: index + 1) == UInt8(ascii: "'") {
                    bytes += text[start...index]
                    index += 2
                    start = index
                    continue
                }
                break
            }
            index += 1
        }
        let value: String
        if bytes.isEmpty {
            value = String(decoding: UnsafeBufferPointer(rebasing: text[start..<index]), as: UTF8.self)
        } else {
            bytes += text[start..<index]
            value = String(decoding: bytes, as: UTF8.self)
        }
        index += 1
        return value
    }

    private mutating func doubleQuoted() throws(Outside) -> String {
        index += 1
        let start = index
        // Most quoted values have no escapes: take the bytes as they are.
        while index < end {
            let b = text[index]
            if b == UInt8(ascii: "\"") {
                let value = String(decoding: UnsafeBufferPointer(rebasing: text[start..<index]), as: UTF8.self)
                index += 1
                return value
            }
            if b == UInt8(ascii: "\\") || b == 0x0A { break }
            index += 1
        }
        guard index < end, text[index] == UInt8(ascii: "\\") else { throw Outside() }
        var bytes = Array(UnsafeBufferPointer(rebasing: text[start..<index]))
        while true {
            guard index < end else { throw Outside() }
            let b = text[index]
            if b == UInt8(ascii: "\"") { break }
            if b == 0x0A { throw Outside() }
            if b != UInt8(ascii: "\\") { bytes.append(b); index += 1; continue }
            let escape = byte(at: index + 1)
            index += 2
            switch escape {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "u"):
                var code: UInt32 = 0
                for _ in 0..<4 {
                    guard let digit = Self.hexValue(byte(at: index)) else { throw Outside() }
                    code = code << 4 | digit
                    index += 1
                }
                // Surrogates and NUL are libyaml's to judge.
                guard code != 0, !(0xD800...0xDFFF).contains(code), let scalar = Unicode.Scalar(code) else { throw Outside() }
                bytes += Array(String(Character(scalar)).utf8)
            default:
                throw Outside()  // the rarer escapes, and a backslash before a line feed (a folded line)
            }
        }
        index += 1
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt32? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(b - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(b - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(b - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
