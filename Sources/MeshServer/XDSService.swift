// The xDS gRPC services on top of the transport: which paths are served, and per
// stream the bridge between the transport's callbacks and the pure
// DiscoveryStream state machine — decoding requests, authorizing the proxy for
// the group its node claims, performing the machine's actions, and feeding back
// flow control and snapshot changes. Everything per stream runs on its loop.
import Foundation
import Transport
import XDSProtocol
import XDSWire

/// Server-wide settings for the xDS services.
public struct XDSServiceConfiguration: Sendable {
    /// Without TLS there is no verified identity: every proxy is admitted (development only).
    public var insecurePlaintext = false
    /// Sent as `control_plane.identifier` in every response.
    public var controlPlaneIdentifier = "meshctl"
    public var limits = DiscoveryStream.Limits()
    /// Who may read proxy status over CSDS.
    public var statusReaders = StatusReaders.operators

    public init() {}
}

/// The identities allowed to call the Client Status Discovery Service.
public enum StatusReaders: Sendable, Hashable {
    /// SPIFFE IDs of the form spiffe://TRUST-DOMAIN/operator/NAME (what `meshctl certs init --operator` issues).
    case operators
    /// These SPIFFE IDs; an entry ending in `*` matches by prefix.
    case identities([String])

    func admits(_ identity: PeerIdentity?) -> Bool {
        let uris = identity?.uriSANs ?? []
        switch self {
        case .operators:
            return uris.contains { uri in
                guard uri.hasPrefix("spiffe://"), let slash = uri.dropFirst(9).firstIndex(of: "/") else { return false }
                return uri[slash...].hasPrefix("/operator/")
            }
        case .identities(let allowed):
            return uris.contains { uri in
                allowed.contains { $0.hasSuffix("*") ? uri.hasPrefix($0.dropLast()) : uri == $0 }
            }
        }
    }
}

/// The gRPC paths meshctl serves, and how each stream behaves.
enum XDSMethod {
    static let services: [String: (DiscoveryStream.Variant, DiscoveryStream.Binding)] = {
        var table: [String: (DiscoveryStream.Variant, DiscoveryStream.Binding)] = [
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources": (.stateOfTheWorld, .aggregated),
            "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources": (.delta, .aggregated),
        ]
        let perType: [(service: String, noun: String)] = [
            ("envoy.service.listener.v3.ListenerDiscoveryService", "Listeners"),
            ("envoy.service.cluster.v3.ClusterDiscoveryService", "Clusters"),
            ("envoy.service.route.v3.RouteDiscoveryService", "Routes"),
            ("envoy.service.endpoint.v3.EndpointDiscoveryService", "Endpoints"),
            ("envoy.service.secret.v3.SecretDiscoveryService", "Secrets"),
        ]
        let typeURLs = ["Listeners": TypeURL.listener, "Clusters": TypeURL.cluster, "Routes": TypeURL.route,
                        "Endpoints": TypeURL.endpoint, "Secrets": TypeURL.secret]
        for (service, noun) in perType {
            table["/\(service)/Stream\(noun)"] = (.stateOfTheWorld, .singleType(typeURLs[noun]!))
            table["/\(service)/Delta\(noun)"] = (.delta, .singleType(typeURLs[noun]!))
        }
        return table
    }()
}

/// Accepts xDS streams and hands each to an `XDSStreamBridge`; CSDS streams to a `ClientStatusHandler`.
public final class XDSService: GRPCServerHandler {
    public let hub: SnapshotHub
    public let configuration: XDSServiceConfiguration
    public let log: ServerLog
    /// Where every stream records its proxy's status (CSDS, admin endpoint, status page).
    public let proxies: ProxyRegistry
    public let metrics: ServerMetrics

    public init(hub: SnapshotHub, configuration: XDSServiceConfiguration, log: ServerLog,
                proxies: ProxyRegistry = ProxyRegistry(), metrics: ServerMetrics = ServerMetrics()) {
        self.hub = hub
        self.configuration = configuration
        self.log = log
        self.proxies = proxies
        self.metrics = metrics
    }

