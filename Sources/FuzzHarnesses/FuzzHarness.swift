// One fuzz harness per input path meshctl reads from someone else: Envoy configuration text and binary, templates,
// the mesh configuration, the discovery and CSDS envelopes, and the bytes a peer sends the xDS server (HTTP/2 and TLS). Each runs
// the same code the product runs on that input and checks invariants that must hold for any input (a decoded
// message re-encodes to what decodes to the same message; nothing crashes, hangs or leaks). `meshctl-fuzz` calls
// them under libFuzzer (`make fuzz`); FuzzReplayTests replays every seed through them in `make test`.
import EnvoySchema
import Foundation
import MeshCertificates
import MeshCompilation
import Transport
import XDSWire

/// An input path under fuzzing.
public enum FuzzHarness: String, CaseIterable, Sendable {
    /// YAML/JSON → Envoy Bootstrap: what `validate --envoy` and `schema encode` read.
    case envoyText = "envoy-text"
    /// Protobuf binary → Bootstrap (`schema decode`, store objects), and back.
    case envoyBinary = "envoy-binary"
    /// Template lexer, parser and renderer.
    case template
    /// The mesh configuration loader and checks (mesh.yaml or a service file among the demo's).
    case meshConfig = "mesh-config"
    /// Discovery request/response envelopes (SotW and delta), protobuf-c.
    case discovery
    /// CSDS request/response envelopes, protobuf-c.
    case clientStatus = "client-status"
    /// HTTP/2 + gRPC framing as the server receives it, in memory.
    case http2Server = "http2-server"
    /// The TLS record layer and ClientHello as the server's own SSL_CTX receives them, over memory BIOs.
    case tlsServer = "tls-server"

    /// Builds what every input shares — the descriptor pool, the harness's fixtures — before the first input, so
    /// libFuzzer's per-input timeout measures inputs, not the one-time start-up (which under load exceeded it).
    public func prepare() {
        switch self {
        case .envoyText, .envoyBinary, .template: _ = Self.pool
        case .meshConfig:
            _ = Self.pool
            _ = MeshConfigHarness.shared
        case .tlsServer: _ = TLSServerHarness.shared
        case .discovery, .clientStatus, .http2Server: break
        }
    }

    /// Runs one input. Violated invariants trap (libFuzzer reports them as crashes with the input).
    public func run(_ input: [UInt8]) {
        switch self {
        case .envoyText: Self.envoyText(input)
        case .envoyBinary: Self.envoyBinary(input)
        case .template: Self.template(input)
        case .meshConfig: MeshConfigHarness.shared.run(input)
        case .discovery: Self.discovery(input)
        case .clientStatus: Self.clientStatus(input)
        case .http2Server: HTTP2ServerFuzzing.run(input)
        case .tlsServer: TLSServerHarness.shared.session?.run(input)
        }
    }

    /// The seed corpus: inputs checked in under Tests/FuzzCorpus/NAME (kept findings among them), plus seeds made
    /// from the project's own material — the Envoy corpus (as text, and encoded for the binary decoder), the
    /// shipped templates, the demo Configs/, and envelopes and HTTP/2 exchanges built from meshctl's own values.
    public func seedInputs(root: URL) -> [(name: String, bytes: [UInt8])] {
        var seeds = Self.files(under: root.appendingPathComponent("Tests/FuzzCorpus/\(rawValue)")).map { ($0.lastPathComponent, Self.bytes($0)) }
        switch self {
        case .envoyText:
            seeds += Self.files(under: root.appendingPathComponent("Tests/Corpus/envoy")).filter { ["yaml", "json"].contains($0.pathExtension) }
                .map { ("corpus-" + $0.deletingPathExtension().lastPathComponent, Self.bytes($0)) }
        case .envoyBinary:
            for file in Self.files(under: root.appendingPathComponent("Tests/Corpus/envoy/valid")) where file.pathExtension == "yaml" {
                guard let text = String(data: (try? Data(contentsOf: file)) ?? Data(), encoding: .utf8) else { continue }
                let (message, _) = ConfigDocument.decode(text: text, file: file.path, syntax: .yaml, type: Self.bootstrap, pool: Self.pool)
                if let message { seeds.append(("encoded-" + file.deletingPathExtension().lastPathComponent, message.serialized(pool: Self.pool))) }
            }
        case .template:
            seeds += Self.files(under: root.appendingPathComponent("templates")).map { ("template-" + $0.lastPathComponent, Self.bytes($0)) }
        case .meshConfig:
            let configs = root.appendingPathComponent("Configs")
            seeds.append(("mesh.yaml", [0] + Self.bytes(configs.appendingPathComponent("mesh.yaml"))))
            seeds.append(("mesh.yaml-full-compile", [0x80] + Self.bytes(configs.appendingPathComponent("mesh.yaml"))))
            seeds += Self.files(under: configs.appendingPathComponent("services")).map { ("service-" + $0.lastPathComponent, [1] + Self.bytes($0)) }
        case .discovery:
            seeds += SeedEnvelopes.discovery
        case .clientStatus:
            seeds += SeedEnvelopes.clientStatus
        case .http2Server:
            seeds += SeedEnvelopes.http2
        case .tlsServer:
            if let session = TLSServerHarness.shared.session {
                for (name, alpn) in [("hello-h2", ["h2"]), ("hello-h2-http11", ["h2", "http/1.1"]), ("hello-http11", ["http/1.1"]), ("hello-no-alpn", [])] {
                    seeds.append((name, session.clientHello(alpn: alpn)))
                }
            }
        }
        return seeds
    }

