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
        guard let subscribedCount = types.read(typeURL, { $0.subscription.names.count }) else { return [] }
        let limit = configuration.limits.maxNamesPerType
        let requestedCount = subscribedCount + request.resourceNamesSubscribe.count
        guard requestedCount <= limit, request.initialResourceVersions.count <= limit else {
            return close(.resourceExhausted, "\(max(requestedCount, request.initialResourceVersions.count)) resource names for \(TypeURL.shortName(typeURL)); the limit is \(limit)")
        }
        // Moved out and stored back at the end (nothing in between reads this type's slot).
        guard var state = types.take(typeURL) else { return [] }
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
            state.syncedTarget = nil
            // Whatever is no longer subscribed leaves the proxy's cache without a message. (Only a
            // subscription change can do that: everything sent since was in scope.)
            let subscription = state.subscription
            state.known = state.known.filter { subscription.covers($0.key) || state.ambiguous.contains($0.key) }
            state.publishSubscription()
            shareSubscription(&state)
        }
        types.store(&state)
        return actions + pushPending()
    }

    /// What the proxy is missing for `state`: resources to (re)send and names to remove.
    /// `removalsOnly` skips looking for updates (the ADS removal phase, once every update is out).
    ///
    /// A stream up to date with a view (`syncedTarget`) holds exactly what every other such stream of the group
    /// holds, so its plan is the group's: nothing when the target did not change, else the step from the old target
    /// to the new one, planned by the first stream and shared (per stream, only forced names are added). Every
    /// stream walking its 50–100 names on each change and each ACK was most of delta's CPU per change.
    private func planDelta(_ state: TypeState, removalsOnly: Bool = false) -> DeltaPlan? {
        guard let synced = state.syncedTarget, let scope = deltaScope(state), let target = deltaTarget(state, scope),
              let cache = view.resourceSetCache else {
            return walkDelta(state, removalsOnly: removalsOnly)
        }
        var plan = DeltaPlan.none
        if synced != target.version {
            plan = cache.deltaStep(scope, from: synced) {
                var unforced = state
                unforced.forced = []
                unforced.owesInitialAnswer = false
                return walkDelta(unforced, removalsOnly: false) ?? .none
            }
        }
        if removalsOnly {
            plan.updates = []
        } else if !state.forced.isEmpty {
            let all = view.resources(typeURL: state.typeURL)
            let planned = Set(plan.updates.lazy.map(\.name))
            let extra = state.forced.compactMap { name in
                planned.contains(name) || !state.subscription.covers(name) ? nil : all[name]
            }
            if !extra.isEmpty { plan.updates = (plan.updates + extra).sorted { $0.name < $1.name } }
        }
        if plan.updates.isEmpty, plan.removals.isEmpty, !state.owesInitialAnswer { return nil }
        return plan
    }

    /// Which resources `state` follows, when its plan can be shared: a cache to share in, a wildcard without
    /// names or an explicit list, and no unsubscribed name whose fate the proxy still has to hear.
    private func deltaScope(_ state: TypeState) -> DeltaScope? {
        guard view.resourceSetCache != nil, state.ambiguous.isEmpty else { return nil }
        if state.subscription.wildcard {
            guard state.subscription.names.isEmpty else { return nil }
            return DeltaScope(typeURL: state.typeURL, wildcard: true, names: .none)
        }
        return DeltaScope(typeURL: state.typeURL, wildcard: false, names: state.names)
    }

    /// What a stream of `scope` holds once up to date with the current view.
    private func deltaTarget(_ state: TypeState, _ scope: DeltaScope) -> DeltaTarget? {
        if scope.wildcard {
            return DeltaTarget(version: view.contentVersion(typeURL: state.typeURL),
                               count: view.resources(typeURL: state.typeURL).count)
        }
        return view.resourceSetCache?.deltaTarget(typeURL: state.typeURL, names: scope.names) {
            let all = view.resources(typeURL: state.typeURL)
            let held = scope.names.sorted.compactMap { all[$0] }
            return DeltaTarget(version: ContentVersion.of(sortedByName: held), count: held.count)
        }
    }

    /// Whether `state` (just after a response, holding `knownCount` names) holds exactly its target and owes
    /// nothing: no forced or ambiguous name, no removal (it holds the target's count, and every subscribed name that does not exist was
    /// reported absent). Every response carries all the updates the view asked for (see `pushDelta`), so counts suffice.
    private func isSynced(_ state: TypeState, _ scope: DeltaScope, _ target: DeltaTarget, knownCount: Int) -> Bool {
        guard state.forced.isEmpty, state.ambiguous.isEmpty, !state.owesInitialAnswer, knownCount == target.count else {
            return false
        }
        return scope.wildcard || state.reportedAbsent.count + target.count == state.subscription.names.count
    }

    /// Walks every name `state` follows: the plan of a stream that is not up to date with a view it shares.
    private func walkDelta(_ state: TypeState, removalsOnly: Bool) -> DeltaPlan? {
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
        return DeltaPlan(updates: updates.sorted { $0.name < $1.name }, removals: removals.sorted())
    }

    mutating func pushDelta() -> [StreamAction] {
        // Plans are computed as the loop reaches each type: sending clusters can owe endpoints.
        var actions: [StreamAction] = []
        guard isAggregated else {
            for typeURL in typesInPushOrder {
                guard needsPlan(typeURL), types.read(typeURL, { canSend($0) }) == true,
                      let (planned, _) = plan(typeURL, removalsOnly: false), let plan = planned else { continue }
                actions.append(.sendDelta(emitDelta(typeURL, updates: plan.updates, removals: plan.removals)))
            }
            return actions
        }
        // Phase 1: additions and changes, in make-before-break order.
        var held = false
        for typeURL in typesInPushOrder {
            guard needsPlan(typeURL), let (planned, sendable) = plan(typeURL, removalsOnly: false) else { continue }
            guard let plan = planned else { continue }
            let initialAnswerOnly = plan.updates.isEmpty && plan.removals.isEmpty
            guard !plan.updates.isEmpty || initialAnswerOnly else { continue }
            guard sendable, !held else {
                held = true
                continue
            }
            actions.append(.sendDelta(emitDelta(typeURL, updates: plan.updates, removals: [])))
        }
        // Phase 2: removals, only once no addition or change is left waiting, referrers first.
        guard !held else { return actions }
        for typeURL in typesInRemovalOrder {
            guard needsPlan(typeURL), let (planned, sendable) = plan(typeURL, removalsOnly: true),
                  let plan = planned, !plan.removals.isEmpty else { continue }
            guard sendable else { break }
            actions.append(.sendDelta(emitDelta(typeURL, updates: [], removals: plan.removals)))
        }
        return actions
    }

    /// Plans one type (nil for a type not requested) and says whether it may be sent now; a type with nothing to
    /// send is marked clean (unless only removals were looked for). The state is moved out and back: planning it in
    /// place in the array would copy it, every reference it holds retained and released.
    private mutating func plan(_ typeURL: String, removalsOnly: Bool) -> (DeltaPlan?, sendable: Bool)? {
        guard var state = types.take(typeURL) else { return nil }
        let plan = planDelta(state, removalsOnly: removalsOnly)
        if plan == nil && !removalsOnly { state.dirty = false }
        let sendable = canSend(state)
        types.store(&state)
        return (plan, sendable)
    }

    private mutating func emitDelta(_ typeURL: String, updates: [VersionedResource], removals: [String]) -> DeltaDiscoveryResponse {
        let nonce = issueNonce()
        let response = DeltaDiscoveryResponse(
            systemVersionInfo: view.version,
            resources: updates.map { DeltaResource(name: $0.name, version: $0.version,
                                                   resource: AnyResource(typeURL: typeURL, value: $0.body), ttl: $0.ttl) },
            typeURL: typeURL, removedResources: removals, nonce: nonce, controlPlane: configuration.controlPlaneIdentifier)
        // Moved out and stored back below (nothing in between reads this type's slot).
        guard var state = types.take(typeURL) else { return response }
        var changedClusters: [String] = []
        var heldAfter = state.known.count
        for resource in updates {
            let held = state.known[resource.name]
            if held != resource.version { changedClusters.append(resource.name) }
            if held == nil { heldAfter += 1 }
            if !state.forced.isEmpty { state.forced.remove(resource.name) }
            if !state.ambiguous.isEmpty { state.ambiguous.remove(resource.name) }
            if !state.reportedAbsent.isEmpty { state.reportedAbsent.remove(resource.name) }
        }
        for name in removals {
            if state.known[name] != nil { heldAfter -= 1 }
            state.forced.remove(name)
            state.ambiguous.remove(name)
            if state.subscription.names.contains(name) { state.reportedAbsent.insert(name) }
        }
        func applied(to known: [String: String]) -> [String: String] {
            var known = known
            for resource in updates { known[resource.name] = resource.version }
            for name in removals { known.removeValue(forKey: name) }
            return known
        }
        state.owesInitialAnswer = false
        // Emptied sets keep their capacity (a first subscription forces every name) for the stream's life.
        if state.forced.isEmpty { state.forced = [] }
        if state.ambiguous.isEmpty { state.ambiguous = [] }
        state.syncedTarget = nil
        if let cache = view.resourceSetCache, let scope = deltaScope(state), let target = deltaTarget(state, scope),
           isSynced(state, scope, target, knownCount: heldAfter) {
            // Up to date: the stream takes the group's pooled map as it is, rather than updating a copy of its own
            // (the first stream up to date with this target pools its own).
            let previous = state.known
            state.known = cache.pooledKnown(scope, target: target.version) ?? cache.pooledKnown(scope, target: target.version, applied(to: previous))
            state.syncedTarget = target.version
            assert(state.known == applied(to: previous) && walkDelta(state, removalsOnly: false) == nil,
                   "a delta stream counted as up to date holds other versions than its own responses gave it, or owes something")
        } else {
            for resource in updates { state.known[resource.name] = resource.version }
            for name in removals { state.known.removeValue(forKey: name) }
        }
        types.store(&state)
        recordSent(typeURL, nonce: nonce, version: view.version)
        if TypeURL.same(typeURL, TypeURL.cluster), !changedClusters.isEmpty { oweAssignments(view.assignments(ofClusters: changedClusters)) }
        return response
    }

    /// TTL heartbeats: for every resource with a TTL that the proxy holds at the current version,
    /// an entry without a body that refreshes its TTL.
    mutating func pushHeartbeats() -> [StreamAction] {
        var actions: [StreamAction] = []
        for typeURL in typesInPushOrder {
            let all = view.resources(typeURL: typeURL)
            let beats: [DeltaResource] = types.read(typeURL) { state in
                guard canSend(state) else { return [] }
                return state.known.keys.sorted().compactMap { name in
                    guard let resource = all[name], let ttl = resource.ttl, state.known[name] == resource.version else { return nil }
                    return DeltaResource(name: name, version: resource.version, resource: nil, ttl: ttl)
                }
            } ?? []
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