    public func onStreamOpen(_ request: GRPCRequestHead, stream: ServerStream) -> (any GRPCStreamHandler)? {
        let csds = request.path == ClientStatusMethod.stream || request.path == ClientStatusMethod.fetch
        guard csds || XDSMethod.services[request.path] != nil else { return nil }  // UNIMPLEMENTED
        if !configuration.insecurePlaintext && request.connection.peerIdentity == nil {
            _ = stream.finish(Transport.GRPCStatus(.unauthenticated, "a verified client certificate is required"))
            return nil
        }
        if csds {
            if !configuration.insecurePlaintext && !configuration.statusReaders.admits(request.connection.peerIdentity) {
                let identity = request.connection.peerIdentity
                metrics.authorizationDenied(group: "", service: "csds")
                log.warning("csds.permission-denied", ["identity": identity?.description ?? "none", "peer": request.connection.remoteAddress])
                _ = stream.finish(Transport.GRPCStatus(.permissionDenied, "identity \(identity?.spiffeID ?? identity?.commonName ?? "(none)") may not read proxy status; operators hold spiffe://TRUST-DOMAIN/operator/NAME certificates (meshctl certs init --operator NAME) or are listed with meshctl serve --status-reader"))
                return nil
            }
            return ClientStatusHandler(service: self, stream: stream, streaming: request.path == ClientStatusMethod.stream)
        }
        let (variant, binding) = XDSMethod.services[request.path]!
        return XDSStreamBridge(service: self, stream: stream, variant: variant, binding: binding)
    }
}

/// One xDS stream: transport callbacks in, DiscoveryStream actions out. Confined to the stream's loop.
final class XDSStreamBridge: GRPCStreamHandler, SnapshotSubscriber {
    let service: XDSService
    let stream: ServerStream
    let variant: DiscoveryStream.Variant
    let binding: DiscoveryStream.Binding
    var machine: DiscoveryStream?
    var group: String?
    var nodeID: String?
    var blocked = false
    let mode: ProxyMode
    /// When the latest response of each type was sent, and each unanswered nonce (for send→ACK latency).
    private var sentAt: [String: WallClockTime] = [:]
    private var ackedAt: [String: WallClockTime] = [:]
    private var nonceSentAt: [String: WallClockTime] = [:]
    private var registered = false

    var eventLoop: EventLoop { stream.eventLoop }

    init(service: XDSService, stream: ServerStream, variant: DiscoveryStream.Variant, binding: DiscoveryStream.Binding) {
        self.service = service
        self.stream = stream
        self.variant = variant
        self.binding = binding
        self.mode = ProxyMode(variant: variant, binding: binding)
    }

    static func now() -> WallClockTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallClockTime(nanosecondsSinceEpoch: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }

    /// The resource types meshctl serves.
    static let servedTypes: Set<String> = [TypeURL.listener, TypeURL.route, TypeURL.cluster, TypeURL.endpoint, TypeURL.secret]

    func onMessage(_ message: [UInt8]) {
        let event: StreamEvent
        let node: Node?
        let typeURL: String
        do {
            switch variant {
            case .stateOfTheWorld:
                let request = try DiscoveryRequest(serialized: message)
                event = .request(request)
                node = request.node
                typeURL = request.typeURL
            case .delta:
                let request = try DeltaDiscoveryRequest(serialized: message)
                event = .deltaRequest(request)
                node = request.node
                typeURL = request.typeURL
            }
        } catch {
            finish(.invalidArgument, "the request is not a valid discovery request: \(error)")
            return
        }
        if !typeURL.isEmpty && !Self.servedTypes.contains(typeURL) {
            finish(.invalidArgument, "unknown type URL '\(typeURL)'; this server serves \(Self.servedTypes.sorted().joined(separator: ", "))")
            return
        }
        if machine == nil && !start(node: node) { return }
        handle(event)
    }

