// Owns the test harness: a thread-safe event recorder with bounded waits, the
// gRPC test service, a client-call recorder, and a raw (optionally TLS)
// connection that speaks hand-made bytes for the bad-input cases.
import Foundation
import XCTest
@testable import Transport
import Glibc
import GRPCStatusCodes

/// Collects events from loop threads; tests wait on it with a deadline.
final class Recorder<Event: Sendable>: @unchecked Sendable {
    // @unchecked Sendable: `events` is guarded by `condition`.
    private let condition = NSCondition()
    private var events: [Event] = []

    func append(_ event: Event) {
        condition.lock()
        events.append(event)
        condition.broadcast()
        condition.unlock()
    }

    var all: [Event] {
        condition.lock()
        defer { condition.unlock() }
        return events
    }

    /// Waits until `predicate` holds for the events so far, at most `timeout` seconds; returns whether it held.
    @discardableResult
    func wait(timeout: TimeInterval = 10, until predicate: ([Event]) -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while !predicate(events) {
            if !condition.wait(until: deadline) { return predicate(events) }
        }
        return true
    }
}

/// What the test service saw.
enum ServiceEvent: Sendable, Equatable {
    case opened(path: String, identity: PeerIdentity?)
    case sendResult(SendResult)
    case closed(path: String, StreamCloseReason)
}

/// The gRPC service the tests talk to; routes by path.
final class TestService: GRPCServerHandler {
    let events = Recorder<ServiceEvent>()
    let floodMessageBytes: Int

    init(floodMessageBytes: Int = 64 * 1024) {
        self.floodMessageBytes = floodMessageBytes
    }

    func onStreamOpen(_ request: GRPCRequestHead, stream: ServerStream) -> (any GRPCStreamHandler)? {
        events.append(.opened(path: request.path, identity: request.connection.peerIdentity))
        switch request.path {
        case "/test.Echo/Echo":
            return EchoHandler(stream: stream, events: events)
        case "/test.Echo/Hold":
            return HoldHandler(path: request.path, events: events)
        case "/test.Echo/Flood":
            let handler = FloodHandler(stream: stream, events: events, messageBytes: floodMessageBytes)
            handler.fill()
            return handler
        case "/test.Echo/Deny":
            stream.finish(GRPCStatus(.permissionDenied, "identity \(request.connection.peerIdentity?.spiffeID ?? "-") may not call this ✗"))
            return nil
        case "/test.Echo/Invalid":
            stream.finish(GRPCStatus(.invalidArgument, "bad request: 100% wrong"))
            return nil
        default:
            return nil
        }
    }
}

/// Echoes every message; finishes OK when the client half-closes.
final class EchoHandler: GRPCStreamHandler {
    let stream: ServerStream
    let events: Recorder<ServiceEvent>
    init(stream: ServerStream, events: Recorder<ServiceEvent>) {
        self.stream = stream
        self.events = events
    }
    func onMessage(_ message: [UInt8]) { events.append(.sendResult(stream.send(message))) }
    func onRequestEnd() { stream.finish(.ok) }
    func onClose(_ reason: StreamCloseReason) { events.append(.closed(path: stream.path, reason)) }
}

/// Holds the stream open until the connection or client ends it.
final class HoldHandler: GRPCStreamHandler {
    let path: String
    let events: Recorder<ServiceEvent>
    init(path: String, events: Recorder<ServiceEvent>) {
        self.path = path
        self.events = events
    }
    func onMessage(_ message: [UInt8]) {}
    func onClose(_ reason: StreamCloseReason) { events.append(.closed(path: path, reason)) }
}

/// Sends as fast as the transport accepts, refilling on every flush: a slow reader must stop it.
final class FloodHandler: GRPCStreamHandler {
    let stream: ServerStream
    let events: Recorder<ServiceEvent>
    let message: [UInt8]
    init(stream: ServerStream, events: Recorder<ServiceEvent>, messageBytes: Int) {
        self.stream = stream
        self.events = events
        message = [UInt8](repeating: 0x5a, count: messageBytes)
    }
    func fill() {
        while true {
            let result = stream.send(message)
            if result != .enqueued {
                events.append(.sendResult(result))
                return
            }
        }
    }
    func onMessage(_ message: [UInt8]) {}
    func onFlushed() { fill() }
    func onClose(_ reason: StreamCloseReason) { events.append(.closed(path: stream.path, reason)) }
}

/// What a client connection and its one stream saw.
enum ClientEvent: Sendable, Equatable {
    case ready(PeerIdentity?)
    case goAway(UInt32)
    case closed(ConnectionCloseReason)
    case message([UInt8])
    case finished(GRPCStatus)
}

