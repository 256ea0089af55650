// Test support for DiscoveryStream: snapshot views built from name→version tables,
// inputs that are resolved against the stream (so an ACK echoes the real nonce and
// version), and a runner that compares each step's actions, rendered as short text.
import ProtobufWire
import XCTest
import XDSCache
import XDSProtocol
import XDSWire

let LDS = TypeURL.listener
let RDS = TypeURL.route
let CDS = TypeURL.cluster
let EDS = TypeURL.endpoint
let SDS = TypeURL.secret

let testNode = Node(id: "sidecar~10.0.0.1~web-1.default~default.svc.cluster.local", cluster: "web")

/// A view whose resource bodies read "name@version", so rendered actions show what was sent. Clusters are real EDS
/// clusters (the stream reads which assignment a changed cluster needs again), labelled so in `alt_stat_name`;
/// `serviceNames` gives some of them an `eds_cluster_config.service_name`.
func snapshot(_ version: String, _ resources: [String: [String: String]], ttl: [String: Duration] = [:],
              serviceNames: [String: String] = [:]) -> GroupView {
    var byType: [String: [VersionedResource]] = [:]
    for (typeURL, entries) in resources {
        byType[typeURL] = entries.map { name, resourceVersion in
            let label = "\(name)@\(resourceVersion)"
            let body = typeURL == CDS ? edsCluster(name: name, serviceName: serviceNames[name], label: label) : Array(label.utf8)
            return VersionedResource(name: name, version: resourceVersion, body: body, ttl: ttl[name])
        }
    }
    return GroupView(version: version, resources: byType)
}

/// A serialized Cluster: name (1), type EDS (2 = 3), eds_cluster_config.service_name (3.2), alt_stat_name (28).
func edsCluster(name: String, serviceName: String?, label: String) -> [UInt8] {
    func field(_ key: [UInt8], _ payload: [UInt8]) -> [UInt8] { key + [UInt8(payload.count)] + payload }
    var body = field([0x0a], Array(name.utf8)) + [0x10, 0x03]
    if let serviceName { body += field([0x1a], field([0x12], Array(serviceName.utf8))) }
    return body + field([0xe2, 0x01], Array(label.utf8))
}

/// "name@version" of a resource body made by `snapshot`.
func label(_ any: AnyResource) -> String {
    let bytes = any.value.bytes
    if any.typeURL == CDS, let label = bytes.withUnsafeBytes({ ProtobufScanner(bytes: $0).string(28) }) { return label }
    return String(decoding: bytes, as: UTF8.self)
}

/// How a request refers to the previous response of its type.
enum Reply {
    /// No nonce, no version (a first request, or a spontaneous delta request).
    case none
    /// Echo the latest nonce and version sent: an ACK.
    case ack
    /// Echo the latest nonce with `error_detail`: a NACK; the version is the last accepted one.
    case nack(String)
    /// Echo the latest nonce *and its version* with `error_detail`: still a NACK.
    case nackEchoing(String)
    /// Echo the latest nonce and the last accepted version, without error (a subscription change).
    case latest
    /// A specific, possibly stale, nonce.
    case nonce(String)
    /// A specific, possibly stale, nonce with `error_detail`.
    case nackNonce(String, String)
}

/// One input of a scenario; resolved into a StreamEvent against the stream's current status.
enum Input {
    case sotw(String, [String] = [], Reply = .none, node: Node? = testNode, version: String? = nil)
    case delta(String, subscribe: [String] = [], unsubscribe: [String] = [], initial: [String: String] = [:], Reply = .none, node: Node? = testNode)
    case snapshot(GroupView)
    case writable(Bool)
    /// The transport reports the latest response of this type written out.
    case flushed(String)
    case heartbeat
}

struct Step {
    let input: Input
    let expected: [String]
    let line: UInt

    init(_ input: Input, _ expected: [String] = [], line: UInt = #line) {
        self.input = input
        self.expected = expected
        self.line = line
    }
}

let ads = DiscoveryStream.Configuration(variant: .stateOfTheWorld, binding: .aggregated)
let deltaADS = DiscoveryStream.Configuration(variant: .delta, binding: .aggregated)

