// The admin endpoint (`meshctl serve --admin`, loopback by default): health and
// readiness probes, Prometheus metrics, the proxy table as JSON, the store's
// history and diffs, and the status page. HTTP/1.1 comes from Hummingbird
// (SwiftNIO's parser, with header size limits), on one event-loop thread of its own.
// Nothing here serves a file or a certificate; secret resources are never rendered.
// Beyond loopback it needs a bearer token (`serve --admin-expose --admin-token-file`).
import EnvoySchema
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import RolloutPlanning
import ServerTelemetry
import SnapshotStorage
import XDSCache
import XDSProtocol

/// What the admin endpoint reads from the running server.
public struct AdminSources: Sendable {
    public let hub: SnapshotHub
    public let proxies: ProxyRegistry
    public let metrics: ServerMetrics
    /// The store, for history and diffs (nil: those routes answer 404).
    public let store: (any SnapshotStoring)?
    /// Whether the xDS listener accepts connections (false before start and while draining).
    public let listening: @Sendable () -> Bool
    /// Why the store's live pointer cannot be read now (nil: it can); the replica keeps serving what it has.
    public let storeProblem: @Sendable () -> String?

    /// The current (or last) progressive rollout, if one ran since the server started.
    public let rollout: @Sendable () -> RolloutState?

    /// Every replica's proxies from a shared store's fleet table (nil: a store without one; the page shows this replica).
    public let fleet: (@Sendable () -> Result<FleetView, any Error>)?

    public init(hub: SnapshotHub, proxies: ProxyRegistry, metrics: ServerMetrics, store: (any SnapshotStoring)?, listening: @escaping @Sendable () -> Bool,
                storeProblem: @escaping @Sendable () -> String? = { nil }, rollout: @escaping @Sendable () -> RolloutState? = { nil },
                fleet: (@Sendable () -> Result<FleetView, any Error>)? = nil) {
        self.hub = hub
        self.proxies = proxies
        self.metrics = metrics
        self.store = store
        self.listening = listening
        self.storeProblem = storeProblem
        self.rollout = rollout
        self.fleet = fleet
    }
}

/// Who may read the admin endpoint.
public struct AdminAccess: Sendable {
    /// When set, every path but the probes (/healthz, /readyz) needs `Authorization: Bearer <token>`.
    public var bearerToken: String?

    public init(bearerToken: String? = nil) { self.bearerToken = bearerToken }

    /// Open to anyone who can connect: only for loopback binds (`meshctl serve` refuses it elsewhere).
    public static let open = AdminAccess()
}

/// Refuses requests without the configured bearer token (401, `WWW-Authenticate: Bearer`). The comparison takes the
/// same time wherever the first wrong byte is, so the token cannot be guessed byte by byte from response times.
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]
    let refused: @Sendable () -> Void

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let presented = request.headers[.authorization].map { Array($0.utf8) } ?? []
        let expected = Array("Bearer ".utf8) + token
        var difference = UInt8(presented.count == expected.count ? 0 : 1)
        for index in expected.indices { difference |= expected[index] ^ (index < presented.count ? presented[index] : 0) }
        guard difference == 0 else {
            refused()
            var headers = HTTPFields()
            headers[.wwwAuthenticate] = "Bearer realm=\"meshctl admin\""
            headers[.contentType] = "text/plain; charset=utf-8"
            return Response(status: .unauthorized, headers: headers,
                            body: .init(byteBuffer: ByteBuffer(string: "unauthorized: send Authorization: Bearer <the token in serve's --admin-token-file>\n")))
        }
        return try await next(request, context)
    }
}

/// The running admin HTTP server.
public final class AdminServer: @unchecked Sendable {
    // @unchecked Sendable: `task` and `boundPort` are set by `start` before it returns and read by `stop`/callers after it; the owner (XDSServer) never calls the two concurrently.
    private let sources: AdminSources
    private let access: AdminAccess
    private let group: MultiThreadedEventLoopGroup
    private var task: Task<Void, any Error>?
    public private(set) var boundPort = 0

