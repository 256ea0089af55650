// What a progressive rollout keeps in the store, beside the snapshots: the rollout's state
// (written by the server that runs it, so a restarted server or another replica continues the
// same plan) and operators' requests (pause, resume, promote, abort), which `meshctl rollout`
// leaves for the server to take. A separate protocol, so a backend adds it without touching
// `SnapshotStoring`; the state is opaque bytes here (the store knows no rollout semantics).
import Foundation

/// An operator's request to the server running a rollout.
public struct RolloutRequest: Codable, Sendable, Equatable {
    /// pause, resume, promote or abort.
    public var action: String
    /// Who asked (required: recorded in the rollout and in history).
    public var by: String
    public var reason: String?
    /// The rollout it is meant for (its target version), so a request cannot act on a later rollout by accident.
    public var target: String
    public var time: Date

    public init(action: String, by: String, reason: String?, target: String, time: Date = Date()) {
        self.action = action
        self.by = by
        self.reason = reason
        self.target = target
        self.time = time
    }
}

/// A store that also keeps rollout state and requests.
public protocol RolloutStateStoring: Sendable {
    /// The latest rollout state saved, or nil when no rollout ever ran.
    func loadRolloutState() throws(SnapshotStoreError) -> Data?
    /// Replaces the saved state (atomically: a reader sees the old or the new state, never a mix).
    func saveRolloutState(_ state: Data) throws(SnapshotStoreError)
    /// Leaves a request for the server.
    func submitRolloutRequest(_ request: RolloutRequest) throws(SnapshotStoreError)
    /// Takes every waiting request, oldest first (each is returned once).
    func takeRolloutRequests() throws(SnapshotStoreError) -> [RolloutRequest]
    /// How many requests wait to be taken.
    func pendingRolloutRequestCount() throws(SnapshotStoreError) -> Int
    /// Appends a record the rollout makes about the store's versions (e.g. a queued publish collapsed) to history.
    func recordRolloutHistory(_ event: HistoryEvent) throws(SnapshotStoreError)
}

/// The lease that makes one replica of a shared store the rollout's leader, as the store answered a claim.
public struct RolloutLease: Sendable, Equatable {
    /// Who holds it now (possibly the claimant).
    public var holder: String
    /// Incremented each time the lease changes hands: writes are fenced by it.
    public var term: Int64
    /// How long it stays valid without a renewal, by the store's clock.
    public var remainingMilliseconds: Int64

    public init(holder: String, term: Int64, remainingMilliseconds: Int64) {
        self.holder = holder
        self.term = term
        self.remainingMilliseconds = remainingMilliseconds
    }
}

/// One replica's report of its proxies, as the store holds it.
public struct ReplicaReportRow: Sendable, Equatable {
    public var replica: String
    /// Incremented on every new report body.
    public var revision: Int64
    /// Time since the replica last wrote or touched its report, by the store's clock.
    public var ageMilliseconds: Int64
    /// The report; nil when the caller already has this revision.
    public var body: Data?

    public init(replica: String, revision: Int64, ageMilliseconds: Int64, body: Data?) {
        self.replica = replica
        self.revision = revision
        self.ageMilliseconds = ageMilliseconds
        self.body = body
    }
}

/// A store several `meshctl serve` replicas share (PostgreSQL): one of them leads each rollout under a lease, the
/// others report their proxies' streams to it and follow the state it saves. Every call is atomic in the store.
public protocol RolloutCoordinating: RolloutStateStoring {
    /// Takes the lease when it is free or expired, or renews it when `replica` holds it; returns who holds it after.
    func claimRolloutLease(replica: String, ttlMilliseconds: Int64) throws(SnapshotStoreError) -> RolloutLease
    /// Gives the lease up at once when `replica` holds it (a replica that stops), so another takes over without waiting.
    func releaseRolloutLease(replica: String) throws(SnapshotStoreError)
    /// Who leads now, without claiming (nil: no replica holds an unexpired lease) — for operators.
    func currentRolloutLease() throws(SnapshotStoreError) -> RolloutLease?
    /// Saves the state when `replica` still holds the lease of `term` (false: it does not; nothing was written).
    func saveRolloutState(_ state: Data, replica: String, term: Int64) throws(SnapshotStoreError) -> Bool
    /// The saved state when its revision is newer than `revision` (nil: unchanged, or none saved).
    func loadRolloutState(newerThan revision: Int64) throws(SnapshotStoreError) -> (revision: Int64, state: Data)?
    /// Replaces `replica`'s report (and marks it alive).
    func saveReplicaReport(replica: String, report: Data) throws(SnapshotStoreError)
    /// Marks `replica`'s report alive without changing it; false when it has none (write one then).
    func touchReplicaReport(replica: String) throws(SnapshotStoreError) -> Bool
    /// Removes `replica`'s report (a replica that stops: its streams are gone, not failed).
    func removeReplicaReport(replica: String) throws(SnapshotStoreError)
    /// Every replica's report; bodies only for replicas whose revision differs from `known`.
    func replicaReports(known: [String: Int64]) throws(SnapshotStoreError) -> [ReplicaReportRow]
    /// Removes reports not touched for `olderThanMilliseconds` (replicas that died); returns how many.
    func pruneReplicaReports(olderThanMilliseconds: Int64) throws(SnapshotStoreError) -> Int
    /// The same store over its own connection, so the rollout's frequent small calls never wait behind a snapshot load.
    func rolloutCoordinator() throws(SnapshotStoreError) -> any RolloutCoordinating
}

