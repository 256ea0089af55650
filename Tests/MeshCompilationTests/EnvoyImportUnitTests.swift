// `meshctl import` without Envoy: what a flat bootstrap becomes (RDS for inline routes, EDS for STATIC endpoints,
// SDS for static secrets), what is listed as not imported (by field path, at its line), the raw group compiling in a
// mesh of its own, and the refusals — no such file, an invalid bootstrap (file:line:column from the schema engine),
// a group name that exists, a file that exists without --force — each leaving Configs/ as it was.
import EnvoySchema
import Foundation
@testable import MeshCompilation
import MeshModel
import MeshTestSupport
import XCTest

final class EnvoyImportUnitTests: XCTestCase {
    /// A front proxy as teams write them: bootstrap-only settings around two listeners whose route configurations are
    /// both called local_route (with different routes), a STATIC and a STRICT_DNS cluster, and a static secret.
    static let bootstrap = """
    node:
      id: edge-1
      cluster: edge
      metadata: {team: web}
    admin:
      address: {socket_address: {address: 0.0.0.0, port_value: 9902}}
    layered_runtime:
      layers: [{name: static, static_layer: {a: 1}}]
    stats_sinks:
    - name: envoy.stat_sinks.statsd
      typed_config: {"@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink, tcp_cluster_name: web}
    cluster_manager: {local_cluster_name: web}
    overload_manager:
      refresh_interval: 0.25s
      resource_monitors:
      - name: envoy.resource_monitors.fixed_heap
        typed_config: {"@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig, max_heap_size_bytes: 1000000000}
    static_resources:
      secrets:
      - name: edge-cert
        tls_certificate:
          certificate_chain: {filename: /etc/edge/cert.pem}
          private_key: {filename: /etc/edge/key.pem}
      listeners:
      - address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: http
              route_config:
                name: local_route
                virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: web}}]}]
              http_filters:
              - name: envoy.filters.http.router
                typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
      - name: https
        address: {socket_address: {address: 0.0.0.0, port_value: 8443}}
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: https
              route_config:
                name: local_route
                virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /api}, route: {cluster: api}}]}]
              http_filters:
              - name: envoy.filters.http.router
                typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          transport_socket:
            name: envoy.transport_sockets.tls
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
              common_tls_context:
                tls_certificate_sds_secret_configs: [{name: edge-cert}]
      clusters:
      - name: web
        connect_timeout: 1s
        load_assignment:
          cluster_name: web
          endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]
      - name: api
        type: STRICT_DNS
        connect_timeout: 1s
        load_assignment:
          cluster_name: api
          endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: api.internal, port_value: 80}}}}]}]
    """

    var directory = ""

