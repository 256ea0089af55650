// `meshctl validate --envoy` and `schema encode` read a flow collection written many times once and check
// it once per context (RepeatedCollections). What users see must not change: every problem is reported
// at its own copy's line, a copy that passes in one place is still checked in another, and the encoding
// is byte for byte the same.
import EnvoySchema
import Foundation
import XCTest

final class RepeatedCollectionTests: XCTestCase {
    /// A bootstrap whose routes repeat one route action and one match; `routeAction` and `match` replace them.
    static func bootstrap(routeAction: String = "{cluster: app, timeout: 3s, retry_policy: {retry_on: \"5xx,reset\", num_retries: 3, per_try_timeout: 0.5s}}",
                          match: String = "{prefix: \"/\", headers: [{name: x-canary, string_match: {exact: \"true\"}}]}") -> String {
        var lines = [
            "static_resources:",
            "  listeners:",
            "  - name: ingress",
            "    address: {socket_address: {address: 127.0.0.1, port_value: 10000}}",
            "    filter_chains:",
            "    - filters:",
            "      - name: envoy.filters.network.http_connection_manager",
            "        typed_config:",
            "          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "          stat_prefix: ingress",
            "          http_filters: [{name: envoy.filters.http.router, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}]",
            "          route_config:",
            "            name: routes",
            "            virtual_hosts:",
        ]
        for i in 0..<3 {
            lines += ["            - name: vh\(i)", "              domains: [\"app\(i).example.com\"]", "              routes:",
                      "              - match: \(match)", "                route: \(routeAction)"]
        }
        lines += ["  clusters:", "  - name: app", "    connect_timeout: 1s", "    load_assignment:", "      cluster_name: app",
                  "      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The lines of the three virtual hosts' match and route lines.
    static let matchLines = [18, 23, 28]
    static let routeLines = [19, 24, 29]

    func validate(_ text: String, sharingRepeats: Bool = true) -> [Diagnostic] {
        BootstrapValidation.validate(text: text, file: "repeats.yaml", syntax: .yaml, pool: TestSupport.pool, sharingRepeats: sharingRepeats)
    }

    /// Whether sharing and not sharing give the same report, positions and paths included.
    func assertSameReport(_ text: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        let shared = validate(text).map(\.description)
        let unshared = validate(text, sharingRepeats: false).map(\.description)
        XCTAssertEqual(shared, unshared, "\(message): sharing repeats changed the report for:\n\(text)", file: file, line: line)
    }

    func testARepeatedListOfNamesWithAProblemIsReportedAtEachCopysLine() throws {
        // A list of scalars written three times (no mapping in it): shared all the same, so a report must come from
        // the unshared reading. The same domains in three virtual hosts are duplicates.
        let text = Self.bootstrap().replacingOccurrences(of: #"domains: ["app0.example.com"]"#, with: #"domains: ["example.com", "www.example.com"]"#)
            .replacingOccurrences(of: #"domains: ["app1.example.com"]"#, with: #"domains: ["example.com", "www.example.com"]"#)
            .replacingOccurrences(of: #"domains: ["app2.example.com"]"#, with: #"domains: ["example.com", "www.example.com"]"#)
        XCTAssertTrue(try YAMLDocument.parseSharingRepeats(text).repeats.sharesAny)
        let duplicates = validate(text).filter { $0.rule == "xref.duplicate-domain" }
        XCTAssertFalse(duplicates.isEmpty)
        // Both domains of the second and third hosts, each at its own host's line.
        XCTAssertEqual(duplicates.compactMap { $0.location?.line }.sorted(), [21, 21, 26, 26], "\(duplicates)")
        assertSameReport(text, "repeated domains")
    }

    func testSharingNeverChangesTheReportOfEditedBootstraps() {
        // Seeded edits inside the repeated lines (and anywhere else): every result, clean or not, must be exactly
        // the unshared one.
        var generator = SplitMix64(seed: 0x5EED_0009)
        let alphabet = Array(" :-\"'{}[],ax1.0_/".utf8)
        let seeds = [Self.bootstrap(), Self.bootstrap(routeAction: "{cluster: app, timeout: 3s, retry_policy: {retry_on: \"5xx\", retriable_status_codes: [503, 504]}}")]
        var reported = 0
        for round in 0..<300 {
            var bytes = Array(seeds[round % seeds.count].utf8)
            for _ in 0..<(1 + Int(generator.next() % 2)) {
                let position = Int(generator.next() % UInt64(bytes.count))
                let byte = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                switch generator.next() % 3 {
                case 0: bytes.insert(byte, at: position)
                case 1: bytes.remove(at: position)
                default: bytes[position] = byte
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if !validate(text, sharingRepeats: false).isEmpty { reported += 1 }
            assertSameReport(text, "round \(round)")
        }
        XCTAssertGreaterThan(reported, 30, "the edits must also produce reports to compare")
    }

    func testTheBootstrapRepeatsAndPasses() throws {
        let text = Self.bootstrap()
        XCTAssertTrue(try YAMLDocument.parseSharingRepeats(text).repeats.sharesAny, "the test bootstrap has no repeats to share")
        XCTAssertEqual(validate(text), [])
    }

    func testAProblemInsideRepeatedCopiesIsReportedAtEachCopysLine() {
        // A cross-reference (the cluster does not exist) and a constraint (an empty header name) in text
        // written three times: three reports each, at the three copies' own lines.
        let diagnostics = validate(Self.bootstrap(routeAction: "{cluster: nowhere, timeout: 3s, retry_policy: {num_retries: 3}}",
                                                  match: "{prefix: \"/\", headers: [{name: \"\", string_match: {exact: \"true\"}}]}"))
        let missingCluster = diagnostics.filter { $0.message.contains("nowhere") }
        XCTAssertEqual(missingCluster.compactMap { $0.location?.line }.sorted(), Self.routeLines.map(Int32.init), "\(diagnostics)")
        let emptyName = diagnostics.filter { $0.rule.hasPrefix("pgv.string") }
        XCTAssertEqual(emptyName.compactMap { $0.location?.line }.sorted(), Self.matchLines.map(Int32.init), "\(diagnostics)")
        XCTAssertEqual(Set(emptyName.map(\.path)).count, 3, "each copy has its own path: \(emptyName.map(\.path))")
    }

    func testAWarningInsideRepeatedCopiesIsReportedForEachCopy() {
        // A deprecated field (a warning, not an error) is read, not shared: each copy's own report.
        let diagnostics = validate(Self.bootstrap(match: "{prefix: \"/\", headers: [{name: x-canary, exact_match: \"true\"}]}"))
        let lines = diagnostics.filter { $0.severity != .error || $0.rule.contains("deprecated") || $0.rule.contains("disallowed") }.compactMap { $0.location?.line }
        XCTAssertEqual(Set(lines), Set(Self.matchLines.map(Int32.init)), "\(diagnostics)")
    }

    func testEncodingIsTheSameWithAndWithoutSharing() throws {
        let text = Self.bootstrap()
        let type = TestSupport.type("envoy.config.bootstrap.v3.Bootstrap")
        let shared = ConfigDocument.decode(text: text, file: "b.yaml", syntax: .yaml, type: type, pool: TestSupport.pool, sharingRepeats: true)
        let plain = ConfigDocument.decode(text: text, file: "b.yaml", syntax: .yaml, type: type, pool: TestSupport.pool)
        XCTAssertEqual(shared.diagnostics, [])
        XCTAssertEqual(plain.diagnostics, [])
        let bytes = try XCTUnwrap(shared.message).serialized(pool: TestSupport.pool)
        XCTAssertEqual(bytes, try XCTUnwrap(plain.message).serialized(pool: TestSupport.pool))
        XCTAssertGreaterThan(bytes.count, 500)
        // And with a problem: the same report from both.
        let broken = Self.bootstrap(match: "{prefix: \"/\", headers: [{name: \"\", string_match: {exact: \"true\"}}]}")
        XCTAssertEqual(ConfigDocument.decode(text: broken, file: "b.yaml", syntax: .yaml, type: type, pool: TestSupport.pool, sharingRepeats: true).diagnostics,
                       ConfigDocument.decode(text: broken, file: "b.yaml", syntax: .yaml, type: type, pool: TestSupport.pool).diagnostics)
    }

    func testACopyThatPassesAsOneListenersFilterIsCheckedAgainInAUDPListener() {
        // The same listener filter text in a TCP listener (right) and in a UDP listener (the wrong family):
        // the second copy must still be refused.
        let filters = "listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]"
        let text = """
        static_resources:
          listeners:
          - name: tcp
            address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
            \(filters)
            filter_chains: [{filters: [{name: envoy.filters.network.echo, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo}}]}]
          - name: udp
            address: {socket_address: {address: 127.0.0.1, port_value: 10001, protocol: UDP}}
            \(filters)

        """
        let diagnostics = validate(text)
        XCTAssertEqual(diagnostics.filter { $0.rule == "schema.extension-category" }.compactMap { $0.location?.line }, [9], "\(diagnostics)")
    }
}
