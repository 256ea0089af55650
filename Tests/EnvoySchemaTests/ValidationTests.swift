// One named case per kind of problem: each must be reported with its rule id,
// at the right line and column, with the right field path.
import EnvoySchema
import XCTest

final class ValidationTests: XCTestCase {
    struct Case {
        let name: String
        let type: String
        let text: String
        let rule: String
        let path: String
        let line: Int
        let column: Int
        var messageContains: String = ""
    }

    static let cluster = "envoy.config.cluster.v3.Cluster"
    static let route = "envoy.config.route.v3.RouteConfiguration"
    static let listener = "envoy.config.listener.v3.Listener"

    static let cases: [Case] = [
        Case(name: "unknown field with a suggestion", type: cluster, text: "name: a\nconect_timeout: 1s\n",
             rule: "schema.unknown-field", path: "conect_timeout", line: 2, column: 1, messageContains: "did you mean 'connect_timeout'"),
        Case(name: "unknown field inside typed_config", type: "envoy.config.listener.v3.Filter",
             text: "name: f\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy\n  stat_prefix: s\n  cluster: c\n  idle_timout: 1s\n",
             rule: "schema.unknown-field", path: "typed_config.idle_timout", line: 6, column: 3),
        Case(name: "number for a string field", type: cluster, text: "name: 123\n",
             rule: "schema.type-mismatch", path: "name", line: 1, column: 7, messageContains: "quote it"),
        Case(name: "yes is a boolean, not a string", type: cluster, text: "name: yes\n",
             rule: "schema.type-mismatch", path: "name", line: 1, column: 7, messageContains: "boolean"),
        Case(name: "string for a boolean", type: "envoy.config.core.v3.SocketAddress", text: "address: 1.2.3.4\nport_value: 1\nipv4_compat: maybe\n",
             rule: "schema.type-mismatch", path: "ipv4_compat", line: 3, column: 14),
        Case(name: "list for a message", type: cluster, text: "name: a\nload_assignment: [1]\n",
             rule: "schema.type-mismatch", path: "load_assignment", line: 2, column: 18),
        Case(name: "unknown enum name", type: cluster, text: "name: a\nlb_policy: ROUND_ROBINN\n",
             rule: "schema.unknown-enum", path: "lb_policy", line: 2, column: 12, messageContains: "did you mean ROUND_ROBIN"),
        Case(name: "enum number not defined", type: cluster, text: "name: a\nlb_policy: 99\n",
             rule: "pgv.enum.defined_only", path: "lb_policy", line: 2, column: 1),
        Case(name: "unresolvable @type", type: "envoy.config.listener.v3.Filter",
             text: "name: f\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxyy\n",
             rule: "schema.unresolvable-any", path: "typed_config", line: 3, column: 12),
        Case(name: "missing @type", type: "envoy.config.listener.v3.Filter", text: "name: f\ntyped_config:\n  stat_prefix: x\n",
             rule: "schema.any-missing-type", path: "typed_config", line: 3, column: 3),
        Case(name: "uint32 out of range", type: "envoy.config.core.v3.SocketAddress", text: "address: 1.2.3.4\nport_value: 4294967296\n",
             rule: "schema.out-of-range", path: "port_value", line: 2, column: 13),
        Case(name: "negative for unsigned", type: "envoy.config.core.v3.SocketAddress", text: "address: 1.2.3.4\nport_value: -1\n",
             rule: "schema.out-of-range", path: "port_value", line: 2, column: 13),
        Case(name: "bad duration", type: cluster, text: "name: a\nconnect_timeout: 1x\n",
             rule: "schema.invalid-duration", path: "connect_timeout", line: 2, column: 18),
        Case(name: "duration with ten fractional digits", type: cluster, text: "name: a\nconnect_timeout: 1.0000000001s\n",
             rule: "schema.invalid-duration", path: "connect_timeout", line: 2, column: 18),
        Case(name: "bad base64", type: "envoy.config.core.v3.DataSource", text: "inline_bytes: \"%%%\"\n",
             rule: "schema.invalid-bytes", path: "inline_bytes", line: 1, column: 15),
        Case(name: "two oneof members", type: "envoy.config.route.v3.RouteMatch", text: "prefix: /\npath: /x\n",
             rule: "schema.oneof-conflict", path: "path", line: 2, column: 1, messageContains: "only one member of oneof"),
        Case(name: "same field twice in two spellings", type: cluster, text: "name: a\nconnect_timeout: 1s\nconnectTimeout: 2s\n",
             rule: "schema.duplicate-field", path: "connect_timeout", line: 3, column: 1),
        Case(name: "duplicate YAML key", type: cluster, text: "name: a\nname: b\n",
             rule: "yaml.duplicate-key", path: "", line: 2, column: 1, messageContains: "first at 1:1"),
        Case(name: "empty cluster name (min_len)", type: cluster, text: "name: \"\"\n",
             rule: "pgv.string.min_len", path: "name", line: 1, column: 1),
        Case(name: "port above 65535 (lte)", type: "envoy.config.core.v3.SocketAddress", text: "address: 1.2.3.4\nport_value: 70000\n",
             rule: "pgv.uint32.lte", path: "port_value", line: 2, column: 1, messageContains: "65535"),
        Case(name: "connect_timeout must be positive (duration gt)", type: cluster, text: "name: a\nconnect_timeout: 0s\n",
             rule: "pgv.duration.gt", path: "connect_timeout", line: 2, column: 1),
        Case(name: "header name with a newline (well-known regex)", type: "envoy.config.core.v3.HeaderValue", text: "key: \"x-a\\nb\"\nvalue: v\n",
             rule: "pgv.string.well_known", path: "key", line: 1, column: 1),
        Case(name: "virtual host without domains (min_items)", type: route,
             text: "name: r\nvirtual_hosts:\n- name: v\n  domains: []\n", rule: "pgv.repeated.min_items", path: "virtual_hosts[0].domains", line: 4, column: 3),
        Case(name: "route without an action (oneof required)", type: route,
             text: "name: r\nvirtual_hosts:\n- name: v\n  domains: [\"*\"]\n  routes:\n  - match: {prefix: /}\n", rule: "pgv.oneof.required",
             path: "virtual_hosts[0].routes[0]", line: 6, column: 5),
        Case(name: "match without a path specifier (oneof required)", type: route,
             text: "name: r\nvirtual_hosts:\n- name: v\n  domains: [\"*\"]\n  routes:\n  - match: {}\n    direct_response: {status: 200}\n", rule: "pgv.oneof.required",
             path: "virtual_hosts[0].routes[0].match", line: 6, column: 12),
        Case(name: "required duration missing", type: "envoy.config.core.v3.HealthCheck",
             text: "interval: 1s\nunhealthy_threshold: 1\nhealthy_threshold: 1\ntcp_health_check: {}\n", rule: "pgv.duration.required", path: "timeout", line: 1, column: 1),
        Case(name: "required message missing", type: "envoy.config.core.v3.HealthCheck",
             text: "timeout: 1s\ninterval: 1s\nhealthy_threshold: 1\ntcp_health_check: {}\n", rule: "pgv.message.required", path: "unhealthy_threshold", line: 1, column: 1),
        Case(name: "invalid RE2 regex", type: "envoy.type.matcher.v3.RegexMatcher", text: "regex: \"(abc\"\n",
             rule: "regex.syntax", path: "regex", line: 1, column: 1, messageContains: "missing )"),
        Case(name: "lookahead is not RE2", type: "envoy.type.matcher.v3.RegexMatcher", text: "regex: \"a(?=b)\"\n",
             rule: "regex.syntax", path: "regex", line: 1, column: 1),
        Case(name: "regex program too large for Envoy", type: "envoy.type.matcher.v3.RegexMatcher", text: "regex: \"^(abc|def|ghi){50}$\"\n",
             rule: "regex.program-size", path: "regex", line: 1, column: 1),
        Case(name: "HTTP filter config of the wrong category", type: "envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter",
             text: "name: f\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n",
             rule: "schema.extension-category", path: "typed_config", line: 2, column: 1, messageContains: "is not a HTTP filter"),
        Case(name: "nested too deep", type: "google.protobuf.Struct",
             text: String(repeating: "{a: ", count: 150) + "1" + String(repeating: "}", count: 150) + "\n",
             rule: "schema.too-deep", path: "", line: 1, column: 1),
    ]

