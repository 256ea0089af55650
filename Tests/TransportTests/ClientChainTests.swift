// What the transport's client sends as its certificate chain: its chain file as it is, as Envoy does. OpenSSL would
// complete a lone certificate from the client's trusted CAs and send the root too, which the server then parses and
// keeps for the connection's life (≈ 5 KB per proxy in meshctl serve). A handshake over a socket pair, no network.
import Foundation
import XCTest
@testable import Transport

final class ClientChainTests: XCTestCase {
    /// Handshakes a client and a server over a Unix socket pair; returns the server's side.
    private func handshake(client credentials: TLSClientCredentials) throws -> (server: TLSConnection, client: TLSConnection, fds: [Int32]) {
        let certificates = TestCertificates.shared
        var fds: [Int32] = [0, 0]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds), 0)
        for fd in fds { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        let server = try TLSConnection(context: try TLSContext.server(certificates.serverCredentials), fd: fds[0], serverName: nil)
        let client = try TLSConnection(context: try TLSContext.client(credentials), fd: fds[1], serverName: "localhost")
        var serverDone = false, clientDone = false
        for _ in 0..<1_000 where !(serverDone && clientDone) {
            if !clientDone, case let outcome = client.handshake() {
                if case .done = outcome { clientDone = true } else if case .failed(let reason) = outcome { XCTFail("client: \(reason)"); break }
            }
            if !serverDone, case let outcome = server.handshake() {
                if case .done = outcome { serverDone = true } else if case .failed(let reason) = outcome { XCTFail("server: \(reason)"); break }
            }
        }
        XCTAssertTrue(serverDone && clientDone, "the handshake completed")
        return (server, client, fds)
    }

    func testTheClientSendsItsChainFileAsItIs() throws {
        let certificates = TestCertificates.shared
        // A lone certificate goes alone, though the client trusts the CA that issued it.
        let alone = try handshake(client: certificates.client("client"))
        defer { alone.fds.forEach { close($0) } }
        XCTAssertEqual(alone.server.peerCertificateCount, 1)
        XCTAssertEqual(alone.server.peerIdentity()?.spiffeID, "spiffe://mesh.local/ns/default/sa/test")

        // A chain file with more in it is sent whole.
        let chainFile = certificates.path("client-and-ca.crt")
        let chain = try String(contentsOfFile: certificates.path("client.crt"), encoding: .utf8)
            + String(contentsOfFile: certificates.path("ca.crt"), encoding: .utf8)
        try chain.write(toFile: chainFile, atomically: true, encoding: .utf8)
        var credentials = certificates.client("client")
        credentials.certificateChainFile = chainFile
        let whole = try handshake(client: credentials)
        defer { whole.fds.forEach { close($0) } }
        XCTAssertEqual(whole.server.peerCertificateCount, 2)
    }
}
