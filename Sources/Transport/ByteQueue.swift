// Owns the FIFO of encoded bytes waiting for a socket to accept them.

/// A FIFO byte buffer that frees its storage whenever it empties, so idle connections hold none.
struct ByteQueue {
    private var storage: [UInt8] = []
    private var start = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { start == storage.count }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        storage.append(contentsOf: bytes)
    }

    /// Makes room for `bytes` while the queue is empty (it holds no storage then): one allocation for what is about
    /// to be appended, where growing through a response's frame header, length prefix and message took three.
    mutating func reserveWhileEmpty(_ bytes: Int) {
        if isEmpty && storage.capacity < bytes { storage.reserveCapacity(bytes) }
    }

    mutating func consume(_ count: Int) {
        start += count
        if start == storage.count {
            storage = []
            start = 0
        } else if start >= 64 * 1024 && start * 2 >= storage.count {
            storage.removeFirst(start)
            start = 0
        }
    }

    func withReadableBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        storage.withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }
}
