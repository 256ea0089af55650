// Owns one libnghttp2 session (server or client side): feeding it received
// bytes, pulling encoded frames out of it, the per-stream outbound message
// queues its data providers read from, and the C callbacks that turn
// nghttp2 events into calls on an `HTTP2SessionDelegate`.
internal import CNGHTTP2
internal import CTransportShims
import Glibc
import Synchronization

/// Receives the events of an `HTTP2Session`; called on the session's loop thread, from inside nghttp2 callbacks
/// (so it may submit frames but must not destroy the session).
protocol HTTP2SessionDelegate: AnyObject {
    func session(receivedHeaders headers: [HeaderField], kind: HTTP2Session.HeadersKind, streamID: HTTP2StreamID, endStream: Bool)
    func session(receivedData data: UnsafeRawBufferPointer, streamID: HTTP2StreamID)
    func session(receivedEndStream streamID: HTTP2StreamID)
    func session(streamClosed streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode)
    func session(receivedGoAway errorCode: HTTP2ErrorCode, lastStreamID: HTTP2StreamID)
    func sessionReceivedPingAck()
    func sessionRefusedStream()
    func session(sentGoAway errorCode: HTTP2ErrorCode)
}

/// Bytes nghttp2 has allocated across all sessions in this process (tracked through a counting allocator).
public enum HTTP2MemoryAccounting {
    static let bytesInUse = Atomic<Int>(0)
    static let releasedPages = Atomic<Int>(0)
    static let releasedTablePages = Atomic<Int>(0)

    /// Current nghttp2 heap usage of all sessions, in bytes.
    public static var currentBytes: Int { bytesInUse.load(ordering: .relaxed) }
    /// Bytes of idle sessions' outbound frame buffers handed back to the kernel so far (they stay allocated).
    public static var releasedFrameBufferBytes: Int { releasedPages.load(ordering: .relaxed) }
    /// Bytes of sessions' empty HPACK table rings handed back to the kernel so far (they stay allocated).
    public static var releasedHeaderTableBytes: Int { releasedTablePages.load(ordering: .relaxed) }
}

/// Blocks nghttp2 allocates while its session is created, for the session's whole life, that hold nothing while
/// the connection idles, so their pages can go back to the kernel (they read as zeros when touched again):
/// - the outbound frame buffer (16 KiB and a frame header): nghttp2 copies every frame it sends into it, so after
///   the first response its pages stay resident though the connection then idles for hours; nghttp2 writes a frame
///   before it reads one;
/// - the two HPACK rings (encoder and decoder, 128 entry pointers, 1 KiB each, whatever the table size): with
///   both dynamic tables at size 0 they hold no entry, and a ring is only read where it holds entries.
/// Only blocks allocated during creation are recorded, so nothing else nghttp2 allocates later (an inbound header
/// buffer that may hold live bytes) is ever released this way.
final class ReleasableBlocks {
    static let minimumBytes = 16 * 1024
    /// An HPACK ring: `hd_ringbuf_init` sizes it for a 4,096-byte table of 32-byte minimum entries (nghttp2 1.52
    /// and later), the same for both rings. Nothing else nghttp2 allocates while creating a session has this size.
    static let headerTableRingBytes = 128 * MemoryLayout<UnsafeRawPointer>.size

    private struct Block {
        let pointer: UnsafeMutableRawPointer
        let bytes: Int
        var residentPages: Int { transport_resident_pages(pointer, bytes) }
        func release() -> Int { transport_release_pages(pointer, bytes) }
    }

    fileprivate var recording = false
    // Fixed slots rather than arrays: two arrays were two allocations more on every connection. A block nghttp2 might
    // allocate beyond them (none in 1.52) is simply never released.
    private var frameBuffer: Block?
    private var headerTableRings: (Block?, Block?)

    fileprivate func allocated(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        if isFrameBuffer(bytes: bytes) { frameBuffer = Block(pointer: pointer, bytes: bytes) }
    }

    /// Whether a new block of `bytes` is the frame buffer (see `allocatePageAligned`).
    fileprivate func isFrameBuffer(bytes: Int) -> Bool { recording && bytes >= Self.minimumBytes && frameBuffer == nil }

    /// Whether a new block of `bytes` is an HPACK ring (allocated page-aligned, see `allocatePageAligned`).
    fileprivate func isHeaderTableRing(bytes: Int) -> Bool {
        recording && bytes == Self.headerTableRingBytes && (headerTableRings.0 == nil || headerTableRings.1 == nil)
    }

    fileprivate func allocatedHeaderTableRing(_ pointer: UnsafeMutableRawPointer) {
        let ring = Block(pointer: pointer, bytes: Self.pageSize)
        if headerTableRings.0 == nil { headerTableRings.0 = ring } else { headerTableRings.1 = ring }
    }

    private static let pageSize = Int(getpagesize())