/// Records one client connection and (optionally) one stream on it.
final class ClientCall: GRPCClientConnectionDelegate, GRPCClientStreamHandler, @unchecked Sendable {
    // @unchecked Sendable: its only state is the thread-safe recorder and `connection`, set once before use.
    let events = Recorder<ClientEvent>()
    var connection: GRPCClientConnection?
    var stream: ClientStream?

    func connectionReady(_ connection: GRPCClientConnection) { events.append(.ready(connection.peerIdentity)) }
    func connection(_ connection: GRPCClientConnection, receivedGoAway errorCode: HTTP2ErrorCode) { events.append(.goAway(errorCode.rawValue)) }
    func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason) { events.append(.closed(reason)) }
    func onMessage(_ message: [UInt8]) { events.append(.message(message)) }
    func onFinish(_ status: GRPCStatus, trailers: [HeaderField]) { events.append(.finished(status)) }

    var messages: [[UInt8]] { events.all.compactMap { if case .message(let m) = $0 { return m } else { return nil } } }

    /// The call's final status, waiting at most `timeout` seconds.
    func status(timeout: TimeInterval = 10) -> GRPCStatus? {
        events.wait(timeout: timeout) { $0.contains { if case .finished = $0 { return true } else { return false } } }
        for event in events.all { if case .finished(let status) = event { return status } }
        return nil
    }

    func closeReason(timeout: TimeInterval = 10) -> ConnectionCloseReason? {
        events.wait(timeout: timeout) { $0.contains { if case .closed = $0 { return true } else { return false } } }
        for event in events.all { if case .closed(let reason) = event { return reason } }
        return nil
    }

    var readyIdentity: PeerIdentity?? {
        for event in events.all { if case .ready(let identity) = event { return .some(identity) } }
        return nil
    }

    /// Closes the connection (if still open) and waits until it is gone.
    func hangUp() {
        guard let connection else { return }
        connection.eventLoop.execute { if connection.isReady { connection.close() } }
        _ = closeReason(timeout: 5)
    }
}

/// A server plus the client side used by one test; everything is stopped by `stop()`.
final class TestHarness: @unchecked Sendable {
    // @unchecked Sendable: immutable after init apart from the thread-safe recorders.
    let certificates = TestCertificates.shared
    let service: TestService
    let logs = Recorder<TransportLogRecord>()
    let server: GRPCServer
    let port: Int
    let clientGroup = EventLoopGroup(loopCount: 1)
    let plaintext: Bool

    init(plaintext: Bool = false, service: TestService = TestService(), configure: (inout GRPCServerConfiguration) -> Void = { _ in }) throws {
        self.service = service
        self.plaintext = plaintext
        var configuration = GRPCServerConfiguration(
            host: "127.0.0.1", port: 0,
            security: plaintext ? .insecurePlaintext : .mutualTLS(TestCertificates.shared.serverCredentials))
        configuration.eventLoopCount = 2
        let logs = self.logs
        let echo = ProcessInfo.processInfo.environment["TRANSPORT_TEST_LOGS"] != nil
        configuration.logger = { record in
            logs.append(record)
            if echo { print(record) }
        }
        configure(&configuration)
        server = try GRPCServer(configuration: configuration)
        port = try server.start(handler: service)
    }

    func stop() async {
        await server.shutdown()
        clientGroup.shutdown()
    }

    func client(_ stem: String? = "client", alpn: [String] = ["h2"], plaintext: Bool? = nil,
                configure: (inout GRPCClientConfiguration) -> Void = { _ in }) throws -> GRPCClient {
        let security: ClientTransportSecurity = (plaintext ?? self.plaintext)
            ? .insecurePlaintext : .tls(certificates.client(stem, alpn: alpn))
        var configuration = GRPCClientConfiguration(host: "127.0.0.1", port: port, security: security)
        configure(&configuration)
        return try GRPCClient(configuration: configuration)
    }

    /// Connects, opens `path`, sends `messages`, half-closes if asked; the returned call records the outcome.
    func call(_ client: GRPCClient, path: String, messages: [[UInt8]] = [], halfClose: Bool = true,
              raw: [UInt8]? = nil) -> ClientCall {
        let call = ClientCall()
        let loop = clientGroup.next()
        do {
            let connection = try client.connect(on: loop, delegate: call)
            call.connection = connection
            loop.execute {
                guard let stream = connection.openStream(path: path, handler: call) else {
                    call.events.append(.finished(GRPCStatus(.unavailable, "cannot open stream")))
                    return
                }
                call.stream = stream
                for message in messages { _ = stream.send(message) }
                if let raw { stream.sendRaw(raw) }
                if halfClose { stream.closeSend() }
            }
        } catch {
            call.events.append(.closed(.ioError("\(error)")))
            call.events.append(.finished(GRPCStatus(.unavailable, "\(error)")))
        }
        return call
    }