    func testEachProblemIsReportedWithRuleLocationAndPath() {
        for c in Self.cases {
            let (_, diagnostics) = TestSupport.decode(c.text, as: c.type)
            let match = diagnostics.first { $0.rule == c.rule }
            guard let d = match else {
                XCTFail("\(c.name): no \(c.rule) among \(diagnostics.map(\.description))")
                continue
            }
            XCTAssertEqual(d.severity, .error, c.name)
            if c.rule != "schema.too-deep" { XCTAssertEqual(d.path, c.path, c.name) }
            if c.rule == "schema.too-deep" { continue }
            XCTAssertEqual(d.location, SourceLocation(line: c.line, column: c.column), "\(c.name): \(d)")
            if !c.messageContains.isEmpty { XCTAssertTrue(d.message.contains(c.messageContains), "\(c.name): \(d.message)") }
            XCTAssertEqual(d.file, "test.yaml", c.name)
        }
    }

    func testValidConfigurationsHaveNoDiagnostics() {
        let valid: [(String, String)] = [
            (Self.cluster, "name: a\nconnect_timeout: 0.25s\ntype: STRICT_DNS\nlb_policy: LEAST_REQUEST\n"),
            ("envoy.type.matcher.v3.RegexMatcher", "regex: \"^/api/v[0-9]+/.*$\"\n"),
            ("envoy.config.core.v3.HeaderValue", "key: x-request-id\nvalue: abc\n"),
            ("envoy.config.route.v3.RouteMatch", "path: /healthz\n"),
        ]
        for (type, text) in valid {
            let (message, diagnostics) = TestSupport.decode(text, as: type)
            XCTAssertNotNil(message)
            XCTAssertEqual(diagnostics, [], text)
        }
    }

