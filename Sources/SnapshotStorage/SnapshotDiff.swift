// Resource-level differences between two snapshots (added / removed / changed per proxy group
// and type), and their text rendering with a line diff of each changed resource. Turning a
// resource into text (YAML) is the caller's job: the store knows bytes, not the Envoy schema.

/// What changed between two snapshots, per proxy group and resource type.
public struct SnapshotDiff: Sendable {
    /// Changes to one resource type within one group.
    public struct TypeChanges: Sendable {
        public let typeURL: String
        public let added: [Resource]
        public let removed: [Resource]
        /// (old, new) pairs, by name.
        public let changed: [(old: Resource, new: Resource)]
    }

    /// Changes within one proxy group.
    public struct GroupChanges: Sendable {
        public enum Status: Sendable { case added, removed, changed }
        public let group: String
        public let status: Status
        public let types: [TypeChanges]
    }

    public let from: SnapshotMetadata
    public let to: SnapshotMetadata
    /// Groups with any change, in byte order of name.
    public let groups: [GroupChanges]

    public var isEmpty: Bool { groups.isEmpty }

    public init(from old: Snapshot, to new: Snapshot) {
        from = old.metadata
        to = new.metadata
        var result: [GroupChanges] = []
        for name in Set(old.groups.keys).union(new.groups.keys).sorted(by: byteOrder) {
            let a = old.groups[name]?.resources ?? [:]
            let b = new.groups[name]?.resources ?? [:]
            var types: [TypeChanges] = []
            for typeURL in Set(a.keys).union(b.keys).sorted(by: byteOrder) {
                let x = a[typeURL] ?? [:], y = b[typeURL] ?? [:]
                let added = y.keys.filter { x[$0] == nil }.sorted(by: byteOrder).map { y[$0]! }
                let removed = x.keys.filter { y[$0] == nil }.sorted(by: byteOrder).map { x[$0]! }
                let changed = x.keys.filter { y[$0] != nil && y[$0]!.hash != x[$0]!.hash }.sorted(by: byteOrder).map { (old: x[$0]!, new: y[$0]!) }
                if !added.isEmpty || !removed.isEmpty || !changed.isEmpty {
                    types.append(TypeChanges(typeURL: typeURL, added: added, removed: removed, changed: changed))
                }
            }
            let status: GroupChanges.Status = old.groups[name] == nil ? .added : (new.groups[name] == nil ? .removed : .changed)
            if !types.isEmpty || status != .changed { result.append(GroupChanges(group: name, status: status, types: types)) }
        }
        groups = result
    }

    /// Counts of (added, removed, changed) resources across all groups.
    public var totals: (added: Int, removed: Int, changed: Int) {
        var t = (added: 0, removed: 0, changed: 0)
        for g in groups {
            for c in g.types {
                t.added += c.added.count
                t.removed += c.removed.count
                t.changed += c.changed.count
            }
        }
        return t
    }

    /// Plain-text report. `text(resource)` renders a resource (e.g. as YAML) for the line diff of
    /// changed resources; with `fieldDiffs` false only names are listed.
    public func render(fieldDiffs: Bool = true, context: Int = 3, text: (Resource) -> String) -> String {
        var out: [String] = []
        out.append("diff \(from.version.prefix(12)) → \(to.version.prefix(12))")
        out.append("  from: \(Self.describe(from))")
        out.append("  to:   \(Self.describe(to))")
        if groups.isEmpty {
            out.append("no differences")
            return out.joined(separator: "\n") + "\n"
        }
        for group in groups {
            let counts = group.types.reduce((0, 0, 0)) { ($0.0 + $1.added.count, $0.1 + $1.removed.count, $0.2 + $1.changed.count) }
            let status = group.status == .added ? "new group, " : (group.status == .removed ? "group removed, " : "")
            out.append("")
            out.append("group \(group.group): \(status)\(counts.0) added, \(counts.1) removed, \(counts.2) changed")
            for type in group.types {
                out.append("  \(Self.shortType(type.typeURL)): \(type.added.count) added, \(type.removed.count) removed, \(type.changed.count) changed")
                for r in type.added { out.append("    + \(r.name)") }
                for r in type.removed { out.append("    - \(r.name)") }
                for (old, new) in type.changed {
                    out.append("    ~ \(old.name)")
                    guard fieldDiffs else { continue }
                    let hunks = LineDiff.unified(Self.lines(text(old)), Self.lines(text(new)), context: context)
                    out.append("      --- \(old.name) @ \(old.hash.prefix(12))")
                    out.append("      +++ \(new.name) @ \(new.hash.prefix(12))")
                    if hunks.isEmpty { out.append("      (bytes differ; the rendered text is identical)") }
                    for line in hunks { out.append("      " + line) }
                }
            }
        }
        let t = totals
        out.append("")
        out.append("\(groups.count) group(s) differ: \(t.added) added, \(t.removed) removed, \(t.changed) changed")
        return out.joined(separator: "\n") + "\n"
    }

    static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    static func describe(_ m: SnapshotMetadata) -> String {
        var parts = [m.version.prefix(12) + "", Timestamp.text(m.createdAt)]
        if let rev = m.sourceRevision { parts.append("source \(rev)") }
        if let author = m.author { parts.append("by \(author)") }
        return parts.joined(separator: ", ")
    }

    /// `type.googleapis.com/envoy.config.cluster.v3.Cluster` → `envoy.config.cluster.v3.Cluster`.
    static func shortType(_ typeURL: String) -> String {
        typeURL.split(separator: "/").last.map(String.init) ?? typeURL
    }
}
