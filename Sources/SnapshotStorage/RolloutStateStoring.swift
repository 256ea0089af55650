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
        // Names sort in submission order: milliseconds, then the process, then a random tail against collisions.
        let name = String(format: "%015lld-%d-%08x.json", Int64(request.time.timeIntervalSince1970 * 1000), getpid(), UInt32.random(in: 0...UInt32.max))
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
