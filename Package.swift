// swift-tools-version:6.1
// meshctl: an Envoy xDS control plane.
//
// Layering (see docs/ARCHITECTURE.md): C libraries come in through thin C targets
// (CProtobufC, CEnvoyProto, CRE2); everything above them is safe Swift, and the
// `meshctl` executable only parses arguments and formats output.
import PackageDescription

/// For the modules every xDS event of every stream runs through: no run-time exclusivity checks in release builds.
/// Each access to a class's stored property cost a `swift_beginAccess` (≈ 80 instructions with its thread-local
/// lookups), ≈ 6 % of the server's instructions per config change (callgrind, docs/BENCHMARKS.md session 12). Debug
/// builds — every test — keep the checks, so an overlapping access still fails there.
let serverHotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "meshctl",
    products: [
        .executable(name: "meshctl", targets: ["meshctl"]),
        .library(name: "EnvoySchema", targets: ["EnvoySchema"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/stencilproject/Stencil", from: "0.15.1"),
        // The admin endpoint (HTTP/1.1 on SwiftNIO); traits off: no swift-configuration.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The PostgreSQL snapshot store (PostgresStorage only) and the event loops it runs on.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // libprotobuf-c from Debian (libprotobuf-c-dev).
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        // protoc-c output for the fixed-schema messages (discovery envelopes,
        // descriptor.proto) and the embedded Envoy FileDescriptorSet. All of
        // Sources/CEnvoyProto/generated is produced by `make generate`.
        .target(
            name: "CEnvoyProto",
            dependencies: ["CProtobufC"],
            publicHeadersPath: "generated"
        ),
        // RE2 (Debian libre2-dev) behind a C ABI: the regex engine Envoy uses,
        // so regex verdicts match the proxy's.
        .target(
            name: "CRE2",
            linkerSettings: [.linkedLibrary("re2")]
        ),
        // libyaml (Debian libyaml-dev): the YAML event parser under EnvoySchema's YAML reader.
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // OpenSSL 3 (Debian libssl-dev): TLS for the xDS server, digests for the store.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        // libnghttp2 (Debian libnghttp2-dev): HTTP/2 framing for the xDS server.
        .systemLibrary(
            name: "CNGHTTP2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        // C functions for what Swift cannot call: OpenSSL macros, X.509 stacks, epoll/eventfd/accept4.
        .target(
            name: "CTransportShims",
            dependencies: ["COpenSSL"]
        ),
        // The one Swift layer over OpenSSL: error queue, PEM from memory, X.509 certificates, private keys, SHA-256.
        .target(
            name: "OpenSSLSupport",
            dependencies: ["COpenSSL"]
        ),
        // `Locked<Value>`: the one way state is shared between threads (an NSLock, which ThreadSanitizer sees).
        .target(
            name: "Locking"
        ),
        // Protobuf varints and a schema-less field scanner, for every target that writes or reads the wire format by hand.
        .target(
            name: "ProtobufWire"
        ),
        // What counts as an IP address literal (inet_pton), for every target that must decide it.
        .target(
            name: "NetworkAddress"
        ),
        // epoll event loops, TLS, HTTP/2 sessions and gRPC framing (knows nothing of xDS).
        // The gRPC status type shared by the transport and the xDS protocol.
        .target(
            name: "GRPCStatusCodes"
        ),
        .target(
            name: "Transport",
            dependencies: ["GRPCStatusCodes", "COpenSSL", "CNGHTTP2", "CTransportShims", "Locking", "NetworkAddress", "OpenSSLSupport"],
            swiftSettings: serverHotPath
        ),
        .target(
            name: "EnvoySchema",
            dependencies: ["CEnvoyProto", "CProtobufC", "CRE2", "CYAML", "OpenSSLSupport", "ProtobufWire"]
        ),
        // xDS envelopes (DiscoveryRequest/Response, delta) as Swift values ⇄ protobuf via protobuf-c.
        .target(
            name: "XDSWire",
            dependencies: ["CEnvoyProto", "CProtobufC", "GRPCStatusCodes", "ProtobufWire"],
            swiftSettings: serverHotPath
        ),
        // The per-stream xDS protocol state machines (SotW, delta, ADS ordering, ACK/NACK); no I/O.
        .target(
            name: "XDSProtocol",
            dependencies: ["Locking", "XDSWire"],
            swiftSettings: serverHotPath
        ),
        // The snapshot store: content-addressed, crash-safe record of what the mesh was given (no EnvoySchema).
        .target(
            name: "SnapshotStorage",
            dependencies: ["Locking", "OpenSSLSupport"]
        ),
        // The snapshot store on PostgreSQL (postgres-nio): one shared history for several `serve` replicas and
        // publishers on other machines; and the store argument (a path or a postgres:// URL) every command parses.
        .target(
            name: "PostgresStorage",
            dependencies: ["SnapshotStorage",
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOSSL", package: "swift-nio-ssl"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        // Development CA and SPIFFE certificates (`meshctl certs init`).
        .target(
            name: "MeshCertificates",
            dependencies: ["COpenSSL", "NetworkAddress", "OpenSSLSupport"]
        ),
        // What the compiler writes and proxies and the server read besides Envoy resources: access records,
        // subscription modes, config sources and the proxy bootstrap that must agree with them.
        .target(
            name: "MeshModel",
            dependencies: ["EnvoySchema", "NetworkAddress"]
        ),
        // The progressive rollout as a pure state machine: wave plan, membership, gating, outcome (no clock, no I/O).
        .target(
            name: "RolloutPlanning",
            dependencies: ["MeshModel"]
        ),
        // The xDS cache: the served snapshot as per-group views, fed from any SnapshotStoring, handed to
        // subscribed streams; and per-proxy status (the registry). No transport, no gRPC.
        .target(
            name: "XDSCache",
            dependencies: ["MeshModel", "SnapshotStorage", "XDSProtocol", "XDSWire"],
            swiftSettings: serverHotPath
        ),
        // The xDS server: gRPC services for ADS, per-type xDS and CSDS over the transport, one bridge per stream
        // onto the protocol machine, identity checks, and the observer seam stream events go out through.
        .target(
            name: "MeshServer",
            dependencies: ["MeshModel", "XDSCache", "XDSProtocol", "XDSWire", "Transport"],
            swiftSettings: serverHotPath
        ),
        // The server's logs (swift-log, one line per event) and Prometheus metrics (swift-metrics).
        .target(
            name: "ServerTelemetry",
            dependencies: ["XDSCache", "XDSProtocol",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Metrics", package: "swift-metrics"),
                           .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        // The admin endpoint (Hummingbird): health, metrics, proxy table, store history and diffs, the status
        // page; and the one renderer of resources as YAML/JSON (also `meshctl snapshot show|diff`).
        .target(
            name: "MeshAdmin",
            dependencies: ["EnvoySchema", "RolloutPlanning", "SnapshotStorage", "ServerTelemetry", "XDSCache", "XDSProtocol",
                           .product(name: "Hummingbird", package: "hummingbird"), .product(name: "HummingbirdCore", package: "hummingbird")]
        ),
        // `meshctl serve` wired: store → cache → xDS server → transport, metrics and logs as observers, admin beside.
        .target(
            name: "ControlPlane",
            dependencies: ["Locking", "MeshAdmin", "MeshServer", "RolloutPlanning", "ServerTelemetry", "SnapshotStorage", "Transport", "XDSCache"]
        ),
        // The client side of meshctl's xDS port for operators: CSDS fetch (`meshctl status`).
        .target(
            name: "XDSClient",
            dependencies: ["Transport", "XDSProtocol", "XDSWire"]
        ),
        // Made-up meshes and stores for tests, benchmarks and the crash-test hook: Envoy resources from YAML, proxy
        // groups, synthetic snapshots, a fault-injecting file system, the store benchmark.
        .target(
            name: "MeshFixtures",
            dependencies: ["EnvoySchema", "MeshModel", "SnapshotStorage", "XDSProtocol"]
        ),
        // `meshctl compile` / `validate`: Configs/ + templates/ → checked, encoded per-proxy-group snapshots.
        .target(
            name: "MeshCompilation",
            dependencies: ["EnvoySchema", "Locking", "MeshModel", "NetworkAddress", "SnapshotStorage", .product(name: "Stencil", package: "Stencil")]
        ),
        // `meshctl loadgen`: simulated Envoy proxies over mTLS measuring time to configuration and push latency.
        .target(
            name: "LoadGenerator",
            dependencies: ["Locking", "MeshFixtures", "NetworkAddress", "ProtobufWire", "Transport", "XDSWire", "XDSProtocol", "SnapshotStorage", "XDSCache"]
        ),
        // Fuzz harnesses, one per input path (make fuzz runs them under libFuzzer; FuzzReplayTests replays their seeds).
        .target(
            name: "FuzzHarnesses",
            dependencies: ["EnvoySchema", "MeshCertificates", "MeshCompilation", "Transport", "XDSWire"]
        ),
        // libFuzzer's entry points; an empty program unless built with -sanitize=fuzzer -parse-as-library (make fuzz).
        .executableTarget(
            name: "meshctl-fuzz",
            dependencies: ["FuzzHarnesses"]
        ),
        .executableTarget(
            name: "meshctl",
            dependencies: ["EnvoySchema", "MeshCertificates", "MeshModel", "ControlPlane", "MeshServer", "MeshAdmin", "XDSClient", "XDSCache",
                           "SnapshotStorage", "PostgresStorage", "MeshFixtures", "MeshCompilation", "LoadGenerator", "XDSProtocol", "XDSWire", "Transport", "Locking", "NetworkAddress", "RolloutPlanning",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // Shared by every test target: paths, the built meshctl, one process runner, an in-process server, the
        // end-to-end helpers (loopback ports, child processes, small published meshes), the demo mesh copied to
        // mutate and compile, temporary stores, and the load generator's served mesh.
        .target(
            name: "MeshTestSupport",
            dependencies: ["ControlPlane", "EnvoySchema", "MeshCertificates", "MeshCompilation", "MeshFixtures", "ServerTelemetry", "SnapshotStorage", "Transport",
                           "XDSProtocol", "XDSWire"],
            path: "Tests/MeshTestSupport"
        ),
        .testTarget(
            name: "MeshServerTests",
            dependencies: ["MeshTestSupport", "ControlPlane", "MeshServer", "MeshAdmin", "ServerTelemetry", "XDSCache", "XDSClient", "MeshModel",
                           "MeshCertificates", "SnapshotStorage", "EnvoySchema", "Transport", "XDSProtocol", "XDSWire", "Locking"]
        ),
        // Real processes: meshctl end to end (every command a user runs), real Envoy proxies, a headless Chromium.
        .testTarget(
            name: "SystemTests",
            dependencies: ["MeshTestSupport", "ControlPlane", "MeshServer", "MeshAdmin", "ServerTelemetry", "XDSCache", "XDSClient", "MeshModel",
                           "MeshCertificates", "MeshCompilation", "MeshFixtures", "SnapshotStorage", "PostgresStorage", "EnvoySchema", "Transport", "XDSProtocol", "XDSWire", "RolloutPlanning"]
        ),
        .testTarget(
            name: "MeshCompilationTests",
            dependencies: ["MeshTestSupport", "MeshCompilation", "MeshModel", "EnvoySchema", "SnapshotStorage"]
        ),
        .testTarget(
            name: "EnvoySchemaTests",
            dependencies: ["MeshTestSupport", "EnvoySchema"]
        ),
        .testTarget(
            name: "SnapshotStorageTests",
            dependencies: ["MeshTestSupport", "MeshFixtures", "SnapshotStorage"]
        ),
        .testTarget(
            name: "XDSProtocolTests",
            dependencies: ["MeshTestSupport", "ProtobufWire", "XDSProtocol", "XDSWire", "XDSCache"]
        ),
        .testTarget(
            name: "LoadGeneratorTests",
            dependencies: ["MeshTestSupport", "LoadGenerator", "ControlPlane", "MeshModel", "XDSCache", "SnapshotStorage", "XDSProtocol", "XDSWire", "Transport"]
        ),
        .testTarget(
            name: "RolloutPlanningTests",
            dependencies: ["RolloutPlanning", "MeshModel"]
        ),
        .testTarget(
            name: "FuzzReplayTests",
            dependencies: ["FuzzHarnesses"]
        ),
        .testTarget(
            name: "TransportTests",
            dependencies: ["MeshTestSupport", "Transport", "OpenSSLSupport", "MeshCertificates"]
        ),
    ],
    cxxLanguageStandard: .cxx17
)
