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
        // Moved out and stored back on every path below (nothing in between reads this type's slot).
        guard var state = types.take(typeURL) else { return [] }
        var actions: [StreamAction] = []

        if let latest = state.lastNonce, request.responseNonce != latest {
            // Superseded: a newer response is on its way and the proxy will answer that one with
            // its then-current subscription. Only a rejection is worth recording.
            if request.errorDetail != nil, !request.responseNonce.isEmpty,
               let nack = reply(to: &state, nonce: request.responseNonce, proxyVersion: request.versionInfo,
                                errorDetail: request.errorDetail, at: now) {
                actions.append(nack)
            }
            types.store(state)
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
        // Most requests are ACKs repeating the subscription: recognise those without rebuilding the name set.
        let unchanged = !before.wildcard && before.explicit && state.names.isExactly(request.resourceNames)
        if !unchanged {
            state.subscription = replaced(before, with: request.resourceNames, wildcardAllowed: TypeURL.supportsWildcard(typeURL))
        }
        let after = state.subscription
        let subscriptionChanged = !unchanged && after != before
        if subscriptionChanged || !state.requested {
            state.newlySubscribed.formUnion(after.names.subtracting(before.names))
            state.newlySubscribed.formIntersection(after.names)
            // Unsubscribed names leave the proxy's cache; re-subscribing must resend them.
            // (`sent` only ever holds names the subscription covered, so only a change can shrink it.)
            if let sent = state.sent, sent.resources.contains(where: { !after.covers($0.name) }) {
                state.sent = sent.filtered { after.covers($0) }
            }
            state.publishSubscription()
            shareSubscription(&state)
        }

        if !state.requested {
            state.requested = true
            resumeFromReconnect(&state, claimedVersion: request.versionInfo)
            state.dirty = true
        }
        if subscriptionChanged { state.dirty = true }
        types.store(state)
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
        state.sent = view.wildcardSet(typeURL: state.typeURL)
        state.lastVersion = claimedVersion
        state.status.versionAcked = claimedVersion
    }

    /// What a response for `state` would carry now, or nil when the proxy already has it. The set
    /// comes from the view's cache, so streams of one group with one subscription share it.
    private func planStateOfTheWorld(_ state: TypeState) -> ResourceSet? {
        if state.subscription.wildcard {
            // The content version names the exact (name, version) set, so comparing it with the
            // version last sent (or claimed on reconnect) detects any change without a diff.
            var changed = state.sent == nil || view.contentVersion(typeURL: state.typeURL) != state.lastVersion
            if !changed && (state.owesAnswer || !state.newlySubscribed.isEmpty) {
                let all = view.resources(typeURL: state.typeURL)
                changed = (state.owesAnswer && !all.isEmpty) || state.newlySubscribed.contains { all[$0] != nil }
            }
            return changed ? view.wildcardSet(typeURL: state.typeURL) : nil
        }
        let desired = view.subscribedSet(typeURL: state.typeURL, names: state.names)
        let completeSet = TypeURL.carriesCompleteSet(state.typeURL)
        guard let sent = state.sent else {
            // First answer on this stream: Listener/Cluster always (an empty set is an answer the
            // proxy waits for); other types once something they asked for exists.
            return completeSet || !desired.isEmpty ? desired : nil
        }
        if state.owesAnswer, !desired.isEmpty { return desired }
        if !state.newlySubscribed.isEmpty, desired.resources.contains(where: { state.newlySubscribed.contains($0.name) }) {
            return desired
        }
        if desired.hasChange(against: sent) { return desired }
        // Only a complete set can express a removal; for other types a vanished resource needs no message.
        if completeSet, desired.count != sent.count { return desired }
        return nil
    }

    mutating func pushStateOfTheWorld() -> [StreamAction] {
        var actions: [StreamAction] = []
        var held = false
        for typeURL in typesInPushOrder {
            guard needsPlan(typeURL), let (plan, sendable) = types.read(typeURL, { state in (planStateOfTheWorld(state), canSend(state)) }) else {
                continue
            }
            guard let plan else {
                types.update(typeURL) { $0.dirty = false }
                continue
            }
            guard sendable, !held else {
                // Make-before-break: nothing later in push order overtakes an update that must wait.
                if isAggregated { held = true }
                continue
            }
            actions.append(.send(emitStateOfTheWorld(typeURL, plan)))
        }
        return actions
    }

    private mutating func emitStateOfTheWorld(_ typeURL: String, _ set: ResourceSet) -> DiscoveryResponse {
        let nonce = issueNonce()
        let response = DiscoveryResponse(versionInfo: set.version, resourceList: set.list, typeURL: typeURL, nonce: nonce,
                                         controlPlane: configuration.controlPlaneIdentifier)
        guard var state = types.take(typeURL) else { return response }
        let previous = state.sent
        state.sent = set
        if !state.newlySubscribed.isEmpty {
            state.newlySubscribed.subtract(set.resources.lazy.map(\.name))
            // An emptied set keeps its capacity (≈ 2 KiB after a first EDS request of 50 names) for the stream's life.
            if state.newlySubscribed.isEmpty { state.newlySubscribed = [] }
        }
        state.owesAnswer = false
        types.store(state)
        recordSent(typeURL, nonce: nonce, version: set.version)
        if typeURL == TypeURL.cluster, set.hasChange(against: previous) {
            // Envoy keeps a new or changed cluster warming until it receives its
            // ClusterLoadAssignment again, even when the endpoints did not change.
            types.update(TypeURL.endpoint) { endpoints in
                endpoints.owesAnswer = true
                endpoints.dirty = true
            }
        }
        return response
    }
}