    override func setUpWithError() throws {
        directory = try TestPaths.temporaryDirectory("meshctl-import")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    func convert(_ text: String = bootstrap, file: String = "edge.yaml", mode: SubscriptionMode = .adsStateOfTheWorld) -> ImportOutcome {
        EnvoyImport.convert(text: text, file: file, group: "edge", mode: mode, pool: TestSupport.pool)
    }

    /// The group file's `envoy.add` lists: kind → resources (YAML nodes).
    func resources(_ text: String?) throws -> [String: [YAMLNode]] {
        let root = try XCTUnwrap(try YAMLDocument.parse(try XCTUnwrap(text)))
        guard let envoy = root.field("envoy"), let add = envoy.field("add"), case .mapping(let pairs) = add.kind else { XCTFail("no envoy.add"); return [:] }
        var out: [String: [YAMLNode]] = [:]
        for (key, value) in pairs { if case .sequence(let items) = value.kind { out[key.scalarText ?? ""] = items } }
        return out
    }

    func testEveryBootstrapOnlySettingIsListedByPathAtItsLine() {
        let outcome = convert()
        XCTAssertEqual(outcome.errorCount, 0, "\(outcome.diagnostics)")
        let skipped = outcome.diagnostics.filter { $0.rule == "import.not-imported" }
        XCTAssertEqual(skipped.map(\.path), ["node.metadata", "admin", "layered_runtime", "stats_sinks", "cluster_manager", "overload_manager"])
        XCTAssertEqual(skipped.map { $0.location?.line ?? 0 }, [4, 5, 7, 9, 12, 13])
        XCTAssertTrue(skipped.allSatisfy { $0.severity == .warning && $0.file == "edge.yaml" && $0.message.hasPrefix("not imported: ") })
        XCTAssertTrue(skipped.first { $0.path == "overload_manager" }!.message.contains("bootstrap-only"))
        // Carried to the bootstrap command, not lost: the node id and the admin port.
        XCTAssertEqual(outcome.nodeID, "edge-1")
        XCTAssertEqual(outcome.adminPort, 9902)
        // The group file lists them too, for whoever reads it later.
        XCTAssertTrue(outcome.text?.contains("#   layered_runtime (line 7)") == true, outcome.text ?? "")
    }

    func testStaticResourcesBecomeLDSRDSCDSEDSAndSDS() throws {
        let outcome = convert()
        let lists = try resources(outcome.text)
        XCTAssertEqual(lists["listeners"]?.count, 2)
        XCTAssertEqual(lists["listeners"]?.first?.field("name")?.scalarText, "0.0.0.0_8080", "an unnamed listener gets a name for LDS")
        // Both listeners' routes were called local_route, with different content: both served, under distinct names.
        let routeNames = lists["route_configurations"]?.compactMap { $0.field("name")?.scalarText }
        XCTAssertEqual(routeNames, ["local_route", "local_route.https"])
        let text = try XCTUnwrap(outcome.text)
        XCTAssertTrue(text.contains("route_config_name: local_route.https"), text)
        XCTAssertFalse(text.contains("route_config:"), "no inline route configuration is left")
        // STATIC → EDS with its assignment; STRICT_DNS keeps its endpoints inline (EDS does not resolve names).
        let clusters = try XCTUnwrap(lists["clusters"])
        XCTAssertEqual(clusters[0].field("type")?.scalarText, "EDS")
        XCTAssertNotNil(clusters[0].field("eds_cluster_config")?.field("eds_config")?.field("ads"))
        XCTAssertNil(clusters[0].field("load_assignment"))
        XCTAssertEqual(clusters[1].field("type")?.scalarText, "STRICT_DNS")
        XCTAssertNotNil(clusters[1].field("load_assignment"))
        XCTAssertEqual(lists["cluster_load_assignments"]?.compactMap { $0.field("cluster_name")?.scalarText }, ["web"])
        XCTAssertTrue(outcome.diagnostics.contains { $0.rule == "import.inline-endpoints" && $0.path == "static_resources.clusters[1].load_assignment" })
        // The static secret is an SDS secret, and the reference to it names the group's config source.
        XCTAssertEqual(lists["secrets"]?.compactMap { $0.field("name")?.scalarText }, ["edge-cert"])
        XCTAssertTrue(text.contains("- name: edge-cert\n") && text.contains("sds_config:"), text)
        XCTAssertEqual(outcome.counts["listeners"], 2)
        XCTAssertEqual(outcome.counts["cluster_load_assignments"], 1)
    }

    /// Endpoints sharing an address stay apart in a static assignment but are merged by EDS: such a cluster stays inline.
    func testAStaticClusterWithTwoEndpointsOnOneAddressStaysInline() throws {
        let text = Self.bootstrap.replacingOccurrences(of: "endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]",
                                                       with: "endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}, {endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 80}}}}]}]")
        XCTAssertNotEqual(text, Self.bootstrap)
        let outcome = convert(text)
        let clusters = try XCTUnwrap(try resources(outcome.text)["clusters"])
        XCTAssertNil(clusters[0].field("type"), "still STATIC")
        XCTAssertNotNil(clusters[0].field("load_assignment"))
        XCTAssertNil(try resources(outcome.text)["cluster_load_assignments"])
        XCTAssertTrue(outcome.diagnostics.contains { $0.rule == "import.inline-endpoints" && $0.path == "static_resources.clusters[0].load_assignment" && $0.message.contains("share an address") })
    }

    func testPerTypeGroupsGetTheXDSClusterAsTheirConfigSource() throws {
        let text = try XCTUnwrap(convert(mode: .perTypeDelta).text)
        XCTAssertTrue(text.contains("xds: per-type-delta"))
        XCTAssertTrue(text.contains("api_type: DELTA_GRPC"), text)
        XCTAssertTrue(text.contains("cluster_name: meshctl_xds"), text)
        XCTAssertFalse(text.contains("ads: {}"), text)
    }

    /// The written group compiles in a mesh that has nothing else (raw groups need no services), and is served with
    /// every resource type.
    func testTheImportedGroupCompiles() throws {
        let configs = try meshOnly()
        let input = directory + "/edge.yaml"
        try Self.bootstrap.write(toFile: input, atomically: true, encoding: .utf8)
        let result = try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .adsStateOfTheWorld, force: false, pool: TestSupport.pool)
        XCTAssertEqual(result.groupFile, configs + "/groups/edge.yaml")
        let command = try XCTUnwrap(result.bootstrapCommand)
        XCTAssertEqual(command, "meshctl bootstrap --node-id edge-1 --node-cluster edge --server 127.0.0.1:18000 --cert /tmp/certs/edge.crt --key /tmp/certs/edge.key --ca /tmp/certs/ca.crt --admin-port 9902")
        let report = try MeshCompiler.compile(CompileInputs(configs: configs, templates: TestSupport.root.appendingPathComponent("templates").path), pool: TestSupport.pool)
        XCTAssertEqual(report.errorCount, 0, report.diagnostics.map(\.description).joined(separator: "\n"))
        let group = try XCTUnwrap(report.groups.first { $0.group == "edge" })
        var types: [String: Int] = [:]
        for (typeURL, named) in group.resources { types[typeURL.split(separator: ".").last.map(String.init) ?? "", default: 0] += named.count }
        XCTAssertEqual(types["Listener"], 2)
        XCTAssertEqual(types["RouteConfiguration"], 2)
        XCTAssertEqual(types["Cluster"], 2)
        XCTAssertEqual(types["ClusterLoadAssignment"], 1)
        XCTAssertEqual(types["Secret"], 1)
        XCTAssertEqual(types["GroupAccess"], 1)
    }

