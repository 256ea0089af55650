// `meshctl serve`: the store, the hub, the xDS services and the transport put
// together. Loads the live snapshot, follows the store for new ones (hot
// reload), and drains gracefully on request.
import Foundation
import SnapshotStore
import Transport

/// Everything `meshctl serve` is configured with.
public struct XDSServerOptions: Sendable {
    public var storeDirectory: String
    public var host = "127.0.0.1"
    public var port = 18000
    /// nil with `insecurePlaintext`.
    public var tls: TLSServerCredentials?
    public var insecurePlaintext = false
    public var eventLoops = EventLoopGroup.onlineCPUCount
    public var limits = TransportLimits()
    public var drainGrace: Duration = .seconds(10)

    public init(storeDirectory: String) { self.storeDirectory = storeDirectory }
}

/// Why the server could not start.
public struct XDSServerError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// A running xDS server.
public final class XDSServer: @unchecked Sendable {
    public let hub = SnapshotHub()
    public let log: ServerLog
    private let options: XDSServerOptions
    private let grpc: GRPCServer
    private var watcher: SnapshotWatcher?
    public private(set) var boundPort = 0

    public init(options: XDSServerOptions, log: ServerLog) throws {
        self.options = options
        self.log = log
        let security: ServerTransportSecurity
        if options.insecurePlaintext {
            security = .insecurePlaintext
        } else if let tls = options.tls {
            security = .mutualTLS(tls)
        } else {
            throw XDSServerError(description: "mutual TLS needs --tls-cert, --tls-key and --client-ca (or --insecure-plaintext for local development)")
        }
        var configuration = GRPCServerConfiguration(host: options.host, port: options.port, security: security)
        configuration.eventLoopCount = max(1, options.eventLoops)
        configuration.limits = options.limits
        do {
            grpc = try GRPCServer(configuration: configuration)
        } catch {
            throw XDSServerError(description: "cannot set up the xDS listener: \(error)")
        }
    }

    /// Starts serving: the listener, then the store watcher (the live snapshot arrives as its first event).
    public func start() throws {
        var serviceConfiguration = XDSServiceConfiguration()
        serviceConfiguration.insecurePlaintext = options.insecurePlaintext
        let service = XDSService(hub: hub, configuration: serviceConfiguration, log: log)
        do {
            boundPort = try grpc.start(handler: service)
        } catch {
            throw XDSServerError(description: "cannot listen on \(options.host):\(options.port): \(error)")
        }
        let store = SnapshotStore(directory: options.storeDirectory)
        let hub = self.hub
        let log = self.log
        watcher = SnapshotWatcher(store: store) { event in
            switch event {
            case .loaded(let snapshot):
                let started = DispatchTime.now()
                let notified = hub.serve(snapshot)
                log.info("snapshot.loaded", ["version": String(snapshot.metadata.version.prefix(12)), "groups": "\(snapshot.groups.count)",
                                             "resources": "\(snapshot.resourceCount)", "streams_notified": "\(notified)",
                                             "handoff_ms": "\((DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1_000_000)"])
            case .refused(let version, let error):
                log.error("snapshot.refused", ["version": String(version.prefix(12)), "error": "\(error)", "serving": String(hub.current?.version.prefix(12) ?? "none")])
            }
        }
        log.info("server.listening", ["address": "\(options.host):\(boundPort)", "tls": options.insecurePlaintext ? "off (--insecure-plaintext)" : "mutual",
                                      "store": options.storeDirectory, "loops": "\(options.eventLoops)"])
    }

    public var statistics: TransportStatistics { grpc.statistics }

    /// Stops accepting, tells proxies to go elsewhere (GOAWAY, UNAVAILABLE), waits up to the grace period.
    public func drain() async {
        log.info("server.draining", ["grace": "\(options.drainGrace)"])
        watcher?.stop()
        await grpc.drain(gracePeriod: options.drainGrace)
        await grpc.shutdown()
    }
}