    /// A released block starts on a page boundary and spans whole pages, so releasing it hands every page back.
    /// Placed anywhere by malloc, the frame buffer's 16,394 bytes share a first and a last page with neighbouring
    /// blocks; those two pages hold ≈ 4 KiB of the buffer that no release can reach — 4 KiB of RSS on every idle
    /// connection, a tenth of a proxy's cost (measured with heaptrack at 1,000 proxies); a 1 KiB ring would share
    /// its only page. The rounding up is address space, never touched.
    fileprivate static func allocatePageAligned(_ bytes: Int) -> UnsafeMutableRawPointer? {
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, pageSize, (bytes + pageSize - 1) / pageSize * pageSize) == 0 else { return nil }
        return pointer
    }

    fileprivate func freed(_ pointer: UnsafeMutableRawPointer) {
        if frameBuffer?.pointer == pointer { frameBuffer = nil }
        if headerTableRings.0?.pointer == pointer { headerTableRings.0 = nil }
        if headerTableRings.1?.pointer == pointer { headerTableRings.1 = nil }
    }

    /// Whole pages of the frame buffer that are resident now (the tests' view of what a write touched).
    var residentPages: Int { frameBuffer?.residentPages ?? 0 }

    /// Resident pages of the HPACK rings (the tests' view).
    var headerTableResidentPages: Int { (headerTableRings.0?.residentPages ?? 0) + (headerTableRings.1?.residentPages ?? 0) }

    /// Hands the whole pages of the frame buffer back to the kernel; returns the bytes released.
    /// Only call while nghttp2 holds no unsent frame bytes (its last `mem_send` returned nothing).
    func releasePages() -> Int {
        let released = frameBuffer?.release() ?? 0
        HTTP2MemoryAccounting.releasedPages.wrappingAdd(released, ordering: .relaxed)
        return released
    }

    /// Hands the HPACK rings' pages back to the kernel; returns the bytes released.
    /// Only call while both dynamic tables are empty.
    func releaseHeaderTableRings() -> Int {
        let released = (headerTableRings.0?.release() ?? 0) + (headerTableRings.1?.release() ?? 0)
        HTTP2MemoryAccounting.releasedTablePages.wrappingAdd(released, ordering: .relaxed)
        return released
    }
}

private func releasableBlocks(_ userData: UnsafeMutableRawPointer?) -> ReleasableBlocks? {
    userData.map { Unmanaged<ReleasableBlocks>.fromOpaque($0).takeUnretainedValue() }
}

private func countedMalloc(_ size: Int, _ userData: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let blocks = releasableBlocks(userData)
    let ring = blocks?.isHeaderTableRing(bytes: size) == true
    guard let pointer = blocks?.isFrameBuffer(bytes: size) == true || ring ? ReleasableBlocks.allocatePageAligned(size) : malloc(size) else { return nil }
    if ring { blocks?.allocatedHeaderTableRing(pointer) }
    let usable = transport_malloc_usable_size(pointer)
    HTTP2MemoryAccounting.bytesInUse.wrappingAdd(usable, ordering: .relaxed)
    blocks?.allocated(pointer, bytes: usable)
    return pointer
}

private func countedFree(_ pointer: UnsafeMutableRawPointer?, _ userData: UnsafeMutableRawPointer?) {
    guard let pointer else { return }
    releasableBlocks(userData)?.freed(pointer)
    HTTP2MemoryAccounting.bytesInUse.wrappingSubtract(transport_malloc_usable_size(pointer), ordering: .relaxed)
    free(pointer)
}

private func countedCalloc(_ count: Int, _ size: Int, _ userData: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    guard let pointer = calloc(count, size) else { return nil }
    let usable = transport_malloc_usable_size(pointer)
    HTTP2MemoryAccounting.bytesInUse.wrappingAdd(usable, ordering: .relaxed)
    releasableBlocks(userData)?.allocated(pointer, bytes: usable)
    return pointer
}

private func countedRealloc(_ pointer: UnsafeMutableRawPointer?, _ size: Int, _ userData: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    let before = pointer.map { transport_malloc_usable_size($0) } ?? 0
    if let pointer { releasableBlocks(userData)?.freed(pointer) }
    // nghttp2 allocates its frame buffer as realloc(NULL, 16,394).
    let fresh = pointer == nil && releasableBlocks(userData)?.isFrameBuffer(bytes: size) == true
    guard let resized = fresh ? ReleasableBlocks.allocatePageAligned(size) : realloc(pointer, size) else { return nil }
    let usable = transport_malloc_usable_size(resized)
    HTTP2MemoryAccounting.bytesInUse.wrappingAdd(usable - before, ordering: .relaxed)
    releasableBlocks(userData)?.allocated(resized, bytes: usable)
    return resized
}

private func session(_ userData: UnsafeMutableRawPointer?) -> HTTP2Session? {
    guard let userData else { return nil }
    return Unmanaged<HTTP2Session>.fromOpaque(userData).takeUnretainedValue()
}

private let callbackFailure = Int32(NGHTTP2_ERR_CALLBACK_FAILURE.rawValue)

private let onBeginHeaders: nghttp2_on_begin_headers_callback = { _, frame, userData in
    guard let frame, let owner = session(userData) else { return callbackFailure }
    owner.beginHeaders(streamID: HTTP2StreamID(frame.pointee.hd.stream_id))
    return 0
}

private let onHeader: nghttp2_on_header_callback = { _, frame, name, nameLength, value, valueLength, _, userData in
    guard let frame, let name, let value, let owner = session(userData) else { return callbackFailure }
    return owner.header(
        streamID: HTTP2StreamID(frame.pointee.hd.stream_id),
        name: UnsafeRawBufferPointer(start: name, count: nameLength),
        value: UnsafeRawBufferPointer(start: value, count: valueLength))
}

private let onFrameReceived: nghttp2_on_frame_recv_callback = { _, frame, userData in
    guard let frame, let owner = session(userData) else { return callbackFailure }
    owner.frameReceived(frame.pointee)
    return 0
}

