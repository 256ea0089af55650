// What a simulated proxy follows from resource bodies (CDS → EDS names, LDS → RDS names), as Envoy would;
// the body reading itself is XDSWire's `ResourceReferences`.
import XDSProtocol
import XDSWire

extension ResourceReferences {
    /// What a resource of `typeURL` refers a proxy on to.
    static func references(_ typeURL: String, _ body: UnsafeRawBufferPointer) -> [String] {
        switch typeURL {
        case TypeURL.cluster: endpointName(ofCluster: body).map { [$0] } ?? []
        case TypeURL.listener: routeNames(ofListener: body)
        default: []
        }
    }
}
