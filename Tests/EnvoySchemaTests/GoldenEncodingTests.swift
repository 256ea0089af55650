// Golden encodings: each expected hex string was produced by Python protobuf
// (json_format.ParseDict + SerializeToString(deterministic=True), Any payloads
// re-packed deterministically) from the same text with the pinned xds-protos.
// Tests/Oracle/encode_oracle.py regenerates them; OracleTests re-checks the corpus live.
import EnvoySchema
import XCTest

final class GoldenEncodingTests: XCTestCase {
    struct Case { let name: String; let type: String; let text: String; let hex: String; var json = false }

    static let cases: [Case] = [
        Case(name: "any_holding_duration", type: "envoy.config.core.v3.TypedExtensionConfig", text: "name: d\ntyped_config:\n  \"@type\": type.googleapis.com/google.protobuf.Duration\n  value: 3s\n", hex: "0a016412320a2c747970652e676f6f676c65617069732e636f6d2f676f6f676c652e70726f746f6275662e4475726174696f6e12020803"),
        Case(name: "any_holding_struct", type: "envoy.config.core.v3.TypedExtensionConfig", text: "name: s\ntyped_config:\n  \"@type\": type.googleapis.com/google.protobuf.Struct\n  value: {b: 2, a: \"x\"}\n", hex: "0a017312480a2a747970652e676f6f676c65617069732e636f6d2f676f6f676c652e70726f746f6275662e537472756374121a0a080a016112031a01780a0e0a01621209110000000000000040"),
        Case(name: "any_nested_in_any", type: "envoy.config.core.v3.TypedExtensionConfig", text: "name: hcm\ntyped_config:\n  \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n  stat_prefix: x\n  rds: {route_config_name: r, config_source: {ads: {}}}\n  http_filters:\n  - name: envoy.filters.http.router\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n      suppress_envoy_headers: true\n", hex: "0a0368636d12dc010a65747970652e676f6f676c65617069732e636f6d2f656e766f792e657874656e73696f6e732e66696c746572732e6e6574776f726b2e687474705f636f6e6e656374696f6e5f6d616e616765722e76332e48747470436f6e6e656374696f6e4d616e6167657212731201781a070a021a001201722a650a19656e766f792e66696c746572732e687474702e726f7574657222480a42747970652e676f6f676c65617069732e636f6d2f656e766f792e657874656e73696f6e732e66696c746572732e687474702e726f757465722e76332e526f7574657212022001"),
        Case(name: "bytes_base64", type: "envoy.config.core.v3.DataSource", text: "inline_bytes: aGVsbG8gd29ybGQ=\n", hex: "120b68656c6c6f20776f726c64"),
        Case(name: "bytes_base64_urlsafe_unpadded", type: "envoy.config.core.v3.DataSource", text: "inline_bytes: _-8\n", hex: "1202ffef"),
        Case(name: "double_range", type: "envoy.type.v3.DoubleRange", text: "start: 1.5\nend: 2\n", hex: "09000000000000f83f110000000000000040"),
        Case(name: "duration_fraction", type: "envoy.config.cluster.v3.Cluster", text: "name: a\nconnect_timeout: 1.5s\n", hex: "0a0161220808011080cab5ee01"),
        Case(name: "duration_nanos", type: "envoy.config.cluster.v3.Cluster", text: "name: a\nconnect_timeout: 0.000000001s\n", hex: "0a016122021001"),
        Case(name: "enum_by_name", type: "envoy.config.cluster.v3.Cluster", text: "name: a\nlb_policy: LEAST_REQUEST\n", hex: "0a01613001"),
        Case(name: "enum_by_number", type: "envoy.config.cluster.v3.Cluster", text: "name: a\nlb_policy: 1\n", hex: "0a01613001"),
        Case(name: "field_mask", type: "google.protobuf.FieldMask", text: "\"fooBar,baz.quxQuux\"\n", hex: "0a07666f6f5f6261720a0c62617a2e7175785f71757578"),
        Case(name: "header_value_option", type: "envoy.config.core.v3.HeaderValueOption", text: "header: {key: x-a, value: b}\nappend_action: OVERWRITE_IF_EXISTS_OR_ADD\n", hex: "0a080a03782d611201621802"),
        Case(name: "implicit_default_omitted", type: "envoy.config.core.v3.SocketAddress", text: "address: 127.0.0.1\nport_value: 0\nipv4_compat: false\nresolver_name: \"\"\n", hex: "12093132372e302e302e311800"),
        Case(name: "int32_negative", type: "envoy.type.v3.Int32Range", text: "start: -1\nend: 2147483647\n", hex: "08ffffffffffffffffff0110ffffffff07"),
        Case(name: "int64_string_and_number", type: "envoy.type.v3.Int64Range", text: "start: \"-5\"\nend: 10\n", hex: "08fbffffffffffffffff01100a"),
        Case(name: "map_sorted_by_key", type: "envoy.config.core.v3.Metadata", text: "filter_metadata:\n  zeta: {b: 1, a: [true, null, \"x\", {k: v}]}\n  alpha: {}\n", hex: "0a090a05616c70686112000a3c0a047a65746112340a220a0161121d321b0a0220010a0208000a031a01780a0c2a0a0a080a016b12031a01760a0e0a0162120911000000000000f03f"),
        Case(name: "null_means_unset", type: "envoy.config.cluster.v3.Cluster", text: "name: a\nconnect_timeout: null\nload_assignment: ~\n", hex: "0a0161"),
        Case(name: "oneof_member_default_written", type: "envoy.config.route.v3.RouteMatch", text: "prefix: \"\"\n", hex: "0a00"),
        Case(name: "packed_repeated", type: "envoy.config.route.v3.RetryPolicy", text: "retry_on: 5xx\nretriable_status_codes: [503, 504, 0]\n", hex: "0a033578783a05f703f80300"),
        Case(name: "socket_address_camel", type: "envoy.config.core.v3.SocketAddress", text: "address: 127.0.0.1\nportValue: 80\n", hex: "12093132372e302e302e311850"),
        Case(name: "socket_address_quoted_number", type: "envoy.config.core.v3.SocketAddress", text: "address: 127.0.0.1\nport_value: \"80\"\n", hex: "12093132372e302e302e311850"),
        Case(name: "socket_address_snake", type: "envoy.config.core.v3.SocketAddress", text: "address: 127.0.0.1\nport_value: 80\n", hex: "12093132372e302e302e311850"),
        Case(name: "struct_large_and_float", type: "google.protobuf.Struct", text: "n: 2147483648\nf: 0.25\nneg: -3\n", hex: "0a0e0a0166120911000000000000d03f0a100a036e656712091100000000000008c00a0e0a016e120911000000000000e041"),
        Case(name: "timestamp", type: "google.protobuf.Timestamp", text: "\"2024-02-29T12:00:00.5Z\"\n", hex: "08c0e381af061080cab5ee01"),
        Case(name: "timestamp_offset", type: "google.protobuf.Timestamp", text: "\"1970-01-01T01:00:00+01:00\"\n", hex: ""),
        Case(name: "wrapper_zero_is_present", type: "envoy.config.cluster.v3.Cluster", text: "name: a\nper_connection_buffer_limit_bytes: 0\n", hex: "0a01612a00"),
        Case(name: "yaml_anchors_and_aliases", type: "envoy.config.cluster.v3.Cluster", text: "name: a\nlb_policy: &p RING_HASH\ncircuit_breakers:\n  thresholds:\n  - &t {priority: HIGH, max_connections: 5}\n  - *t\n", hex: "0a0161300252100a060801120208050a06080112020805"),
        Case(name: "json_syntax", type: "envoy.config.core.v3.SocketAddress", text: "{\"address\": \"::1\", \"portValue\": 443, \"protocol\": \"UDP\"}\n", hex: "080112033a3a3118bb03", json: true),
    ]

    func testEncodingsMatchProtobufDeterministicSerialization() {
        for c in Self.cases {
            let bytes = TestSupport.encode(c.text, as: c.type, syntax: c.json ? .json : .yaml)
            XCTAssertEqual(TestSupport.hex(bytes), c.hex, c.name)
        }
    }

    /// binary → YAML → binary gives the same bytes, for every golden case.
    func testDecodeThenReencodeRoundTrips() throws {
        let pool = TestSupport.pool
        for c in Self.cases {
            let bytes = TestSupport.encode(c.text, as: c.type, syntax: c.json ? .json : .yaml)
            let decoded = try DynamicMessage(serialized: bytes, type: TestSupport.type(c.type), pool: pool)
            let yaml = TextWriter(pool: pool).yaml(decoded)
            XCTAssertEqual(TestSupport.hex(TestSupport.encode(yaml, as: c.type)), c.hex, "\(c.name) via YAML:\n\(yaml)")
            let json = TextWriter(pool: pool).jsonText(decoded)
            XCTAssertEqual(TestSupport.hex(TestSupport.encode(json, as: c.type, syntax: .json)), c.hex, "\(c.name) via JSON:\n\(json)")
        }
    }
}