private let onDataChunk: nghttp2_on_data_chunk_recv_callback = { _, _, streamID, data, length, userData in
    guard let data, let owner = session(userData) else { return callbackFailure }
    owner.delegate?.session(receivedData: UnsafeRawBufferPointer(start: data, count: length), streamID: HTTP2StreamID(streamID))
    return 0
}

private let onStreamClose: nghttp2_on_stream_close_callback = { _, streamID, errorCode, userData in
    guard let owner = session(userData) else { return callbackFailure }
    owner.streamClosed(streamID: HTTP2StreamID(streamID), errorCode: HTTP2ErrorCode(rawValue: errorCode))
    return 0
}

private let onFrameSent: nghttp2_on_frame_send_callback = { _, frame, userData in
    guard let frame, let owner = session(userData) else { return callbackFailure }
    owner.frameSent(frame.pointee)
    return 0
}

private let onInvalidFrame: nghttp2_on_invalid_frame_recv_callback = { _, frame, libraryError, userData in
    guard let owner = session(userData) else { return callbackFailure }
    if libraryError == NGHTTP2_ERR_REFUSED_STREAM.rawValue, let frame,
       frame.pointee.hd.type == UInt8(NGHTTP2_HEADERS.rawValue) {
        owner.delegate?.sessionRefusedStream()
    }
    return 0
}

/// A DATA frame whose payload stays in the stream's queue until now (NGHTTP2_DATA_FLAG_NO_COPY): written straight
/// to the connection's output, not copied into nghttp2's frame buffer first.
private let sendData: nghttp2_send_data_callback = { _, frame, frameHeader, length, _, userData in
    guard let frame, let frameHeader, let owner = session(userData) else { return callbackFailure }
    return owner.sendDataFrame(streamID: HTTP2StreamID(frame.pointee.hd.stream_id), header: UnsafeRawBufferPointer(start: frameHeader, count: 9),
                               length: length, padding: Int(frame.pointee.data.padlen))
}

private let onError: nghttp2_error_callback2 = { _, _, message, length, userData in
    guard let owner = session(userData), let message else { return 0 }
    let text = String(decoding: UnsafeRawBufferPointer(start: message, count: length), as: UTF8.self)
    if owner.firstError == nil { owner.firstError = text }
    return 0
}

private let dataSourceRead: nghttp2_data_source_read_callback = { _, streamID, buffer, length, flags, _, userData in
    guard let buffer, let flags, let owner = session(userData) else { return Int(callbackFailure) }
    return owner.readOutbound(streamID: HTTP2StreamID(streamID), into: UnsafeMutableRawBufferPointer(start: buffer, count: length), flags: flags)
}

/// One nghttp2 session and the outbound message queues of its streams; confined to one event loop.
final class HTTP2Session {
    /// Which kind of header block arrived.
    enum HeadersKind: Equatable {
        case request, response, trailers
    }

    /// A stream's outbound bytes waiting for flow-control window, plus how the stream should end.
    private struct OutboundQueue {
        var chunks: [[UInt8]] = []
        var head = 0
        var offset = 0
        var queuedBytes = 0
        var endRequested = false
        var trailers: [HeaderField]?
        var deferred = false

        mutating func append(_ bytes: [UInt8]) {
            guard !bytes.isEmpty else { return }
            chunks.append(bytes)
            queuedBytes += bytes.count
        }

        /// Removes the first `count` queued bytes (fewer when fewer are queued) and hands them to `body` in order, as
        /// slices of the queued chunks; returns how many.
        private mutating func consume(_ count: Int, _ body: (ArraySlice<UInt8>) -> Void) -> Int {
            var taken = 0
            while taken < count && head < chunks.count {
                let chunk = chunks[head]
                let n = min(count - taken, chunk.count - offset)
                body(chunk[offset..<offset + n])
                taken += n
                offset += n
                if offset == chunk.count {
                    head += 1
                    offset = 0
                }
            }
            queuedBytes -= taken
            if head == chunks.count {
                chunks = []  // release storage, not just elements: idle streams hold nothing
                head = 0
            } else if head > 32 {
                chunks.removeFirst(head)
                head = 0
            }
            return taken
        }

        /// Moves the first `count` queued bytes out of the queue into `parts` (no copy).
        mutating func take(_ count: Int, into parts: inout [ArraySlice<UInt8>]) {
            _ = consume(count) { parts.append($0) }
        }

        mutating func copy(into buffer: UnsafeMutableRawBufferPointer) -> Int {
            var written = 0
            return consume(buffer.count) { slice in
                slice.withUnsafeBytes { (buffer.baseAddress! + written).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                written += slice.count
            }
        }
    }

    enum Role { case server, client }

    private let raw: OpaquePointer
    /// nghttp2's outbound frame buffer and HPACK rings, whose pages an idle connection hands back (`releaseIdlePages`).
    private let releasableBlocks = ReleasableBlocks()
    /// Unowned, not weak: the connection owns its session. A weak reference gives the connection a side table, and
    /// every retain and release of it — several per event on every connection — then takes the runtime's slow path.
    unowned var delegate: HTTP2SessionDelegate?
    let maxHeaderListBytes: Int
    fileprivate var firstError: String?

