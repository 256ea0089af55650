// Metrics and logs as observers of the xDS server's stream events: what used to be
// calls hard-wired into every stream is now two subscribers the wiring attaches.
import MeshModel
import MeshServer
import ServerTelemetry
import Transport
import XDSCache
import XDSProtocol

/// Counts stream events into the server's Prometheus registry.
final class MetricsObserver: XDSServerObserver {
    let metrics: ServerMetrics

    init(metrics: ServerMetrics) { self.metrics = metrics }

    func streamRefused(_ refusal: XDSStreamRefusal) {
        if case .permissionDenied(let service, _, let group, _, _) = refusal { metrics.authorizationDenied(group: group, service: service) }
    }

    func streamOpened(_ stream: ObjectIdentifier, status: ProxyStreamStatus, description: String, snapshotVersion: String) {
        metrics.streamOpened(mode: status.mode)
    }

    func responseSent(_ stream: ObjectIdentifier, typeURL: String, bytes: Int, publishToSendSeconds: Double?) {
        metrics.pushed(typeURL: typeURL, bytes: bytes)
        if let publishToSendSeconds { metrics.publishToSend(typeURL: typeURL, seconds: publishToSendSeconds) }
    }

    func acked(_ stream: ObjectIdentifier, record: AckRecord, sendToAckSeconds: Double?) {
        if let sendToAckSeconds { metrics.sendToAck(typeURL: record.typeURL, seconds: sendToAckSeconds) }
    }

    func nacked(_ stream: ObjectIdentifier, nodeID: String, group: String, record: NackRecord) {
        metrics.nacked(type: TypeURL.shortName(record.typeURL), group: group)
    }

    func streamClosed(_ stream: ObjectIdentifier, mode: SubscriptionMode) { metrics.streamClosed(mode: mode) }
}

/// Writes one log line per notable stream event (refusals, opens, NACKs, closes).
final class LogObserver: XDSServerObserver {
    let log: ServerLog

    init(log: ServerLog) { self.log = log }

    func streamRefused(_ refusal: XDSStreamRefusal) {
        switch refusal {
        case .unknownGroup(let node, let group, let snapshot):
            log.warning("xds.unknown-group", ["node": node, "group": group, "snapshot": snapshot])
        case .permissionDenied("csds", _, _, let identity, let peer):
            log.warning("csds.permission-denied", ["identity": identity, "peer": peer])
        case .permissionDenied(_, let node, let group, let identity, let peer):
            log.warning("xds.permission-denied", ["node": node ?? "", "group": group, "identity": identity, "peer": peer])
        case .modeMismatch(let node, let group, let groupMode, let streamMode):
            log.warning("xds.mode-mismatch", ["node": node, "group": group, "group_mode": groupMode.rawValue, "stream_mode": streamMode.rawValue])
        }
    }

    func streamOpened(_ stream: ObjectIdentifier, status: ProxyStreamStatus, description: String, snapshotVersion: String) {
        log.info("xds.stream-open", ["node": status.nodeID, "group": status.group, "mode": description, "snapshot": snapshotVersion.prefix(12).description])
    }

    func nacked(_ stream: ObjectIdentifier, nodeID: String, group: String, record: NackRecord) {
        log.warning("xds.nack", ["node": nodeID, "group": group, "type": record.typeURL,
                                 "rejected": record.rejectedVersion ?? "", "kept": record.proxyVersion,
                                 "error": record.errorDetail.message],
                    rateLimitKey: "xds.nack|\(group)|\(record.typeURL)|\(record.errorDetail.message)")
    }

    func streamEnded(nodeID: String, group: String, reason: StreamCloseReason) {
        log.info("xds.stream-closed", ["node": nodeID, "group": group, "reason": "\(reason)"])
    }

    func streamHeld(nodeID: String, group: String) {
        log.info("xds.stream-held", ["node": nodeID, "group": group,
                                     "reason": "the proxy reports a version this replica does not serve; answering once the store's live version is confirmed"])
    }
}
