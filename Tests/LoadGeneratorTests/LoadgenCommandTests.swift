// `meshctl loadgen` as a user runs it: exit status and message for bad targets, bounded waits.
import Foundation
import XCTest

extension LoadGeneratorTests {
    /// The meshctl binary built next to this test bundle (whatever the scratch path).
    var meshctl: String? {
        let bundle = Bundle.main.bundleURL
        for directory in [Bundle.main.executableURL?.deletingLastPathComponent(), bundle, bundle.deletingLastPathComponent()].compactMap({ $0 }) {
            let candidate = directory.appendingPathComponent("meshctl").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs meshctl with `arguments`; (exit status, stderr), or nil if it did not end within `timeout` seconds.
    func runMeshctl(_ arguments: [String], timeout: Double = 60) throws -> (Int32, String)? {
        let executable = try XCTUnwrap(meshctl, "meshctl is built next to the tests")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = directory + "/stderr-\(UUID().uuidString.prefix(6))"
        FileManager.default.createFile(atPath: errors, contents: nil)
        process.standardError = FileHandle(forWritingAtPath: errors)
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            return nil
        }
        return (process.terminationStatus, (try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")
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
