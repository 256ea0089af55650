// The per-stream xDS protocol state machine: what one proxy subscribed to, what it
// was sent and what it accepted, per type URL. It owns the rules shared by both
// protocol variants (validation, node caching, nonces, ACK/NACK bookkeeping, the
// send gates and ADS ordering); the variant rules live in DiscoveryStream+StateOfTheWorld
// and DiscoveryStream+Delta. Pure: no clocks, no sockets, no encoding.
import XDSWire
import GRPCStatusCodes

/// The protocol state of one xDS gRPC stream (aggregated or single-type, state-of-the-world or delta): events in, actions out.
///
/// The transport creates one per stream once it has the first request (and so the node, to pick
/// the proxy group's view), then feeds it every event with `handle(_:at:)` and performs the
/// returned actions in order.
public struct DiscoveryStream: Sendable {
    /// Which of the two xDS protocol variants the stream speaks.
    public enum Variant: Sendable, Hashable {
        /// `Stream*` / `StreamAggregatedResources`: DiscoveryRequest/DiscoveryResponse.
        case stateOfTheWorld
        /// `Delta*` / `DeltaAggregatedResources`: DeltaDiscoveryRequest/DeltaDiscoveryResponse.
        case delta
    }

    /// Which resource types the stream carries.
    public enum Binding: Sendable, Hashable {
        /// ADS: every type multiplexed on one stream, pushed in make-before-break order.
        case aggregated
        /// A per-type service (LDS, CDS…): only this type URL.
        case singleType(String)
    }

    /// Bounds on what one proxy can make the control plane remember.
    public struct Limits: Sendable, Hashable {
        /// Distinct type URLs on one stream.
        public var maxTypes: Int
        /// Subscribed names for one type.
        public var maxNamesPerType: Int

        public init(maxTypes: Int = 16, maxNamesPerType: Int = 100_000) {
            self.maxTypes = maxTypes
            self.maxNamesPerType = maxNamesPerType
        }
    }

    /// How a stream is set up; fixed for its lifetime.
    public struct Configuration: Sendable, Hashable {
        public var variant: Variant
        public var binding: Binding
        /// Sent as `control_plane.identifier` in every response when set.
        public var controlPlaneIdentifier: String?
        public var limits: Limits

        public init(variant: Variant, binding: Binding, controlPlaneIdentifier: String? = nil, limits: Limits = Limits()) {
            self.variant = variant
            self.binding = binding
            self.controlPlaneIdentifier = controlPlaneIdentifier
            self.limits = limits
        }
    }

    public let configuration: Configuration
    /// The snapshot view responses are built from.
    public private(set) var view: any ResourceSnapshotView
    /// The node from the first request of the stream: its id and cluster, what every later request's node must match.
    /// The rest (metadata, user agent, an Envoy's client features) is not kept: read once when the stream starts, it
    /// would stay with every idle stream for hours.
    public var node: Node? { nodeIdentity.map { Node(id: $0.id, cluster: $0.cluster) } }
    private var nodeIdentity: (id: String, cluster: String)?

    var types = TypeStates()
    /// The keys of `types`, kept as types arrive (never removed): the served types as bits by their
    /// `TypeURL.pushOrder` position, any other type by URL, sorted (there are none with Envoy's usual types).
    private var otherTypes: [String] = []
    /// The keys of `types` in push order (every push walks them, changing `types` as it goes).
    var typesInPushOrder: TypeURLOrder { TypeURLOrder(ranks: TypeURLOrder.pushRanks, served: servedTypes, others: otherTypes) }
    /// The keys of `types` in removal order (delta ADS).
    var typesInRemovalOrder: TypeURLOrder { TypeURLOrder(ranks: TypeURLOrder.removalRanks, served: servedTypes, others: otherTypes) }
    private var nextNonce: UInt64 = 1
    // The small fields together, last (stored properties are laid out in declaration order).
    private var servedTypes: UInt8 = 0
    /// Set once a `.close` action was returned; every later event is ignored.
    public private(set) var isClosed = false
    /// Whether the transport can take responses now (see `StreamEvent.writabilityChanged`).
    public private(set) var isWritable = true

    public init(configuration: Configuration, view: any ResourceSnapshotView) {
        self.configuration = configuration
        self.view = view
    }

    /// One status per requested type, in push order.
    public var proxyStatus: [ProxyStatus] {
        typesInPushOrder.compactMap { types.status($0) }
    }

