// Capacity measurements (not behaviour tests): memory per idle mTLS
// connection with N clients held open by a separate Python process.
// Opt-in: TRANSPORT_BENCH=1 [TRANSPORT_BENCH_CONNECTIONS=10000].
import Foundation
import XCTest
@testable import Transport

/// Sends one message of `responseBytes` on open (like a first xDS response), then holds the stream.
private final class BenchService: GRPCServerHandler {
    let responseBytes: Int
    init(responseBytes: Int) { self.responseBytes = responseBytes }

    func onStreamOpen(_ request: GRPCRequestHead, stream: ServerStream) -> (any GRPCStreamHandler)? {
        if responseBytes > 0 { _ = stream.send([UInt8](repeating: 0x42, count: responseBytes)) }
        return Holder()
    }

    final class Holder: GRPCStreamHandler {
        func onMessage(_ message: [UInt8]) {}
    }
}

final class TransportBenchmarks: XCTestCase {
    private static let clientScript = #"""
    import socket, ssl, sys
    port, count, certs, plaintext = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(certs + "/ca.crt")
    context.load_cert_chain(certs + "/client.crt", certs + "/client.key")
    context.set_alpn_protocols(["h2"])
    def literal(name, value):
        return bytes([0, len(name)]) + name.encode() + bytes([len(value)]) + value.encode()
    block = b"".join(literal(n, v) for n, v in [(":method", "POST"), (":scheme", "https"), (":path", "/bench/Hold"),
        (":authority", "localhost"), ("content-type", "application/grpc"), ("te", "trailers")])
    headers = len(block).to_bytes(3, "big") + bytes([1, 4]) + (1).to_bytes(4, "big") + block
    hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]) + bytes([0, 0, 0, 4, 1, 0, 0, 0, 0]) + headers
    held = []
    for _ in range(count):
        tls = socket.create_connection(("127.0.0.1", port))
        if plaintext == "0":
            tls = context.wrap_socket(tls, server_hostname="localhost")
            assert tls.selected_alpn_protocol() == "h2"
        tls.sendall(hello)
        held.append(tls)
    print("READY", flush=True)
    sys.stdin.read()
    """#

    func testMemoryPerIdleMutualTLSConnection() throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["TRANSPORT_BENCH"] != nil else { throw XCTSkip("set TRANSPORT_BENCH=1 to run capacity measurements") }
        let count = Int(environment["TRANSPORT_BENCH_CONNECTIONS"] ?? "") ?? 10_000
        for responseBytes in [0, 32 * 1024] {
            try measure(connections: count, responseBytes: responseBytes, plaintext: false)
        }
        // The same without TLS isolates OpenSSL's share.
        try measure(connections: count, responseBytes: 0, plaintext: true)
    }

    /// User + system CPU time of this process (the server side; the clients run in Python).
    private static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }

    private func measure(connections count: Int, responseBytes: Int, plaintext: Bool) throws {
        let certificates = TestCertificates.shared
        var configuration = GRPCServerConfiguration(
            security: plaintext ? .insecurePlaintext : .mutualTLS(certificates.serverCredentials))
        configuration.eventLoopCount = 2
        configuration.limits.keepaliveInterval = nil  // the Python client never answers PINGs
        configuration.limits.maxConnections = count + 100
        configuration.logger = { record in if record.level == .warning { print(record) } }
        let server = try GRPCServer(configuration: configuration)
        let port = try server.start(handler: BenchService(responseBytes: responseBytes))
        defer {
            let done = DispatchSemaphore(value: 0)
            Task { await server.shutdown(); done.signal() }
            _ = done.wait(timeout: .now() + 60)
        }
        let heapBefore = ProcessMemory.heapBytesInUse, rssBefore = ProcessMemory.residentBytes
        let http2Before = HTTP2MemoryAccounting.currentBytes
        let cpuBefore = Self.processCPUSeconds()

        let script = certificates.directory.appendingPathComponent("hold_connections.py")
        try Self.clientScript.write(to: script, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, String(port), String(count), certificates.directory.path, plaintext ? "1" : "0"]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        let started = Date()
        try process.run()
        defer {
            try? stdin.fileHandleForWriting.close()
            let deadline = Date().addingTimeInterval(30)
            while process.isRunning && Date() < deadline { usleep(50_000) }
            if process.isRunning { process.terminate() }
        }
        XCTAssertTrue(eventually(timeout: 300) { server.statistics.activeStreams >= count || !process.isRunning },
                      "only \(server.statistics.activeStreams) of \(count) streams opened")
        let setup = Date().timeIntervalSince(started)
        let cpu = Self.processCPUSeconds() - cpuBefore
        usleep(500_000)  // let the last handshakes' transient buffers be released
        let stats = server.statistics
        let heap = ProcessMemory.heapBytesInUse - heapBefore, rss = ProcessMemory.residentBytes - rssBefore
        let http2 = HTTP2MemoryAccounting.currentBytes - http2Before
        print("""
            [bench] \(stats.activeConnections) idle \(plaintext ? "plaintext h2c" : "mTLS") connections, 1 open stream each, first response \(responseBytes) B, set up in \(String(format: "%.1f", setup)) s
            [bench]   heap/connection:    \(heap / max(1, stats.activeConnections)) B (total \(heap / 1024) KiB)
            [bench]   nghttp2/connection: \(http2 / max(1, stats.activeConnections)) B
            [bench]   RSS/connection:     \(rss / max(1, stats.activeConnections)) B (total \(rss / 1024 / 1024) MiB)
            [bench]   server CPU/connection set-up: \(String(format: "%.0f", cpu / Double(max(1, stats.activeConnections)) * 1_000_000)) µs (handshake, SETTINGS, stream open)
            """)
        XCTAssertEqual(stats.activeStreams, count)
    }
}
