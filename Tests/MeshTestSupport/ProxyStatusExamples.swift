// A stream machine's per-type status in a given state, for tests of what is built from it (CSDS answers, the
// registry, rollout reports): the nonces and versions that make `ProxyStatus.verdict` say `verdict`.
import Foundation
import XDSProtocol
import XDSWire

extension ProxyStatus {
    public static func example(_ typeURL: String, _ verdict: SyncVerdict, versionSent: String = "1", snapshot: String? = nil,
                               versionAcked: String? = nil, nack: String? = nil) -> ProxyStatus {
        var status = ProxyStatus(typeURL: typeURL)
        status.wildcard = true
        switch verdict {
        case .notSent:
            return status
        case .synced:
            status.nonceSent = "2"
            status.nonceAcked = "2"
            status.versionAcked = versionAcked ?? versionSent
        case .stale:
            status.nonceSent = "2"
            status.nonceAcked = "1"
            status.versionAcked = versionAcked
        case .nacked:
            status.nonceSent = "2"
            status.nonceAcked = "1"
            status.versionAcked = versionAcked
        }
        status.versionSent = versionSent
        status.snapshotVersionSent = snapshot ?? versionSent
        if let nack = nack ?? (verdict == .nacked ? "rejected" : nil) {
            status.lastNack = NackRecord(typeURL: typeURL, rejectedVersion: versionSent, nonce: verdict == .nacked ? "2" : "0",
                                         proxyVersion: versionAcked ?? "", errorDetail: Status(code: 3, message: nack),
                                         at: WallClockTime(nanosecondsSinceEpoch: 0), stale: false)
        }
        return status
    }
}
