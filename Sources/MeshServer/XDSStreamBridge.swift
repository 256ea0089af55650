// Per xDS stream, the bridge between the transport's callbacks and the pure
// DiscoveryStream state machine: decoding requests, authorizing the proxy for the
// group its node claims, performing the machine's actions, feeding back flow
// control and snapshot changes, and telling the observers. Runs on the stream's loop.
import Foundation
import MeshModel
import Transport
import XDSCache
import XDSProtocol
import XDSWire
import GRPCStatusCodes

/// One xDS stream: transport callbacks in, DiscoveryStream actions out. Confined to the stream's loop.
final class XDSStreamBridge: GRPCStreamHandler, SnapshotSubscriber {
    let service: XDSService
    let stream: ServerStream
    let binding: DiscoveryStream.Binding
    /// Set by the first request. Only ever accessed in place (`hasMachine`, `withMachine`): reading an optional struct
    /// stored in a class — `machine != nil`, `machine?.status` — copies the whole machine, retaining and releasing
    /// every reference it holds, on every event.
    private var machine: DiscoveryStream?
    var group: String?
    var nodeID: String?
    /// When each unanswered response was sent (for send→ACK latency).
    private var nonceSentAt: [(nonce: String, at: WallClockTime)] = []
    /// Where this stream keeps its proxy's status for the registry and the rollout controller (set once admitted).
    private var status: ProxyStreamStatus?
    /// Messages that arrived while a request waits for the freshness check (processed in order afterwards).
    private var held: [[UInt8]]?
    // The small fields together, last (stored properties are laid out in declaration order).
    let variant: DiscoveryStream.Variant
    let mode: SubscriptionMode
    private var hasMachine = false
    var blocked = false

    var executor: any SubscriberExecutor { stream.eventLoop }

    init(service: XDSService, stream: ServerStream, variant: DiscoveryStream.Variant, binding: DiscoveryStream.Binding) {
        self.service = service
        self.stream = stream
        self.variant = variant
        self.binding = binding
        self.mode = SubscriptionMode(variant: variant, binding: binding)
    }

