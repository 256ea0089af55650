// Incremental (delta) rules: subscribe/unsubscribe applied whatever the nonce,
// initial_resource_versions on reconnect, per-resource versions, removed_resources for
// deletions and non-existent names, two-phase (updates, then removals) ADS pushes,
// and TTL heartbeats.
import XDSWire

extension DiscoveryStream {
    mutating func handleDelta(_ request: DeltaDiscoveryRequest, at now: WallClockTime) -> [StreamAction] {
        let typeURL: String
        switch admit(typeURL: request.typeURL, node: request.node) {
        case .failure(let status): return close(status)
        case .success(let admitted): typeURL = admitted
        }
        guard var state = types[typeURL] else { return [] }
        let limit = configuration.limits.maxNamesPerType
        let requestedCount = state.subscription.names.count + request.resourceNamesSubscribe.count
        guard requestedCount <= limit, request.initialResourceVersions.count <= limit else {
            return close(.resourceExhausted, "\(max(requestedCount, request.initialResourceVersions.count)) resource names for \(TypeURL.shortName(typeURL)); the limit is \(limit)")
        }
        var actions: [StreamAction] = []

        if !request.responseNonce.isEmpty {
            if request.responseNonce == state.lastNonce { state.answered() }
            if let record = reply(to: &state, nonce: request.responseNonce, proxyVersion: nil,
                                  errorDetail: request.errorDetail, at: now) {
                actions.append(record)
            }
        }

        // Subscription changes count even on a stale nonce: they are deltas, and dropping one
        // would lose it for good.
        let wildcardAllowed = TypeURL.supportsWildcard(typeURL)
        let first = !state.requested
        let subscriptionChanged = first || !request.resourceNamesSubscribe.isEmpty || !request.resourceNamesUnsubscribe.isEmpty
        if subscriptionChanged { state.dirty = true }
        if first {
            state.requested = true
            if wildcardAllowed, request.resourceNamesSubscribe.isEmpty, request.resourceNamesUnsubscribe.isEmpty {
                state.subscription.wildcard = true
            }
        }
        for name in request.resourceNamesSubscribe {
            state.subscription.explicit = true
            if wildcardAllowed, name == "*" {
                state.subscription.wildcard = true
                continue
            }
            state.subscription.names.insert(name)
            state.reportedAbsent.remove(name)
            state.ambiguous.remove(name)
            // A (re)subscription is always answered, unless the proxy told us on reconnect which version it holds.
            if !(first && request.initialResourceVersions[name] != nil) { state.forced.insert(name) }
        }
        for name in request.resourceNamesUnsubscribe {
            if wildcardAllowed, name == "*" {
                state.subscription.wildcard = false
                continue
            }
            state.subscription.names.remove(name)
            state.forced.remove(name)
            state.reportedAbsent.remove(name)
            if state.subscription.wildcard {
                // The proxy cannot tell whether the wildcard still covers the name: say so either way.
                state.ambiguous.insert(name)
                state.forced.insert(name)
            }
        }
        if first {
            state.known = request.initialResourceVersions
            state.owesInitialAnswer = state.subscription.wildcard
        }
        if subscriptionChanged {
            // Whatever is no longer subscribed leaves the proxy's cache without a message. (Only a
            // subscription change can do that: everything sent since was in scope.)
            let subscription = state.subscription
            state.known = state.known.filter { subscription.covers($0.key) || state.ambiguous.contains($0.key) }
            state.publishSubscription()
            shareSubscription(&state)
        }
        types[typeURL] = state
        return actions + pushPending()
    }

    /// What the proxy is missing for `state`: resources to (re)send and names to remove.
    /// `removalsOnly` skips looking for updates (the ADS removal phase, once every update is out).
    private func planDelta(_ state: TypeState, removalsOnly: Bool = false) -> (updates: [VersionedResource], removals: [String])? {
        let all = view.resources(typeURL: state.typeURL)
        var updates: [VersionedResource] = []
        func consider(_ resource: VersionedResource) {
            if state.known[resource.name] != resource.version || (!state.forced.isEmpty && state.forced.contains(resource.name)) {
                updates.append(resource)
            }
        }
        if !removalsOnly {
            if state.subscription.wildcard {
                all.values.forEach(consider)
            } else {
                for name in state.subscription.names { if let resource = all[name] { consider(resource) } }
            }
        }
        var removals = Set<String>()
        for name in state.known.keys where all[name] == nil { removals.insert(name) }
        // An unsubscribed name the wildcard does not (or no longer) cover is removed; one it covers was sent above.
        for name in state.ambiguous where all[name] == nil || !state.subscription.wildcard { removals.insert(name) }
        for name in state.subscription.names where all[name] == nil && !state.reportedAbsent.contains(name) {
            removals.insert(name)
        }
        if updates.isEmpty, removals.isEmpty, !state.owesInitialAnswer { return nil }
        return (updates.sorted { $0.name < $1.name }, removals.sorted())
    }