    /// The first request: pick the group from the node, check the proxy may receive it, create the machine.
    private func start(node: Node?) -> Bool {
        guard let node, !node.id.isEmpty, !node.cluster.isEmpty else {
            finish(.invalidArgument, "the first request must carry node.id and node.cluster (the proxy group)")
            return false
        }
        nodeID = node.id
        guard let snapshot = service.hub.current else {
            finish(.unavailable, "no snapshot is loaded yet; publish one with meshctl compile")
            return false
        }
        guard let view = snapshot.groups[node.cluster] else {
            service.log.warning("xds.unknown-group", ["node": node.id, "group": node.cluster, "snapshot": snapshot.version])
            finish(.notFound, "proxy group '\(node.cluster)' does not exist in snapshot \(snapshot.version.prefix(12))")
            return false
        }
        if !service.configuration.insecurePlaintext {
            let identity = stream.connection.peerIdentity
            let access = snapshot.access[node.cluster]
            let admitted = access?.admits(uris: identity?.uriSANs ?? [], commonName: identity?.commonName, nodeID: node.id) ?? false
            if !admitted {
                service.metrics.authorizationDenied(group: node.cluster, service: "xds")
                service.log.warning("xds.permission-denied", ["node": node.id, "group": node.cluster, "identity": identity?.description ?? "none",
                                                              "peer": stream.connection.remoteAddress])
                finish(.permissionDenied, "identity \(identity?.spiffeID ?? identity?.commonName ?? "(none)") may not receive proxy group '\(node.cluster)'")
                return false
            }
        }
        group = node.cluster
        machine = DiscoveryStream(configuration: .init(variant: variant, binding: binding,
                                                       controlPlaneIdentifier: service.configuration.controlPlaneIdentifier,
                                                       limits: service.configuration.limits), view: view)
        service.hub.subscribe(self, group: node.cluster)
        let identity = stream.connection.peerIdentity
        service.proxies.open(ObjectIdentifier(self), ProxyStreamRecord(
            nodeID: node.id, group: node.cluster, mode: mode, peer: stream.connection.remoteAddress,
            identity: identity.map { $0.spiffeID ?? $0.commonName ?? "" }, userAgent: [node.userAgentName, node.userAgentVersion].filter { !$0.isEmpty }.joined(separator: "/"),
            connectedAt: Date(), types: []))
        registered = true
        service.metrics.streamOpened(mode: mode)
        service.log.info("xds.stream-open", ["node": node.id, "group": node.cluster, "mode": describeMode, "snapshot": snapshot.version.prefix(12).description])
        return true
    }

    var describeMode: String {
        let kind = variant == .delta ? "delta" : "sotw"
        if case .singleType(let url) = binding { return "\(kind) \(url.split(separator: ".").last ?? "")" }
        return "ads-\(kind)"
    }

    func handle(_ event: StreamEvent) {
        guard machine != nil else { return }
        let now = Self.now()
        // Mutated in place: a copy held here would make the machine's first change copy its per-type state.
        let actions = machine!.handle(event, at: now)
        var publishedAt: Date?
        if case .snapshotChanged = event { publishedAt = service.hub.current?.metadata.createdAt }
        perform(actions, at: now, publishedAt: publishedAt)
        if registered { recordStatus(of: touchedTypes(event, actions)) }
    }

    /// The types whose status an event and its actions may have changed.
    private func touchedTypes(_ event: StreamEvent, _ actions: [StreamAction]) -> [String] {
        var types: [String] = []
        func note(_ typeURL: String) { if !typeURL.isEmpty && !types.contains(typeURL) { types.append(typeURL) } }
        switch event {
        case .request(let request): note(request.typeURL.isEmpty ? boundType : request.typeURL)
        case .deltaRequest(let request): note(request.typeURL.isEmpty ? boundType : request.typeURL)
        default: break
        }
        for action in actions {
            switch action {
            case .send(let response): note(response.typeURL)
            case .sendDelta(let response): note(response.typeURL)
            case .ack(let record): note(record.typeURL)
            case .nack(let record): note(record.typeURL)
            case .close: break
            }
        }
        return types
    }

    private var boundType: String {
        if case .singleType(let url) = binding { return url }
        return ""
    }

    /// Copies the machine's status of `types` into the registry (read by CSDS and the admin endpoint).
    private func recordStatus(of types: [String]) {
        guard let machine else { return }
        for typeURL in types {
            guard let status = machine.proxyStatus(typeURL: typeURL) else { continue }
            service.proxies.update(ObjectIdentifier(self), type: ProxyTypeStatus(status, sentAt: sentAt[typeURL], ackedAt: ackedAt[typeURL]))
        }
    }