    /// Runs the TLS harness; true only if a handshake completed (which fuzzed bytes cannot do: a `true` is a finding).
    public static func runTLS(_ input: [UInt8]) -> Bool { TLSServerHarness.shared.session?.run(input) ?? false }

    /// Runs the HTTP/2 harness and returns how many gRPC messages the session delivered (for tests of the harness).
    public static func runHTTP2(_ input: [UInt8]) -> Int { HTTP2ServerFuzzing.run(input) }

    private static func files(under directory: URL) -> [URL] {
        guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) else { return [] }
        var files: [URL] = []
        for case let file as URL in walker where (try? file.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true {
            files.append(file)
        }
        return files.sorted { $0.path < $1.path }
    }

    private static func bytes(_ file: URL) -> [UInt8] { Array((try? Data(contentsOf: file)) ?? Data()) }

    static let pool: DescriptorPool = try! DescriptorPool.envoy
    static let bootstrap = pool.messageID(named: "envoy.config.bootstrap.v3.Bootstrap")!

    private static func text(_ input: [UInt8]) -> String? {
        guard case .success(let text) = ConfigDocument.decodeText(input, file: "fuzz") else { return nil }
        return text
    }

    static func envoyText(_ input: [UInt8]) {
        guard let text = text(input) else { return }
        // JSON when it looks like JSON (as --envoy decides by suffix), and YAML always: YAML reads JSON too.
        if text.first == "{" { _ = BootstrapValidation.validate(text: text, file: "fuzz.json", syntax: .json, pool: pool) }
        _ = BootstrapValidation.validate(text: text, file: "fuzz.yaml", syntax: .yaml, pool: pool)
    }

    static func envoyBinary(_ input: [UInt8]) {
        guard let message = try? DynamicMessage(serialized: input, type: bootstrap, pool: pool) else { return }
        let encoded = message.serialized(pool: pool)
        guard let again = try? DynamicMessage(serialized: encoded, type: bootstrap, pool: pool) else {
            fatalError("a decoded Bootstrap re-encoded to bytes that do not decode")
        }
        precondition(again.serialized(pool: pool) == encoded, "encoding is not deterministic after a round trip")
        _ = TextWriter(pool: pool).json(message)
    }

    static let templateContext: [String: TemplateValue] = {
        let routeType = TemplateObjectType("route")
        routeType.define(["name": .string, "prefix": .string, "weight": .int, "retries": .bool])
        let route = { (name: String, weight: Int) -> TemplateValue in
            .object(TemplateObject(routeType, ["name": .string(name), "prefix": .string("/\(name)/"), "weight": .int(weight), "retries": .bool(weight > 50)]))
        }
        let serviceType = TemplateObjectType("service")
        serviceType.define(["name": .string, "ports": .list(.int), "routes": .list(.object(routeType)), "owners": .list(.string), "mtls": .bool])
        return [
            "service": .object(TemplateObject(serviceType, [
                "name": .string("users"), "ports": .list([.int(10170), .int(10171)]), "routes": .list([route("profile", 80), route("admin", 20)]),
                "owners": .list([.string("team-identity"), .string("a \"quoted\" owner")]), "mtls": .bool(true),
            ])),
            "config_source": .string("{ads: {}, resource_api_version: V3}"),
        ]
    }()

    static func template(_ input: [UInt8]) {
        let source = TemplateSource(path: "fuzz.yaml", text: String(decoding: input, as: UTF8.self))
        guard let compiled = try? CompiledTemplate(source: source) else { return }
        _ = try? compiled.renderString(templateContext)
    }

