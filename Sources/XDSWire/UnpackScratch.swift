// Owns where protobuf-c puts a decoded request while it is converted to Swift values: a
// bump allocator over scratch memory on the decoding thread's stack. protobuf-c allocates
// every string of a message separately, so an EDS ACK naming 50 assignments cost 50-odd
// mallocs and frees — the largest single share of the server's allocator time on a push
// (perf, 10,000 proxies). The decoded message never outlives the conversion, so its parts can
// all live in one buffer that is dropped at once; what does not fit goes to malloc as before.
internal import CProtobufC
#if canImport(Glibc)
import Glibc
#endif

/// The scratch region a decode allocates from.
private struct ScratchRegion {
    let start: UnsafeMutableRawPointer
    let end: UnsafeMutableRawPointer
    var next: UnsafeMutableRawPointer
}

private func scratchAllocate(_ data: UnsafeMutableRawPointer?, _ size: Int) -> UnsafeMutableRawPointer? {
    let region = data!.assumingMemoryBound(to: ScratchRegion.self)
    let rounded = (max(size, 1) + 15) & ~15
    if region.pointee.end - region.pointee.next >= rounded {
        defer { region.pointee.next += rounded }
        return region.pointee.next
    }
    return malloc(max(size, 1))
}

private func scratchFree(_ data: UnsafeMutableRawPointer?, _ pointer: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    let region = data!.assumingMemoryBound(to: ScratchRegion.self).pointee
    // Scratch memory is dropped with the region; only what spilled over to malloc is freed one by one.
    if pointer >= region.start && pointer < region.end { return }
    free(pointer)
}

/// Calls `body` with a protobuf-c allocator whose allocations live until `body` returns. The message unpacked with it
/// must be freed (`*__free_unpacked`, with the same allocator) within `body`, which releases whatever spilled to malloc.
func withUnpackScratch<R, E: Error>(_ body: (UnsafeMutablePointer<ProtobufCAllocator>) throws(E) -> R) throws(E) -> R {
    // 8 KiB covers a request naming about 150 resources; the temporary allocation is on the stack when there is room.
    let result: Result<R, E> = withUnsafeTemporaryAllocation(byteCount: 8192, alignment: 16) { scratch in
        let start = scratch.baseAddress!
        var region = ScratchRegion(start: start, end: start + scratch.count, next: start)
        return withUnsafeMutablePointer(to: &region) { regionPointer in
            var allocator = ProtobufCAllocator(alloc: scratchAllocate, free: scratchFree, allocator_data: regionPointer)
            return Result { () throws(E) -> R in try body(&allocator) }
        }
    }
    return try result.get()
}
