// The store's on-disk formats: version manifests (JSON), per-(group, type) index objects and
// their shards (line-oriented text). Indexes and shards are content-addressed objects like
// resource bodies, so an unchanged group/type — or an unchanged shard of a changed one —
// is shared between versions instead of rewritten.
//
//   versions/<version>          manifest: metadata + one entry per (group, type) → index object
//   objects/ab/<index hash>     "meshctl-index 1 <bits> <count>\n" + "<shard> <hash> <size> <count>\n"…
//   objects/ab/<shard hash>     "meshctl-shard 1\n" + "<resource hash> <size> <escaped name>\n"… (by name)
//   objects/ab/<resource hash>  the resource's protobuf bytes
//
// A resource lives in shard (FNV-1a-64(name) >> (64 - bits)); bits grows with the type's
// size so a shard holds about 64 entries (a one-resource change rewrites ~4 KiB of shard).
import Foundation

/// A reference from a parent object to a child: the child's hash and byte size.
struct ObjectRef: Equatable, Sendable, Codable {
    var hash: String
    var size: Int
}

/// One line of a shard: a resource's object and its name.
struct ShardEntry: Equatable, Sendable {
    var name: String
    var object: ObjectRef
}

/// One line of an index: a non-empty shard.
struct IndexEntry: Equatable, Sendable {
    var shard: Int
    var object: ObjectRef
    var count: Int
}

/// A decoded index object.
struct TypeIndex: Equatable, Sendable {
    var bits: Int
    var count: Int
    var shards: [IndexEntry]
}

/// The top-level record of one version.
struct Manifest: Codable, Equatable, Sendable {
    struct TypeEntry: Codable, Equatable, Sendable {
        var typeURL: String
        var index: ObjectRef
        var count: Int
    }
    struct GroupEntry: Codable, Equatable, Sendable {
        var group: String
        var types: [TypeEntry]
    }

    var format: Int
    var metadata: SnapshotMetadata
    var groups: [GroupEntry]

    var resourceCount: Int { groups.reduce(0) { $0 + $1.types.reduce(0) { $0 + $1.count } } }
}

enum ObjectFormat {
    static let manifestFormat = 1
    static let indexMagic = "meshctl-index 1"
    static let shardMagic = "meshctl-shard 1"
    /// Entries per shard the layout aims for.
    static let targetShardSize = 64
    static let maxBits = 16

    static func shardBits(forCount count: Int) -> Int {
        var bits = 0
        while bits < maxBits && (count >> bits) > targetShardSize { bits += 1 }
        return bits
    }

    static func shard(of name: String, bits: Int) -> Int {
        bits == 0 ? 0 : Int(ShardHash.of(name) >> UInt64(64 - bits))
    }

    // MARK: Shards

    /// The shard listing these resources (sorted by name, byte order).
    static func encodeShard<C: Collection>(_ resources: C) -> [UInt8] where C.Element == Resource {
        encodeShard(resources.lazy.map { ($0.name, $0.hash, $0.body.count) })
    }

    /// (name, hash, size) lines, sorted by name.
    static func encodeShard<C: Collection>(_ lines: C) -> [UInt8] where C.Element == (String, String, Int) {
        var out: [UInt8] = []
        out.reserveCapacity(16 + lines.count * 100)
        out.append(contentsOf: shardMagic.utf8)
        out.append(10)
        for (name, hash, size) in lines {
            out.append(contentsOf: hash.utf8)
            out.append(32)
            appendDecimal(size, to: &out)
            out.append(32)
            escapeName(name, into: &out)
            out.append(10)
        }
        return out
    }

    static func decodeShard(_ bytes: [UInt8]) -> [ShardEntry]? {
        var lines = LineReader(bytes)
        guard lines.next() == Array(shardMagic.utf8)[...] else { return nil }
        var entries: [ShardEntry] = []
        while let line = lines.next() {
            // <64 hex> SP <size> SP <name>
            guard line.count > 66, line[line.startIndex + 64] == 32 else { return nil }
            let hash = String(decoding: line[line.startIndex..<line.startIndex + 64], as: UTF8.self)
            guard Digest.isHash(hash) else { return nil }
            var i = line.startIndex + 65
            var size = 0
            var digits = 0
            while i < line.endIndex, line[i] != 32 {
                guard line[i] >= 48 && line[i] <= 57, digits < 15 else { return nil }
                size = size * 10 + Int(line[i] - 48)
                digits += 1
                i += 1
            }
            guard digits > 0, i < line.endIndex, let name = unescapeName(line[(i + 1)...]) else { return nil }
            entries.append(ShardEntry(name: name, object: ObjectRef(hash: hash, size: size)))
        }
        return entries
    }