extension SnapshotStore: RolloutStateStoring {
    var rolloutDirectory: String { directory + "/rollout" }
    var rolloutStatePath: String { rolloutDirectory + "/state.json" }
    var rolloutRequestsDirectory: String { rolloutDirectory + "/requests" }

    public func loadRolloutState() throws(SnapshotStoreError) -> Data? {
        guard try checkReadable(), fs.status(rolloutStatePath) != nil else { return nil }
        return Data(try io { () throws(FileSystemError) in try fs.readFile(rolloutStatePath, limit: 64 << 20) })
    }

    public func saveRolloutState(_ state: Data) throws(SnapshotStoreError) {
        try writeAtomically(Array(state), to: rolloutStatePath)
    }

    public func submitRolloutRequest(_ request: RolloutRequest) throws(SnapshotStoreError) {
        guard try checkReadable() else { throw .noCurrentVersion }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        let bytes = Array((try? encoder.encode(request)) ?? Data())
        // Names sort in submission order: milliseconds, then the process, then its monotonic clock (requests of one
        // process within one millisecond), then a random tail against collisions.
        let name = String(format: "%015lld-%d-%016llx-%04x.json", Int64(request.time.timeIntervalSince1970 * 1000), getpid(),
                          DispatchTime.now().uptimeNanoseconds, UInt32.random(in: 0...0xffff))
        try writeAtomically(bytes, to: rolloutRequestsDirectory + "/" + name)
    }

    public func takeRolloutRequests() throws(SnapshotStoreError) -> [RolloutRequest] {
        guard fs.status(rolloutRequestsDirectory) != nil else { return [] }
        let names = try io { () throws(FileSystemError) in try fs.listDirectory(rolloutRequestsDirectory) }.filter { $0.hasSuffix(".json") }.sorted()
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        var requests: [RolloutRequest] = []
        for name in names {
            let path = rolloutRequestsDirectory + "/" + name
            let bytes = try io { () throws(FileSystemError) in try fs.readFile(path, limit: 1 << 20) }
            try io { () throws(FileSystemError) in try fs.removeFile(path) }
            if let request = try? decoder.decode(RolloutRequest.self, from: Data(bytes)) { requests.append(request) }
        }
        return requests
    }

    public func pendingRolloutRequestCount() throws(SnapshotStoreError) -> Int {
        guard fs.status(rolloutRequestsDirectory) != nil else { return 0 }
        return try io { () throws(FileSystemError) in try fs.listDirectory(rolloutRequestsDirectory) }.filter { $0.hasSuffix(".json") }.count
    }

    public func recordRolloutHistory(_ event: HistoryEvent) throws(SnapshotStoreError) {
        let lock = try lockForWriting(purpose: "rollout history")
        defer { withExtendedLifetime(lock) {} }
        try appendHistory(event, session: WriteSession())
    }

    /// Writes `bytes` to a temporary name and renames it into place, creating the rollout directories on first use.
    private func writeAtomically(_ bytes: [UInt8], to path: String) throws(SnapshotStoreError) {
        try io { () throws(FileSystemError) in
            for dir in [rolloutDirectory, rolloutRequestsDirectory] where fs.status(dir) == nil { try fs.createDirectory(dir) }
            let temporary = "\(temporaryDirectory)/rollout-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            try fs.writeNewFile(temporary, bytes, sync: true)
            try fs.rename(temporary, path)
            try fs.syncDirectory((path as NSString).deletingLastPathComponent)
        }
    }
}
