// A map from stream to value sized for what one HTTP/2 connection carries: an xDS proxy's connection holds one
// stream for hours, a gRPC client's a few. A Dictionary kept 100-200 bytes of storage per table and connection for
// that one entry, and kept it after the entry was removed: four tables made ≈ 0.6 KB of an idle proxy's memory
// (heaptrack, 4,000 proxies). A linear array of entries costs a fraction, and its storage goes with the last entry.

/// Stream → value for the streams of one connection (at most its concurrent-stream limit, usually one).
struct StreamMap<Value> {
    /// Values are optional only so `_modify` can hand out an entry's value in place: a value copied out and stored
    /// back would copy every buffer it holds on the first change.
    private var entries: [(id: HTTP2StreamID, value: Value?)] = []

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }
    var keys: [HTTP2StreamID] { entries.map(\.id) }

    subscript(id: HTTP2StreamID) -> Value? {
        get {
            for entry in entries where entry.id == id { return entry.value }
            return nil
        }
        _modify {
            if let index = entries.firstIndex(where: { $0.id == id }) {
                yield &entries[index].value
                if case .none = entries[index].value { remove(at: index) }
            } else {
                // A miss (`map[id] = nil` for a stream without an entry, `map[id]?.x = ...`) adds nothing: an entry is
                // appended only if the caller stored a value, so the storage is not allocated just to be freed.
                var value: Value?
                yield &value
                if let value { entries.append((id, value)) }
            }
        }
    }

    @discardableResult
    mutating func removeValue(forKey id: HTTP2StreamID) -> Value? {
        guard let index = entries.firstIndex(where: { $0.id == id }) else { return nil }
        let value = entries[index].value
        remove(at: index)
        return value
    }

    mutating func removeAll() { entries = [] }

    private mutating func remove(at index: Int) {
        entries.remove(at: index)
        if entries.isEmpty { entries = [] }  // remove(at:) keeps the storage
    }
}
