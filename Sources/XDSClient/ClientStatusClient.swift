// The client side of CSDS, for `meshctl status`: one FetchClientStatus call to one
// server, over the same transport (mutual TLS, HTTP/2, gRPC) proxies use, with a
// hard deadline. Every way it can fail becomes a sentence an operator can act on.
import Foundation
import Transport
import enum XDSProtocol.ServicePath
import XDSWire
import GRPCStatusCodes

/// Why a status fetch failed, phrased for the operator.
public struct ClientStatusFetchError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Fetches proxy status from a meshctl server over CSDS.
public enum ClientStatusClient {
    public static func fetch(host: String, port: Int, security: ClientTransportSecurity, request: ClientStatusRequest,
                             timeout: Duration) -> Result<ClientStatusResponse, ClientStatusFetchError> {
        let server = "\(host):\(port)"
        let client: GRPCClient
        do {
            var configuration = GRPCClientConfiguration(host: host, port: port, security: security, authority: host)
            configuration.limits.handshakeTimeout = timeout
            client = try GRPCClient(configuration: configuration)
        } catch {
            return .failure(ClientStatusFetchError(description: "cannot set up TLS: \(error)"))
        }
        let group = EventLoopGroup(loopCount: 1)
        defer { group.shutdown() }
        let call = FetchCall(server: server, request: request)
        do {
            _ = try client.connect(on: group.loops[0], delegate: call)
        } catch {
            return .failure(ClientStatusFetchError(description: "cannot connect to \(server): \(error.message)"))
        }
        guard call.done.wait(timeout: .now() + .nanoseconds(Int(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000))) == .success else {
            group.loops[0].execute { call.connection?.close() }
            return .failure(ClientStatusFetchError(description: "\(server) did not answer within \(timeout) (is it a meshctl server, and reachable?)"))
        }
        return call.result!
    }
}

/// One connection and one FetchClientStatus stream; confined to the client's loop, result read after `done`.
private final class FetchCall: GRPCClientConnectionDelegate, GRPCClientStreamHandler, @unchecked Sendable {
    // @unchecked Sendable: confined to the client connection's loop; `result` is written there before `done.signal()` and read by the caller only after `done.wait()`.
    let server: String
    let request: ClientStatusRequest
    let done = DispatchSemaphore(value: 0)
    var result: Result<ClientStatusResponse, ClientStatusFetchError>?
    var connection: GRPCClientConnection?
    private var response: [UInt8]?
    private var ready = false

    init(server: String, request: ClientStatusRequest) {
        self.server = server
        self.request = request
    }

    private func complete(_ outcome: Result<ClientStatusResponse, ClientStatusFetchError>) {
        guard result == nil else { return }
        result = outcome
        connection?.close()
        done.signal()
    }

    func connectionReady(_ connection: GRPCClientConnection) {
        self.connection = connection
        ready = true
        guard let stream = connection.openStream(path: ServicePath.clientStatusFetch, handler: self) else {
            complete(.failure(ClientStatusFetchError(description: "\(server) refused a new stream")))
            return
        }
        _ = stream.send(request.serialized())
        stream.closeSend()
    }

    func connection(_ connection: GRPCClientConnection, closedWith reason: ConnectionCloseReason) {
        self.connection = connection
        switch reason {
        case .tlsHandshakeFailed(let why):
            complete(.failure(ClientStatusFetchError(description: "TLS handshake with \(server) failed: \(why) (check --ca, --cert and --key; is it a meshctl server?)")))
        case .alpnNotNegotiated:
            complete(.failure(ClientStatusFetchError(description: "\(server) does not speak HTTP/2 over TLS (ALPN h2): not a meshctl xDS port")))
        case .handshakeTimeout:
            complete(.failure(ClientStatusFetchError(description: "\(server) did not complete a TLS handshake in time (not a TLS server, or overloaded)")))
        case .ioError(let why) where !ready:
            complete(.failure(ClientStatusFetchError(description: "cannot connect to \(server): \(why) (is meshctl serve running there?)")))
        default:
            complete(.failure(ClientStatusFetchError(description: "the connection to \(server) ended: \(reason)")))
        }
    }

    func onMessage(_ message: [UInt8]) { response = message }

    func onFinish(_ status: GRPCStatus, trailers: [HeaderField]) {
        switch status.code {
        case .ok:
            guard let response else {
                complete(.failure(ClientStatusFetchError(description: "\(server) ended the call without a status response")))
                return
            }
            do {
                complete(.success(try ClientStatusResponse(serialized: response)))
            } catch {
                complete(.failure(ClientStatusFetchError(description: "\(server) sent an undecodable status response: \(error)")))
            }
        case .unimplemented:
            complete(.failure(ClientStatusFetchError(description: "\(server) does not serve the Client Status Discovery Service: not a meshctl server (or too old)")))
        case .permissionDenied, .unauthenticated:
            complete(.failure(ClientStatusFetchError(description: "\(server) refused: \(status.message)")))
        default:
            complete(.failure(ClientStatusFetchError(description: "\(server) answered \(status.code): \(status.message)")))
        }
    }
}