    /// Long lists are read and checked in two halves on two threads: paths, positions and order must not show it.
    func testLongListsReportTheSamePathsAsShortOnes() {
        var text = "static_resources:\n  clusters:\n"
        for i in 0..<1200 {
            let name = i == 900 ? "\"\"" : "c\(i)"
            let timeout = i == 100 ? "1x" : "1s"
            text += "  - {name: \(name), connect_timeout: \(timeout)}\n"
        }
        let (message, diagnostics) = TestSupport.decode(text, as: "envoy.config.bootstrap.v3.Bootstrap")
        XCTAssertNotNil(message)
        XCTAssertEqual(diagnostics.map(\.path), ["static_resources.clusters[100].connect_timeout", "static_resources.clusters[900].name"])
        XCTAssertEqual(diagnostics.map(\.location), [SourceLocation(line: 103, column: 35), SourceLocation(line: 903, column: 6)])
        let pool = TestSupport.pool
        let clusters = message?.value(named: "static_resources", in: pool)?.messageValue?.value(named: "clusters", in: pool)?.listValue
        XCTAssertEqual(clusters?.count, 1200)
        XCTAssertEqual(clusters?[1199].value.messageValue?.value(named: "name", in: pool)?.stringValue, "c1199", "elements keep their order")
    }

    func testEveryErrorIsReportedNotJustTheFirst() {
        let (_, diagnostics) = TestSupport.decode("name: \"\"\nlb_policy: NOPE\nconnect_timeout: 1x\nbogus: 1\n", as: Self.cluster)
        XCTAssertEqual(Set(diagnostics.map(\.rule)), ["pgv.string.min_len", "schema.unknown-enum", "schema.invalid-duration", "schema.unknown-field"])
    }

    func testDeprecatedFieldIsAWarningNotAnError() throws {
        // envoy.config.route.v3.RouteAction.host_rewrite_path_regex is live; find any deprecated, allowed field instead.
        let pool = TestSupport.pool
        let cluster = try XCTUnwrap(pool.message(named: Self.cluster))
        let deprecated = try XCTUnwrap(cluster.fields.first { $0.isDeprecated && !$0.isDisallowedByDefault && $0.kind == .message && $0.oneofIndex == nil })
        let (_, diagnostics) = TestSupport.decode("name: a\n\(deprecated.name): {}\n", as: Self.cluster)
        let warning = try XCTUnwrap(diagnostics.first { $0.rule == "schema.deprecated-field" })
        XCTAssertEqual(warning.severity, .warning)
        XCTAssertEqual(warning.location, SourceLocation(line: 2, column: 1))
    }

    func testSensitiveFieldsAreKnown() throws {
        let secret = try XCTUnwrap(TestSupport.pool.message(named: "envoy.extensions.transport_sockets.tls.v3.TlsCertificate"))
        XCTAssertTrue(try XCTUnwrap(secret.field(named: "private_key")).isSensitive)
    }
}