    static func now() -> WallClockTime {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return WallClockTime(nanosecondsSinceEpoch: Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec))
    }

    /// The resource types meshctl serves: those of `TypeURL.pushOrder`.
    static let servedTypes: Set<String> = Set(TypeURL.pushOrder)

    func onMessage(_ message: [UInt8]) {
        if held != nil {
            held!.append(message)
            return
        }
        let event: StreamEvent
        let node: Node?
        let typeURL: String
        do {
            switch variant {
            case .stateOfTheWorld:
                var request = try DiscoveryRequest(serialized: message, knownNames: { typeURL in
                    withMachine { $0.subscribedNames(typeURL: typeURL) } ?? nil
                })
                // The constant's own string from here on: every later comparison with it is an identity check.
                request.typeURL = TypeURL.canonical(request.typeURL)
                event = .request(request)
                node = request.node
                typeURL = request.typeURL
            case .delta:
                var request = try DeltaDiscoveryRequest(serialized: message)
                request.typeURL = TypeURL.canonical(request.typeURL)
                event = .deltaRequest(request)
                node = request.node
                typeURL = request.typeURL
            }
        } catch {
            finish(.invalidArgument, "the request is not a valid discovery request: \(error)")
            return
        }
        // (By position in `TypeURL.pushOrder`, the served types: hashing the 50-byte URL into the set costs more.)
        if !typeURL.isEmpty && TypeURL.knownIndex(typeURL) == nil {
            finish(.invalidArgument, "unknown type URL '\(typeURL)'; this server serves \(Self.servedTypes.sorted().joined(separator: ", "))")
            return
        }
        if !hasMachine && service.hub.current == nil && service.hub.isStartingUp {
            // The server listens before its first read of the store has finished: answer once it has, so a proxy
            // connecting in that window is served (or told the store is empty) rather than refused for nothing.
            held = [message]
            let me = LoopConfined(self)
            service.hub.whenStarted(on: executor) { me.value.releaseAfterStartup() }
            return
        }
        if !hasMachine && !start(node: node) { return }
        if claimsUnknownVersion(event) {
            // The proxy reports configuration this replica does not serve: it may come from a replica that is
            // ahead. Answer only once this replica has read the store's live version and serves it (fetching
            // the newer snapshot if there is one); until then — also while the store is unreachable — hold.
            held = []
            service.notify { $0.streamHeld(nodeID: self.nodeID ?? "", group: self.group ?? "") }
            let me = LoopConfined(self)
            service.hub.whenUpToDate(on: executor) { me.value.release(event) }
            return
        }
        handle(event)
    }

    /// A first request for a type (no nonce yet: a reconnect) claiming a version other than the ones served now (the
    /// newest, and during a rollout the previous one, which proxies not yet in a passed wave have).
    private func claimsUnknownVersion(_ event: StreamEvent) -> Bool {
        // Only a first request for a type claims a version; every ACK carries a nonce and is let through before the
        // hub's locks are taken.
        switch event {
        case .request(let r) where r.responseNonce.isEmpty && !r.versionInfo.isEmpty: break
        case .deltaRequest(let r) where r.responseNonce.isEmpty && !r.initialResourceVersions.isEmpty: break
        default: return false
        }
        guard service.hub.canConfirmFreshness, let group, let view = service.hub.current?.groups[group] else { return false }
        let views = [view] + (service.hub.heldBack?.groups[group].map { [$0] } ?? [])
        switch event {
        case .request(let r):
            return !views.contains { r.versionInfo == $0.contentVersion(typeURL: r.typeURL) }
        case .deltaRequest(let r):
            return !views.contains { view in
                let ours = view.resources(typeURL: r.typeURL)
                return !r.initialResourceVersions.contains { name, version in ours[name]?.version != version }
            }
        default:
            return false
        }
    }

    /// The freshness check passed: handle the held request, then whatever arrived meanwhile.
    private func release(_ event: StreamEvent) {
        guard !stream.isClosed, let queued = held else { return }
        held = nil
        handle(event)
        process(queued)
    }

    /// Messages that were held, in order; stops (holding the rest again) if one of them is held in turn.
    private func process(_ queued: [[UInt8]]) {
        for (i, message) in queued.enumerated() {
            if held != nil {
                held!.append(contentsOf: queued[i...])
                break
            }
            onMessage(message)
        }
    }

    /// The first read of the store settled: handle the first request (held whole) and whatever followed it.
    private func releaseAfterStartup() {
        guard !stream.isClosed, let queued = held else { return }
        held = nil
        process(queued)
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
        guard let view = service.hub.view(group: node.cluster, nodeID: node.id) else {
            service.notify { $0.streamRefused(.unknownGroup(nodeID: node.id, group: node.cluster, snapshotVersion: snapshot.version)) }
            finish(.notFound, "proxy group '\(node.cluster)' does not exist in snapshot \(snapshot.version.prefix(12))")
            return false
        }
        if !service.configuration.insecurePlaintext {
            let identity = stream.connection.peerIdentity
            let access = snapshot.access[node.cluster]
            let admitted = access?.admits(uris: identity?.uriSANs ?? [], commonName: identity?.commonName, nodeID: node.id) ?? false
            if !admitted {
                service.notify { $0.streamRefused(.permissionDenied(service: "xds", nodeID: node.id, group: node.cluster,
                                                                    identity: identity?.description ?? "none", peer: stream.connection.remoteAddress)) }
                finish(.permissionDenied, "identity \(identity?.spiffeID ?? identity?.commonName ?? "(none)") may not receive proxy group '\(node.cluster)'")
                return false
            }
        }
        // A group whose mesh.yaml names an xds mode gets resources whose config sources fit that mode only: an ADS
        // stream (every proxyless gRPC client) to a per-type group, or the reverse, would be served config it cannot
        // follow. Groups on the default keep accepting any mode, as they always have.
        if let access = snapshot.access[node.cluster], access.xds != nil, let groupMode = access.subscriptionMode,
           groupMode.isAggregated != mode.isAggregated {
            let streamMode = mode
            service.notify { $0.streamRefused(.modeMismatch(nodeID: node.id, group: node.cluster, groupMode: groupMode, streamMode: streamMode)) }
            finish(.failedPrecondition, "proxy group '\(node.cluster)' is compiled for xds: \(groupMode.rawValue) (mesh.yaml), but this stream subscribes by \(mode.rawValue); bootstrap the proxy with meshctl bootstrap --store to follow the group (gRPC clients need an ADS group: make it a proxyless: grpc service)")
            return false
        }
        group = node.cluster
        hasMachine = true
        machine = DiscoveryStream(configuration: .init(variant: variant, binding: binding,
                                                       controlPlaneIdentifier: service.configuration.controlPlaneIdentifier,
                                                       limits: service.configuration.limits), view: view)
        service.hub.subscribe(self, group: node.cluster, nodeID: node.id, startedWith: view)
        let identity = stream.connection.peerIdentity
        let record = ProxyStreamRecord(
            nodeID: node.id, group: node.cluster, mode: mode, peer: stream.connection.remoteAddress,
            identity: identity.map { $0.spiffeID ?? $0.commonName ?? "" }, userAgent: [node.userAgentName, node.userAgentVersion].filter { !$0.isEmpty }.joined(separator: "/"),
            connectedAt: Date(), types: [])
        let status = ProxyStreamStatus(record)
        self.status = status
        let key = ObjectIdentifier(self), description = describeMode
        service.notify { $0.streamOpened(key, status: status, description: description, snapshotVersion: snapshot.version) }
        return true
    }

    var describeMode: String {
        if case .singleType(let url) = binding { return "\(mode.rawValue) \(url.split(separator: ".").last ?? "")" }
        return mode.rawValue
    }

    /// Runs `body` on the machine where it is stored (nil before the first request).
    private func withMachine<R>(_ body: (inout DiscoveryStream) -> R) -> R? {
        guard hasMachine else { return nil }
        return body(&machine!)
    }

    func handle(_ event: StreamEvent) {
        let now = Self.now()
        guard let actions = withMachine({ $0.handle(event, at: now) }) else { return }
        var publishedAt: Date?
        if case .snapshotChanged = event { publishedAt = service.hub.current?.metadata.createdAt }
        let times = perform(actions, at: now, publishedAt: publishedAt)
        if let status { record(touchedTypes(event, actions), in: status, times: times, at: now) }
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

    /// The types one event's actions sent and ACKed, as bits by `TypeURL.knownIndex` (the bridge serves no other
    /// type); both happened at the event's time. The stream's status keeps the latest time of each.
    private struct ActionTimes {
        var sent: UInt8 = 0
        var acked: UInt8 = 0

        static func bit(_ typeURL: String) -> UInt8 { TypeURL.knownIndex(typeURL).map { 1 << $0 } ?? 0 }
    }

    /// Copies the machine's status of `types` into the stream's status (read by CSDS, the admin endpoint and the
    /// rollout controller), with the times of this event's sends and ACKs, then tells the observers once.
    private func record(_ types: [String], in status: ProxyStreamStatus, times: ActionTimes, at now: WallClockTime) {
        var changed = false
        for typeURL in types {
            guard let machineStatus = withMachine({ $0.proxyStatus(typeURL: typeURL) }) ?? nil else { continue }
            let bit = ActionTimes.bit(typeURL)
            status.update(machineStatus, sentAt: times.sent & bit != 0 ? now : nil, ackedAt: times.acked & bit != 0 ? now : nil)
            changed = true
        }
        if changed { service.notify { $0.statusChanged(ObjectIdentifier(self)) } }
    }

    private func perform(_ actions: [StreamAction], at now: WallClockTime, publishedAt: Date?) -> ActionTimes {
        var times = ActionTimes()
        for action in actions {
            switch action {
            case .send(let response):
                if sent(typeURL: response.typeURL, nonce: response.nonce, bytes: write(response.serialized()), at: now, publishedAt: publishedAt) {
                    times.sent |= ActionTimes.bit(response.typeURL)
                }
            case .sendDelta(let response):
                if sent(typeURL: response.typeURL, nonce: response.nonce, bytes: write(response.serialized()), at: now, publishedAt: publishedAt) {
                    times.sent |= ActionTimes.bit(response.typeURL)
                }
            case .ack(let record):
                times.acked |= ActionTimes.bit(record.typeURL)  // record.at is the event's time
                let seconds = takeNonceSentAt(record.nonce).map { Double(record.at.nanosecondsSinceEpoch - $0.nanosecondsSinceEpoch) / 1e9 }
                service.notify { $0.acked(ObjectIdentifier(self), record: record, sendToAckSeconds: seconds) }
            case .nack(let record):
                _ = takeNonceSentAt(record.nonce)
                let node = nodeID ?? "", group = self.group ?? ""
                service.notify { $0.nacked(ObjectIdentifier(self), nodeID: node, group: group, record: record) }
            case .close(let status):
                finish(status.code, status.message)
            }
        }
        return times
    }

    /// Notes a response handed to the stream; false when it was not (`bytes` 0).
    private func sent(typeURL: String, nonce: String, bytes: Int, at now: WallClockTime, publishedAt: Date?) -> Bool {
        guard bytes > 0 else { return false }
        // Unanswered nonces are bounded: a proxy that never ACKs keeps only the latest few.
        if nonceSentAt.count >= 16 { nonceSentAt.removeAll(keepingCapacity: true) }
        nonceSentAt.append((nonce, now))
        let publishToSend = publishedAt.map { Double(now.nanosecondsSinceEpoch) / 1e9 - $0.timeIntervalSince1970 }
        service.notify { $0.responseSent(ObjectIdentifier(self), typeURL: typeURL, bytes: bytes, publishToSendSeconds: publishToSend) }
        return true
    }

    /// When the response with `nonce` was sent, forgetting it (nil if unknown). A short list: one or two are unanswered.
    private func takeNonceSentAt(_ nonce: String) -> WallClockTime? {
        guard let index = nonceSentAt.firstIndex(where: { $0.nonce == nonce }) else { return nil }
        let sentAt = nonceSentAt.remove(at: index).at
        // Answered: an idle stream keeps no storage for the list (remove(at:) keeps it; 128 bytes per proxy).
        if nonceSentAt.isEmpty { nonceSentAt = [] }
        return sentAt
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
        if !hasMachine {
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
        if let nodeID {
            let group = self.group ?? ""
            service.notify { $0.streamEnded(nodeID: nodeID, group: group, reason: reason) }
        }
    }

    func snapshotChanged(to view: GroupView) {
        guard !stream.isClosed else { return }
        handle(.snapshotChanged(view))
    }

    private func finish(_ code: GRPCStatus.Code, _ message: String) {
        service.hub.unsubscribe(self)
        unregister()
        _ = stream.finish(GRPCStatus(code, message))
    }

    private func unregister() {
        guard status != nil else { return }
        status = nil
        let key = ObjectIdentifier(self), mode = self.mode
        service.notify { $0.streamClosed(key, mode: mode) }
    }
}

/// A loop-confined object carried to its own loop through a Sendable closure; only touched there.
private struct LoopConfined<T: AnyObject>: @unchecked Sendable {
    // @unchecked Sendable: `value` is only dereferenced on the loop it belongs to (the work runs on its executor).
    let value: T
    init(_ value: T) { self.value = value }
}

extension StreamEvent {
    var isRequest: Bool {
        switch self {
        case .request, .deltaRequest: true
        default: false
        }
    }
}
