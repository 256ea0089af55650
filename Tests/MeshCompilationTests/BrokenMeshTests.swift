// One broken mesh per rule and per bad-input case: the demo mesh with one mutation,
// compiled in-process; each must report the right rule id, severity, file and line —
// the user's service file, mesh.yaml or template, never generated output.
import EnvoySchema
import Foundation
import MeshCompilation
import MeshTestSupport
import XCTest

final class BrokenMeshTests: XCTestCase {
    /// What a case must report: rule, severity, file (relative to the fixture) and the line holding `marker`.
    struct Expected: Sendable {
        let rule: String
        var severity: Diagnostic.Severity = .error
        let file: String
        /// Text on the expected line (after mutation); nil when the problem has no line (a whole file or directory).
        let marker: String?
        var after: String? = nil
        var column: Int? = nil
    }

    struct Case: Sendable {
        let name: String
        let mutate: @Sendable (MeshFixture) throws -> Void
        let expected: [Expected]
    }

    static let servicePatchHeader = "envoy:\n  patch:\n"

    static let cases: [Case] = [
        // Bad input.
        Case(name: "YAML syntax error", mutate: { try $0.replace("Configs/services/orders.yaml", "name: orders\n", with: "name: orders: bad\n") },
             expected: [Expected(rule: "yaml.syntax", file: "Configs/services/orders.yaml", marker: "name: orders: bad")]),
        Case(name: "duplicate key", mutate: { try $0.append("Configs/services/inventory.yaml", "owners: [someone]\n") },
             expected: [Expected(rule: "yaml.duplicate-key", file: "Configs/services/inventory.yaml", marker: "owners: [someone]")]),
        Case(name: "unknown key in a service file", mutate: { try $0.append("Configs/services/inventory.yaml", "prots: 5\n") },
             expected: [Expected(rule: "config.unknown-key", file: "Configs/services/inventory.yaml", marker: "prots: 5")]),
        Case(name: "wrong type", mutate: {
                 try $0.replace("Configs/services/inventory.yaml", "ports:\n  - name: http\n    protocol: http\n    port: 10160\n", with: "ports: http\n")
             },
             expected: [Expected(rule: "config.type", file: "Configs/services/inventory.yaml", marker: "ports: http")]),
        Case(name: "missing required key", mutate: { try $0.replace("Configs/services/inventory.yaml", "owners: [team-catalog]\n", with: "") },
             expected: [Expected(rule: "config.missing-key", file: "Configs/services/inventory.yaml", marker: "name: inventory")]),
        Case(name: "bad duration", mutate: { try $0.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 5x") },
             expected: [Expected(rule: "config.value", file: "Configs/services/catalog.yaml", marker: "timeout: 5x")]),
        Case(name: "duplicate service name", mutate: { try $0.write("Configs/services/zz-inventory.yaml", try $0.read("Configs/services/inventory.yaml")) },
             expected: [Expected(rule: "config.duplicate-service", file: "Configs/services/zz-inventory.yaml", marker: "name: inventory")]),
        Case(name: "empty Configs directory", mutate: { try $0.remove("Configs/mesh.yaml"); try $0.remove("Configs/services") },
             expected: [Expected(rule: "config.empty", file: "Configs", marker: nil)]),
        Case(name: "missing mesh.yaml", mutate: { try $0.remove("Configs/mesh.yaml") },
             expected: [Expected(rule: "config.missing-file", file: "Configs/mesh.yaml", marker: nil)]),
        Case(name: "non-UTF-8 service file", mutate: {
                 try $0.writeBytes("Configs/services/inventory.yaml", Array("name: inventory\nowners: [x]\ndescription: caf".utf8) + [0xE9] + Array("\n".utf8))
             },
             expected: [Expected(rule: "input.encoding", file: "Configs/services/inventory.yaml", marker: "description: caf")]),
        Case(name: "symlink loop", mutate: { fixture in
                 try FileManager.default.createSymbolicLink(atPath: fixture.path("Configs/services/loop.yaml"), withDestinationPath: fixture.path("Configs/services/loop.yaml"))
             },
             expected: [Expected(rule: "input.symlink-loop", file: "Configs/services/loop.yaml", marker: nil)]),
        Case(name: "template syntax error", mutate: { try $0.replace("templates/upstream.yaml", "{% for port in service.ports %}\n- name:", with: "{% for port in %}\n- name:") },
             expected: [Expected(rule: "template.syntax", file: "templates/upstream.yaml", marker: "{% for port in %}")]),
        Case(name: "unclosed template tag", mutate: { try $0.append("templates/ingress.yaml", "# trailing {{ group.name\n") },
             expected: [Expected(rule: "template.syntax", file: "templates/ingress.yaml", marker: "# trailing {{ group.name", column: 12)]),
        Case(name: "undefined template variable", mutate: { try $0.replace("templates/upstream.yaml", "{{ service.connect_timeout }}", with: "{{ service.conect_timeout }}") },
             expected: [Expected(rule: "template.undefined-variable", file: "templates/upstream.yaml", marker: "service.conect_timeout", column: 23)]),
        Case(name: "Stencil tag meshctl does not render", mutate: { try $0.append("templates/ingress.yaml", "{% include \"other.yaml\" %}\n") },
             expected: [Expected(rule: "template.unsupported", file: "templates/ingress.yaml", marker: "{% include")]),
        Case(name: "template output is not YAML", mutate: { try $0.replace("templates/upstream.yaml", "  type: EDS\n", with: "  type: EDS\n oops: [\n") },
             expected: [Expected(rule: "template.output", file: "templates/upstream.yaml", marker: "oops: [")]),
        Case(name: "two ports with one name", mutate: {
                 try $0.replace("Configs/services/inventory.yaml", "    port: 10160\n", with: "    port: 10160\n  - name: http\n    protocol: grpc\n    port: 10161\n")
             },
             expected: [Expected(rule: "config.duplicate-name", file: "Configs/services/inventory.yaml", marker: "  - name: http", after: "port: 10160")]),
        Case(name: "looping over something that is not a list", mutate: { try $0.replace("templates/upstream.yaml", "{% for endpoint in port.mesh_endpoints %}", with: "{% for endpoint in port.name %}") },
             expected: [Expected(rule: "template.render", file: "templates/upstream.yaml", marker: "{% for endpoint in port.name %}")]),
        Case(name: "unknown xds subscription mode", mutate: { try $0.replace("Configs/mesh.yaml", "    kind: ingress\n", with: "    kind: ingress\n    xds: per-typ\n") },
             expected: [Expected(rule: "config.value", file: "Configs/mesh.yaml", marker: "xds: per-typ", column: 10)]),
        Case(name: "missing template", mutate: { try $0.replace("Configs/mesh.yaml", "template: ingress.yaml", with: "template: ingres.yaml") },
             expected: [Expected(rule: "config.missing-template", file: "Configs/mesh.yaml", marker: "template: ingres.yaml")]),

        // Mesh rules.
        Case(name: "dependency that does not exist", mutate: { try $0.replace("Configs/services/catalog.yaml", "dependencies: [inventory]", with: "dependencies: [inventory, inventroy]") },
             expected: [Expected(rule: "mesh.unknown-dependency", file: "Configs/services/catalog.yaml", marker: "inventroy")]),
        Case(name: "route to an undeclared dependency", mutate: {
                 try $0.replace("Configs/services/frontend.yaml", "  - name: all\n    match: {prefix: /}\n", with: "  - name: all\n    match: {prefix: /}\n    service: inventory\n")
             },
             expected: [Expected(rule: "mesh.undeclared-dependency", file: "Configs/services/frontend.yaml", marker: "service: inventory")]),
        Case(name: "raw Envoy calling an undeclared dependency", mutate: {
                 try $0.append("Configs/services/users.yaml", BrokenMeshTests.servicePatchHeader + """
                     listeners:
                       users.http.inbound:
                         filter_chains:
                         - filters:
                           - name: envoy.filters.network.tcp_proxy
                             typed_config:
                               "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                               stat_prefix: users
                               cluster: payments.grpc
                           transport_socket: {name: envoy.transport_sockets.tls, typed_config: {"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext, require_client_certificate: true}}

                 """)
             },
             expected: [Expected(rule: "mesh.undeclared-dependency", file: "Configs/services/users.yaml", marker: "cluster: payments.grpc")]),
        Case(name: "dependency cycle", mutate: { try $0.replace("Configs/services/catalog.yaml", "dependencies: [inventory]", with: "dependencies: [inventory, frontend]") },
             expected: [Expected(rule: "mesh.dependency-cycle", severity: .info, file: "Configs/services/catalog.yaml", marker: "dependencies: [inventory, frontend]")]),
        Case(name: "route to a service that does not exist", mutate: { try $0.replace("Configs/services/orders.yaml", "    service: orders-canary\n", with: "    service: orders-canry\n") },
             expected: [Expected(rule: "mesh.unknown-service", file: "Configs/services/orders.yaml", marker: "service: orders-canry")]),
        Case(name: "route to a port that does not exist", mutate: { try $0.replace("Configs/services/orders.yaml", "    service: orders-canary\n", with: "    service: orders-canary\n    port: grpc\n") },
             expected: [Expected(rule: "mesh.unknown-port", file: "Configs/services/orders.yaml", marker: "port: grpc")]),
        Case(name: "TCP dependency without a local port", mutate: { try $0.replace("Configs/services/payments.yaml", "  - service: ledger\n    local_port: 10152\n", with: "  - ledger\n") },
             expected: [Expected(rule: "mesh.tcp-dependency-port", file: "Configs/services/payments.yaml", marker: "  - ledger")]),
        Case(name: "caller the dependency does not accept", mutate: { try $0.replace("Configs/services/frontend.yaml", "dependencies: [catalog, orders, users]", with: "dependencies: [catalog, orders, users, payments]") },
             expected: [Expected(rule: "mesh.caller-not-allowed", severity: .warning, file: "Configs/services/frontend.yaml", marker: "payments]")]),
        Case(name: "dependency listed twice", mutate: { try $0.replace("Configs/services/catalog.yaml", "dependencies: [inventory]", with: "dependencies: [inventory, inventory]") },
             expected: [Expected(rule: "mesh.duplicate-dependency", severity: .warning, file: "Configs/services/catalog.yaml", marker: "dependencies: [inventory, inventory]", column: 27)]),
        Case(name: "gateway named like a service", mutate: { try $0.replace("Configs/mesh.yaml", "  - name: internal-web\n", with: "  - name: admin\n") },
             expected: [Expected(rule: "mesh.duplicate-group", file: "Configs/mesh.yaml", marker: "  - name: admin")]),
        Case(name: "file named differently from its service", mutate: { fixture in
                 try fixture.write("Configs/services/stock.yaml", try fixture.read("Configs/services/inventory.yaml"))
                 try fixture.remove("Configs/services/inventory.yaml")
             },
             expected: [Expected(rule: "config.file-name", severity: .warning, file: "Configs/services/stock.yaml", marker: "name: inventory")]),

        // Routes.
        Case(name: "split weights off the declared total", mutate: { try $0.replace("Configs/services/orders.yaml", "{service: orders-canary, weight: 10}", with: "{service: orders-canary, weight: 5}") },
             expected: [Expected(rule: "route.split-total", file: "Configs/services/orders.yaml", marker: "total: 100")]),
        Case(name: "per-try timeout longer than the route timeout", mutate: { try $0.replace("Configs/services/catalog.yaml", "per_try_timeout: 500ms", with: "per_try_timeout: 5s") },
             expected: [Expected(rule: "route.per-try-timeout", file: "Configs/services/catalog.yaml", marker: "- name: search")]),
        Case(name: "shadowed route", mutate: {
                 try $0.replace("Configs/services/catalog.yaml", "routes:\n  - name: search\n", with: "routes:\n  - name: everything\n    match: {prefix: /}\n  - name: search\n")
             },
             expected: [Expected(rule: "route.shadowed", severity: .warning, file: "Configs/services/catalog.yaml", marker: "- name: search")]),

        // Cross-references in the generated resources.
        Case(name: "duplicate domain across virtual hosts", mutate: { fixture in
                 try fixture.replace("Configs/services/payments.yaml", "owners: [team-payments]\n", with: "owners: [team-payments]\nhosts: [stock]\n")
                 try fixture.replace("Configs/services/inventory.yaml", "owners: [team-catalog]\n", with: "owners: [team-catalog]\nhosts: [stock]\n")
             },
             expected: [Expected(rule: "xref.duplicate-domain", file: "Configs/services/inventory.yaml", marker: "hosts: [stock]")]),
        Case(name: "two listeners on one address", mutate: { try $0.replace("Configs/services/catalog.yaml", "outbound_port: 10121", with: "outbound_port: 10120") },
             expected: [Expected(rule: "xref.duplicate-address", file: "Configs/services/catalog.yaml", marker: "outbound_port: 10120")]),
        Case(name: "duplicate resource name", mutate: {
                 try $0.append("Configs/services/users.yaml", """
                 envoy:
                   add:
                     clusters:
                     - name: users.http.local
                       type: STATIC
                       connect_timeout: 1s

                 """)
             },
             expected: [Expected(rule: "xref.duplicate-resource", file: "Configs/services/users.yaml", marker: "- name: users.http.local")]),
        Case(name: "resource without a name", mutate: {
                 try $0.append("Configs/services/users.yaml", """
                 envoy:
                   add:
                     secrets:
                     - generic_secret: {secret: {inline_string: x}}

                 """)
             },
             expected: [Expected(rule: "xref.resource-name", file: "Configs/services/users.yaml", marker: "- generic_secret")]),
        Case(name: "route, weighted and mirror clusters that do not exist", mutate: {
                 try $0.append("Configs/services/inventory.yaml", BrokenMeshTests.servicePatchHeader + """
                     route_configurations:
                       inventory.http.inbound:
                         virtual_hosts:
                         - name: local
                           domains: ["*"]
                           routes:
                           - match: {prefix: /a}
                             route: {cluster: nosuch-plain}
                           - match: {prefix: /b}
                             route:
                               weighted_clusters:
                                 clusters:
                                 - {name: inventory.http.local, weight: 1}
                                 - {name: nosuch-weighted, weight: 1}
                           - match: {prefix: /c}
                             route:
                               cluster: inventory.http.local
                               request_mirror_policies: [{cluster: nosuch-mirror}]

                 """)
             },
             expected: [Expected(rule: "xref.route-cluster", file: "Configs/services/inventory.yaml", marker: "nosuch-plain"),
                        Expected(rule: "xref.route-cluster", file: "Configs/services/inventory.yaml", marker: "nosuch-weighted"),
                        Expected(rule: "xref.route-cluster", file: "Configs/services/inventory.yaml", marker: "nosuch-mirror")]),
        Case(name: "rds name without a route configuration", mutate: { try $0.replace("templates/sidecar.yaml", "route_config_name: {{ port.route_config }}", with: "route_config_name: {{ port.route_config }}-v2") },
             expected: [Expected(rule: "xref.rds-route-config", file: "templates/sidecar.yaml", marker: "route_config_name: {{ port.route_config }}-v2")]),
        Case(name: "EDS cluster without a load assignment", mutate: { fixture in
                 let text = try fixture.read("templates/upstream.yaml")
                 try fixture.write("templates/upstream.yaml", String(text[..<text.range(of: "cluster_load_assignments:")!.lowerBound]))
             },
             expected: [Expected(rule: "xref.eds-assignment", file: "templates/upstream.yaml", marker: "type: EDS")]),
        Case(name: "SDS secret that is not generated", mutate: { try $0.replace("templates/sidecar.yaml", "- name: {{ mesh.ca_secret }}\n  validation_context:", with: "- name: {{ mesh.ca_secret }}-v2\n  validation_context:") },
             expected: [Expected(rule: "xref.sds-secret", file: "templates/sidecar.yaml", marker: "name: {{ mesh.ca_secret }}", after: "validation_context_sds_secret_config")]),

        // Mutual TLS.
        Case(name: "mesh listener without TLS", mutate: {
                 try $0.append("Configs/services/users.yaml", BrokenMeshTests.servicePatchHeader + """
                     listeners:
                       users.http.inbound:
                         filter_chains:
                         - filters:
                           - name: envoy.filters.network.tcp_proxy
                             typed_config:
                               "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
                               stat_prefix: users
                               cluster: users.http.local

                 """)
             },
             expected: [Expected(rule: "mesh.mtls-required", file: "Configs/services/users.yaml", marker: "- filters:")]),
        Case(name: "mesh listener that does not require client certificates", mutate: { try $0.replace("templates/sidecar.yaml", "require_client_certificate: true", with: "require_client_certificate: false") },
             expected: [Expected(rule: "mesh.mtls-required", file: "templates/sidecar.yaml", marker: "require_client_certificate: false")]),

        // The generated Envoy itself.
        Case(name: "unknown field in a template", mutate: { try $0.replace("templates/sidecar.yaml", "        codec_type: AUTO\n        forward_client_cert_details", with: "        codec_typ: AUTO\n        forward_client_cert_details") },
             expected: [Expected(rule: "schema.unknown-field", file: "templates/sidecar.yaml", marker: "codec_typ: AUTO")]),
        Case(name: "unknown field in a raw Envoy block", mutate: {
                 try $0.append("Configs/services/inventory.yaml", BrokenMeshTests.servicePatchHeader + "    clusters:\n      inventory.http:\n        circuit_breakerz: {}\n")
             },
             expected: [Expected(rule: "schema.unknown-field", file: "Configs/services/inventory.yaml", marker: "circuit_breakerz")]),
        Case(name: "wrong type in a raw Envoy block", mutate: {
                 try $0.append("Configs/services/inventory.yaml", BrokenMeshTests.servicePatchHeader + "    clusters:\n      inventory.http:\n        connect_timeout: [1s]\n")
             },
             expected: [Expected(rule: "schema.type-mismatch", file: "Configs/services/inventory.yaml", marker: "connect_timeout: [1s]")]),
        Case(name: "constraint violation in a raw Envoy block", mutate: {
                 try $0.append("Configs/services/inventory.yaml", BrokenMeshTests.servicePatchHeader + "    clusters:\n      inventory.http:\n        connect_timeout: 0s\n")
             },
             expected: [Expected(rule: "pgv.duration.gt", file: "Configs/services/inventory.yaml", marker: "connect_timeout: 0s")]),
        Case(name: "raw patch for a resource that is not generated", mutate: {
                 try $0.append("Configs/services/inventory.yaml", BrokenMeshTests.servicePatchHeader + "    clusters:\n      inventory.htp:\n        connect_timeout: 2s\n")
             },
             expected: [Expected(rule: "config.raw-unknown-resource", file: "Configs/services/inventory.yaml", marker: "inventory.htp")]),
        // Proxyless gRPC clients (proxyless: grpc; Configs/services/settlement.yaml).
        Case(name: "a proxyless client with a port", mutate: {
                 try $0.append("Configs/services/settlement.yaml", "ports:\n  - {name: grpc, protocol: grpc, port: 10200}\n")
             },
             expected: [Expected(rule: "config.value", file: "Configs/services/settlement.yaml", marker: "ports:")]),
        Case(name: "a proxyless client's callee with routes gRPC cannot follow", mutate: {
                 try $0.replace("Configs/services/settlement.yaml", "dependencies: [payments]", with: "dependencies: [payments, orders]")
             },
             expected: [Expected(rule: "grpc.unsupported-route", file: "Configs/services/orders.yaml", marker: "- name: healthz"),
                        Expected(rule: "grpc.unsupported-route", file: "Configs/services/orders.yaml", marker: "- name: old-api"),
                        Expected(rule: "grpc.retry-condition", severity: .warning, file: "Configs/services/orders.yaml", marker: "retries: {attempts: 2")]),
        Case(name: "a proxyless client depending on a TCP service", mutate: {
                 try $0.replace("Configs/services/settlement.yaml", "dependencies: [payments]", with: "dependencies: [payments, ledger]")
             },
             expected: [Expected(rule: "grpc.tcp-dependency", file: "Configs/services/settlement.yaml", marker: "dependencies: [payments, ledger]")]),
        Case(name: "a dependency on a proxyless client", mutate: {
                 try $0.replace("Configs/services/inventory.yaml", "endpoints:", with: "dependencies: [settlement]\nendpoints:")
             },
             expected: [Expected(rule: "mesh.proxyless-dependency", file: "Configs/services/inventory.yaml", marker: "dependencies: [settlement]")]),
        // The gRPC validation profile, on what raw Envoy does to a proxyless group.
        Case(name: "gRPC: endpoints without a locality weight", mutate: {
                 try $0.append("Configs/services/settlement.yaml", BrokenMeshTests.servicePatchHeader
                     + "    cluster_load_assignments:\n      payments.grpc:\n        endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 10150}}}}]}]\n")
             },
             expected: [Expected(rule: "grpc.locality-weight", file: "Configs/services/settlement.yaml", marker: "endpoints: [{lb_endpoints")]),
        Case(name: "gRPC: a client certificate by SDS", mutate: {
                 try $0.append("Configs/services/settlement.yaml", BrokenMeshTests.servicePatchHeader
                     + "    clusters:\n      payments.grpc:\n        transport_socket:\n          typed_config:\n            common_tls_context:\n"
                     + "              tls_certificate_sds_secret_configs: [{name: mesh-identity, sds_config: {ads: {}, resource_api_version: V3}}]\n")
             },
             expected: [Expected(rule: "grpc.sds", file: "Configs/services/settlement.yaml", marker: "tls_certificate_sds_secret_configs")]),
        Case(name: "gRPC: a static cluster and an SDS secret added", mutate: {
                 try $0.append("Configs/services/settlement.yaml", """
                     envoy:
                       add:
                         clusters:
                           - name: legacy
                             type: STATIC
                             connect_timeout: 1s
                             load_assignment: {cluster_name: legacy, endpoints: [{load_balancing_weight: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 19999}}}}]}]}
                         secrets:
                           - name: extra-secret
                             validation_context: {trusted_ca: {filename: /tmp/ca.crt}}

                     """)
             },
             expected: [Expected(rule: "grpc.cluster-type", file: "Configs/services/settlement.yaml", marker: "type: STATIC"),
                        Expected(rule: "grpc.sds", file: "Configs/services/settlement.yaml", marker: "- name: extra-secret")]),
        Case(name: "gRPC: a listener with an address", mutate: {
                 try $0.append("Configs/services/settlement.yaml", BrokenMeshTests.servicePatchHeader
                     + "    listeners:\n      payments:\n        api_listener: null\n        address: {socket_address: {address: 127.0.0.1, port_value: 10201}}\n")
             },
             expected: [Expected(rule: "grpc.api-listener", file: "Configs/services/settlement.yaml", marker: "address: {socket_address")]),
        Case(name: "gRPC: a raw cluster reaching an undeclared service", mutate: {
                 try $0.append("Configs/services/settlement.yaml", """
                     envoy:
                       add:
                         clusters:
                           - name: orders.http
                             type: EDS
                             eds_cluster_config: {eds_config: {ads: {}, resource_api_version: V3}}
                         cluster_load_assignments:
                           - cluster_name: orders.http
                             endpoints: [{load_balancing_weight: 1, lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 10130}}}}]}]

                     """)
             },
             expected: [Expected(rule: "mesh.undeclared-dependency", file: "Configs/services/settlement.yaml", marker: "- name: orders.http")]),
        Case(name: "gRPC: mutual TLS removed from a callee's cluster", mutate: {
                 try $0.append("Configs/services/settlement.yaml", BrokenMeshTests.servicePatchHeader + "    clusters:\n      payments.grpc:\n        transport_socket: null\n")
             },
             // The patch removed the field, so the cluster that lacks it is where the problem shows.
             expected: [Expected(rule: "mesh.mtls-required", file: "templates/grpc-client.yaml", marker: "- name: {{ port.cluster }}")]),
        Case(name: "an unknown proxyless kind", mutate: {
                 try $0.replace("Configs/services/settlement.yaml", "\nproxyless: grpc\n", with: "\nproxyless: grcp\n")
             },
             expected: [Expected(rule: "config.value", file: "Configs/services/settlement.yaml", marker: "proxyless: grcp")]),
    ]

    func testEveryBrokenMeshReportsItsRuleAtTheUsersLine() throws {
        for c in Self.cases {
            let fixture = try MeshFixture()
            try c.mutate(fixture)
            let report = try fixture.compile()
            for expected in c.expected {
                let file = fixture.path(expected.file)
                let line = try expected.marker.map { try fixture.line(of: $0, in: expected.file, after: expected.after) }
                let match = report.diagnostics.first {
                    $0.rule == expected.rule && $0.severity == expected.severity && $0.file == file && $0.location.map { Int($0.line) } == line
                        && (expected.column == nil || $0.location.map { Int($0.column) } == expected.column)
                }
                XCTAssertNotNil(match, "\(c.name): expected \(expected.severity) [\(expected.rule)] at \(expected.file):\(line.map(String.init) ?? "-")\(expected.column.map { ":\($0)" } ?? ""); got:\n\(report.summary())")
            }
            if c.expected.allSatisfy({ $0.severity != .error }) {
                XCTAssertEqual(report.errorCount, 0, "\(c.name): only \(c.expected.map { $0.severity.rawValue }) expected; got:\n\(report.summary())")
            }
        }
    }

    func testEveryErrorOfOneRunIsReportedSortedByFileAndLine() throws {
        let fixture = try MeshFixture()
        try fixture.append("Configs/services/inventory.yaml", "prots: 5\n")
        try fixture.replace("Configs/services/catalog.yaml", "timeout: 5s", with: "timeout: 5x")
        try fixture.replace("Configs/services/catalog.yaml", "dependencies: [inventory]", with: "dependencies: [inventory, inventroy]")
        let report = try fixture.compile()
        XCTAssertEqual(report.errors.map(\.rule), ["mesh.unknown-dependency", "config.value", "config.unknown-key"], report.summary())
        XCTAssertEqual(report.errors.map { URL(fileURLWithPath: $0.file ?? "").lastPathComponent }, ["catalog.yaml", "catalog.yaml", "inventory.yaml"])
    }

    func testOptingOutOfMutualTLSIsAllowedWithAReason() throws {
        let fixture = try MeshFixture()
        try fixture.append("Configs/services/inventory.yaml", "mtls: {mode: disabled, reason: legacy clients cannot present certificates}\n")
        let report = try fixture.compile(encode: true)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        let listener = try XCTUnwrap(report.groups.first { $0.group == "inventory" }?.resources["type.googleapis.com/envoy.config.listener.v3.Listener"]?["inventory.http.inbound"])
        let message = try DynamicMessage(serialized: listener.body, type: TestSupport.pool.messageID(named: "envoy.config.listener.v3.Listener")!, pool: TestSupport.pool)
        XCTAssertFalse(TextWriter(pool: TestSupport.pool).yaml(message).contains("transport_socket"), "the opted-out listener is plaintext")

        let missingReason = try MeshFixture()
        try missingReason.append("Configs/services/inventory.yaml", "mtls: {mode: disabled}\n")
        XCTAssertTrue(try missingReason.compile().errors.contains { $0.rule == "config.missing-key" && $0.path == "mtls.reason" })
    }
}