/// Plays `steps` on a fresh stream and checks each step's actions. With `autoFlush`, every
/// response is reported flushed right after it is emitted (a transport with room to spare);
/// actions caused by those reports are part of the step's actions.
@discardableResult
func play(_ configuration: DiscoveryStream.Configuration = ads, view: GroupView, autoFlush: Bool = true,
         _ steps: [Step], file: StaticString = #filePath) -> DiscoveryStream {
    var stream = DiscoveryStream(configuration: configuration, view: view)
    var clock: Int64 = 0
    for (index, step) in steps.enumerated() {
        clock += 1
        let now = WallClockTime(nanosecondsSinceEpoch: clock)
        var actions = stream.handle(event(for: step.input, stream), at: now)
        if autoFlush {
            var flushedUpTo = 0
            while flushedUpTo < actions.count {
                let action = actions[flushedUpTo]
                flushedUpTo += 1
                if let nonce = nonce(of: action) { actions += stream.handle(.flushed(nonce: nonce), at: now) }
            }
        }
        XCTAssertEqual(actions.map(render), step.expected, "step \(index + 1)", file: file, line: step.line)
    }
    return stream
}

func event(for input: Input, _ stream: DiscoveryStream) -> StreamEvent {
    switch input {
    case let .sotw(typeURL, names, reply, node, version):
        let status = stream.proxyStatus(typeURL: typeURL)
        var request = DiscoveryRequest(versionInfo: status?.versionAcked ?? "", node: node, resourceNames: names, typeURL: typeURL)
        switch reply {
        case .none: request.versionInfo = ""
        case .ack:
            request.responseNonce = status?.nonceSent ?? ""
            request.versionInfo = status?.versionSent ?? ""
        case .nack(let message):
            request.responseNonce = status?.nonceSent ?? ""
            request.errorDetail = Status(code: 3, message: message)
        case .nackEchoing(let message):
            request.responseNonce = status?.nonceSent ?? ""
            request.versionInfo = status?.versionSent ?? ""
            request.errorDetail = Status(code: 3, message: message)
        case .latest: request.responseNonce = status?.nonceSent ?? ""
        case .nonce(let nonce): request.responseNonce = nonce
        case .nackNonce(let nonce, let message):
            request.responseNonce = nonce
            request.errorDetail = Status(code: 3, message: message)
        }
        if let version { request.versionInfo = version }
        return .request(request)
    case let .delta(typeURL, subscribe, unsubscribe, initial, reply, node):
        let status = stream.proxyStatus(typeURL: typeURL)
        var request = DeltaDiscoveryRequest(node: node, typeURL: typeURL, resourceNamesSubscribe: subscribe,
                                            resourceNamesUnsubscribe: unsubscribe, initialResourceVersions: initial)
        switch reply {
        case .none: break
        case .ack, .latest: request.responseNonce = status?.nonceSent ?? ""
        case .nack(let message), .nackEchoing(let message):
            request.responseNonce = status?.nonceSent ?? ""
            request.errorDetail = Status(code: 3, message: message)
        case .nonce(let nonce): request.responseNonce = nonce
        case .nackNonce(let nonce, let message):
            request.responseNonce = nonce
            request.errorDetail = Status(code: 3, message: message)
        }
        return .deltaRequest(request)
    case .snapshot(let view): return .snapshotChanged(view)
    case .writable(let writable): return .writabilityChanged(writable)
    case .flushed(let typeURL): return .flushed(nonce: stream.proxyStatus(typeURL: typeURL)?.nonceSent ?? "")
    case .heartbeat: return .heartbeat
    }
}

func nonce(of action: StreamAction) -> String? {
    switch action {
    case .send(let response): response.nonce
    case .sendDelta(let response): response.nonce
    default: nil
    }
}

/// "CDS#3 a@1 b@2" for a SotW response; "Δ CDS#3 +a@1 -b ~c@1(ttl 30s)" for a delta one.
func render(_ action: StreamAction) -> String {
    func body(_ any: AnyResource) -> String { label(any) }
    switch action {
    case .send(let response):
        return (["\(TypeURL.shortName(response.typeURL))#\(response.nonce)"] + response.resources.map(body)).joined(separator: " ")
    case .sendDelta(let response):
        var parts = ["Δ \(TypeURL.shortName(response.typeURL))#\(response.nonce)"]
        for resource in response.resources {
            if let any = resource.resource {
                parts.append("+" + body(any) + (resource.ttl.map { "(ttl \($0.components.seconds)s)" } ?? ""))
            } else {
                parts.append("~\(resource.name)@\(resource.version)" + (resource.ttl.map { "(ttl \($0.components.seconds)s)" } ?? ""))
            }
        }
        parts += response.removedResources.map { "-" + $0 }
        return parts.joined(separator: " ")
    case .ack(let record):
        return "ack \(TypeURL.shortName(record.typeURL))#\(record.nonce)"
    case .nack(let record):
        return "nack\(record.stale ? "(stale)" : "") \(TypeURL.shortName(record.typeURL))#\(record.nonce): \(record.errorDetail.message)"
    case .close(let status):
        return "close \(status.code.name): \(status.message)"
    }
}