    /// The names the stream's subscription to `typeURL` holds, sorted (what an ACK repeats, and what a decoder can reuse:
    /// see `DiscoveryRequest.init(serialized:knownNames:)`); nil for a type not requested.
    public func subscribedNames(typeURL: String) -> [String]? { types.read(typeURL) { $0.names.sorted } }

    /// The status of one type, if the proxy requested it.
    public func proxyStatus(typeURL: String) -> ProxyStatus? { types.status(typeURL) }

    /// Applies one event and returns what to do, in order: writes, status records, or a close.
    public mutating func handle(_ event: StreamEvent, at now: WallClockTime) -> [StreamAction] {
        guard !isClosed else { return [] }
        switch event {
        case .request(let request):
            guard configuration.variant == .stateOfTheWorld else {
                return close(.internalError, "a state-of-the-world request reached a delta stream")
            }
            return handleStateOfTheWorld(request, at: now)
        case .deltaRequest(let request):
            guard configuration.variant == .delta else {
                return close(.internalError, "a delta request reached a state-of-the-world stream")
            }
            return handleDelta(request, at: now)
        case .snapshotChanged(let newView):
            view = newView
            // Walks the separate order: iterating `types` itself while mutating it would copy the states.
            for typeURL in typesInPushOrder { types.update(typeURL) { $0.dirty = true } }
            return pushPending()
        case .writabilityChanged(let writable):
            isWritable = writable
            return pushPending()
        case .flushed(let nonce):
            for typeURL in typesInPushOrder {
                types.update(typeURL) { state in
                    guard state.unflushed, state.lastNonce == nonce else { return }
                    state.unflushed = false
                }
            }
            return pushPending()
        case .heartbeat:
            var actions = pushPending()
            if configuration.variant == .delta { actions += pushHeartbeats() }
            return actions
        }
    }

    // MARK: - Shared request handling

    /// Validates the request's type URL and node, caching the node; a status means "close the stream".
    mutating func admit(typeURL requested: String, node requestNode: Node?) -> Result<String, GRPCStatus> {
        let typeURL: String
        switch configuration.binding {
        case .aggregated:
            guard !requested.isEmpty else {
                return .failure(GRPCStatus(code: .invalidArgument, message: "type_url is required on an aggregated stream"))
            }
            typeURL = TypeURL.canonical(requested)
        case .singleType(let bound):
            guard requested.isEmpty || requested == bound else {
                return .failure(GRPCStatus(code: .invalidArgument, message: "this stream serves \(bound), not \(requested)"))
            }
            typeURL = TypeURL.canonical(bound)
        }
        if let known = nodeIdentity {
            if let requestNode, requestNode.id != known.id || requestNode.cluster != known.cluster {
                return .failure(GRPCStatus(code: .invalidArgument,
                                           message: "node changed mid-stream from \(known.id)/\(known.cluster) to \(requestNode.id)/\(requestNode.cluster)"))
            }
        } else {
            guard let requestNode else {
                return .failure(GRPCStatus(code: .invalidArgument, message: "the first request on a stream must carry node"))
            }
            nodeIdentity = (requestNode.id, requestNode.cluster)
        }
        if !types.contains(typeURL) {
            guard types.count < configuration.limits.maxTypes else {
                return .failure(GRPCStatus(code: .resourceExhausted, message: "more than \(configuration.limits.maxTypes) resource types on one stream"))
            }
            types.add(TypeState(typeURL: typeURL))
            if let index = TypeURL.knownIndex(typeURL) {
                servedTypes |= 1 << index
            } else {
                otherTypes.append(typeURL)
                otherTypes.sort()
            }
        }
        return .success(typeURL)
    }

    /// Bookkeeping for a request that names a response by nonce: an ACK or NACK action, or nothing.
    /// `proxyVersion` is the request's `version_info` (SotW) or nil (delta, which has none).
    func reply(to state: inout TypeState, nonce: String, proxyVersion: String?, errorDetail: Status?,
               at now: WallClockTime) -> StreamAction? {
        let stale = nonce != state.lastNonce
        let sentVersion = state.sentVersion(nonce: nonce)
        state.forgetResponses(before: nonce)
        if let errorDetail {
            // A proxy repeats its last request (error included) when it only changes its subscription.
            if let last = state.lastNack, last.nonce == nonce, last.errorDetail == errorDetail { return nil }
            let record = NackRecord(typeURL: state.typeURL, rejectedVersion: sentVersion, nonce: nonce,
                                    proxyVersion: proxyVersion ?? state.versionAcked ?? "",
                                    errorDetail: errorDetail, at: now, stale: stale)
            state.lastNack = record
            return .nack(record)
        }
        guard !stale, let sentVersion, proxyVersion == nil || proxyVersion == sentVersion,
              state.nonceAcked != nonce else { return nil }
        state.versionAcked = sentVersion
        state.nonceAcked = nonce
        return .ack(AckRecord(typeURL: state.typeURL, version: sentVersion, nonce: nonce, at: now))
    }

