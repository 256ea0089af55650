// The Client Status Discovery Service (envoy.service.status.v3) on the xDS port:
// per connected proxy, per resource type, the version sent, the version ACKed and
// the last NACK — what `meshctl status` and Envoy's own tooling read. Answers from
// the ProxyRegistry; only operator identities may call it (see StatusReaders).
import Foundation
import Transport
import XDSCache
import XDSProtocol
import XDSWire
import GRPCStatusCodes

/// Builds CSDS answers from the registry.
public enum ClientStatusReport {
    /// The response to `request`: every connected proxy whose node id matches one of its matchers (all when none).
    public static func response(to request: ClientStatusRequest, proxies: ProxyRegistry, servedVersion: String?) -> ClientStatusResponse {
        let selected = proxies.proxies.filter { record in
            request.nodeMatchers.isEmpty || request.nodeMatchers.contains { $0.matches(record.nodeID) }
        }
        return ClientStatusResponse(configs: selected.map { config(for: $0, servedVersion: servedVersion, includeDetails: !request.excludeResourceContents) })
    }

    static func config(for record: ProxyStreamRecord, servedVersion: String?, includeDetails: Bool) -> ClientConfig {
        let xds = record.types.map { type -> GenericXDSConfig in
            var x = GenericXDSConfig(typeURL: type.typeURL, versionInfo: type.versionSent ?? "")
            (x.configStatus, x.clientStatus) = type.status.clientStatusDiscovery
            x.lastUpdatedNanoseconds = type.sentAt?.nanosecondsSinceEpoch ?? 0
            if let nack = type.nack {
                x.errorState = UpdateFailureState(details: nack.message, versionInfo: nack.rejectedVersion ?? "",
                                                  lastUpdateAttemptNanoseconds: nack.at.nanosecondsSinceEpoch)
            }
            if includeDetails {
                var details: [String: String] = ["group": record.group, "subscribed": type.subscribed]
                if let acked = type.versionAcked { details["version_acked"] = acked }
                if let at = type.ackedAt { details["acked_at"] = at.formatted(.iso8601) }
                if let snapshot = type.snapshotSent { details["snapshot_sent"] = snapshot }
                if let servedVersion { details["snapshot_served"] = servedVersion }
                if let identity = record.identity { details["identity"] = identity }
                details["peer"] = record.peer
                details["connected_at"] = record.connectedAt.formatted(.iso8601)
                x.details = details
            }
            return x
        }
        return ClientConfig(node: Node(id: record.nodeID, cluster: record.group, userAgentName: record.userAgent),
                            xdsConfigs: xds, clientScope: record.mode.rawValue)
    }
}

/// One CSDS stream: `StreamClientStatus` answers every request; `FetchClientStatus` answers one and ends.
final class ClientStatusHandler: GRPCStreamHandler {
    let service: XDSService
    let stream: ServerStream
    let streaming: Bool
    private var answered = false

    init(service: XDSService, stream: ServerStream, streaming: Bool) {
        self.service = service
        self.stream = stream
        self.streaming = streaming
    }

    func onMessage(_ message: [UInt8]) {
        if !streaming && answered {
            _ = stream.finish(GRPCStatus(.invalidArgument, "FetchClientStatus takes one request"))
            return
        }
        let request: ClientStatusRequest
        do {
            request = try ClientStatusRequest(serialized: message)
        } catch {
            _ = stream.finish(GRPCStatus(.invalidArgument, "\(error)"))
            return
        }
        answered = true
        let response = ClientStatusReport.response(to: request, proxies: service.proxies, servedVersion: service.hub.current?.version)
        switch stream.send(response.serialized()) {
        case .enqueued:
            if !streaming { _ = stream.finish(GRPCStatus(.ok, "")) }
        case .messageTooLarge:
            _ = stream.finish(GRPCStatus(.resourceExhausted, "the status of \(response.configs.count) proxies exceeds the message size limit; select fewer with node matchers"))
        case .queueFull:
            _ = stream.finish(GRPCStatus(.resourceExhausted, "the client is not reading its status responses"))
        case .closed:
            break
        }
    }

    func onRequestEnd() {
        if streaming || !answered {
            _ = stream.finish(answered ? GRPCStatus(.ok, "") : GRPCStatus(.invalidArgument, "no ClientStatusRequest was sent"))
        }
    }
}