    /// How a stream reached "closed", which decides what a later frame on it means (RFC 9113 §5.1).
    enum ClosedStreamCause: Equatable {
        /// The peer reset it: a later DATA/HEADERS/CONTINUATION is a stream error STREAM_CLOSED.
        case resetByPeer
        /// Both sides ended it with END_STREAM: a later DATA/HEADERS/CONTINUATION is a connection error STREAM_CLOSED.
        case ended
        /// This side reset it: frames the peer sent before seeing the RST_STREAM are ignored.
        case resetHere
    }

    /// The last `recentlyClosedCapacity` streams the peer opened and that are closed now, oldest first. Bounded so
    /// a long-lived connection pays for a handful, not for every stream it ever carried; a frame on a stream
    /// closed longer ago is ignored (as nghttp2 itself does once it forgets a stream).
    private var recentlyClosed: [(streamID: HTTP2StreamID, cause: ClosedStreamCause)] = []
    static let recentlyClosedCapacity = 16
    /// The stream whose RST_STREAM was just received or sent (nghttp2 closes it right after the callback).
    private var resetReceived = HTTP2StreamID.connection
    private var resetSent = HTTP2StreamID.connection
    private var inboundFrames = FrameBoundaryScanner()

    private var pendingHeaders = StreamMap<(fields: [HeaderField], bytes: Int)>()
    private var outbound = StreamMap<OutboundQueue>()
    private var drained: [HTTP2StreamID] = []
    /// Where DATA frames are written without a copy into nghttp2's frame buffer (the connection's output, in order
    /// with the chunks `nextOutbound` returns); returns whether the output has room for more. nil: nghttp2 copies
    /// payloads into its frame buffer.
    var dataFrameWriter: ((UnsafeRawBufferPointer) -> Bool)?
    /// The payload of the DATA frame nghttp2 is about to send (read from its stream's queue, written by
    /// `sendDataFrame`); `payloadStream` is its stream, `.connection` when there is none.
    private var payloadParts: [ArraySlice<UInt8>] = []
    /// Payloads shorter than this are still copied into the frame buffer: they touch at most its first page, and a
    /// copy of a few hundred bytes costs less than handing slices over.
    static let shortestUncopiedPayload = 2048
    /// Bytes waiting in all outbound queues of this session.
    private(set) var queuedBytes = 0
    /// SETTINGS frames submitted that the peer has not acknowledged yet.
    private var unacknowledgedSettings = 0
    // The small fields together, last (stored properties are laid out in declaration order).
    /// The stream of `payloadParts`.
    private var payloadStream = HTTP2StreamID.connection
    /// The decoder table size last announced (RFC 7541's default until then).
    private var localHeaderTableSize: UInt32 = 4096
    let role: Role
    private var encodedStreamData = false
    /// Whether the HPACK rings' pages were handed back; with both tables at size 0 for good, nothing writes them again.
    private var headerTablesReleased = false