    /// Swaps the state's subscription names for the view's pooled copies (see `ResourceSetCache.shared`).
    func shareSubscription(_ state: inout TypeState) {
        guard let cache = view.resourceSetCache, !state.subscription.names.isEmpty else { return }
        (state.names, state.subscription.names) = cache.shared(state.names, state.subscription.names)
    }

    mutating func close(_ code: GRPCStatus.Code, _ message: String) -> [StreamAction] {
        isClosed = true
        return [.close(GRPCStatus(code: code, message: message))]
    }

    mutating func close(_ status: GRPCStatus) -> [StreamAction] { close(status.code, status.message) }

    // MARK: - Sending

    /// Whether a response for this type may be emitted now: the transport can take it, the proxy
    /// has asked for the type, answered the previous response, and that response is written out.
    func canSend(_ state: TypeState) -> Bool {
        isWritable && state.requested && !state.awaitingReply && !state.unflushed
    }

    /// Whether the type has something to plan: most events (ACKs) leave every type clean, and checking in
    /// place spares copying each type's state to find that out.
    func needsPlan(_ typeURL: String) -> Bool {
        types.read(typeURL) { $0.requested && $0.dirty } ?? false
    }

    var isAggregated: Bool { configuration.binding == .aggregated }
    var isStateOfTheWorld: Bool { configuration.variant == .stateOfTheWorld }

    /// Emits whatever is owed, computed from the current view (so a type that had to wait gets
    /// only the newest content, never the intermediate versions).
    mutating func pushPending() -> [StreamAction] {
        guard isWritable else { return [] }
        switch configuration.variant {
        case .stateOfTheWorld: return pushStateOfTheWorld()
        case .delta: return pushDelta()
        }
    }

    mutating func issueNonce() -> String {
        defer { nextNonce += 1 }
        return String(nextNonce)
    }

    /// After clusters were sent, marks `assignments` — those of the new or changed clusters, see
    /// `ResourceSnapshotView.assignments(ofClusters:)` — owed on the endpoints type: Envoy keeps such a cluster warming
    /// until its ClusterLoadAssignment arrives again, even when the endpoints did not change. The assignments of
    /// unchanged clusters are not sent again.
    mutating func oweAssignments(_ assignments: [String]) {
        guard !assignments.isEmpty else { return }
        types.update(TypeURL.endpoint) { endpoints in
            for name in assignments where endpoints.subscription.covers(name) {
                endpoints.forced.insert(name)
                endpoints.dirty = true
            }
        }
    }

    /// Records that a response with `nonce` and `version` is leaving for `typeURL`.
    mutating func recordSent(_ typeURL: String, nonce: String, version: String) {
        let snapshotVersion = view.version, stateOfTheWorld = isStateOfTheWorld
        types.update(typeURL) { state in
            state.recordSent(nonce: nonce, version: version, snapshotVersion: snapshotVersion, stateOfTheWorld: stateOfTheWorld)
        }
    }
}

/// A response sent on the stream, remembered so a late NACK can say which version it rejected.
struct SentResponse: Sendable, Hashable {
    var nonce: String
    var version: String
}

/// What a proxy subscribed to for one type.
struct Subscription: Sendable, Hashable {
    /// Explicitly named resources (never "*" for types that support the wildcard).
    var names: Set<String> = []
    /// Every resource of the type ("*", or the legacy empty list). (After `names`, beside `explicit`: 8 bytes less.)
    var wildcard = false
    /// The proxy has named resources (or "*") at least once; after that an empty list means "nothing".
    var explicit = false

    func covers(_ name: String) -> Bool { wildcard || names.contains(name) }
}

