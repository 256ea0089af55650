// The files a mesh's resources name (certificates, keys, CA bundles) live on the proxies' hosts: a compile
// checks them on the host it runs on, as Envoy would, and reports what is missing or unusable as a warning
// naming that host (--host-files warning, the default), as an error (error), or not at all (off).
import EnvoySchema
import Foundation
import MeshCompilation
import MeshTestSupport
import XCTest

final class HostFileCheckTests: XCTestCase {
    /// The demo mesh with its certificate directory moved to `directory`.
    func mesh(certificates directory: String) throws -> MeshFixture {
        let fixture = try MeshFixture()
        try fixture.replace("Configs/mesh.yaml", "directory: /tmp/meshctl-demo/certs", with: "directory: \(directory)")
        return fixture
    }

    func compile(_ fixture: MeshFixture, _ check: HostFileCheck) throws -> CompileReport {
        var inputs = fixture.inputs
        inputs.hostFiles = check
        return try MeshCompiler.compile(inputs, pool: TestSupport.pool, encode: true)
    }

    func testMissingCertificatesAreWarningsNamingThisHostAndTheSnapshotIsStillBuilt() throws {
        let certificates = try TestPaths.temporaryDirectory("meshctl-hostfiles")
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        let report = try compile(try mesh(certificates: certificates), .warning)
        let hostFiles = report.diagnostics.filter { HostFileCheck.rules.contains($0.rule) }
        XCTAssertFalse(hostFiles.isEmpty, report.summary())
        XCTAssertTrue(hostFiles.allSatisfy { $0.severity == .warning }, report.summary())
        XCTAssertEqual(report.errorCount, 0, report.summary())
        XCTAssertFalse(report.groups.isEmpty, "warnings do not stop the compile")
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? ""
        for diagnostic in hostFiles {
            XCTAssertTrue(diagnostic.message.contains(certificates + "/"), diagnostic.message)
            XCTAssertTrue(diagnostic.message.contains("checked on \(host)"), diagnostic.message)
            XCTAssertTrue(diagnostic.message.contains("--host-files error"), diagnostic.message)
            XCTAssertNotNil(diagnostic.file, "at the template or service line that names the file")
        }
        // Every file of the trust chain the demo names: the CA bundle and each group's certificate and key.
        XCTAssertTrue(hostFiles.contains { $0.message.contains(certificates + "/ca.crt") })
        XCTAssertTrue(hostFiles.contains { $0.message.contains("private key") })
    }

    func testHostFilesErrorMakesThemErrorsAndOffSkipsThem() throws {
        let certificates = try TestPaths.temporaryDirectory("meshctl-hostfiles")
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        let fixture = try mesh(certificates: certificates)
        let strict = try compile(fixture, .error)
        XCTAssertGreaterThan(strict.diagnostics.filter { HostFileCheck.rules.contains($0.rule) && $0.severity == .error }.count, 0, strict.summary())
        XCTAssertTrue(strict.groups.isEmpty, "an error stops the compile")
        let off = try compile(fixture, .off)
        XCTAssertEqual(off.diagnostics.filter { HostFileCheck.rules.contains($0.rule) }, [], off.summary())
        XCTAssertEqual(off.errorCount + off.warningCount, 0, off.summary())
    }

    func testAFileThatIsNotACertificateIsReportedAsSuch() throws {
        let certificates = try TestPaths.temporaryDirectory("meshctl-hostfiles")
        defer { try? FileManager.default.removeItem(atPath: certificates) }
        try "not a certificate\n".write(toFile: certificates + "/ca.crt", atomically: true, encoding: .utf8)
        let report = try compile(try mesh(certificates: certificates), .warning)
        XCTAssertTrue(report.diagnostics.contains { $0.rule == "envoy.tls-file" && $0.message.contains("contains no PEM certificate") }, report.summary())
        XCTAssertFalse(report.diagnostics.contains { $0.message.contains(certificates + "/ca.crt does not exist") }, report.summary())
    }
}
