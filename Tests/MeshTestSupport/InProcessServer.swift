// An xDS server in the test process: mutual TLS with development certificates, an
// ephemeral loopback port, one event loop, quiet logs, and a bounded drain at the end.
import ControlPlane
import Foundation
import ServerTelemetry
import SnapshotStorage
import Transport

public enum InProcessServer {
    /// Starts serving `store` with the server certificate and CA in `certificates` (as `meshctl certs init` lays them
    /// out) on `port` (0: an ephemeral one), then waits up to 10 s for the live snapshot to be served (check `server.hub.current`).
    public static func start(store: String, certificates: String, eventLoops: Int = 1, port: Int = 0) throws -> XDSServer {
        var options = XDSServerOptions()
        options.port = port
        options.eventLoops = eventLoops
        options.drainGrace = .milliseconds(200)
        options.tls = TLSServerCredentials(certificateChainFile: certificates + "/server.crt", privateKeyFile: certificates + "/server.key",
                                           clientCAFile: certificates + "/ca.crt")
        let server = try XDSServer(options: options, store: SnapshotStore(directory: store), log: ServerLog(minimumLevel: .error))
        try server.start()
        let deadline = Date().addingTimeInterval(10)
        while server.hub.current == nil && Date() < deadline { usleep(20_000) }
        return server
    }

    /// Drains and stops `server`, waiting at most 20 s.
    public static func stop(_ server: XDSServer?) {
        guard let server else { return }
        let stopped = DispatchSemaphore(value: 0)
        Task.detached {
            await server.drain()
            stopped.signal()
        }
        _ = stopped.wait(timeout: .now() + 20)
    }
}
