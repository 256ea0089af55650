// Owns one simulated Envoy: its xDS stream(s), the subscriptions it follows from
// resource bodies (CDS → EDS, LDS → RDS), its ACK/NACK answers, and the timings it records.
// Confined to its connection's event loop: every method runs on that loop's thread.
import Glibc
import MeshModel
import Transport
import XDSProtocol
import XDSWire
import GRPCStatusCodes

/// Wall-clock seconds since the epoch: comparable with the store's publish timestamps (same machine).
func wallClock() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_REALTIME, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

/// One response a proxy received and how it answered.
struct Receipt {
    let typeURL: String
    /// SotW `version_info`, or delta `system_version_info`.
    let version: String
    let receivedAt: Double
    /// When the answer was handed to HTTP/2 (the stream's queue drained); nil until then.
    var answerFlushedAt: Double?
    let nacked: Bool
    let bytes: Int
}

/// A deterministic generator for the NACK choice (SplitMix64).
struct SplitMix64 {
    var state: UInt64
    mutating func nextUnit() -> Double {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        z ^= z >> 31
        return Double(z >> 11) / Double(1 << 53)
    }
}

/// One simulated proxy; its state is touched only on `loop`.
final class SimulatedProxy: @unchecked Sendable {
    // @unchecked Sendable: created on the generator's thread, then used only on `loop` (handed over by `execute`);
    // read by the generator after the loops have been joined.
    let index: Int
    let node: Node
    let mode: SubscriptionMode
    let nackRate: Double
    private var random: SplitMix64
    private let events: GeneratorEvents
    /// Readings of SotW responses shared with every other proxy of the run.
    private let readings: SharedResourceReadings
    /// Whether a lost stream or connection ends only this session (the proxy comes back) rather than failing it.
    private let reconnects: Bool
    /// Configured on the current connection (counted in `configuredNow`).
    private var sessionConfigured = false
    private weak var connection: GRPCClientConnection?

    private(set) var streamOpenedAt: Double?
    private(set) var fullConfigAt: Double?
    private(set) var failure: GRPCStatus?
    private(set) var receipts: [Receipt] = []
    private(set) var bytesReceived = 0
    private(set) var acksSent = 0
    private(set) var nacksSent = 0

    private var streams: [String: ClientStream] = [:]          // type URL ("" for ADS) → stream
    private var handlers: [ProxyStreamHandler] = []
    private var sentNode: Set<String> = []                     // stream keys that already carried the node
    private var unflushedReceipts: [String: [Int]] = [:]       // stream key → receipt indices awaiting flush
    // What the proxy holds, per type: name → the names that resource refers on to (EDS name of a cluster,
    // RDS names of a listener; empty for the rest). Bodies are not kept.
    private var held: [String: [String: [String]]] = [:]
    private var acceptedVersion: [String: String] = [:]        // SotW: last ACKed version_info per type
    private var received: Set<String> = []                     // types that got at least one response
    private var endpointSubscription: [String] = []
    private var routeSubscription: [String] = []

    init(index: Int, group: String, mode: SubscriptionMode, nackRate: Double, seed: UInt64, events: GeneratorEvents,
         readings: SharedResourceReadings = SharedResourceReadings(), reconnects: Bool = false) {
        self.readings = readings
        self.reconnects = reconnects
        self.index = index
        self.node = Node(id: "loadgen-\(index)", cluster: group, userAgentName: "meshctl-loadgen")
        self.mode = mode
        self.nackRate = nackRate
        self.random = SplitMix64(state: seed &+ UInt64(index) &* 0x9e37_79b9)
        self.events = events
    }

    // MARK: Streams

    /// Opens the proxy's stream(s) on `connection` and sends the initial wildcard requests. On-loop.
    func start(on connection: GRPCClientConnection) {
        self.connection = connection
        if streamOpenedAt == nil { streamOpenedAt = wallClock() }
        let keys: [(key: String, path: String)]
        switch mode {
        case .adsStateOfTheWorld: keys = [("", ServicePath.aggregated)]
        case .adsDelta: keys = [("", ServicePath.aggregatedDelta)]
        case .perType, .perTypeDelta:
            keys = [TypeURL.cluster, TypeURL.endpoint, TypeURL.listener, TypeURL.route].map { ($0, ServicePath.perType($0, delta: mode.isDelta)!) }
        }
        for (key, path) in keys {
            let handler = ProxyStreamHandler(proxy: self, key: key)
            guard let stream = connection.openStream(path: path, handler: handler) else {
                fail(GRPCStatus(.unavailable, "the connection refused a new stream"))
                return
            }
            handlers.append(handler)
            streams[key] = stream
        }
        subscribe(TypeURL.cluster, names: [])
        subscribe(TypeURL.listener, names: [])
    }

    private func streamKey(_ typeURL: String) -> String { mode.isAggregated ? "" : typeURL }