    /// Close records (one per ended connection) with a reason matching `matches`.
    func closeRecords(_ matches: (ConnectionCloseReason) -> Bool) -> [TransportLogRecord] {
        logs.all.filter { record in record.closeReason.map(matches) ?? false && record.connectionID != nil }
    }

    /// Waits until at least `count` connection-close records match `matches`; returns whether they did.
    @discardableResult
    func waitForClose(count: Int = 1, timeout: TimeInterval = 10, _ matches: @escaping (ConnectionCloseReason) -> Bool) -> Bool {
        logs.wait(timeout: timeout) { records in
            records.filter { $0.connectionID != nil && $0.closeReason.map(matches) == true }.count >= count
        }
    }

    /// Every connection produced at most one close record.
    func assertEachConnectionLoggedOnce(file: StaticString = #filePath, line: UInt = #line) {
        let ids = logs.all.compactMap(\.connectionID)
        XCTAssertEqual(ids.count, Set(ids).count, "a connection was logged more than once: \(logs.all)", file: file, line: line)
    }

    /// A full echo exchange still works (the server keeps serving after bad input).
    func assertStillServing(file: StaticString = #filePath, line: UInt = #line) throws {
        let call = self.call(try client(), path: "/test.Echo/Echo", messages: [Array("still alive".utf8)])
        XCTAssertEqual(call.status(), .ok, file: file, line: line)
        XCTAssertEqual(call.messages, [Array("still alive".utf8)], file: file, line: line)
        call.hangUp()
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: TimeInterval = 10, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while !condition() {
        if Date() >= deadline { return false }
        usleep(10_000)
    }
    return true
}

/// A blocking-with-deadlines client socket (optionally TLS) that writes hand-made bytes and reads whatever comes back.
final class RawConnection {
    let fd: Int32
    private let tls: TLSConnection?
    private(set) var received: [UInt8] = []
    private(set) var isClosed = false
    private(set) var writeFailed = false

    /// Connects to 127.0.0.1:`port`; with `credentials`, completes a TLS handshake (throws if it fails).
    init(port: Int, credentials: TLSClientCredentials?, timeout: TimeInterval = 5) throws {
        var inProgress: Int32 = 0
        fd = transport_connect_for_tests(port: port, inProgress: &inProgress)
        guard fd >= 0 else { throw TransportError(.socket, "connect failed") }
        guard RawConnection.poll(fd, events: Int16(POLLOUT), until: Date().addingTimeInterval(timeout)) else {
            throw TransportError(.socket, "connect timed out")
        }
        if let credentials {
            let context = try TLSContext.client(credentials)
            let tls = try TLSConnection(context: context, fd: fd, serverName: credentials.serverName)
            self.tls = tls
            let deadline = Date().addingTimeInterval(timeout)
            handshake: while true {
                switch tls.handshake() {
                case .done: break handshake
                case .wantRead: _ = RawConnection.poll(fd, events: Int16(POLLIN), until: deadline)
                case .wantWrite: _ = RawConnection.poll(fd, events: Int16(POLLOUT), until: deadline)
                case .closed: throw TransportError(.tls, "closed during handshake")
                case .failed(let why): throw TransportError(.tls, why)
                }
                if Date() >= deadline { throw TransportError(.tls, "handshake timed out") }
            }
        } else {
            tls = nil
        }
    }

    deinit { Glibc.close(fd) }

    static func poll(_ fd: Int32, events: Int16, until deadline: Date) -> Bool {
        var descriptor = pollfd(fd: fd, events: events, revents: 0)
        let milliseconds = max(0, Int32(deadline.timeIntervalSinceNow * 1000))
        return Glibc.poll(&descriptor, 1, milliseconds) > 0
    }

    /// Writes all of `bytes` (reading in between so neither side can deadlock); false if the peer closed first.
    @discardableResult
    func write(_ bytes: [UInt8], timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        var offset = 0
        while offset < bytes.count && !writeFailed && Date() < deadline {
            let step: Int = bytes[offset...].withUnsafeBytes { chunk in
                if let tls {
                    switch tls.write(chunk) {
                    case .done(let n): return n
                    case .wantRead, .wantWrite: return 0
                    case .closed, .failed: return -1
                    }
                }
                let n = send(fd, chunk.baseAddress, chunk.count, Int32(MSG_NOSIGNAL))
                if n < 0 { return errno == EAGAIN ? 0 : -1 }
                return n
            }
            if step < 0 { writeFailed = true; break }
            offset += step
            if step == 0 {
                readAvailable()
                _ = RawConnection.poll(fd, events: Int16(POLLOUT | POLLIN), until: min(deadline, Date().addingTimeInterval(0.05)))
            }
        }
        return offset == bytes.count
    }

