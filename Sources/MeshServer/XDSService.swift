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

    public init() {}
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

/// Accepts xDS streams and hands each to an `XDSStreamBridge`.
public final class XDSService: GRPCServerHandler {
    public let hub: SnapshotHub
    public let configuration: XDSServiceConfiguration
    public let log: ServerLog

    public init(hub: SnapshotHub, configuration: XDSServiceConfiguration, log: ServerLog) {
        self.hub = hub
        self.configuration = configuration
        self.log = log
    }

    public func onStreamOpen(_ request: GRPCRequestHead, stream: ServerStream) -> (any GRPCStreamHandler)? {
        guard let (variant, binding) = XDSMethod.services[request.path] else { return nil }  // UNIMPLEMENTED
        if !configuration.insecurePlaintext && request.connection.peerIdentity == nil {
            _ = stream.finish(Transport.GRPCStatus(.unauthenticated, "a verified client certificate is required"))
            return nil
        }
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

    var eventLoop: EventLoop { stream.eventLoop }

    init(service: XDSService, stream: ServerStream, variant: DiscoveryStream.Variant, binding: DiscoveryStream.Binding) {
        self.service = service
        self.stream = stream
        self.variant = variant
        self.binding = binding
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
        service.log.info("xds.stream-open", ["node": node.id, "group": node.cluster, "mode": describeMode, "snapshot": snapshot.version.prefix(12).description])
        return true
    }

    var describeMode: String {
        let kind = variant == .delta ? "delta" : "sotw"
        if case .singleType(let url) = binding { return "\(kind) \(url.split(separator: ".").last ?? "")" }
        return "ads-\(kind)"
    }

    func handle(_ event: StreamEvent) {
        guard var machine else { return }
        let actions = machine.handle(event, at: Self.now())
        self.machine = machine
        perform(actions)
    }

    private func perform(_ actions: [StreamAction]) {
        for action in actions {
            switch action {
            case .send(let response):
                write(response.serialized())
            case .sendDelta(let response):
                write(response.serialized())
            case .ack:
                break
            case .nack(let record):
                service.log.warning("xds.nack", ["node": nodeID ?? "", "group": group ?? "", "type": record.typeURL,
                                                 "rejected": record.rejectedVersion ?? "", "kept": record.proxyVersion,
                                                 "error": record.errorDetail.message])
            case .close(let status):
                finish(Transport.GRPCStatus.Code(rawValue: Int(status.code.rawValue)) ?? .internalError, status.message)
            }
        }
    }

    private func write(_ bytes: [UInt8]) {
        switch stream.send(bytes) {
        case .enqueued:
            break
        case .queueFull:
            // The proxy is not reading fast enough: stop, and send the newest state once the queue drains.
            if !blocked {
                blocked = true
                handle(.writabilityChanged(false))
            }
        case .messageTooLarge:
            finish(.resourceExhausted, "a response of \(bytes.count) bytes exceeds the server's message size limit")
        case .closed:
            break
        }
    }

    func onFlushed() {
        guard blocked else { return }
        blocked = false
        handle(.writabilityChanged(true))
    }

    func onClose(_ reason: StreamCloseReason) {
        service.hub.unsubscribe(self)
        if let nodeID { service.log.info("xds.stream-closed", ["node": nodeID, "group": group ?? "", "reason": "\(reason)"]) }
    }

    func snapshotChanged(to view: GroupView) {
        guard !stream.isClosed else { return }
        handle(.snapshotChanged(view))
    }

    private func finish(_ code: Transport.GRPCStatus.Code, _ message: String) {
        service.hub.unsubscribe(self)
        _ = stream.finish(Transport.GRPCStatus(code, message))
    }
}
