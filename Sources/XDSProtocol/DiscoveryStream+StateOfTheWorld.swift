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
            types.store(&state)
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
            state.forced.formUnion(after.names.subtracting(before.names))
            state.forced.formIntersection(after.names)
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
        types.store(&state)
        return actions + pushPending()
    }

    /// SotW subscription replacement, including the legacy rule: an empty list means the wildcard
    /// only until the proxy has named something for this type on this stream.
    private func replaced(_ old: Subscription, with requested: [String], wildcardAllowed: Bool) -> Subscription {
        var next = Subscription(names: Set(requested), wildcard: false, explicit: old.explicit)
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
        state.versionAcked = claimedVersion
    }

    /// What a response for `state` would hold and carry now, or nil when the proxy already has it. The sets come
    /// from the view's cache, so streams of one group with one subscription (and one starting point) share them.
    private func planStateOfTheWorld(_ state: TypeState) -> SotWAnswer? {
        let typeURL = state.typeURL
        if state.subscription.wildcard {
            // The content version names the exact (name, version) set, so comparing it with the
            // version last sent (or claimed on reconnect) detects any change without a diff.
            var changed = state.sent == nil || view.contentVersion(typeURL: typeURL) != state.lastVersion
            if !changed && !state.forced.isEmpty {
                let all = view.resources(typeURL: typeURL)
                changed = state.forced.contains { all[$0] != nil }
            }
            return changed ? SotWAnswer(complete: view.wildcardSet(typeURL: typeURL)) : nil
        }
        let desired = view.subscribedSet(typeURL: typeURL, names: state.names)
        guard let sent = state.sent else {
            // First answer on this stream: Listener/Cluster always (an empty set is an answer the
            // proxy waits for); other types once something they asked for exists.
            return TypeURL.carriesCompleteSet(typeURL) || !desired.isEmpty ? SotWAnswer(complete: desired) : nil
        }
        if TypeURL.carriesCompleteSet(typeURL) {
            let owed = !state.forced.isEmpty && desired.resources.contains { state.forced.contains($0.name) }
            // Only a complete set can express a removal.
            return owed || desired.hasChange(against: sent) || desired.count != sent.count ? SotWAnswer(complete: desired) : nil
        }
        // Other types (routes, endpoints, secrets): a proxy keeps the resources a response leaves out, so one carries
        // only what changed or is owed (a changed cluster's assignment, not all fifty). A vanished resource needs no message.
        if desired === sent && state.forced.isEmpty { return nil }
        let carried = view.outstandingSet(typeURL: typeURL, names: state.names, desired: desired, sent: sent, forced: state.forced)
        guard !carried.isEmpty else { return nil }
        return SotWAnswer(holds: desired, carries: carried)
    }

    mutating func pushStateOfTheWorld() -> [StreamAction] {
        var actions: [StreamAction] = []
        var held = false
        for typeURL in typesInPushOrder {
            // Each dirty type's state is moved out, planned and stored back: planning a state read in place in the
            // array would copy it (every reference it holds retained and released) for each type of each stream.
            guard needsPlan(typeURL), var state = types.take(typeURL) else { continue }
            guard let plan = planStateOfTheWorld(state) else {
                state.dirty = false
                types.store(&state)
                continue
            }
            guard canSend(state), !held else {
                // Make-before-break: nothing later in push order overtakes an update that must wait.
                if isAggregated { held = true }
                types.store(&state)
                continue
            }
            let previous = state.sent
            actions.append(.send(emitStateOfTheWorld(&state, plan)))
            types.store(&state)
            if TypeURL.same(typeURL, TypeURL.cluster), plan.holds !== previous {
                oweAssignments(view.assignmentsOwed(from: previous, to: plan.holds))
            }
        }
        return actions
    }

    private mutating func emitStateOfTheWorld(_ state: inout TypeState, _ answer: SotWAnswer) -> DiscoveryResponse {
        let nonce = issueNonce()
        // version_info names what the proxy holds once it accepts the response, also when it carries only a part.
        let response = DiscoveryResponse(versionInfo: answer.holds.version, resourceList: answer.carries.list, typeURL: state.typeURL,
                                         nonce: nonce, controlPlane: configuration.controlPlaneIdentifier)
        state.sent = answer.holds
        if !state.forced.isEmpty {
            state.forced.subtract(answer.carries.resources.lazy.map(\.name))
            // An emptied set keeps its capacity (≈ 2 KiB after a first EDS request of 50 names) for the stream's life.
            if state.forced.isEmpty { state.forced = [] }
        }
        state.recordSent(nonce: nonce, version: answer.holds.version, snapshotVersion: view.version, stateOfTheWorld: true)
        return response
    }
}
