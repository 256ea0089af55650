// What the rollout's leader knows of proxies connected to other replicas: each replica reports its
// own streams (per proxy: how many, and each type's status against the version it was last sent),
// the leader merges the reports of live replicas with its own streams into one view of the fleet,
// and turns the difference between the view it has fed the machine and the new one into machine
// events. Pure: reports in, view and events out; the controller does the store I/O.
import Foundation

/// One type of one proxy as a replica saw it on its stream.
public struct TypeObservation: Codable, Sendable, Equatable {
    public var sync: TypeSync
    /// The version of the latest response on this type (nil: nothing sent yet).
    public var sentVersion: String?
    /// When the latest response was ACKed (ms since 1970).
    public var ackedAt: Int64?
    /// Envoy's error detail when the latest response was rejected.
    public var rejection: String?

    public init(sync: TypeSync, sentVersion: String?, ackedAt: Int64?, rejection: String?) {
        self.sync = sync
        self.sentVersion = sentVersion
        self.ackedAt = ackedAt
        self.rejection = rejection
    }

    /// How bad it is: a rejection outweighs a pending response, which outweighs an ACK.
    var severity: Int {
        switch sync {
        case .rejected: 2
        case .pending: 1
        case .synced: 0
        }
    }

    /// Of two observations of the same type (two streams, or two replicas during a reconnect): the worse one,
    /// or the later ACK when they are equally good.
    public static func worse(_ a: TypeObservation, _ b: TypeObservation) -> TypeObservation {
        if a.severity != b.severity { return a.severity > b.severity ? a : b }
        return (a.ackedAt ?? 0) >= (b.ackedAt ?? 0) ? a : b
    }
}

/// One proxy's streams on one replica.
public struct ProxyReport: Codable, Sendable, Equatable {
    public var proxy: ProxyKey
    public var streams: Int
    public var types: [String: TypeObservation]

    public init(proxy: ProxyKey, streams: Int, types: [String: TypeObservation]) {
        self.proxy = proxy
        self.streams = streams
        self.types = types
    }
}

/// What one replica writes to the store: every proxy connected to it.
public struct ReplicaReport: Codable, Sendable, Equatable {
    public var replica: String
    public var proxies: [ProxyReport]

    public init(replica: String, proxies: [ProxyReport]) {
        self.replica = replica
        self.proxies = proxies.sorted { $0.proxy < $1.proxy }
    }

    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)) ?? Data()
    }

    public static func decode(_ data: Data) -> ReplicaReport? { try? JSONDecoder().decode(ReplicaReport.self, from: data) }
}

/// One proxy across the fleet.
public struct RolloutFleetProxy: Sendable, Equatable {
    /// Streams per replica.
    public var streams: [String: Int]
    /// Each type, the worse observation where several streams carry it.
    public var types: [String: TypeObservation]

    public var streamCount: Int { streams.values.reduce(0, +) }

    public init(streams: [String: Int], types: [String: TypeObservation]) {
        self.streams = streams
        self.types = types
    }
}

/// An event for the rollout machine, derived from two views of the fleet.
public enum RolloutFleetEvent: Sendable, Equatable {
    /// One more stream of the proxy.
    case connected(ProxyKey)
    /// One stream fewer: the proxy closed it (a crash counts against the rollout).
    case disconnected(ProxyKey)
    /// One stream fewer because the replica holding it stopped or stopped reporting: not the proxy's doing.
    case lost(ProxyKey)
    /// A type's status changed.
    case typeStatus(ProxyKey, typeURL: String, TypeObservation)
}

/// Every proxy of the fleet, merged from the replicas' reports.
public struct RolloutFleetView: Sendable, Equatable {
    public var proxies: [ProxyKey: RolloutFleetProxy] = [:]
    /// The replicas whose reports are in the view.
    public var replicas: Set<String> = []

    public init() {}

