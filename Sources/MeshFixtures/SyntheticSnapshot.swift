// Deterministic made-up snapshots for tests, the crash test hook and the benchmark: resource
// bodies are pseudo-random bytes (the store does not look inside them).
import SnapshotStorage
import XDSProtocol

/// Builds snapshots shaped like a mesh of N services without needing the compiler.
public enum SyntheticSnapshot {
    public static let clusterType = TypeURL.cluster
    public static let endpointType = TypeURL.endpoint
    public static let routeType = TypeURL.route
    public static let listenerType = TypeURL.listener

    /// One group ("mesh") with a cluster and a ClusterLoadAssignment per service, one route
    /// configuration per 100 services and two listeners. `revisions[i]` changes service i's
    /// cluster body; `seed` changes everything.
    public static func groups(services: Int, seed: UInt64 = 1, revisions: [Int: Int] = [:], group: String = "mesh") -> [ProxyGroupResources] {
        var resources: [Resource] = []
        resources.reserveCapacity(services * 2 + services / 100 + 3)
        for i in 0..<services {
            let name = "svc-\(i)"
            let revision = UInt64(revisions[i] ?? 0)
            resources.append(Resource(typeURL: clusterType, name: name, body: bytes(seed: seed, salt: 1, index: i, revision: revision, count: 300 + i % 200)))
            resources.append(Resource(typeURL: endpointType, name: name, body: bytes(seed: seed, salt: 2, index: i, revision: 0, count: 200 + i % 100)))
        }
        for r in 0..<max(1, services / 100) {
            resources.append(Resource(typeURL: routeType, name: "routes-\(r)", body: bytes(seed: seed, salt: 3, index: r, revision: 0, count: 600)))
        }
        for l in 0..<2 {
            resources.append(Resource(typeURL: listenerType, name: "listener-\(l)", body: bytes(seed: seed, salt: 4, index: l, revision: 0, count: 400)))
        }
        return [ProxyGroupResources(group: group, resources: resources)]
    }

    /// SplitMix64 bytes: fast, deterministic, incompressible enough to behave like real encodings.
    static func bytes(seed: UInt64, salt: UInt64, index: Int, revision: UInt64, count: Int) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 ^ salt &* 0xBF58_476D_1CE4_E5B9 ^ UInt64(index) &* 0x94D0_49BB_1331_11EB ^ revision &* 0x2545_F491_4F6C_DD1D
        var out = [UInt8]()
        out.reserveCapacity(count + 8)
        while out.count < count {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            withUnsafeBytes(of: z.littleEndian) { out.append(contentsOf: $0) }
        }
        return Array(out.prefix(count))
    }
}