    private func send(_ typeURL: String, _ bytes: [UInt8]) {
        guard let stream = streams[streamKey(typeURL)] else { return }
        _ = stream.send(bytes)
    }

    private func nodeIfFirst(_ typeURL: String) -> Node? {
        sentNode.insert(streamKey(typeURL)).inserted ? node : nil
    }

    /// A (re)subscription request: SotW replaces the name list, delta sends the difference.
    private func subscribe(_ typeURL: String, names: [String], previous: [String] = []) {
        switch mode.isDelta {
        case false:
            let request = DiscoveryRequest(versionInfo: acceptedVersion[typeURL] ?? "", node: nodeIfFirst(typeURL),
                                           resourceNames: names, typeURL: typeURL, responseNonce: "")
            send(typeURL, request.serialized())
        case true:
            let old = Set(previous), new = Set(names)
            let request = DeltaDiscoveryRequest(node: nodeIfFirst(typeURL), typeURL: typeURL,
                                                resourceNamesSubscribe: new.subtracting(old).sorted(),
                                                resourceNamesUnsubscribe: old.subtracting(new).sorted())
            send(typeURL, request.serialized())
        }
    }

    // MARK: Responses

    func receive(_ message: [UInt8], streamKey key: String) {
        let now = wallClock()
        bytesReceived += message.count + 5
        switch mode.isDelta {
        case false:
            message.withUnsafeBytes { raw in
                guard let response = SotWResponseEnvelope(raw) else {
                    fail(GRPCStatus(.internalError, "unparsable DiscoveryResponse (\(message.count) bytes)"))
                    return
                }
                receiveSotW(response, bytes: message.count, at: now, key: key)
            }
        case true:
            guard let response = try? DeltaDiscoveryResponse(serialized: message) else {
                fail(GRPCStatus(.internalError, "unparsable DeltaDiscoveryResponse (\(message.count) bytes)"))
                return
            }
            receiveDelta(response, bytes: message.count, at: now, key: key)
        }
    }

    /// NACK only once configured: a proxy that rejects its first configuration never warms up, which is not load.
    private func decideNack() -> Bool {
        guard fullConfigAt != nil, nackRate > 0 else { return false }
        return random.nextUnit() < nackRate
    }

    private func record(_ typeURL: String, version: String, at now: Double, nacked: Bool, bytes: Int, key: String) {
        unflushedReceipts[key, default: []].append(receipts.count)
        receipts.append(Receipt(typeURL: typeURL, version: version, receivedAt: now, nacked: nacked, bytes: bytes))
        if nacked { nacksSent += 1 } else { acksSent += 1 }
    }

    private func receiveSotW(_ response: SotWResponseEnvelope, bytes: Int, at now: Double, key: String) {
        let typeURL = response.typeURL.isEmpty ? key : response.typeURL
        let nack = decideNack()
        if !nack {
            let reading = readings.reading(of: response, typeURL: typeURL)
            if TypeURL.carriesCompleteSet(typeURL) {
                held[typeURL] = reading.references
            } else {
                // Like Envoy and gRPC: a route or endpoint response need not carry every subscribed resource, and the
                // ones it leaves out are kept. (Held entries already equal are left alone: the map stays shared.)
                let references = reading.references
                if held[typeURL] == nil {
                    held[typeURL] = references
                } else if references.contains(where: { held[typeURL]![$0.key] != $0.value }) {
                    held[typeURL]!.merge(references) { $1 }
                }
            }
            received.insert(typeURL)
            acceptedVersion[typeURL] = response.versionInfo
            followReferences(changed: typeURL, names: reading.referencedNames)
        }
        let answer = DiscoveryRequest(versionInfo: acceptedVersion[typeURL] ?? "", node: nodeIfFirst(typeURL),
                                      resourceNames: subscription(typeURL), typeURL: typeURL, responseNonce: response.nonce,
                                      errorDetail: nack ? Status(code: 3, message: "meshctl loadgen: simulated rejection") : nil)
        record(typeURL, version: response.versionInfo, at: now, nacked: nack, bytes: bytes, key: key)
        send(typeURL, answer.serialized())
        checkFullConfig(at: now)
    }

    private func receiveDelta(_ response: DeltaDiscoveryResponse, bytes: Int, at now: Double, key: String) {
        let typeURL = response.typeURL
        let nack = decideNack()
        if !nack {
            var references = held[typeURL] ?? [:]
            for resource in response.resources {
                if let value = resource.resource?.value {
                    references[resource.name] = value.withUnsafeBytes { ResourceReferences.references(typeURL, $0) }
                }
            }
            for name in response.removedResources { references[name] = nil }
            held[typeURL] = references
            received.insert(typeURL)
            followReferences(changed: typeURL, names: Set(references.values.joined()).sorted())
        }
        let answer = DeltaDiscoveryRequest(node: nodeIfFirst(typeURL), typeURL: typeURL, responseNonce: response.nonce,
                                           errorDetail: nack ? Status(code: 3, message: "meshctl loadgen: simulated rejection") : nil)
        record(typeURL, version: response.systemVersionInfo, at: now, nacked: nack, bytes: bytes, key: key)
        send(typeURL, answer.serialized())
        checkFullConfig(at: now)
    }

