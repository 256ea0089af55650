// `meshctl loadgen` as a user runs it: exit status and message for bad targets, bounded waits.
import ControlPlane
import Foundation
import MeshTestSupport
import XCTest

final class LoadgenCommandTests: XCTestCase {
    var directory = ""
    var server: XDSServer!

    override func setUpWithError() throws {
        (directory, server) = try FrontendMesh.serve()
    }

    override func tearDown() {
        FrontendMesh.stop(server, directory: directory)
    }

    /// Runs meshctl with `arguments`; (exit status, stderr), or nil if it did not end within `timeout` seconds.
    func runMeshctl(_ arguments: [String], timeout: Double = 60) throws -> (Int32, String)? {
        do {
            let result = try ProcessRunner.run(TestPaths.meshctl, arguments, timeout: timeout)
            return (result.status, result.stderrText)
        } catch is ProcessTimeout {
            return nil
        }
    }

    func commandLine(_ extra: [String], ca: String? = nil) -> [String] {
        ["loadgen", "--server", "127.0.0.1:\(server.boundPort)", "--ca", ca ?? directory + "/certs/ca.crt",
         "--cert", directory + "/certs/frontend.crt", "--key", directory + "/certs/frontend.key",
         "--groups", "frontend", "--proxies", "4", "--duration", "30"] + extra
    }

    func testCommandRefusesANonLoopbackServerWithoutAllowRemote() throws {
        let result = try XCTUnwrap(runMeshctl(commandLine(["--server", "192.0.2.1:18000"])), "ends at once")
        XCTAssertEqual(result.0, 2)
        XCTAssertTrue(result.1.contains("not a loopback address"), result.1)
    }

    func testCommandWithTheWrongCAExitsOneNamingTheHandshake() throws {
        let result = try XCTUnwrap(runMeshctl(commandLine([], ca: directory + "/other-ca/ca.crt")), "ends before --duration")
        XCTAssertEqual(result.0, 1)
        XCTAssertTrue(result.1.contains("TLS handshake with 127.0.0.1:\(server.boundPort) failed"), result.1)
    }

    func testCommandAgainstAHealthyServerExitsZeroAndWritesJSON() throws {
        let json = directory + "/report.json"
        let result = try XCTUnwrap(runMeshctl(commandLine(["--duration", "2", "--json", json, "--store", directory + "/store"])))
        XCTAssertEqual(result.0, 0, result.1)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        XCTAssertEqual(report["configuredProxies"] as? Int, 4)
    }
}