/// The per-type states of one stream, a handful (at most `Limits.maxTypes`), in an array: a dictionary of four
/// ≈ 400-byte states allocates eight buckets, ≈ 1.7 KiB more per ADS stream for ten thousand idle streams. A
/// lookup compares a few type URLs (the callers' strings are the stored ones, so mostly by identity).
struct TypeStates: Sendable {
    private var states: [TypeState] = []

    var count: Int { states.count }

    /// Changes one type's state where it is stored: going through the subscript's copy would make every
    /// change to its sets, maps and response list copy them (the array still holds the original). Returns
    /// nil, and does nothing, for a type not requested on the stream.
    @discardableResult
    mutating func update<R>(_ typeURL: String, _ body: (inout TypeState) -> R) -> R? {
        guard let index = states.firstIndex(where: { TypeURL.same($0.typeURL, typeURL) }) else { return nil }
        return body(&states[index])
    }

    /// Moves one type's state out, leaving an empty placeholder in its slot until the caller stores it back
    /// (`store(&state)`) before anything else reads it. A copy would share its sets, maps and response list
    /// with the array, so the first change to each would copy it; a moved state is the only owner, and is changed in
    /// place. Nil for a type not requested on the stream.
    mutating func take(_ typeURL: String) -> TypeState? {
        guard let index = states.firstIndex(where: { TypeURL.same($0.typeURL, typeURL) }) else { return nil }
        var moved = TypeState(typeURL: states[index].typeURL)
        swap(&moved, &states[index])
        return moved
    }

    /// Puts a state moved out with `take` back in its slot by swapping: `state` is left holding the placeholder.
    /// Assigning it (even as a `consuming` argument) copies it — every reference it holds retained and released —
    /// and `consume state` is not supported by Swift 6.3 for the bindings the callers use.
    mutating func store(_ state: inout TypeState) {
        let typeURL = state.typeURL
        guard let index = states.firstIndex(where: { TypeURL.same($0.typeURL, typeURL) }) else { return }
        swap(&states[index], &state)
    }

    /// Adds the state of a type first requested on the stream.
    mutating func add(_ state: TypeState) { states.append(state) }

    /// Reads one type's state without copying it (nil for a type not requested on the stream). Through the buffer:
    /// the array's subscript getter returns a copy, retaining and releasing every reference the state holds.
    func read<R>(_ typeURL: String, _ body: (TypeState) -> R) -> R? {
        states.withUnsafeBufferPointer { states in
            guard let index = states.firstIndex(where: { TypeURL.same($0.typeURL, typeURL) }) else { return nil }
            return body(states[index])
        }
    }

    func contains(_ typeURL: String) -> Bool {
        states.withUnsafeBufferPointer { states in states.contains { TypeURL.same($0.typeURL, typeURL) } }
    }

    /// One type's status, built from its state in place (through a closure, as `read` does, the state was copied
    /// whole first: ≈ 500 instructions per read, two reads per event).
    func status(_ typeURL: String) -> ProxyStatus? {
        states.withUnsafeBufferPointer { states in
            guard let index = states.firstIndex(where: { TypeURL.same($0.typeURL, typeURL) }) else { return nil }
            return states[index].status
        }
    }
}

/// The protocol state of one type URL on one stream.
struct TypeState: Sendable {
    static let rememberedResponses = 8

    let typeURL: String
    var subscription = Subscription()
    /// `subscription.names`, sorted: the key of the shared answer for an explicit subscription.
    var names = SubscriptionNames.none
    /// The proxy has sent at least one request for the type; nothing is pushed before that.
    var requested = false
    /// Something the plan depends on changed since the type was last found up to date
    /// (so a plain ACK, the most frequent event, costs no diff).
    var dirty = false
    /// A response was sent and the proxy has not yet answered it (with its nonce).
    var awaitingReply = false
    /// The latest response was not yet reported written out by the transport (nor answered).
    var unflushed = false
    /// A first wildcard request is answered even when there is nothing to send, so the proxy can finish initialising
    /// (delta).
    var owesInitialAnswer = false
    /// The content version of what the proxy was last sent (or claimed on reconnect). State of the world: the
    /// latest response's `version_info`. Delta: `syncedTarget`.
    var lastVersion: String?
    /// The latest response sent (nil until one is).
    var latest: SentResponse?
    /// Responses sent before `latest` that the proxy has not answered, oldest first, at most `rememberedResponses`
    /// in all: an answer drops those before it, so an idle type keeps none. (The last eight responses, kept whatever
    /// was answered, took an allocation per type of every stream, ≈ 290 bytes per type after eight pushes.)
    var earlier: [SentResponse] = []
    // What `status` reports that no other field holds. The rest of the status is derived when it is read (a few
    // times per event): kept as a `ProxyStatus` too, it was 128 of this state's 296 bytes, per type per stream.
    var snapshotVersionSent: String?
    var versionAcked: String?
    var nonceAcked: String?
    var rejection: Rejection?
    /// Names to send even if the proxy holds the current version: subscribed and not yet delivered, or the
    /// assignments of clusters that changed (a changed cluster warms until its assignment arrives again).
    var forced: Set<String> = []