    static func discovery(_ input: [UInt8]) {
        if let request = try? DiscoveryRequest(serialized: input) {
            precondition((try? DiscoveryRequest(serialized: request.serialized())) == request, "DiscoveryRequest does not round-trip")
        }
        if let request = try? DeltaDiscoveryRequest(serialized: input) {
            precondition((try? DeltaDiscoveryRequest(serialized: request.serialized())) == request, "DeltaDiscoveryRequest does not round-trip")
        }
        if let response = try? DiscoveryResponse(serialized: input) { _ = try? DiscoveryResponse(serialized: response.serialized()) }
        if let response = try? DeltaDiscoveryResponse(serialized: input) { _ = try? DeltaDiscoveryResponse(serialized: response.serialized()) }
    }

    static func clientStatus(_ input: [UInt8]) {
        if let request = try? ClientStatusRequest(serialized: input) {
            precondition((try? ClientStatusRequest(serialized: request.serialized())) == request, "ClientStatusRequest does not round-trip")
        }
        if let response = try? ClientStatusResponse(serialized: input) {
            precondition((try? ClientStatusResponse(serialized: response.serialized())) == response, "ClientStatusResponse does not round-trip")
        }
    }
}

/// The mesh configuration harness: a copy of the demo Configs/ in a temporary directory, where the input replaces
/// mesh.yaml (first byte even) or the users service file (odd); then the configuration phases run (load and mesh
/// rules), and when the first byte's top bit is set the whole compile, without encoding — so the loader is explored
/// at the speed of parsing (the seeds and most mutations keep their first byte) while templates and rendering still
/// see mutated configurations whenever the fuzzer flips that bit.
final class MeshConfigHarness: @unchecked Sendable {
    // @unchecked Sendable: libFuzzer and the replay test call `run` from one thread at a time.
    static let shared = MeshConfigHarness()
    private let configs: String
    private let templates: String
    private let originalMesh: Data
    private let originalService: Data

    private init() {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("meshctl-fuzz-\(getpid())")
        try? FileManager.default.removeItem(at: directory)
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configs = directory.appendingPathComponent("Configs").path
        try? FileManager.default.copyItem(atPath: root.appendingPathComponent("Configs").path, toPath: configs)
        templates = root.appendingPathComponent("templates").path
        originalMesh = (try? Data(contentsOf: URL(fileURLWithPath: configs + "/mesh.yaml"))) ?? Data()
        originalService = (try? Data(contentsOf: URL(fileURLWithPath: configs + "/services/users.yaml"))) ?? Data()
    }

    func run(_ input: [UInt8]) {
        guard let selector = input.first else { return }
        let body = Data(input.dropFirst())
        let replacesMesh = selector % 2 == 0
        try? (replacesMesh ? body : originalMesh).write(to: URL(fileURLWithPath: configs + "/mesh.yaml"))
        try? (replacesMesh ? originalService : body).write(to: URL(fileURLWithPath: configs + "/services/users.yaml"))
        let inputs = CompileInputs(configs: configs, templates: templates)
        if selector & 0x80 != 0 {
            _ = try? MeshCompiler.compile(inputs, pool: FuzzHarness.pool, encode: false)
        } else {
            _ = try? MeshCompiler.checkConfiguration(inputs, pool: FuzzHarness.pool)
        }
    }
}

/// The TLS harness's server and client: development certificates written once to a temporary directory.
final class TLSServerHarness: Sendable {
    static let shared = TLSServerHarness()
    let session: TLSServerFuzzing?

    private init() {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("meshctl-fuzz-tls-\(getpid())").path
        do {
            _ = try DevelopmentCertificates.write(to: directory, trustDomain: "mesh.local", proxies: ["client"])
            session = try TLSServerFuzzing(
                server: TLSServerCredentials(certificateChainFile: directory + "/server.crt", privateKeyFile: directory + "/server.key",
                                             clientCAFile: directory + "/ca.crt"),
                client: TLSClientCredentials(certificateChainFile: directory + "/client.crt", privateKeyFile: directory + "/client.key",
                                             trustedCAFile: directory + "/ca.crt", serverName: "localhost"))
        } catch {
            session = nil
        }
    }
}

/// Seeds built from meshctl's own values: well-formed envelopes and HTTP/2 exchanges for the fuzzer to mutate.
enum SeedEnvelopes {
    static let node = Node(id: "frontend-1", cluster: "frontend", userAgentName: "envoy", userAgentVersion: "1.40.0", clientFeatures: ["envoy.lb.does_not_support_overprovisioning"])