    /// `encoderTableSize`: the HPACK table our encoder may use; 0 in production (see the option below), larger only
    /// for tests that play a peer which indexes its headers, as Envoy does.
    init(role: Role, maxHeaderListBytes: Int, maxConcurrentStreams: Int, encoderTableSize: Int = 0) throws(TransportError) {
        self.role = role
        self.maxHeaderListBytes = maxHeaderListBytes
        var callbacks: OpaquePointer?
        guard nghttp2_session_callbacks_new(&callbacks) == 0, let callbacks else {
            throw TransportError(.http2, "nghttp2_session_callbacks_new failed")
        }
        defer { nghttp2_session_callbacks_del(callbacks) }
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, onBeginHeaders)
        nghttp2_session_callbacks_set_on_header_callback(callbacks, onHeader)
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, onFrameReceived)
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, onDataChunk)
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, onStreamClose)
        nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, onFrameSent)
        nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(callbacks, onInvalidFrame)
        nghttp2_session_callbacks_set_error_callback2(callbacks, onError)
        nghttp2_session_callbacks_set_send_data_callback(callbacks, sendData)

        var option: OpaquePointer?
        guard nghttp2_option_new(&option) == 0, let option else {
            throw TransportError(.http2, "nghttp2_option_new failed")
        }
        defer { nghttp2_option_del(option) }
        // Closed streams are not kept for the (unused) RFC 7540 priority tree: nghttp2 would keep up to
        // MAX_CONCURRENT_STREAMS of them per connection. The few bytes RFC 9113 §5.1 needs to answer frames on
        // closed streams live in `recentlyClosed` instead.
        nghttp2_option_set_no_closed_streams(option, 1)
        // No HPACK encoder table: a connection carries one or a few long-lived gRPC streams, so each header block is
        // sent about once, and indexed entries would only be kept, per connection, for the connection's life (the
        // decoder's side is `HTTP2Setting.headerTableSize(0)`, in HTTP2Connection).
        nghttp2_option_set_max_deflate_dynamic_table_size(option, encoderTableSize)
        nghttp2_option_set_max_send_header_block_length(option, 64 * 1024)
        nghttp2_option_set_max_outbound_ack(option, 100)
        nghttp2_option_set_max_settings(option, 16)
        if role == .client {
            // Until the server's SETTINGS arrive, assume a conservative stream limit.
            nghttp2_option_set_peer_max_concurrent_streams(option, UInt32(max(1, maxConcurrentStreams)))
        }

        // nghttp2 keeps a copy of the allocator (with this user data) for the session's life; `releasableBlocks`
        // outlives `raw` (released after deinit's nghttp2_session_del).
        var allocator = nghttp2_mem(
            mem_user_data: Unmanaged.passUnretained(releasableBlocks).toOpaque(),
            malloc: countedMalloc, free: countedFree, calloc: countedCalloc, realloc: countedRealloc)
        var created: OpaquePointer?
        // `self` is not fully initialized yet, so user data is attached right after creation.
        releasableBlocks.recording = true
        let rc = role == .server
            ? nghttp2_session_server_new3(&created, callbacks, nil, option, &allocator)
            : nghttp2_session_client_new3(&created, callbacks, nil, option, &allocator)
        releasableBlocks.recording = false
        guard rc == 0, let created else {
            throw TransportError(.http2, "cannot create nghttp2 session: \(String(cString: nghttp2_strerror(rc)))")
        }
        raw = created
        nghttp2_session_set_user_data(raw, Unmanaged.passUnretained(self).toOpaque())
    }

    deinit { nghttp2_session_del(raw) }

    // MARK: input and output

    /// Feeds received bytes; returns a description of a fatal error (the connection must close), else nil.
    func receive(_ bytes: UnsafeRawBufferPointer) -> String? {
        guard role == .server else { return feed(bytes) }
        // Frames that may name a closed stream are judged at their header, after everything before them
        // (e.g. the RST_STREAM that closed the stream, in the same read) has been processed by nghttp2.
        var fed = 0
        var failure: String?
        // Whether the bytes not yet fed may close a stream while nghttp2 reads them (an RST_STREAM or END_STREAM
        // from the peer); if not and no stream is remembered as closed, nothing needs judging (the usual case).
        var unfedMayCloseStreams = false
        inboundFrames.scan(bytes) { headerStart, type, flags, streamID in
            guard failure == nil else { return }
            let checked = Self.typesCheckedOnClosedStreams.contains(type)
            if checked && (unfedMayCloseStreams || !recentlyClosed.isEmpty) {
                if headerStart > fed {
                    failure = feed(UnsafeRawBufferPointer(rebasing: bytes[fed..<headerStart]))
                    fed = headerStart
                    unfedMayCloseStreams = false
                }
                if failure == nil { judgeFrameOnClosedStream(streamID: HTTP2StreamID(streamID)) }
            }
            if type == UInt8(NGHTTP2_RST_STREAM.rawValue) || (checked && flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0) {
                unfedMayCloseStreams = true
            }
        }
        if let failure { return failure }
        return fed < bytes.count ? feed(UnsafeRawBufferPointer(rebasing: bytes[fed...])) : nil
    }

    private func feed(_ bytes: UnsafeRawBufferPointer) -> String? {
        let rc = nghttp2_session_mem_recv(raw, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count)
        if rc < 0 {
            return describe(Int32(rc))
        }
        return nil
    }

    /// The next chunk of encoded frames (valid until the next call), empty when nothing is ready; nil on fatal error.
    func nextOutbound() -> UnsafeRawBufferPointer? {
        var data: UnsafePointer<UInt8>?
        let count = nghttp2_session_mem_send(raw, &data)
        if count < 0 { return nil }
        return UnsafeRawBufferPointer(start: data, count: count)
    }

    /// Whether DATA of some stream was encoded since the last call (as opposed to control frames only).
    func takeEncodedStreamData() -> Bool {
        defer { encodedStreamData = false }
        return encodedStreamData
    }

    /// Hands the pages of nghttp2's outbound frame buffer back to the kernel; returns the bytes released.
    /// Only while nothing is left to encode: the caller's last `nextOutbound()` returned an empty chunk.
    func releaseIdlePages() -> Int {
        guard !wantsWrite else { return 0 }
        releaseEmptyHeaderTables()
        return releasableBlocks.releasePages()
    }

    /// Hands back the HPACK rings' pages once both dynamic tables are empty and stay so: our encoder's table has size
    /// 0 (session option), and the peer acknowledged a decoder table of size 0, which emptied what its first header
    /// blocks had indexed (`HTTP2Setting.headerTableSize(0)`). With a peer allowed a table, nothing is released.
    private func releaseEmptyHeaderTables() {
        guard !headerTablesReleased, unacknowledgedSettings == 0, localHeaderTableSize == 0,
              nghttp2_session_get_hd_inflate_dynamic_table_size(raw) == 0,
              nghttp2_session_get_hd_deflate_dynamic_table_size(raw) == 0 else { return }
        headerTablesReleased = true
        _ = releasableBlocks.releaseHeaderTableRings()
    }

    /// Resident pages of the HPACK rings (for the tests).
    var headerTableResidentPages: Int { releasableBlocks.headerTableResidentPages }

    /// Bytes of header entries our decoder's table holds (RFC 7541 §4.1 sizes; for the tests).
    var decoderTableBytes: Int { nghttp2_session_get_hd_inflate_dynamic_table_size(raw) }

    /// Whole pages of the outbound frame buffer that are resident (for the tests).
    var frameBufferResidentPages: Int { releasableBlocks.residentPages }

    var wantsRead: Bool { nghttp2_session_want_read(raw) != 0 }
    var wantsWrite: Bool { nghttp2_session_want_write(raw) != 0 }
    var lastProcessedStreamID: HTTP2StreamID { HTTP2StreamID(nghttp2_session_get_last_proc_stream_id(raw)) }
    var lastErrorDescription: String? { firstError }

    private func describe(_ code: Int32) -> String {
        let base = String(cString: nghttp2_strerror(code))
        if let detail = firstError { return "\(base) (\(detail))" }
        return base
    }

    // MARK: submitting frames

    func submitSettings(_ entries: [HTTP2Setting]) {
        let settings = entries.map { entry -> nghttp2_settings_entry in
            switch entry {
            case .enablePush(let on): nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_ENABLE_PUSH.rawValue), value: on ? 1 : 0)
            case .maxConcurrentStreams(let n): nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS.rawValue), value: n)
            case .initialWindowSize(let n): nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE.rawValue), value: n)
            case .maxHeaderListSize(let n): nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE.rawValue), value: n)
            case .headerTableSize(let n): nghttp2_settings_entry(settings_id: Int32(NGHTTP2_SETTINGS_HEADER_TABLE_SIZE.rawValue), value: n)
            }
        }
        for case .headerTableSize(let size) in entries { localHeaderTableSize = size }
        unacknowledgedSettings += 1
        _ = nghttp2_submit_settings(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), settings, settings.count)
    }

    /// Response headers; with `endStream` a trailers-only response, otherwise DATA follows from the stream's queue.
    func submitResponse(streamID: HTTP2StreamID, headers: [HeaderField], endStream: Bool) -> Bool {
        let rc: Int32 = withNameValues(headers) { nva, count in
            if endStream {
                return nghttp2_submit_response(raw, streamID.rawValue, nva, count, nil)
            }
            if outbound[streamID] == nil { outbound[streamID] = OutboundQueue() }
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: dataSourceRead)
            return nghttp2_submit_response(raw, streamID.rawValue, nva, count, &provider)
        }
        return rc == 0
    }

    /// Opens a client stream whose DATA comes from its queue; returns its id, or nil when nghttp2 refuses.
    func submitRequest(headers: [HeaderField]) -> HTTP2StreamID? {
        let streamID: Int32 = withNameValues(headers) { nva, count in
            var provider = nghttp2_data_provider(source: nghttp2_data_source(ptr: nil), read_callback: dataSourceRead)
            return nghttp2_submit_request(raw, nil, nva, count, &provider, nil)
        }
        guard streamID > 0 else { return nil }
        outbound[HTTP2StreamID(streamID)] = OutboundQueue()
        return HTTP2StreamID(streamID)
    }

    /// Appends bytes to a stream's outbound queue and wakes its data provider.
    func enqueue(streamID: HTTP2StreamID, _ chunks: [UInt8]...) {
        guard outbound[streamID] != nil else { return }
        for chunk in chunks {
            outbound[streamID]!.append(chunk)
            queuedBytes += chunk.count
        }
        resume(streamID)
    }

    /// Ends a stream's DATA once its queue drains, then sends `trailers` (server) or END_STREAM (client, nil).
    func finishOutbound(streamID: HTTP2StreamID, trailers: [HeaderField]?) {
        guard outbound[streamID] != nil else { return }
        outbound[streamID]!.endRequested = true
        outbound[streamID]!.trailers = trailers
        resume(streamID)
    }

    /// Drops whatever a stream still has queued (used when cancelling it).
    func discardQueued(streamID: HTTP2StreamID) {
        guard var queue = outbound[streamID] else { return }
        queuedBytes -= queue.queuedBytes
        queue.chunks = []
        queue.head = 0
        queue.offset = 0
        queue.queuedBytes = 0
        outbound[streamID] = queue
    }

    func queuedBytes(streamID: HTTP2StreamID) -> Int { outbound[streamID]?.queuedBytes ?? 0 }

    func submitReset(streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        _ = nghttp2_submit_rst_stream(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), streamID.rawValue, errorCode.rawValue)
    }

    /// GOAWAY naming the last stream this side processed; later streams are refused by nghttp2.
    func submitGoAway(errorCode: HTTP2ErrorCode, debug: String = "") {
        let bytes = Array(debug.utf8)
        _ = nghttp2_submit_goaway(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), lastProcessedStreamID.rawValue, errorCode.rawValue, bytes, bytes.count)
    }

    /// GOAWAY, after which nghttp2 wants no more reads or writes (the connection can close once flushed).
    func terminate(errorCode: HTTP2ErrorCode) {
        _ = nghttp2_session_terminate_session(raw, errorCode.rawValue)
    }

    func submitPing() {
        _ = nghttp2_submit_ping(raw, UInt8(NGHTTP2_FLAG_NONE.rawValue), nil)
    }

    func isRemoteClosed(streamID: HTTP2StreamID) -> Bool {
        nghttp2_session_get_stream_remote_close(raw, streamID.rawValue) != 0
    }

    /// Streams whose queue emptied since the last call (their owners get a "flushed" notification).
    func takeDrainedStreams() -> [HTTP2StreamID] {
        defer { drained.removeAll() }
        return drained
    }

    private func resume(_ streamID: HTTP2StreamID) {
        if outbound[streamID]?.deferred == true {
            outbound[streamID]!.deferred = false
            _ = nghttp2_session_resume_data(raw, streamID.rawValue)
        }
    }

    // MARK: callbacks

    /// DATA, HEADERS and CONTINUATION: the frames RFC 9113 §5.1 forbids on a closed stream.
    private static let typesCheckedOnClosedStreams: Set<UInt8> = [
        UInt8(NGHTTP2_DATA.rawValue), UInt8(NGHTTP2_HEADERS.rawValue), UInt8(NGHTTP2_CONTINUATION.rawValue),
    ]

    /// A frame on a stream this side remembers as closed gets the answer RFC 9113 §5.1 requires; nghttp2, which
    /// forgot the stream (`no_closed_streams`), would drop it silently.
    private func judgeFrameOnClosedStream(streamID: HTTP2StreamID) {
        guard streamID != .connection, nghttp2_session_find_stream(raw, streamID.rawValue) == nil,
              let record = recentlyClosed.last(where: { $0.streamID == streamID }) else { return }
        switch record.cause {
        case .resetByPeer:
            submitReset(streamID: streamID, errorCode: .streamClosed)
        case .ended:
            if firstError == nil { firstError = "frame on closed stream \(streamID)" }
            terminate(errorCode: .streamClosed)
        case .resetHere:
            break
        }
    }

    private func rememberClosed(streamID: HTTP2StreamID) {
        // Only streams the peer opened: a server's own (push) streams do not exist here.
        guard role == .server, streamID.isClientInitiated else { return }
        let cause: ClosedStreamCause
        if resetReceived == streamID {
            cause = .resetByPeer
        } else if resetSent == streamID || !isRemoteClosed(streamID: streamID) {
            cause = .resetHere
        } else {
            cause = .ended
        }
        if recentlyClosed.count == Self.recentlyClosedCapacity { recentlyClosed.removeFirst() }
        recentlyClosed.append((streamID, cause))
    }

    fileprivate func beginHeaders(streamID: HTTP2StreamID) {
        pendingHeaders[streamID] = ([], 0)
    }

    fileprivate func header(streamID: HTTP2StreamID, name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> Int32 {
        guard var block = pendingHeaders[streamID] else { return 0 }
        block.bytes += name.count + value.count + 32
        if block.bytes > maxHeaderListBytes {
            pendingHeaders[streamID] = nil
            // Resets just this stream (RST_STREAM INTERNAL_ERROR); the connection carries on.
            return Int32(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        block.fields.append(HeaderField(String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
        pendingHeaders[streamID] = block
        return 0
    }

    fileprivate func frameReceived(_ frame: nghttp2_frame) {
        let streamID = HTTP2StreamID(frame.hd.stream_id)
        let endStream = frame.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
        switch UInt32(frame.hd.type) {
        case NGHTTP2_HEADERS.rawValue:
            guard let block = pendingHeaders.removeValue(forKey: streamID) else { return }
            let kind: HeadersKind
            switch frame.headers.cat {
            case NGHTTP2_HCAT_REQUEST: kind = .request
            case NGHTTP2_HCAT_RESPONSE: kind = .response
            default: kind = .trailers
            }
            delegate?.session(receivedHeaders: block.fields, kind: kind, streamID: streamID, endStream: endStream)
        case NGHTTP2_DATA.rawValue:
            if endStream { delegate?.session(receivedEndStream: streamID) }
        case NGHTTP2_GOAWAY.rawValue:
            delegate?.session(receivedGoAway: HTTP2ErrorCode(rawValue: frame.goaway.error_code), lastStreamID: HTTP2StreamID(frame.goaway.last_stream_id))
        case NGHTTP2_RST_STREAM.rawValue:
            resetReceived = streamID
        case NGHTTP2_PING.rawValue:
            if frame.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 { delegate?.sessionReceivedPingAck() }
        case NGHTTP2_SETTINGS.rawValue:
            // nghttp2 has applied the acknowledged SETTINGS (a smaller decoder table evicted its entries).
            if frame.hd.flags & UInt8(NGHTTP2_FLAG_ACK.rawValue) != 0 && unacknowledgedSettings > 0 { unacknowledgedSettings -= 1 }
        default:
            break
        }
    }

    fileprivate func frameSent(_ frame: nghttp2_frame) {
        switch UInt32(frame.hd.type) {
        case NGHTTP2_GOAWAY.rawValue:
            delegate?.session(sentGoAway: HTTP2ErrorCode(rawValue: frame.goaway.error_code))
        case NGHTTP2_RST_STREAM.rawValue:
            resetSent = HTTP2StreamID(frame.hd.stream_id)
        case NGHTTP2_HEADERS.rawValue:
            // gRPC servers end a stream the client has not half-closed with RST_STREAM(NO_ERROR) after the
            // trailers, so its slot frees immediately instead of waiting for the client.
            let streamID = HTTP2StreamID(frame.hd.stream_id)
            if role == .server && frame.hd.flags & UInt8(NGHTTP2_FLAG_END_STREAM.rawValue) != 0
                && !isRemoteClosed(streamID: streamID) {
                submitReset(streamID: streamID, errorCode: .noError)
            }
        default:
            break
        }
    }

    fileprivate func streamClosed(streamID: HTTP2StreamID, errorCode: HTTP2ErrorCode) {
        rememberClosed(streamID: streamID)
        pendingHeaders[streamID] = nil
        if let queue = outbound.removeValue(forKey: streamID) {
            queuedBytes -= queue.queuedBytes
        }
        delegate?.session(streamClosed: streamID, errorCode: errorCode)
    }

    /// Writes a DATA frame whose payload `readOutbound` took from the stream's queue: the 9-byte header nghttp2
    /// serialized, then the payload (no padding is ever requested, so there is none to write).
    fileprivate func sendDataFrame(streamID: HTTP2StreamID, header: UnsafeRawBufferPointer, length: Int, padding: Int) -> Int32 {
        guard let writer = dataFrameWriter, payloadStream == streamID, streamID != .connection, padding == 0,
              payloadParts.reduce(0, { $0 + $1.count }) == length else {
            if firstError == nil { firstError = "DATA frame on stream \(streamID.rawValue) without its payload" }
            return callbackFailure
        }
        payloadStream = .connection
        var room = writer(header)
        for part in payloadParts { room = part.withUnsafeBytes { writer($0) } }
        payloadParts = []  // no chunk is kept alive by a sent frame, and an idle session keeps no storage for it
        // One mem_send call goes on to the next frame after this one: a full output pauses it (mem_send returns
        // nothing now), so the connection's write-buffer limit holds as it does for copied frames.
        return room ? 0 : Int32(NGHTTP2_ERR_PAUSE.rawValue)
    }

    fileprivate func readOutbound(streamID: HTTP2StreamID, into buffer: UnsafeMutableRawBufferPointer,
                                  flags: UnsafeMutablePointer<UInt32>) -> Int {
        guard var queue = outbound[streamID] else {
            return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue)
        }
        let hadBytes = queue.queuedBytes > 0
        let written: Int
        if dataFrameWriter != nil && queue.queuedBytes >= Self.shortestUncopiedPayload && buffer.count >= Self.shortestUncopiedPayload {
            // The payload is written by `sendDataFrame`, which nghttp2 calls next for this frame.
            written = min(buffer.count, queue.queuedBytes)
            payloadParts = []
            queue.take(written, into: &payloadParts)
            payloadStream = streamID
            flags.pointee |= NGHTTP2_DATA_FLAG_NO_COPY.rawValue
        } else {
            written = queue.copy(into: buffer)
        }
        queuedBytes -= written
        if written > 0 { encodedStreamData = true }
        if hadBytes && queue.queuedBytes == 0 { drained.append(streamID) }
        if queue.queuedBytes == 0 {
            if queue.endRequested {
                flags.pointee |= NGHTTP2_DATA_FLAG_EOF.rawValue
                if let trailers = queue.trailers {
                    flags.pointee |= NGHTTP2_DATA_FLAG_NO_END_STREAM.rawValue
                    let rc = withNameValues(trailers) { nva, count in nghttp2_submit_trailer(raw, streamID.rawValue, nva, count) }
                    if rc != 0 { return Int(NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE.rawValue) }
                }
                queue.endRequested = false
            } else if written == 0 {
                queue.deferred = true
                outbound[streamID] = queue
                return Int(NGHTTP2_ERR_DEFERRED.rawValue)
            }
        }
        outbound[streamID] = queue
        return written
    }
}

/// Calls `body` with an nghttp2_nv array for `headers`; nghttp2 copies names and values during submit.
private func withNameValues<R>(_ headers: [HeaderField], _ body: (UnsafePointer<nghttp2_nv>, Int) -> R) -> R {
    var storage: [UInt8] = []
    var ranges: [(name: Range<Int>, value: Range<Int>)] = []
    for field in headers {
        let nameStart = storage.count
        storage.append(contentsOf: field.name.utf8)
        let valueStart = storage.count
        storage.append(contentsOf: field.value.utf8)
        ranges.append((nameStart..<valueStart, valueStart..<storage.count))
    }
    storage.append(0)  // never empty, so baseAddress is non-nil
    return storage.withUnsafeMutableBufferPointer { bytes in
        let base = bytes.baseAddress!
        let nva = ranges.map { range in
            nghttp2_nv(
                name: base + range.name.lowerBound, value: base + range.value.lowerBound,
                namelen: range.name.count, valuelen: range.value.count, flags: UInt8(NGHTTP2_NV_FLAG_NONE.rawValue))
        }
        return nva.withUnsafeBufferPointer { body($0.baseAddress!, $0.count) }
    }
}

/// Follows frame boundaries in the bytes a server receives (after the 24-byte client preface) without
/// interpreting them: nghttp2 does that; this only says where each frame header is, its type and stream id.
struct FrameBoundaryScanner {
    private var prefaceLeft = 24
    private var header: (bytes: [UInt8], payloadLeft: Int) = ([], 0)

    /// Calls `frame(headerStart, type, flags, streamID)` for each frame header completed in `bytes`; `headerStart`
    /// is the offset in `bytes` where the header began (0 when it began in an earlier call).
    mutating func scan(_ bytes: UnsafeRawBufferPointer, frame: (Int, UInt8, UInt8, Int32) -> Void) {
        var offset = 0
        while offset < bytes.count {
            if prefaceLeft > 0 {
                let n = min(prefaceLeft, bytes.count - offset)
                prefaceLeft -= n
                offset += n
            } else if header.payloadLeft > 0 {
                let n = min(header.payloadLeft, bytes.count - offset)
                header.payloadLeft -= n
                offset += n
            } else {
                let start = offset - header.bytes.count
                let n = min(9 - header.bytes.count, bytes.count - offset)
                header.bytes.append(contentsOf: bytes[offset..<(offset + n)])
                offset += n
                guard header.bytes.count == 9 else { return }
                let h = header.bytes
                let length = Int(h[0]) << 16 | Int(h[1]) << 8 | Int(h[2])
                let streamID = Int32(bitPattern: (UInt32(h[5]) << 24 | UInt32(h[6]) << 16 | UInt32(h[7]) << 8 | UInt32(h[8])) & 0x7fff_ffff)
                header = ([], length)
                frame(max(0, start), h[3], h[4], streamID)
            }
        }
    }
}