    /// A raw group whose resources are broken is reported in the group file, at the line.
    func testMistakesInARawGroupAreReportedInItsFile() throws {
        let configs = try meshOnly()
        try FileManager.default.createDirectory(atPath: configs + "/groups", withIntermediateDirectories: true)
        try """
        name: edge
        envoy:
          add:
            clusters:
            - name: web
              type: EDS
              conect_timeout: 1s
              eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
        """.write(toFile: configs + "/groups/edge.yaml", atomically: true, encoding: .utf8)
        let report = try MeshCompiler.compile(CompileInputs(configs: configs, templates: TestSupport.root.appendingPathComponent("templates").path), pool: TestSupport.pool, encode: false)
        let found = report.diagnostics.filter { $0.severity == .error }.map { "\($0.rule) \(($0.file as NSString?)?.lastPathComponent ?? "-"):\($0.location?.line ?? 0)" }
        XCTAssertTrue(found.contains("schema.unknown-field edge.yaml:7"), "\(report.diagnostics)")
        XCTAssertTrue(found.contains("xref.eds-assignment edge.yaml:6"), "\(report.diagnostics)")
    }

    /// A raw group's config sources follow its `xds` mode: a group switched to per-type with ADS sources left in it is
    /// an error at the source, not proxies that never get their routes.
    func testARawGroupsConfigSourcesMustMatchItsMode() throws {
        let configs = try meshOnly()
        let input = directory + "/edge.yaml"
        try Self.bootstrap.write(toFile: input, atomically: true, encoding: .utf8)
        let result = try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .adsStateOfTheWorld, force: false, pool: TestSupport.pool)
        let file = try XCTUnwrap(result.groupFile)
        let templates = TestSupport.root.appendingPathComponent("templates").path
        try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "xds: ads\n", with: "xds: per-type\n").write(toFile: file, atomically: true, encoding: .utf8)
        let report = try MeshCompiler.compile(CompileInputs(configs: configs, templates: templates), pool: TestSupport.pool, encode: false)
        let found = report.diagnostics.filter { $0.rule == "config.raw-group-source" }
        // The RDS sources of two listeners, the EDS source of one cluster, the SDS source of one secret reference.
        XCTAssertEqual(found.count, 4, "\(report.diagnostics)")
        XCTAssertTrue(found.allSatisfy { $0.file == file && $0.message.contains("names ADS") && $0.location != nil })
        // Re-imported for the mode: clean.
        _ = try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .perTypeDelta, force: true, pool: TestSupport.pool)
        XCTAssertEqual(try MeshCompiler.compile(CompileInputs(configs: configs, templates: templates), pool: TestSupport.pool, encode: false).errorCount, 0)
        try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "xds: per-type-delta\n", with: "xds: per-type\n").write(toFile: file, atomically: true, encoding: .utf8)
        let wrongType = try MeshCompiler.compile(CompileInputs(configs: configs, templates: templates), pool: TestSupport.pool, encode: false)
        XCTAssertEqual(wrongType.diagnostics.filter { $0.rule == "config.raw-group-source" && $0.message.contains("api_type DELTA_GRPC") }.count, 4, "\(wrongType.diagnostics)")
    }

    // MARK: refusals

    func testAMissingFileIsAUsageError() throws {
        let configs = try meshOnly()
        XCTAssertThrowsError(try EnvoyImport.run(file: directory + "/nope.yaml", group: "edge", configs: configs, mode: .adsStateOfTheWorld, force: false, pool: TestSupport.pool)) {
            XCTAssertTrue("\($0)".contains("nope.yaml: no such file"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: configs + "/groups"))
    }

    func testAnInvalidBootstrapIsReportedAtItsLineAndNothingIsWritten() throws {
        let configs = try meshOnly()
        let input = directory + "/bad.yaml"
        try Self.bootstrap.replacingOccurrences(of: "    connect_timeout: 1s\n    load_assignment:\n      cluster_name: web",
                                                with: "    conect_timeout: 1s\n    load_assignment:\n      cluster_name: web")
            .write(toFile: input, atomically: true, encoding: .utf8)
        let result = try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .adsStateOfTheWorld, force: false, pool: TestSupport.pool)
        let error = try XCTUnwrap(result.outcome.diagnostics.first { $0.severity == .error })
        XCTAssertEqual(error.rule, "schema.unknown-field")
        XCTAssertEqual(error.file, input)
        XCTAssertEqual(error.location?.line, 60)
        XCTAssertEqual(error.location?.column, 5)
        XCTAssertTrue(error.message.contains("connect_timeout"), error.message)
        XCTAssertNil(result.groupFile)
        XCTAssertFalse(FileManager.default.fileExists(atPath: configs + "/groups/edge.yaml"))
    }

    func testABootstrapWithoutStaticResourcesHasNothingToImport() {
        let outcome = convert("admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9901}}}\n")
        XCTAssertEqual(outcome.diagnostics.filter { $0.severity == .error }.map(\.rule), ["import.no-resources"])
        XCTAssertNil(outcome.text)
    }

    func testAGroupNameThatExistsIsRefused() throws {
        let configs = try meshOnly()
        let input = directory + "/edge.yaml"
        try Self.bootstrap.write(toFile: input, atomically: true, encoding: .utf8)
        // A gateway's name.
        XCTAssertThrowsError(try EnvoyImport.run(file: input, group: "ingress", configs: configs, mode: .adsStateOfTheWorld, force: true, pool: TestSupport.pool)) {
            XCTAssertTrue("\($0)".contains("proxy group 'ingress' already exists: gateway 'ingress'"), "\($0)")
        }
        // An imported group: refused without --force, replaced with it.
        _ = try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .adsStateOfTheWorld, force: false, pool: TestSupport.pool)
        let first = try String(contentsOfFile: configs + "/groups/edge.yaml", encoding: .utf8)
        XCTAssertThrowsError(try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .perType, force: false, pool: TestSupport.pool)) {
            XCTAssertTrue("\($0)".contains("already exists: raw group 'edge'") && "\($0)".contains("--force"), "\($0)")
        }
        XCTAssertEqual(try String(contentsOfFile: configs + "/groups/edge.yaml", encoding: .utf8), first, "a refused import changes nothing")
        _ = try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .perType, force: true, pool: TestSupport.pool)
        XCTAssertTrue(try String(contentsOfFile: configs + "/groups/edge.yaml", encoding: .utf8).contains("xds: per-type"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: configs + "/groups"), ["edge.yaml"], "no temporary file is left")
        // An invalid name.
        XCTAssertThrowsError(try EnvoyImport.run(file: input, group: "Edge_1", configs: configs, mode: .adsStateOfTheWorld, force: false, pool: TestSupport.pool))
    }

    func testStrictStopsOnWhatIsNotImported() throws {
        let configs = try meshOnly()
        let input = directory + "/edge.yaml"
        try Self.bootstrap.write(toFile: input, atomically: true, encoding: .utf8)
        let result = try EnvoyImport.run(file: input, group: "edge", configs: configs, mode: .adsStateOfTheWorld, force: false, strict: true, pool: TestSupport.pool)
        XCTAssertNil(result.groupFile)
        XCTAssertGreaterThan(result.outcome.warningCount, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: configs + "/groups/edge.yaml"))
    }

    /// A raw group named like a service is a mesh error at the group's name.
    func testARawGroupCannotTakeAServicesName() throws {
        let configs = try meshOnly()
        try FileManager.default.createDirectory(atPath: configs + "/groups", withIntermediateDirectories: true)
        try "name: ingress\nenvoy: {add: {clusters: [{name: c, connect_timeout: 1s}]}}\n".write(toFile: configs + "/groups/ingress.yaml", atomically: true, encoding: .utf8)
        let report = try MeshCompiler.compile(CompileInputs(configs: configs, templates: TestSupport.root.appendingPathComponent("templates").path), pool: TestSupport.pool, encode: false)
        XCTAssertTrue(report.diagnostics.contains { $0.rule == "mesh.duplicate-group" && $0.file?.hasSuffix("groups/ingress.yaml") == true && $0.location?.line == 1 }, "\(report.diagnostics)")
    }

    /// Configs/ with mesh.yaml only (and a gateway named ingress, with no services: its template is not needed to read names).
    func meshOnly() throws -> String {
        let configs = directory + "/Configs"
        try FileManager.default.createDirectory(atPath: configs, withIntermediateDirectories: true)
        try """
        mesh: {name: edge-mesh}
        xds_server: {address: 127.0.0.1, port: 18000}
        certificates: {directory: /tmp/certs}
        gateways:
          - name: ingress
            kind: ingress
            template: ingress.yaml
            listen: {port: 10443}
            tls: {certificate: ingress.crt, private_key: ingress.key}
            routes: [{match: {prefix: /}, direct_response: {status: 200}}]
        """.write(toFile: configs + "/mesh.yaml", atomically: true, encoding: .utf8)
        return configs
    }
}

extension YAMLNode {
    func field(_ name: String) -> YAMLNode? {
        guard case .mapping(let pairs) = kind else { return nil }
        return pairs.first { $0.key.scalarText == name }?.value
    }
}
