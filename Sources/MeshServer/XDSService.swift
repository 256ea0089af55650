// The xDS gRPC services on top of the transport: which paths are served, who may
// call them, and one XDSStreamBridge per xDS stream (one ClientStatusHandler per
// CSDS call). What happens on a stream goes to the observers.
import Foundation
import Transport
import XDSCache
import XDSProtocol
import XDSWire
import GRPCStatusCodes

/// Server-wide settings for the xDS services.
public struct XDSServiceConfiguration: Sendable {
    /// Without TLS there is no verified identity: every proxy is admitted (development only).
    public var insecurePlaintext = false
    /// Sent as `control_plane.identifier` in every response.
    public var controlPlaneIdentifier = "meshctl"
    public var limits = DiscoveryStream.Limits()
    /// Who may read proxy status over CSDS.
    public var statusReaders = StatusReaders.operators

    public init() {}
}

/// The identities allowed to call the Client Status Discovery Service.
public enum StatusReaders: Sendable, Hashable {
    /// SPIFFE IDs of the form spiffe://TRUST-DOMAIN/operator/NAME (what `meshctl certs init --operator` issues).
    case operators
    /// These SPIFFE IDs; an entry ending in `*` matches by prefix.
    case identities([String])

    func admits(_ identity: PeerIdentity?) -> Bool {
        let uris = identity?.uriSANs ?? []
        switch self {
        case .operators:
            return uris.contains { uri in
                guard uri.hasPrefix("spiffe://"), let slash = uri.dropFirst(9).firstIndex(of: "/") else { return false }
                return uri[slash...].hasPrefix("/operator/")
            }
        case .identities(let allowed):
            return uris.contains { uri in
                allowed.contains { $0.hasSuffix("*") ? uri.hasPrefix($0.dropLast()) : uri == $0 }
            }
        }
    }
}

/// Accepts xDS streams and hands each to an `XDSStreamBridge`; CSDS streams to a `ClientStatusHandler`.
public final class XDSService: GRPCServerHandler {
    public let hub: SnapshotHub
    public let configuration: XDSServiceConfiguration
    /// Where every stream records its proxy's status (CSDS answers from it); always the first observer.
    public let proxies: ProxyRegistry
    /// Everyone told about stream events, the registry first.
    let observers: [any XDSServerObserver]

    public init(hub: SnapshotHub, configuration: XDSServiceConfiguration, proxies: ProxyRegistry = ProxyRegistry(),
                observers: [any XDSServerObserver] = []) {
        self.hub = hub
        self.configuration = configuration
        self.proxies = proxies
        self.observers = [proxies] + observers
    }

    /// Tells every observer.
    func notify(_ event: (any XDSServerObserver) -> Void) {
        for observer in observers { event(observer) }
    }

    public func onStreamOpen(_ request: GRPCRequestHead, stream: ServerStream) -> (any GRPCStreamHandler)? {
        let csds = request.path == ServicePath.clientStatusStream || request.path == ServicePath.clientStatusFetch
        guard csds || ServicePath.discovery[request.path] != nil else { return nil }  // UNIMPLEMENTED
        if !configuration.insecurePlaintext && request.connection.peerIdentity == nil {
            _ = stream.finish(GRPCStatus(.unauthenticated, "a verified client certificate is required"))
            return nil
        }
        if csds {
            if !configuration.insecurePlaintext && !configuration.statusReaders.admits(request.connection.peerIdentity) {
                let identity = request.connection.peerIdentity
                notify { $0.streamRefused(.permissionDenied(service: "csds", nodeID: nil, group: "", identity: identity?.description ?? "none",
                                                            peer: request.connection.remoteAddress)) }
                _ = stream.finish(GRPCStatus(.permissionDenied, "identity \(identity?.spiffeID ?? identity?.commonName ?? "(none)") may not read proxy status; operators hold spiffe://TRUST-DOMAIN/operator/NAME certificates (meshctl certs init --operator NAME) or are listed with meshctl serve --status-reader"))
                return nil
            }
            return ClientStatusHandler(service: self, stream: stream, streaming: request.path == ServicePath.clientStatusStream)
        }
        let (variant, binding) = ServicePath.discovery[request.path]!
        return XDSStreamBridge(service: self, stream: stream, variant: variant, binding: binding)
    }
}