    mutating func pushDelta() -> [StreamAction] {
        // Plans are computed as the loop reaches each type: sending clusters can owe endpoints.
        var actions: [StreamAction] = []
        guard isAggregated else {
            for typeURL in typesInPushOrder {
                guard let state = types[typeURL], state.requested, state.dirty, canSend(state) else { continue }
                guard let plan = planDelta(state) else {
                    types[typeURL]?.dirty = false
                    continue
                }
                actions.append(.sendDelta(emitDelta(typeURL, updates: plan.updates, removals: plan.removals)))
            }
            return actions
        }
        // Phase 1: additions and changes, in make-before-break order.
        var held = false
        for typeURL in typesInPushOrder {
            guard let state = types[typeURL], state.requested, state.dirty else { continue }
            guard let plan = planDelta(state) else {
                types[typeURL]?.dirty = false
                continue
            }
            let initialAnswerOnly = plan.updates.isEmpty && plan.removals.isEmpty
            guard !plan.updates.isEmpty || initialAnswerOnly else { continue }
            guard canSend(state), !held else {
                held = true
                continue
            }
            actions.append(.sendDelta(emitDelta(typeURL, updates: plan.updates, removals: [])))
        }
        // Phase 2: removals, only once no addition or change is left waiting, referrers first.
        guard !held else { return actions }
        for typeURL in typesInRemovalOrder {
            guard let state = types[typeURL], state.requested, state.dirty, let plan = planDelta(state, removalsOnly: true),
                  !plan.removals.isEmpty else { continue }
            guard canSend(state) else { break }
            actions.append(.sendDelta(emitDelta(typeURL, updates: [], removals: plan.removals)))
        }
        return actions
    }

    private mutating func emitDelta(_ typeURL: String, updates: [VersionedResource], removals: [String]) -> DeltaDiscoveryResponse {
        let nonce = issueNonce()
        let response = DeltaDiscoveryResponse(
            systemVersionInfo: view.version,
            resources: updates.map { DeltaResource(name: $0.name, version: $0.version,
                                                   resource: AnyResource(typeURL: typeURL, value: $0.body), ttl: $0.ttl) },
            typeURL: typeURL, removedResources: removals, nonce: nonce, controlPlane: configuration.controlPlaneIdentifier)
        guard var state = types[typeURL] else { return response }
        var changedClusters: [String] = []
        for resource in updates {
            if state.known[resource.name] != resource.version { changedClusters.append(resource.name) }
            state.known[resource.name] = resource.version
            state.forced.remove(resource.name)
            state.ambiguous.remove(resource.name)
            state.reportedAbsent.remove(resource.name)
        }
        for name in removals {
            state.known.removeValue(forKey: name)
            state.forced.remove(name)
            state.ambiguous.remove(name)
            if state.subscription.names.contains(name) { state.reportedAbsent.insert(name) }
        }
        state.owesInitialAnswer = false
        // Emptied sets keep their capacity (a first subscription forces every name) for the stream's life.
        if state.forced.isEmpty { state.forced = [] }
        if state.ambiguous.isEmpty { state.ambiguous = [] }
        if let cache = view.resourceSetCache { state.known = cache.shared(known: state.known) }
        types[typeURL] = state
        recordSent(typeURL, nonce: nonce, version: view.version)
        if typeURL == TypeURL.cluster, !changedClusters.isEmpty, var endpoints = types[TypeURL.endpoint] {
            // A new or changed cluster warms until its ClusterLoadAssignment arrives again; resend the
            // assignments named like the changed clusters (the usual naming when no EDS service_name is set).
            let assignments = view.resources(typeURL: TypeURL.endpoint)
            for name in changedClusters where endpoints.subscription.covers(name) && assignments[name] != nil {
                endpoints.forced.insert(name)
                endpoints.dirty = true
            }
            types[TypeURL.endpoint] = endpoints
        }
        return response
    }

    /// TTL heartbeats: for every resource with a TTL that the proxy holds at the current version,
    /// an entry without a body that refreshes its TTL.
    mutating func pushHeartbeats() -> [StreamAction] {
        var actions: [StreamAction] = []
        for typeURL in typesInPushOrder {
            guard let state = types[typeURL], canSend(state) else { continue }
            let all = view.resources(typeURL: typeURL)
            let beats: [DeltaResource] = state.known.keys.sorted().compactMap { name in
                guard let resource = all[name], let ttl = resource.ttl, state.known[name] == resource.version else { return nil }
                return DeltaResource(name: name, version: resource.version, resource: nil, ttl: ttl)
            }
            guard !beats.isEmpty else { continue }
            let nonce = issueNonce()
            actions.append(.sendDelta(DeltaDiscoveryResponse(systemVersionInfo: view.version, resources: beats, typeURL: typeURL,
                                                             removedResources: [], nonce: nonce,
                                                             controlPlane: configuration.controlPlaneIdentifier)))
            recordSent(typeURL, nonce: nonce, version: view.version)
        }
        return actions
    }
}
