// The server's observer seam (go-control-plane's `server.Callbacks`): every xDS stream
// reports what happened to it — refused, opened, response sent, ACK, NACK, status
// changed, closed — and observers count, log and record. The server itself knows
// no metrics system and no log format; the proxy registry is one observer among others.
import Foundation
import MeshModel
import Transport
import XDSCache
import XDSProtocol

/// Why a stream was refused before its proxy was admitted.
public enum XDSStreamRefusal: Sendable, Hashable {
    /// The node names a proxy group the served snapshot does not have.
    case unknownGroup(nodeID: String, group: String, snapshotVersion: String)
    /// The peer's verified identity may not use `service` ("xds": receive `group`; "csds": read proxy status).
    case permissionDenied(service: String, nodeID: String?, group: String, identity: String, peer: String)
    /// The group is compiled for per-type streams and the stream is ADS, or the other way round: its resources name
    /// config sources the proxy does not have (a proxyless gRPC client speaks ADS only).
    case modeMismatch(nodeID: String, group: String, groupMode: SubscriptionMode, streamMode: SubscriptionMode)
}

/// Receives every stream event of an `XDSService`. Called on the stream's event loop, from many loops
/// at once: implementations must be thread-safe and quick. Every method has an empty default.
public protocol XDSServerObserver: AnyObject, Sendable {
    /// A stream (or CSDS call) was refused.
    func streamRefused(_ refusal: XDSStreamRefusal)
    /// A proxy was admitted on `stream`; `status` is where the stream keeps its proxy's status from now on (hold it to
    /// read it later); `description` names its mode for people ("ads", "per-type-delta Cluster").
    func streamOpened(_ stream: ObjectIdentifier, status: ProxyStreamStatus, description: String, snapshotVersion: String)
    /// A response of `typeURL` was queued (`bytes` long); `publishToSendSeconds` is set when it carried a newly published snapshot.
    func responseSent(_ stream: ObjectIdentifier, typeURL: String, bytes: Int, publishToSendSeconds: Double?)
    /// The proxy ACKed; `sendToAckSeconds` is set when the ACKed nonce's send time was still known.
    func acked(_ stream: ObjectIdentifier, record: AckRecord, sendToAckSeconds: Double?)
    /// The proxy rejected a response.
    func nacked(_ stream: ObjectIdentifier, nodeID: String, group: String, record: NackRecord)
    /// The status of an admitted stream changed (after an event's actions were performed; once per event, whatever
    /// the number of types): its `ProxyStreamStatus` holds the new one.
    func statusChanged(_ stream: ObjectIdentifier)
    /// An admitted stream ended.
    func streamClosed(_ stream: ObjectIdentifier, mode: SubscriptionMode)
    /// The transport closed a stream whose first request named `nodeID` (admitted or not).
    func streamEnded(nodeID: String, group: String, reason: StreamCloseReason)
    /// A reconnecting proxy reported a version this replica does not serve; its answer waits until this replica
    /// has read the store's live version (it may be behind the replica the proxy came from).
    func streamHeld(nodeID: String, group: String)
}

extension XDSServerObserver {
    public func streamRefused(_ refusal: XDSStreamRefusal) {}
    public func streamOpened(_ stream: ObjectIdentifier, status: ProxyStreamStatus, description: String, snapshotVersion: String) {}
    public func responseSent(_ stream: ObjectIdentifier, typeURL: String, bytes: Int, publishToSendSeconds: Double?) {}
    public func acked(_ stream: ObjectIdentifier, record: AckRecord, sendToAckSeconds: Double?) {}
    public func nacked(_ stream: ObjectIdentifier, nodeID: String, group: String, record: NackRecord) {}
    public func statusChanged(_ stream: ObjectIdentifier) {}
    public func streamClosed(_ stream: ObjectIdentifier, mode: SubscriptionMode) {}
    public func streamEnded(nodeID: String, group: String, reason: StreamCloseReason) {}
    public func streamHeld(nodeID: String, group: String) {}
}

/// The registry records who is connected; each stream's status object says where its proxy stands (read by CSDS and
/// the admin endpoint).
extension ProxyRegistry: XDSServerObserver {
    public func streamOpened(_ stream: ObjectIdentifier, status: ProxyStreamStatus, description: String, snapshotVersion: String) {
        open(stream, status)
    }

    public func streamClosed(_ stream: ObjectIdentifier, mode: SubscriptionMode) { close(stream) }
}

/// The hub calls streams on their own event loop.
extension EventLoop: SubscriberExecutor {}