    private func perform(_ actions: [StreamAction], at now: WallClockTime, publishedAt: Date?) {
        for action in actions {
            switch action {
            case .send(let response):
                sent(typeURL: response.typeURL, nonce: response.nonce, bytes: write(response.serialized()), at: now, publishedAt: publishedAt)
            case .sendDelta(let response):
                sent(typeURL: response.typeURL, nonce: response.nonce, bytes: write(response.serialized()), at: now, publishedAt: publishedAt)
            case .ack(let record):
                ackedAt[record.typeURL] = record.at
                if let sent = nonceSentAt.removeValue(forKey: record.nonce) {
                    service.metrics.sendToAck(type: TypeURL.shortName(record.typeURL), seconds: Double(record.at.nanosecondsSinceEpoch - sent.nanosecondsSinceEpoch) / 1e9)
                }
            case .nack(let record):
                nonceSentAt.removeValue(forKey: record.nonce)
                service.metrics.nacked(type: TypeURL.shortName(record.typeURL), group: group ?? "")
                service.log.warning("xds.nack", ["node": nodeID ?? "", "group": group ?? "", "type": record.typeURL,
                                                 "rejected": record.rejectedVersion ?? "", "kept": record.proxyVersion,
                                                 "error": record.errorDetail.message],
                                    rateLimitKey: "xds.nack|\(group ?? "")|\(record.typeURL)|\(record.errorDetail.message)")
            case .close(let status):
                finish(Transport.GRPCStatus.Code(rawValue: Int(status.code.rawValue)) ?? .internalError, status.message)
            }
        }
    }

    private func sent(typeURL: String, nonce: String, bytes: Int, at now: WallClockTime, publishedAt: Date?) {
        guard bytes > 0 else { return }
        let type = TypeURL.shortName(typeURL)
        sentAt[typeURL] = now
        // Unanswered nonces are bounded: a proxy that never ACKs keeps only the latest few.
        if nonceSentAt.count >= 16 { nonceSentAt.removeAll(keepingCapacity: true) }
        nonceSentAt[nonce] = now
        service.metrics.pushed(type: type, bytes: bytes)
        if let publishedAt {
            service.metrics.publishToSend(type: type, seconds: Double(now.nanosecondsSinceEpoch) / 1e9 - publishedAt.timeIntervalSince1970)
        }
    }

    /// Hands the response to the stream; returns the bytes queued (0 when not sent).
    @discardableResult
    private func write(_ bytes: [UInt8]) -> Int {
        switch stream.send(bytes) {
        case .enqueued:
            return bytes.count
        case .queueFull:
            // The proxy is not reading fast enough: stop, and send the newest state once the queue drains.
            if !blocked {
                blocked = true
                handle(.writabilityChanged(false))
            }
            return 0
        case .messageTooLarge:
            finish(.resourceExhausted, "a response of \(bytes.count) bytes exceeds the server's message size limit")
            return 0
        case .closed:
            return 0
        }
    }

    /// The proxy half-closed the stream: it will send no more requests, so no ACK can ever arrive. Before a first
    /// request that is a malformed call; after it, the call is over (as go-control-plane ends it on io.EOF).
    func onRequestEnd() {
        if machine == nil {
            finish(.invalidArgument, "the stream was half-closed before its first discovery request; send a request carrying node.id and node.cluster")
        } else {
            finish(.ok, "the proxy half-closed the stream")
        }
    }

    func onFlushed() {
        guard blocked else { return }
        blocked = false
        handle(.writabilityChanged(true))
    }

    func onClose(_ reason: StreamCloseReason) {
        service.hub.unsubscribe(self)
        unregister()
        if let nodeID { service.log.info("xds.stream-closed", ["node": nodeID, "group": group ?? "", "reason": "\(reason)"]) }
    }

    func snapshotChanged(to view: GroupView) {
        guard !stream.isClosed else { return }
        handle(.snapshotChanged(view))
    }

    private func finish(_ code: Transport.GRPCStatus.Code, _ message: String) {
        service.hub.unsubscribe(self)
        unregister()
        _ = stream.finish(Transport.GRPCStatus(code, message))
    }

    private func unregister() {
        guard registered else { return }
        registered = false
        service.proxies.close(ObjectIdentifier(self))
        service.metrics.streamClosed(mode: mode)
    }
}

extension StreamEvent {
    var isRequest: Bool {
        switch self {
        case .request, .deltaRequest: true
        default: false
        }
    }
}
