// How a new snapshot reaches one proxy group's proxies: in waves, each gated on ACKs and a
// bake time. The compiler writes one policy record per group into the snapshot (like the
// access record), so the server that serves a version knows how to roll it out, and a
// policy change ships, versions and rolls back with the configuration. A group with no
// record is rolled out at once (`immediate`, the default).
import Foundation

/// One group's progressive rollout policy (mesh.yaml `rollout:`, overridable per group).
public struct RolloutPolicy: Codable, Sendable, Equatable {
    /// The snapshot resource type that carries rollout policies (never sent to proxies).
    public static let typeURL = "type.meshctl.dev/meshctl.RolloutPolicy"

    /// One wave's size: a number of proxies or a percentage of the group, cumulative.
    public enum WaveSize: Sendable, Equatable, CustomStringConvertible {
        case proxies(Int)
        case percent(Int)

        public var description: String {
            switch self {
            case .proxies(let n): "\(n)"
            case .percent(let p): "\(p)%"
            }
        }

        /// `3` or `25%`; nil for anything else.
        public init?(text: String) {
            if text.hasSuffix("%") {
                guard let p = Int(text.dropLast()), p >= 0 else { return nil }
                self = .percent(p)
            } else {
                guard let n = Int(text), n >= 0 else { return nil }
                self = .proxies(n)
            }
        }

        /// How many of `groupSize` proxies have received the version once this wave started.
        public func cumulativeCount(of groupSize: Int) -> Int {
            switch self {
            case .proxies(let n): min(n, groupSize)
            case .percent(let p): min(groupSize, (groupSize * p + 99) / 100)
            }
        }
    }

    /// What the server does when a wave fails.
    public enum FailureAction: String, Codable, Sendable, CaseIterable {
        /// Move the live pointer back to the previous version; every proxy returns to it.
        case rollback
        /// Stop where it is: proxies keep what they have until an operator promotes or aborts.
        case halt
    }

    /// An external check asked at the end of each wave's bake: an HTTP GET that must answer 2xx within `timeout`
    /// (e.g. a service that runs a Prometheus query of error rates). Any other answer, or none, fails the wave.
    public struct Gate: Codable, Sendable, Equatable {
        public var url: String
        public var timeoutMilliseconds: Int64

        public init(url: String, timeoutMilliseconds: Int64) {
            self.url = url
            self.timeoutMilliseconds = timeoutMilliseconds
        }

        enum CodingKeys: String, CodingKey { case url, timeoutMilliseconds = "timeout_ms" }
    }

    public var waves: [WaveSize]
    /// How long every proxy of a wave must stay connected after ACKing before the next wave starts.
    public var bakeMilliseconds: Int64
    /// How long a proxy may take to ACK every changed type before its silence fails the wave.
    public var ackTimeoutMilliseconds: Int64
    public var onFailure: FailureAction
    public var gate: Gate?

    public static let defaultAckTimeoutMilliseconds: Int64 = 10_000

    public init(waves: [WaveSize], bakeMilliseconds: Int64, ackTimeoutMilliseconds: Int64 = defaultAckTimeoutMilliseconds,
                onFailure: FailureAction = .rollback, gate: Gate? = nil) {
        self.waves = waves
        self.bakeMilliseconds = bakeMilliseconds
        self.ackTimeoutMilliseconds = ackTimeoutMilliseconds
        self.onFailure = onFailure
        self.gate = gate
    }

    /// What is wrong with the waves, as one sentence per problem (empty when they are usable): they must grow,
    /// percentages are at most 100, and the last wave reaches the whole group (100%).
    public static func problems(of waves: [WaveSize]) -> [(index: Int, message: String)] {
        var problems: [(Int, String)] = []
        if waves.isEmpty { return [(0, "waves must list at least one wave and end at 100%")] }
        var lastPercent = -1, lastCount = -1
        for (i, wave) in waves.enumerated() {
            switch wave {
            case .percent(let p):
                if p > 100 { problems.append((i, "wave \(wave) is more than 100% of the group")) }
                else if p == 0 { problems.append((i, "wave 0% reaches no proxy; drop it")) }
                else if p <= lastPercent { problems.append((i, "wave \(wave) does not grow past the wave before it (\(lastPercent)%); waves are cumulative and must increase")) }
                lastPercent = max(lastPercent, p)
            case .proxies(let n):
                if n == 0 { problems.append((i, "wave 0 reaches no proxy; drop it")) }
                else if n <= lastCount { problems.append((i, "wave \(n) does not grow past the wave before it (\(lastCount)); waves are cumulative and must increase")) }
                else if lastPercent >= 0 { problems.append((i, "wave \(n) (a number of proxies) follows a percentage; list numbers first, then percentages")) }
                lastCount = max(lastCount, n)
            }
        }
        if waves.last != .percent(100) {
            problems.append((waves.count - 1, "the last wave is \(waves.last!), not 100%; end the waves at 100% so every proxy gets the version"))
        }
        return problems
    }

    /// Cumulative counts per wave for a group of `groupSize` proxies: non-decreasing, the first wave at least one
    /// proxy when the group has any, the last the whole group.
    public func cumulativeCounts(groupSize: Int) -> [Int] {
        var counts: [Int] = []
        for (i, wave) in waves.enumerated() {
            var count = wave.cumulativeCount(of: groupSize)
            if i == 0 && groupSize > 0 { count = max(1, count) }
            if i == waves.count - 1 { count = groupSize }
            counts.append(max(count, counts.last ?? 0))
        }
        return counts
    }

    enum CodingKeys: String, CodingKey {
        case waves, bake = "bake_ms", ackTimeout = "ack_timeout_ms", onFailure = "on_failure", gate
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let texts = try c.decode([String].self, forKey: .waves)
        waves = try texts.map { text in
            guard let wave = WaveSize(text: text) else {
                throw DecodingError.dataCorruptedError(forKey: .waves, in: c, debugDescription: "wave '\(text)' is neither a number nor a percentage")
            }
            return wave
        }
        bakeMilliseconds = try c.decode(Int64.self, forKey: .bake)
        ackTimeoutMilliseconds = try c.decodeIfPresent(Int64.self, forKey: .ackTimeout) ?? Self.defaultAckTimeoutMilliseconds
        onFailure = try c.decode(FailureAction.self, forKey: .onFailure)
        gate = try c.decodeIfPresent(Gate.self, forKey: .gate)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(waves.map(\.description), forKey: .waves)
        try c.encode(bakeMilliseconds, forKey: .bake)
        try c.encode(ackTimeoutMilliseconds, forKey: .ackTimeout)
        try c.encode(onFailure, forKey: .onFailure)
        try c.encodeIfPresent(gate, forKey: .gate)
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> RolloutPolicy? {
        try? JSONDecoder().decode(RolloutPolicy.self, from: Data(bytes))
    }

    /// "waves 1, 10%, 100%; bake 30s; on failure rollback", for people.
    public var summary: String {
        "waves \(waves.map(\.description).joined(separator: ", ")); bake \(Self.seconds(bakeMilliseconds)); on failure \(onFailure.rawValue)"
            + (gate.map { "; gate \($0.url)" } ?? "")
    }

    public static func seconds(_ ms: Int64) -> String {
        ms % 1000 == 0 ? "\(ms / 1000)s" : String(format: "%.3gs", Double(ms) / 1000)
    }
}