    // MARK: Indexes

    static func encodeIndex(_ index: TypeIndex) -> [UInt8] {
        var text = "\(indexMagic) \(index.bits) \(index.count)\n"
        for s in index.shards { text += "\(s.shard) \(s.object.hash) \(s.object.size) \(s.count)\n" }
        return Array(text.utf8)
    }

    static func decodeIndex(_ bytes: [UInt8]) -> TypeIndex? {
        var lines = LineReader(bytes)
        guard let header = lines.next() else { return nil }
        let head = String(decoding: header, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
        guard head.count == 4, "\(head[0]) \(head[1])" == indexMagic, let bits = Int(head[2]), let count = Int(head[3]),
              (0...maxBits).contains(bits), count >= 0 else { return nil }
        var shards: [IndexEntry] = []
        while let line = lines.next() {
            let f = String(decoding: line, as: UTF8.self).split(separator: " ", omittingEmptySubsequences: false)
            guard f.count == 4, let shard = Int(f[0]), Digest.isHash(f[1]), let size = Int(f[2]), let n = Int(f[3]),
                  shard >= 0, shard < (1 << bits), size >= 0, n > 0 else { return nil }
            shards.append(IndexEntry(shard: shard, object: ObjectRef(hash: String(f[1]), size: size), count: n))
        }
        guard shards.reduce(0, { $0 + $1.count }) == count else { return nil }
        return TypeIndex(bits: bits, count: count, shards: shards)
    }

    // MARK: Manifests

    static func encodeManifest(_ manifest: Manifest) -> [UInt8] {
        // Encoding plain Codable values cannot fail.
        Array((try? Timestamp.encoder.encode(manifest)) ?? Data()) + [10]
    }

    /// Why a manifest did not decode.
    struct ManifestProblem: Error {
        let detail: String
    }

    /// The manifest of `version`: decoded, and checked to describe that version (any backend reads it this way).
    static func decodeManifest(_ bytes: [UInt8], of version: String) throws(SnapshotStoreError) -> Manifest {
        switch decodeManifest(bytes) {
        case .failure(let problem): throw .manifestCorrupt(version: version, detail: problem.detail)
        case .success(let manifest):
            guard manifest.metadata.version == version else {
                throw .manifestCorrupt(version: version, detail: "it describes version \(manifest.metadata.version)")
            }
            return manifest
        }
    }

    static func decodeManifest(_ bytes: [UInt8]) -> Result<Manifest, ManifestProblem> {
        do {
            let m = try Timestamp.decoder.decode(Manifest.self, from: Data(bytes))
            guard m.format == manifestFormat else { return .failure(ManifestProblem(detail: "format \(m.format), expected \(manifestFormat)")) }
            return .success(m)
        } catch {
            return .failure(ManifestProblem(detail: "not a manifest: \(error)"))
        }
    }

    // MARK: Names

    /// Percent-escapes `%` and control bytes so a name stays on one line.
    static func escapeName(_ name: String, into out: inout [UInt8]) {
        if !name.utf8.contains(where: { $0 == 37 || $0 < 32 || $0 == 127 }) {
            out.append(contentsOf: name.utf8)
            return
        }
        let hex = Array("0123456789ABCDEF".utf8)
        for b in name.utf8 {
            if b == 37 || b < 32 || b == 127 {
                out.append(37)
                out.append(hex[Int(b >> 4)])
                out.append(hex[Int(b & 15)])
            } else {
                out.append(b)
            }
        }
    }

    static func unescapeName(_ bytes: ArraySlice<UInt8>) -> String? {
        guard bytes.contains(37) else { return String(decoding: bytes, as: UTF8.self) }
        var out: [UInt8] = []
        var i = bytes.startIndex
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        while i < bytes.endIndex {
            if bytes[i] == 37 {
                guard i + 2 < bytes.endIndex, let h = value(bytes[i + 1]), let l = value(bytes[i + 2]) else { return nil }
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Splits bytes into lines (without the newline); a final line without newline is returned too.
struct LineReader {
    private let bytes: [UInt8]
    private var position = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func next() -> ArraySlice<UInt8>? {
        guard position < bytes.count else { return nil }
        let start = position
        while position < bytes.count, bytes[position] != 10 { position += 1 }
        let line = bytes[start..<position]
        position += 1
        return line
    }
}