    // State of the world.
    /// What the proxy holds after the latest response (usually the set shared by every stream of the group, so
    /// remembering it costs a reference); nil until something was sent (or claimed on reconnect).
    var sent: ResourceSet?

    // Delta.
    /// name → version the proxy holds, as far as this stream knows.
    var known: [String: String] = [:]
    /// The version of the view's target (`DeltaTarget`) that `known` equals, with nothing owed, since the last
    /// response; nil when not up to date or not known to be. Lets the stream share its group's plans. Kept in
    /// `lastVersion`, which delta has no other use for (a field more is 64 bytes per idle ADS proxy).
    var syncedTarget: String? {
        get { lastVersion }
        set { lastVersion = newValue }
    }
    /// Names unsubscribed while the wildcard is on: the proxy needs to hear whether the wildcard still covers them.
    var ambiguous: Set<String> = []
    /// Subscribed names already reported as non-existent.
    var reportedAbsent: Set<String> = []

    init(typeURL: String) {
        self.typeURL = typeURL
    }

    /// Nonce of the latest response sent.
    var lastNonce: String? { latest?.nonce }

    /// The version of the response sent with `nonce`, if it is still remembered.
    func sentVersion(nonce: String) -> String? {
        if let latest, latest.nonce == nonce { return latest.version }
        return earlier.last(where: { $0.nonce == nonce })?.version
    }

    /// The proxy answered the response with `nonce`: it will not answer the ones sent before it (it answers in order).
    mutating func forgetResponses(before nonce: String) {
        guard !earlier.isEmpty else { return }
        if latest?.nonce == nonce {
            earlier = []
        } else if let index = earlier.lastIndex(where: { $0.nonce == nonce }), index > 0 {
            earlier.removeFirst(index)
        }
    }

    /// The proxy's status for this type, as operators and the rollout controller see it. Inlined so that reading it
    /// from a state in place copies the fields it needs, not the whole state (≈ 600 instructions per read).
    var status: ProxyStatus {
        @inline(__always) get {
            var status = ProxyStatus(typeURL: typeURL)
            if let latest {
                status.versionSent = latest.version
                status.nonceSent = latest.nonce
                status.flushed = !unflushed
            }
            status.snapshotVersionSent = snapshotVersionSent
            status.versionAcked = versionAcked
            status.nonceAcked = nonceAcked
            status.rejection = rejection
            status.wildcard = subscription.wildcard
            status.subscribedNames = names.sorted
            return status
        }
    }

    /// The latest rejection, kept after later ACKs so operators can see what failed.
    var lastNack: NackRecord? {
        get { rejection?.record }
        set { rejection = newValue.map(Rejection.init) }
    }

    /// Records that a response with `nonce` and `version`, built from the snapshot `snapshotVersion`, is leaving.
    mutating func recordSent(nonce: String, version: String, snapshotVersion: String, stateOfTheWorld: Bool) {
        // The response before is kept only while unanswered (the send gates make that rare): an answered one would
        // cost an allocation per push and a free per ACK.
        if let latest, awaitingReply {
            if earlier.count == Self.rememberedResponses - 1 { earlier.removeFirst() }
            earlier.append(latest)
        }
        latest = SentResponse(nonce: nonce, version: version)
        // Delta's `version` is the snapshot's (system_version_info); its `lastVersion` is `syncedTarget`.
        if stateOfTheWorld { lastVersion = version }
        awaitingReply = true
        unflushed = true
        snapshotVersionSent = snapshotVersion
    }

    /// The proxy answered the latest response, which proves it was written out too.
    mutating func answered() {
        awaitingReply = false
        unflushed = false
    }

    mutating func publishSubscription() {
        names = SubscriptionNames(subscription.names)
    }
}