    private func subscription(_ typeURL: String) -> [String] {
        switch typeURL {
        case TypeURL.endpoint: endpointSubscription
        case TypeURL.route: routeSubscription
        default: []
        }
    }

    /// Like Envoy: clusters name the assignments to ask for, listeners the route configurations.
    private func followReferences(changed typeURL: String, names: [String]) {
        switch typeURL {
        case TypeURL.cluster:
            if names != endpointSubscription {
                let previous = endpointSubscription
                endpointSubscription = names
                subscribe(TypeURL.endpoint, names: names, previous: previous)
            }
        case TypeURL.listener:
            if names != routeSubscription {
                let previous = routeSubscription
                routeSubscription = names
                subscribe(TypeURL.route, names: names, previous: previous)
            }
        default:
            break
        }
    }

    private func checkFullConfig(at now: Double) {
        guard !sessionConfigured, received.contains(TypeURL.cluster), received.contains(TypeURL.listener) else { return }
        let endpoints = held[TypeURL.endpoint] ?? [:], routes = held[TypeURL.route] ?? [:]
        guard endpointSubscription.allSatisfy({ endpoints[$0] != nil }), routeSubscription.allSatisfy({ routes[$0] != nil }) else { return }
        sessionConfigured = true
        let first = fullConfigAt == nil
        if first { fullConfigAt = now }
        events.proxyConfigured(first: first)
    }

    /// The connection is gone (server restart, drain, churn): end this session and wait for the connection to come
    /// back. The next session claims no versions (like a restarted Envoy), so the server sends everything again and
    /// "configured again" means the complete configuration arrived on the new connection: the heavier case for the
    /// server, and one that cannot count a proxy as configured that was silently resumed. On-loop.
    func sessionLost() {
        for stream in streams.values { stream.cancel() }
        streams.removeAll()
        handlers.removeAll()
        sentNode.removeAll()
        unflushedReceipts.removeAll()
        held.removeAll()
        received.removeAll()
        acceptedVersion.removeAll()
        endpointSubscription = []
        routeSubscription = []
        if sessionConfigured {
            sessionConfigured = false
            events.proxyLostConfiguredSession()
        }
    }

    func flushed(streamKey key: String) {
        guard let pending = unflushedReceipts.removeValue(forKey: key) else { return }
        let now = wallClock()
        for index in pending { receipts[index].answerFlushedAt = now }
    }

    func finished(_ status: GRPCStatus, streamKey key: String) {
        streams[key] = nil
        guard !events.isStopping else { return }
        guard reconnects else {
            fail(status)
            return
        }
        // The server ended a stream (e.g. UNAVAILABLE while draining): start a new session; on the same connection
        // after a short pause when it is still up, otherwise when the connection comes back.
        sessionLost()
        _ = connection?.eventLoop.schedule(after: .milliseconds(Int.random(in: 250...750))) { [weak self] in
            guard let self, self.streams.isEmpty, let connection = self.connection, connection.isReady, !self.events.isStopping else { return }
            self.start(on: connection)
        }
    }

    private func fail(_ status: GRPCStatus) {
        guard failure == nil, !events.isStopping else { return }
        failure = status
        events.proxyFailed(index: index, status: status, configured: fullConfigAt != nil)
        for stream in streams.values { stream.cancel() }
        streams.removeAll()
    }

    /// Ends the proxy's streams at the end of a run (not a failure). On-loop.
    func stop() {
        let open = streams
        streams.removeAll()
        for stream in open.values { stream.cancel() }
    }

    // MARK: Inspection (on-loop)

    /// Whether this proxy received `version` of `typeURL` and its answer has been handed to HTTP/2.
    func hasAnswered(typeURL: String, version: String) -> Bool {
        receipts.contains { $0.typeURL == typeURL && $0.version == version && $0.answerFlushedAt != nil }
    }
}

/// Routes one client stream's callbacks to its proxy.
final class ProxyStreamHandler: GRPCClientStreamHandler {
    private unowned let proxy: SimulatedProxy
    let key: String

    init(proxy: SimulatedProxy, key: String) {
        self.proxy = proxy
        self.key = key
    }

    func onMessage(_ message: [UInt8]) { proxy.receive(message, streamKey: key) }
    func onFlushed() { proxy.flushed(streamKey: key) }
    func onFinish(_ status: GRPCStatus, trailers: [HeaderField]) { proxy.finished(status, streamKey: key) }
}