    public init(sources: AdminSources, access: AdminAccess = .open) {
        self.sources = sources
        self.access = access
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Binds `host:port` (port 0: any free port) and serves until `stop()`.
    public func start(host: String, port: Int, log: ServerLog) async throws {
        let router = Router()
        let sources = self.sources
        router.get("/healthz") { _, _ in "ok\n" }
        router.get("/readyz") { _, _ -> Response in
            let (ready, why) = AdminRoutes.readiness(sources)
            // Ready while there is a snapshot to serve, even with the store unreachable: say so in the body.
            let note = sources.storeProblem().map { " (store unavailable, serving the last loaded snapshot: \($0))" } ?? ""
            return AdminRoutes.text(ready ? "ready\(note)\n" : "not ready: \(why)\(note)\n", status: ready ? .ok : .serviceUnavailable)
        }
        // Routes added after this line need the token (Hummingbird binds middleware to a route when it is added);
        // the probes above stay open: they say only "ok"/"ready" and orchestrators probe without credentials.
        if let token = access.bearerToken {
            let metrics = sources.metrics
            router.add(middleware: BearerTokenMiddleware(token: Array(token.utf8), refused: { metrics.adminRequestRefused() }))
        }
        router.get("/metrics") { _, _ -> Response in
            AdminRoutes.text(sources.metrics.render(proxies: sources.proxies, hub: sources.hub), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/debug/proxies") { request, _ -> Response in
            AdminRoutes.json(AdminRoutes.proxyTable(sources, node: request.uri.queryParameters.get("node")))
        }
        router.get("/api/snapshots") { _, _ -> Response in
            guard let store = sources.store else { return AdminRoutes.text("no store\n", status: .notFound) }
            return AdminRoutes.snapshots(store: store, served: sources.hub.current?.version)
        }
        router.get("/api/rollout") { _, _ -> Response in
            guard let state = sources.rollout() else { return AdminRoutes.text("no rollout has run on this server\n", status: .notFound) }
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(data: state.encoded())))
        }
        router.get("/api/fleet") { _, _ -> Response in
            guard let fleet = sources.fleet else { return AdminRoutes.text("no fleet table: the store is not a shared (PostgreSQL) store\n", status: .notFound) }
            switch fleet() {
            case .success(let view): return AdminRoutes.json(AdminRoutes.FleetTable(view))
            case .failure(let error): return AdminRoutes.text("cannot read the fleet table: \(error)\n", status: .serviceUnavailable)
            }
        }
        router.get("/diff") { request, _ -> Response in
            guard let store = sources.store else { return AdminRoutes.text("no store\n", status: .notFound) }
            return AdminRoutes.diff(store: store, from: request.uri.queryParameters.get("from"), to: request.uri.queryParameters.get("to"))
        }
        router.get("/") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/html; charset=utf-8"
            headers[.cacheControl] = "no-store"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: StatusPage.html)))
        }
        var quiet = Logger(label: "meshctl.admin")
        quiet.logLevel = .critical
        let decoder = HTTP1Channel.Configuration.DecoderConfiguration(maxHeaderFieldSize: 8 * 1024, maxHeaderListSize: 32 * 1024, maxHeaderFieldCount: 100)
        let bound = AsyncStream<Int>.makeStream()
        let app = Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(30), httpDecoderConfiguration: decoder)),
            configuration: .init(address: .hostname(host, port: port), serverName: "meshctl"),
            onServerRunning: { channel in
                bound.continuation.yield(channel.localAddress?.port ?? 0)
                bound.continuation.finish()
            },
            eventLoopGroupProvider: .shared(group),
            logger: quiet
        )
        task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = bound.stream.makeAsyncIterator()
        // The stream ends without a port when binding failed: report the task's error.
        if let port = await iterator.next() {
            boundPort = port
            log.info("admin.listening", ["address": "\(host):\(port)", "paths": "/ /healthz /readyz /metrics /debug/proxies /api/snapshots /api/fleet /diff"])
            return
        }
        do {
            try await task!.value
            throw AdminServerError(description: "the admin endpoint stopped before listening on \(host):\(port)")
        } catch let error as AdminServerError {
            throw error
        } catch {
            throw AdminServerError(description: "cannot listen on \(host):\(port) for the admin endpoint: \(error)")
        }
    }

    public func stop() async {
        task?.cancel()
        _ = try? await task?.value
        try? await group.shutdownGracefully()
    }
}

