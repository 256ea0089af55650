// Owns the storage of serialized resource bodies: allocated once when a snapshot
// view is built, then shared (never copied or re-encoded) by every response that
// carries the resource, on every stream.

/// The serialized bytes of one resource message, stored once and shared by every response that carries it.
///
/// The storage is a fixed allocation rather than a `[UInt8]` so the encoder can point
/// protobuf-c at many bodies at once without copying them; it never changes after `init`.
public final class ResourceBytes: @unchecked Sendable, Hashable, CustomStringConvertible {
    // @unchecked Sendable: Immutable after init and freed only in deinit, so sharing across threads is safe.
    private let storage: UnsafeMutableRawBufferPointer
    /// Number of bytes.
    public let count: Int

    /// Copies `bytes` into a new shared allocation.
    public init(_ bytes: some Collection<UInt8>) {
        count = bytes.count
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 1)
        _ = storage.initializeMemory(as: UInt8.self, fromContentsOf: bytes)
    }

    /// Copies a raw buffer into a new shared allocation.
    public init(copying buffer: UnsafeRawBufferPointer) {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(buffer.count, 1), alignment: 1)
        if let base = buffer.baseAddress, buffer.count > 0 {
            storage.baseAddress!.copyMemory(from: base, byteCount: buffer.count)
        }
        count = buffer.count
    }

    deinit { storage.deallocate() }

    /// A copy of the bytes as an array (for tests and diagnostics; the hot path uses `withUnsafeBytes`).
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    /// Calls `body` with a view of the bytes, valid only during the call.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: storage.baseAddress, count: count))
    }

    /// Start of the storage for the encoder, which keeps `self` alive while it uses it.
    internal var baseAddress: UnsafeMutablePointer<UInt8> { storage.baseAddress!.assumingMemoryBound(to: UInt8.self) }

    public static func == (lhs: ResourceBytes, rhs: ResourceBytes) -> Bool {
        if lhs === rhs { return true }
        guard lhs.count == rhs.count else { return false }
        return lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in a.elementsEqual(b) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes { hasher.combine(bytes: $0) }
    }

    public var description: String { "\(count) bytes" }
}
