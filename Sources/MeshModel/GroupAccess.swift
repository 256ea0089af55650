// Which proxy identities may receive which proxy group. The compiler writes one
// access record per group into the snapshot (from Configs/mesh.yaml), so access
// changes ship, version and roll back together with the configuration itself.
import Foundation

/// The identities allowed to receive one proxy group's configuration.
public struct GroupAccess: Codable, Sendable, Equatable {
    /// The snapshot resource type that carries access records (never sent to proxies).
    public static let typeURL = "type.meshctl.dev/meshctl.GroupAccess"

    public var group: String
    /// SPIFFE IDs or `cn:NAME`; a trailing `*` matches any suffix.
    public var identities: [String]
    /// Node id patterns (trailing `*` allowed); empty means any node id.
    public var nodeIDs: [String]
    /// The group's `xds` setting in mesh.yaml (a `SubscriptionMode` raw value), so `meshctl bootstrap --store`
    /// can match it; nil for the default (ADS), which keeps default groups' records as they were.
    public var xds: String?

    public init(group: String, identities: [String], nodeIDs: [String] = [], xds: SubscriptionMode? = nil) {
        self.group = group
        self.identities = identities
        self.nodeIDs = nodeIDs
        self.xds = xds == .adsStateOfTheWorld ? nil : xds?.rawValue
    }

    /// How the group's proxies must subscribe; nil when the record names a mode this build does not know.
    public var subscriptionMode: SubscriptionMode? {
        guard let xds else { return .adsStateOfTheWorld }
        return SubscriptionMode(rawValue: xds)
    }

    enum CodingKeys: String, CodingKey {
        case group, identities, xds
        case nodeIDs = "node_ids"
    }

    /// True when a proxy with this verified identity (SPIFFE URI SANs and CN) and node id may receive the group.
    public func admits(uris: [String], commonName: String?, nodeID: String) -> Bool {
        let names = uris + (commonName.map { ["cn:" + $0] } ?? [])
        let identityOK = identities.contains { pattern in names.contains { Self.matches(pattern, $0) } }
        let nodeOK = nodeIDs.isEmpty || nodeIDs.contains { Self.matches($0, nodeID) }
        return identityOK && nodeOK
    }

    static func matches(_ pattern: String, _ value: String) -> Bool {
        if pattern.hasSuffix("*") { return value.hasPrefix(pattern.dropLast()) }
        return pattern == value
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }

    public static func decode(_ bytes: [UInt8]) -> GroupAccess? {
        try? JSONDecoder().decode(GroupAccess.self, from: Data(bytes))
    }
}