    static var discovery: [(String, [UInt8])] {
        let listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
        let cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
        return [
            ("sotw-subscribe", DiscoveryRequest(node: node, typeURL: cluster).serialized()),
            ("sotw-ack", DiscoveryRequest(versionInfo: "3f2a", node: node, resourceNames: ["users", "orders"], typeURL: listener, responseNonce: "7").serialized()),
            ("sotw-nack", DiscoveryRequest(versionInfo: "3f2a", typeURL: listener, responseNonce: "8",
                                           errorDetail: Status(code: 3, message: "cannot bind '127.0.0.1:80': Address already in use")).serialized()),
            ("delta-subscribe", DeltaDiscoveryRequest(node: node, typeURL: cluster, resourceNamesSubscribe: ["*"], initialResourceVersions: ["users": "v1"]).serialized()),
            ("sotw-response", DiscoveryResponse(versionInfo: "v1", resources: [AnyResource(typeURL: cluster, value: ResourceBytes([0x0a, 0x05] + Array("users".utf8)))],
                                                typeURL: cluster, nonce: "1", controlPlane: "meshctl").serialized()),
        ]
    }

    static var clientStatus: [(String, [UInt8])] {
        [
            ("request-all", ClientStatusRequest().serialized()),
            ("request-prefix", ClientStatusRequest(nodeMatchers: [NodeIDMatcher(.prefix("frontend-"))], excludeResourceContents: true).serialized()),
            ("response", ClientStatusResponse(configs: [ClientConfig(node: node, xdsConfigs: [
                GenericXDSConfig(typeURL: "type.googleapis.com/envoy.config.listener.v3.Listener", versionInfo: "v2", details: ["version_acked": "v1"],
                                 lastUpdatedNanoseconds: 1_790_000_000_000_000_000, configStatus: .error, clientStatus: .nacked,
                                 errorState: UpdateFailureState(details: "rejected", versionInfo: "v2", lastUpdateAttemptNanoseconds: 1_790_000_001_000_000_000)),
            ], clientScope: "ads")]).serialized()),
        ]
    }

    /// A client's HTTP/2 bytes: preface, SETTINGS, one gRPC request (HPACK literals, no indexing) with a message.
    static var http2: [(String, [UInt8])] {
        func frame(_ type: UInt8, _ flags: UInt8, _ stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
            [UInt8(payload.count >> 16 & 0xff), UInt8(payload.count >> 8 & 0xff), UInt8(payload.count & 0xff), type, flags,
             UInt8(stream >> 24 & 0x7f), UInt8(stream >> 16 & 0xff), UInt8(stream >> 8 & 0xff), UInt8(stream & 0xff)] + payload
        }
        func literal(_ name: String, _ value: String) -> [UInt8] {
            [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
        }
        let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
        let headers = literal(":method", "POST") + literal(":scheme", "https") + literal(":path", "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")
            + literal(":authority", "localhost") + literal("content-type", "application/grpc") + literal("te", "trailers")
        let message = DiscoveryRequest(node: node, typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster").serialized()
        let grpc = [0, UInt8(message.count >> 24 & 0xff), UInt8(message.count >> 16 & 0xff), UInt8(message.count >> 8 & 0xff), UInt8(message.count & 0xff)] + message
        let settings = frame(0x4, 0, 0, [0x00, 0x04, 0x00, 0x01, 0x00, 0x00])
        let settingsAck = frame(0x4, 0x1, 0, [])
        return [
            ("request", preface + settings + settingsAck + frame(0x1, 0x4, 1, headers) + frame(0x0, 0x1, 1, grpc)),
            ("request-reset-data", preface + settings + frame(0x1, 0x4, 1, headers) + frame(0x3, 0, 1, [0, 0, 0, 8]) + frame(0x0, 0x1, 1, grpc)),
            ("two-streams-ping-goaway", preface + settings + frame(0x1, 0x5, 1, headers) + frame(0x1, 0x4, 3, headers) + frame(0x0, 0, 3, grpc)
                + frame(0x6, 0, 0, Array("meshctl!".utf8)) + frame(0x8, 0, 3, [0, 0, 0, 8]) + frame(0x7, 0, 0, [0, 0, 0, 3, 0, 0, 0, 0])),
            ("half-closed-then-data", preface + settings + frame(0x1, 0x5, 1, headers) + frame(0x0, 0x1, 1, grpc)),
        ]
    }
}