/// Why the admin endpoint could not start.
public struct AdminServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// The admin routes' bodies, as plain functions of the server's state.
enum AdminRoutes {
    static func readiness(_ sources: AdminSources) -> (Bool, String) {
        guard sources.hub.current != nil else { return (false, "no snapshot loaded yet (publish one with meshctl compile)") }
        guard sources.listening() else { return (false, "the xDS listener is not accepting connections (starting or draining)") }
        return (true, "")
    }

    /// The JSON behind /debug/proxies and the status page.
    struct ProxyTable: Codable {
        var servedVersion: String?
        var servedCreatedAt: Date?
        var generatedAt: Date
        var proxyCount: Int
        var proxies: [ProxyStreamRecord]
    }

    static func proxyTable(_ sources: AdminSources, node: String?) -> ProxyTable {
        var proxies = sources.proxies.proxies
        if let node, !node.isEmpty { proxies = proxies.filter { $0.nodeID == node } }
        let current = sources.hub.current
        return ProxyTable(servedVersion: current?.version, servedCreatedAt: current?.metadata.createdAt, generatedAt: Date(),
                          proxyCount: proxies.count, proxies: proxies)
    }

    /// The JSON behind /api/fleet and the page's fleet section: every replica and its proxies from the fleet table.
    struct FleetTable: Codable {
        struct Replica: Codable {
            var replicaId: String
            var xdsAddress: String
            var adminAddress: String?
            var servingVersion: String?
            var maintenanceLeader: Bool
            var heartbeatAgeSeconds: Double
            var stale: Bool
            var proxies: [ProxyStreamRecord]
        }
        var generatedAt: Date
        var proxyCount: Int
        var nackedCount: Int
        var replicas: [Replica]

        init(_ view: FleetView) {
            generatedAt = Date()
            proxyCount = view.proxies.count
            nackedCount = view.proxies.filter { !$0.nacks.isEmpty }.count
            replicas = view.replicas.map { r in
                Replica(replicaId: r.replicaID, xdsAddress: r.xdsAddress, adminAddress: r.adminAddress, servingVersion: r.servingVersion,
                        maintenanceLeader: r.maintenanceLeader, heartbeatAgeSeconds: r.heartbeatAgeSeconds.isFinite ? r.heartbeatAgeSeconds : -1,
                        stale: r.stale, proxies: view.proxies.filter { $0.replicaID == r.replicaID }.map(\.record))
            }
        }
    }

    struct SnapshotEntry: Codable {
        var version: String
        var createdAt: Date
        var author: String?
        var message: String?
        var sourceRevision: String?
        var groups: Int
        var resources: Int
        var live: Bool
        var served: Bool
    }

    struct HistoryList: Codable {
        var versions: [SnapshotEntry]
        var history: [HistoryEvent]
    }

    static func snapshots(store: any SnapshotStoring, served: String?) -> Response {
        do {
            let versions = try store.list().map { v in
                SnapshotEntry(version: v.metadata.version, createdAt: v.metadata.createdAt, author: v.metadata.author, message: v.metadata.message,
                              sourceRevision: v.metadata.sourceRevision, groups: v.groupCount, resources: v.resourceCount,
                              live: v.isCurrent, served: v.metadata.version == served)
            }
            let history = (try? store.history()) ?? []
            return json(HistoryList(versions: versions, history: Array(history.suffix(50).reversed())))
        } catch {
            return text("cannot read the store: \(error)\n", status: .internalServerError)
        }
    }

    static func diff(store: any SnapshotStoring, from: String?, to: String?) -> Response {
        guard let from, !from.isEmpty else { return text("give ?from=VERSION (and optionally &to=VERSION, default current)\n", status: .badRequest) }
        do {
            let a = try store.load(version: from)
            let b = try store.load(version: to ?? "current")
            let renderer = ResourceRenderer(redactsSecrets: true)
            return text(SnapshotDiff(from: a, to: b).render(fieldDiffs: true, context: 3) { renderer.yaml($0) })
        } catch {
            return text("\(error)\n", status: .notFound)
        }
    }

    static func text(_ body: String, status: HTTPResponse.Status = .ok, contentType: String = "text/plain; charset=utf-8") -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    static func json(_ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(date.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true)))
        }
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
