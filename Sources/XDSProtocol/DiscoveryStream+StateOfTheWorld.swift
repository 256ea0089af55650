// State-of-the-world rules: stale nonces, subscription replacement with the legacy
// wildcard, complete-set vs asked-for responses, change detection, EDS after CDS.
import XDSWire

extension DiscoveryStream {
    mutating func handleStateOfTheWorld(_ request: DiscoveryRequest, at now: WallClockTime) -> [StreamAction] {
        let typeURL: String
        switch admit(typeURL: request.typeURL, node: request.node) {
        case .failure(let status): return close(status)
        case .success(let admitted): typeURL = admitted
        }
        guard request.resourceNames.count <= configuration.limits.maxNamesPerType else {
            return close(.resourceExhausted, "\(request.resourceNames.count) resource names for \(TypeURL.shortName(typeURL)); the limit is \(configuration.limits.maxNamesPerType)")
        }
        guard var state = types[typeURL] else { return [] }
        var actions: [StreamAction] = []

        if let latest = state.lastNonce, request.responseNonce != latest {
            // Superseded: a newer response is on its way and the proxy will answer that one with
            // its then-current subscription. Only a rejection is worth recording.
            if request.errorDetail != nil, !request.responseNonce.isEmpty,
               let nack = reply(to: &state, nonce: request.responseNonce, proxyVersion: request.versionInfo,
                                errorDetail: request.errorDetail, at: now) {
                actions.append(nack)
            }
            types[typeURL] = state
            return actions
        }
        if state.lastNonce != nil {
            state.answered()
            if let record = reply(to: &state, nonce: request.responseNonce, proxyVersion: request.versionInfo,
                                  errorDetail: request.errorDetail, at: now) {
                actions.append(record)
            }
        }

        let before = state.subscription
        state.subscription = replaced(before, with: request.resourceNames, wildcardAllowed: TypeURL.supportsWildcard(typeURL))
        let after = state.subscription
        state.newlySubscribed.formUnion(after.names.subtracting(before.names))
        state.newlySubscribed.formIntersection(after.names)
        if let sent = state.sent {
            // Unsubscribed names leave the proxy's cache; re-subscribing must resend them.
            state.sent = sent.filter { after.covers($0.key) }
        }
        state.publishSubscription()

        if !state.requested {
            state.requested = true
            resumeFromReconnect(&state, claimedVersion: request.versionInfo)
            state.dirty = true
        }
        if after != before { state.dirty = true }
        types[typeURL] = state
        return actions + pushPending()
    }

    /// SotW subscription replacement, including the legacy rule: an empty list means the wildcard
    /// only until the proxy has named something for this type on this stream.
    private func replaced(_ old: Subscription, with requested: [String], wildcardAllowed: Bool) -> Subscription {
        var next = Subscription(wildcard: false, names: Set(requested), explicit: old.explicit)
        if requested.isEmpty {
            next.wildcard = wildcardAllowed && !old.explicit
        } else {
            next.explicit = true
            if wildcardAllowed, next.names.remove("*") != nil { next.wildcard = true }
        }
        return next
    }

    /// A reconnecting proxy that already runs the current complete set of a wildcard type
    /// (its `version_info` equals our content version) is not sent it again.
    private func resumeFromReconnect(_ state: inout TypeState, claimedVersion: String) {
        guard TypeURL.carriesCompleteSet(state.typeURL), state.subscription.wildcard, state.subscription.names.isEmpty,
              !claimedVersion.isEmpty, claimedVersion == view.contentVersion(typeURL: state.typeURL) else { return }
        state.sent = view.resources(typeURL: state.typeURL).mapValues(\.version)
        state.lastVersion = claimedVersion
        state.status.versionAcked = claimedVersion
    }

    /// What a response for `state` would carry now, or nil when the proxy already has it.
    private func planStateOfTheWorld(_ state: TypeState) -> (resources: [VersionedResource], version: String)? {
        let all = view.resources(typeURL: state.typeURL)
        let sorted = { (list: [VersionedResource]) in list.sorted { $0.name < $1.name } }
        if state.subscription.wildcard {
            // The content version names the exact (name, version) set, so comparing it with the
            // version last sent (or claimed on reconnect) detects any change without a diff.
            let version = view.contentVersion(typeURL: state.typeURL)
            let changed = state.sent == nil || version != state.lastVersion
                || (state.owesAnswer && !all.isEmpty)
                || state.newlySubscribed.contains { all[$0] != nil }
            return changed ? (sorted(Array(all.values)), version) : nil
        }
        let desired = state.subscription.names.compactMap { all[$0] }
        let plan = { (sorted(desired), ContentVersion.of(desired)) }
        let completeSet = TypeURL.carriesCompleteSet(state.typeURL)
        guard let sent = state.sent else {
            // First answer on this stream: Listener/Cluster always (an empty set is an answer the
            // proxy waits for); other types once something they asked for exists.
            return completeSet || !desired.isEmpty ? plan() : nil
        }
        if state.owesAnswer, !desired.isEmpty { return plan() }
        if desired.contains(where: { state.newlySubscribed.contains($0.name) }) { return plan() }
        if desired.contains(where: { sent[$0.name] != $0.version }) { return plan() }
        // Only a complete set can express a removal; for other types a vanished resource needs no message.
        if completeSet, desired.count != sent.count { return plan() }
        return nil
    }

    mutating func pushStateOfTheWorld() -> [StreamAction] {
        var actions: [StreamAction] = []
        var held = false
        for typeURL in TypeURL.inPushOrder(types.keys) {
            guard let state = types[typeURL], state.requested, state.dirty else { continue }
            guard let plan = planStateOfTheWorld(state) else {
                types[typeURL]?.dirty = false
                continue
            }
            guard canSend(state), !held else {
                // Make-before-break: nothing later in push order overtakes an update that must wait.
                if isAggregated { held = true }
                continue
            }
            actions.append(.send(emitStateOfTheWorld(typeURL, resources: plan.resources, version: plan.version)))
        }
        return actions
    }

    private mutating func emitStateOfTheWorld(_ typeURL: String, resources: [VersionedResource], version: String) -> DiscoveryResponse {
        let nonce = issueNonce()
        let response = DiscoveryResponse(versionInfo: version,
                                         resources: resources.map { AnyResource(typeURL: typeURL, value: $0.body) },
                                         typeURL: typeURL, nonce: nonce, controlPlane: configuration.controlPlaneIdentifier)
        guard var state = types[typeURL] else { return response }
        let previous = state.sent ?? [:]
        state.sent = Dictionary(resources.map { ($0.name, $0.version) }, uniquingKeysWith: { a, _ in a })
        state.newlySubscribed.subtract(resources.map(\.name))
        state.owesAnswer = false
        types[typeURL] = state
        recordSent(typeURL, nonce: nonce, version: version)
        if typeURL == TypeURL.cluster, resources.contains(where: { previous[$0.name] != $0.version }) {
            // Envoy keeps a new or changed cluster warming until it receives its
            // ClusterLoadAssignment again, even when the endpoints did not change.
            types[TypeURL.endpoint]?.owesAnswer = true
            types[TypeURL.endpoint]?.dirty = true
        }
        return response
    }
}
