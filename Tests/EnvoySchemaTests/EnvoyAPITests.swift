// meshctl's Envoy API is the one compiled into the pinned Envoy binary (scripts/extract_envoy_descriptors.py),
// not the older xds-protos package: what Envoy 1.40 has, meshctl reads; what it lacks, meshctl refuses.
import EnvoySchema
import XCTest

final class EnvoyAPITests: XCTestCase {
    /// Fields and types Envoy 1.40 has and xds-protos 1.85 lacks (docs/API-DIFF.md lists them all).
    func testThePoolHasEnvoy140sOwnAPI() throws {
        let pool = TestSupport.pool
        let fields: [(String, String)] = [
            ("envoy.config.route.v3.RouteMatch", "cookies"),
            ("envoy.config.route.v3.RateLimit.Action", "remote_address_match"),
            ("envoy.extensions.filters.http.ext_authz.v3.ExtAuthz", "shadow_mode"),
            ("envoy.extensions.filters.http.ext_authz.v3.HttpService", "path_override"),
            ("envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor", "shadow_mode"),
            ("envoy.extensions.load_balancing_policies.client_side_weighted_round_robin.v3.ClientSideWeightedRoundRobin", "oob_reporting_config"),
        ]
        for (type, field) in fields {
            let message = try XCTUnwrap(pool.message(named: type), type)
            XCTAssertNotNil(message.field(named: field), "\(type).\(field)")
        }
        XCTAssertNotNil(pool.message(named: "envoy.type.matcher.v3.HttpResponseLocalReplyMatchInput"))
        // The descriptors carry their options: the validation rules came along.
        XCTAssertNotNil(pool.message(named: "envoy.config.route.v3.CookieMatcher")?.field(named: "name")?.rules)
    }

    /// A type the pinned Envoy does not link (the OpenCensus tracer, removed) is unknown, as it is to Envoy.
    func testTypesTheBinaryLacksAreUnknown() {
        XCTAssertNil(TestSupport.pool.message(named: "envoy.config.trace.v3.OpenCensusConfig"))
        XCTAssertNil(TestSupport.pool.message(named: "envoy.api.v2.Cluster"))
    }

    func testEnvoy140OnlyFieldsAreReadAndValidated() {
        let route = "name: r\nvirtual_hosts:\n- name: v\n  domains: [\"*\"]\n  routes:\n  - match:\n      prefix: /\n      cookies:\n      - name: channel\n        string_match: {exact: beta}\n    route: {cluster: c}\n"
        let (message, diagnostics) = TestSupport.decode(route, as: TypeNames.routeConfiguration)
        XCTAssertNotNil(message)
        XCTAssertEqual(diagnostics.filter { $0.severity == .error }, [])
        // CookieMatcher.name carries Envoy 1.40's own validation rule (min_len 1).
        let emptyName = route.replacingOccurrences(of: "name: channel", with: "name: \"\"")
        XCTAssertEqual(TestSupport.decode(emptyName, as: TypeNames.routeConfiguration).1.map(\.rule), ["pgv.string.min_len"])
    }
}