    /// Merges `reports` (with how long ago each replica last reported) into one view; a replica silent for longer
    /// than `expiryMilliseconds` is left out (it died or lost the store: its proxies are reconnecting elsewhere).
    public static func merge(_ reports: [(report: ReplicaReport, ageMilliseconds: Int64)], expiryMilliseconds: Int64) -> RolloutFleetView {
        var view = RolloutFleetView()
        for (report, age) in reports where age <= expiryMilliseconds {
            view.replicas.insert(report.replica)
            for proxy in report.proxies where proxy.streams > 0 {
                var entry = view.proxies[proxy.proxy] ?? RolloutFleetProxy(streams: [:], types: [:])
                entry.streams[report.replica, default: 0] += proxy.streams
                for (type, observation) in proxy.types {
                    entry.types[type] = entry.types[type].map { TypeObservation.worse($0, observation) } ?? observation
                }
                view.proxies[proxy.proxy] = entry
            }
        }
        return view
    }

    /// The view with streams only (what a new machine is told at its start).
    public var withoutTypes: RolloutFleetView {
        var copy = self
        for key in copy.proxies.keys { copy.proxies[key]!.types = [:] }
        return copy
    }

    /// Each proxy once per stream (the machine's `connected` list).
    public var connectedStreams: [ProxyKey] {
        proxies.keys.sorted().flatMap { key in Array(repeating: key, count: proxies[key]!.streamCount) }
    }

    /// The events that take a machine fed `old` to `self`. Order is a function of the views alone (proxies in
    /// canary order within a group, so proxies joining together are admitted the same way by any leader): per
    /// proxy, new streams first, then type changes, then closed streams. Streams of a replica that left the view
    /// are `lost`, not `disconnected`.
    public func events(since old: RolloutFleetView) -> [RolloutFleetEvent] {
        let keys = Set(proxies.keys).union(old.proxies.keys).sorted {
            ($0.group, RolloutMachine.fnv1a($0.node), $0.node) < ($1.group, RolloutMachine.fnv1a($1.node), $1.node)
        }
        var events: [RolloutFleetEvent] = []
        for key in keys {
            let before = old.proxies[key] ?? RolloutFleetProxy(streams: [:], types: [:])
            let after = proxies[key] ?? RolloutFleetProxy(streams: [:], types: [:])
            var closed: [RolloutFleetEvent] = []
            for replica in Set(before.streams.keys).union(after.streams.keys).sorted() {
                let delta = (after.streams[replica] ?? 0) - (before.streams[replica] ?? 0)
                if delta > 0 { events += Array(repeating: .connected(key), count: delta) }
                if delta < 0 {
                    let gone: RolloutFleetEvent = replicas.contains(replica) ? .disconnected(key) : .lost(key)
                    closed += Array(repeating: gone, count: -delta)
                }
            }
            if after.streamCount > 0 {
                for type in after.types.keys.sorted() where after.types[type] != before.types[type] {
                    events.append(.typeStatus(key, typeURL: type, after.types[type]!))
                }
            }
            // The lost ones first: a proxy whose replica died and which also closed a stream elsewhere is judged
            // on the stream it closed itself.
            events += closed.filter { if case .lost = $0 { return true } else { return false } }
            events += closed.filter { if case .disconnected = $0 { return true } else { return false } }
        }
        return events
    }
}

extension RolloutMachine {
    /// Feeds one fleet event to the machine.
    public mutating func apply(_ event: RolloutFleetEvent, now: Int64) -> [RolloutChange] {
        switch event {
        case .connected(let proxy):
            connected(proxy, now: now)
            return []
        case .disconnected(let proxy):
            return disconnected(proxy, now: now)
        case .lost(let proxy):
            lost(proxy, now: now)
            return []
        case .typeStatus(let proxy, let typeURL, let observation):
            let progress = TypeProgress(sync: observation.sync, targetSent: observation.sentVersion == state.target, ackedAt: observation.ackedAt)
            return typeStatus(proxy, typeURL: typeURL, progress, rejection: observation.rejection, now: now)
        }
    }
}