    /// Reads what is available now without waiting.
    func readAvailable() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !isClosed {
            let n: Int = buffer.withUnsafeMutableBytes { raw in
                if let tls {
                    switch tls.read(into: raw) {
                    case .done(let n): return n
                    case .wantRead, .wantWrite: return -2
                    case .closed, .failed: return 0
                    }
                }
                let n = recv(fd, raw.baseAddress, raw.count, 0)
                if n < 0 { return errno == EAGAIN ? -2 : 0 }
                return n
            }
            if n == -2 { return }
            if n == 0 { isClosed = true; return }
            received.append(contentsOf: buffer[0..<n])
        }
    }

    /// Reads until the peer closes; true if that happened within `timeout`.
    func readUntilClosed(timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !isClosed && Date() < deadline {
            readAvailable()
            if !isClosed { _ = RawConnection.poll(fd, events: Int16(POLLIN), until: min(deadline, Date().addingTimeInterval(0.1))) }
        }
        return isClosed
    }
}

/// A non-blocking TCP connect to 127.0.0.1 for the raw tests.
func transport_connect_for_tests(port: Int, inProgress: inout Int32) -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { return -1 }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    inProgress = rc != 0 && errno == EINPROGRESS ? 1 : 0
    if rc != 0 && errno != EINPROGRESS { Glibc.close(fd); return -1 }
    return fd
}

/// Hand-made HTTP/2 frames for the bad-input tests.
enum H2 {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    struct Frame: Equatable {
        let type: UInt8
        let flags: UInt8
        let streamID: UInt32
        let payload: [UInt8]
    }

    static func frame(type: UInt8, flags: UInt8 = 0, stream: UInt32 = 0, payload: [UInt8] = []) -> [UInt8] {
        let length = payload.count
        return [UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff), type, flags,
                UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
    }

    static let settings = frame(type: 0x4)

    /// A request HEADERS frame, every field an HPACK literal without indexing (no dynamic table state).
    static func requestHeaders(stream: UInt32, path: String, endStream: Bool) -> [UInt8] {
        let fields = [(":method", "POST"), (":scheme", "https"), (":path", path), (":authority", "localhost"),
                      ("content-type", "application/grpc"), ("te", "trailers")]
        var block: [UInt8] = []
        for (name, value) in fields {
            block.append(0x00)
            block.append(UInt8(name.utf8.count))
            block.append(contentsOf: name.utf8)
            block.append(UInt8(value.utf8.count))
            block.append(contentsOf: value.utf8)
        }
        return frame(type: 0x1, flags: 0x4 | (endStream ? 0x1 : 0), stream: stream, payload: block)
    }

    static func data(stream: UInt32, payload: [UInt8], endStream: Bool) -> [UInt8] {
        frame(type: 0x0, flags: endStream ? 0x1 : 0, stream: stream, payload: payload)
    }

    static func grpcMessage(_ bytes: [UInt8]) -> [UInt8] {
        [0, UInt8(bytes.count >> 24 & 0xff), UInt8(bytes.count >> 16 & 0xff), UInt8(bytes.count >> 8 & 0xff), UInt8(bytes.count & 0xff)] + bytes
    }

    /// Frames in `bytes` (a trailing partial frame is ignored).
    static func parse(_ bytes: [UInt8]) -> [Frame] {
        var frames: [Frame] = []
        var index = 0
        while index + 9 <= bytes.count {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            guard index + 9 + length <= bytes.count else { break }
            let stream = UInt32(bytes[index + 5] & 0x7f) << 24 | UInt32(bytes[index + 6]) << 16 | UInt32(bytes[index + 7]) << 8 | UInt32(bytes[index + 8])
            frames.append(Frame(type: bytes[index + 3], flags: bytes[index + 4], streamID: stream,
                                payload: Array(bytes[(index + 9)..<(index + 9 + length)])))
            index += 9 + length
        }
        return frames
    }

    /// The error code of the first GOAWAY among `frames`.
    static func goAwayErrorCode(_ frames: [Frame]) -> UInt32? {
        guard let goAway = frames.first(where: { $0.type == 0x7 }), goAway.payload.count >= 8 else { return nil }
        let p = goAway.payload
        return UInt32(p[4]) << 24 | UInt32(p[5]) << 16 | UInt32(p[6]) << 8 | UInt32(p[7])
    }
}
