// The YAML fast path (YAMLFastReader) against libyaml: for every input, parsing with the fast path
// first must give exactly what libyaml alone gives — the same tree (texts, styles, tags, positions)
// or the same error — and the fast path must actually take the generated-configuration shapes it
// exists for (otherwise it would be dead code passing every comparison).
import EnvoySchema
import Foundation
import XCTest

final class YAMLFastPathTests: XCTestCase {
    /// A rendered sidecar bundle in the shape the shipped templates produce.
    static let sidecarOutput = """
    listeners:
    - name: inbound-http
      traffic_direction: INBOUND
      address:
        socket_address: {address: "127.0.0.1", port_value: 20000}
      filter_chains:
      - filters:
        - name: envoy.filters.network.http_connection_manager
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
            stat_prefix: inbound-http
            codec_type: AUTO
            set_current_client_cert_details: {uri: true}
            rds:
              route_config_name: inbound-http
              config_source: {ads: {}, resource_api_version: V3}
            http_filters:
            - name: envoy.filters.http.router
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
        transport_socket:
          name: envoy.transport_sockets.tls
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
            require_client_certificate: true
            common_tls_context:
              tls_certificate_sds_secret_configs:
              - name: identity
                sds_config: {ads: {}, resource_api_version: V3}
              combined_validation_context:
                default_validation_context:
                  match_typed_subject_alt_names:
                  - san_type: URI
                    matcher: {prefix: "spiffe://mesh.local/"}

    route_configurations:
    - name: outbound
      virtual_hosts:
      - name: svc-00001
        domains: ["svc-00001", "svc-00001:80"]
        routes:
        - name: "svc-00001/api"
          match:
            prefix: "/api/v1/"
          route: {cluster: svc-00001, timeout: 2s, retry_policy: {retry_on: "5xx,reset", num_retries: 2, per_try_timeout: 0.5s}}
        - match: {path: "/healthz"}
          direct_response: {status: 200, body: {inline_string: "ok \\"quoted\\" \\\\ \\u00e9\\t"}}
        - match:
            prefix: /old/
            headers:
            - name: 'x-legacy'
              invert_match: false
              present_match: true
          redirect: {prefix_rewrite: '/api/v1/ it''s', response_code: PERMANENT_REDIRECT}
    clusters:
    secrets: []
    empty_value:
    last: -1
    """

    /// A bootstrap in the shape of the generated benchmark shapes (flow collections inside block ones).
    static let bootstrapShape = """
    node: {id: bench, cluster: bench}
    admin:
      address: {socket_address: {address: 127.0.0.1, port_value: 9901}}
    static_resources:
      listeners:
      - name: listener0
        address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
        listener_filters: [{name: envoy.filters.listener.tls_inspector, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}}]
        filter_chains:
        - filter_chain_match: {server_names: ["s0.l0.example.com"]}
          filters: []
      clusters:
      -   name: app
          connect_timeout: 0.25s
          load_assignment:
            cluster_name: app
            endpoints:
            - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 10.0.0.1, port_value: 8080}}}
              - {endpoint: {address: {socket_address: {address: 10.0.0.2, port_value: 8080}}}}
          health_checks: [ ]
          typed_extension_protocol_options: { }

    """

    /// Flow collections written several times, with near-copies (one byte apart, brackets and quotes inside
    /// quoted scalars, a plain scalar with a quote in it) that must not be taken for copies.
    static let repeatedShape = """
    routes:
    - match: {prefix: "/a", headers: [{name: x-canary, string_match: {exact: "t}r'ue"}}]}
      route: {cluster: app, timeout: 3s, retry_policy: {retry_on: "5xx,reset", num_retries: 3}}
    - match: {prefix: "/a", headers: [{name: x-canary, string_match: {exact: "t}r'ue"}}]}
      route: {cluster: app, timeout: 3s, retry_policy: {retry_on: "5xx,reset", num_retries: 3}}
    - match: {prefix: "/b", headers: [{name: x-canary, string_match: {exact: "t}r'ue"}}]}
      route: {cluster: app, timeout: 3s, retry_policy: {retry_on: "5xx,reset", num_retries: 4}}
    - {match: {prefix: "/a", headers: [{name: x-canary, string_match: {exact: "t}r'ue"}}]}, route: {cluster: app}}
    - route: {cluster: app, timeout: 3s, retry_policy: {retry_on: "5xx,reset", num_retries: 3}}
      names: [{a: b'c, d: 'it''s [x]'}, {a: b'c, d: 'it''s [x]'}, {a: b'c, d: 'it''s [y]'}]
      again: [{a: b'c, d: 'it''s [x]'}, {a: b'c, d: 'it''s [x]'}, {a: b'c, d: 'it''s [y]'}]
    - nested: {match: {prefix: "/a", headers: [{name: x-canary, string_match: {exact: "t}r'ue"}}]}}
    """

    func assertSameAsLibYAML(_ text: String, _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line) {
        let reference = Result { () throws(YAMLError) -> YAMLNode? in try YAMLDocument.parse(text, origin: 7, reader: .libYAML) }
        let fast = Result { () throws(YAMLError) -> YAMLNode? in try YAMLDocument.parse(text, origin: 7) }
        switch (reference, fast) {
        case (.success(let a), .success(let b)):
            let difference = Self.difference(a, b)
            XCTAssertNil(difference, "\(message()): trees differ \(difference ?? "") for:\n\(text)", file: file, line: line)
        case (.failure(let a), .failure(let b)):
            XCTAssertEqual(a, b, "\(message()): errors differ for:\n\(text)", file: file, line: line)
        default:
            XCTFail("\(message()): libyaml gives \(reference), the fast path \(fast) for:\n\(text)", file: file, line: line)
        }
        // Sharing repeated flow collections gives the same tree, positions inside repeats aside (a repeat
        // carries its first copy's), and the same errors.
        let shared = Result { () throws(YAMLError) -> YAMLNode? in try YAMLDocument.parseSharingRepeats(text, origin: 7).root }
        switch (reference, shared) {
        case (.success(let a), .success(let b)):
            let difference = Self.difference(a, b, positions: false)
            XCTAssertNil(difference, "\(message()): the shared reading differs \(difference ?? "") for:\n\(text)", file: file, line: line)
        case (.failure(let a), .failure(let b)):
            XCTAssertEqual(a, b, "\(message()): errors differ when sharing for:\n\(text)", file: file, line: line)
        default:
            XCTFail("\(message()): libyaml gives \(reference), the shared reading \(shared) for:\n\(text)", file: file, line: line)
        }
    }

    /// Where two trees differ (nil when identical in every text, style, tag and position).
    static func difference(_ a: YAMLNode?, _ b: YAMLNode?, path: String = "$", positions: Bool = true) -> String? {
        guard let a, let b else { return a == nil && b == nil ? nil : "\(path): one is nil" }
        if positions && a.location != b.location { return "\(path): at \(a.location) (origin \(a.location.origin)) vs \(b.location) (origin \(b.location.origin))" }
        switch (a.kind, b.kind) {
        case (.scalar(let x), .scalar(let y)):
            if x.string != y.string || x.style != y.style || x.tag != y.tag { return "\(path): \(x) vs \(y)" }
            return nil
        case (.sequence(let x), .sequence(let y)):
            if x.count != y.count { return "\(path): \(x.count) vs \(y.count) items" }
            for (i, (p, q)) in zip(x, y).enumerated() { if let d = difference(p, q, path: "\(path)[\(i)]", positions: positions) { return d } }
            return nil
        case (.mapping(let x), .mapping(let y)):
            if x.count != y.count { return "\(path): \(x.count) vs \(y.count) pairs" }
            for (i, (p, q)) in zip(x, y).enumerated() {
                if let d = difference(p.key, q.key, path: "\(path).key[\(i)]", positions: positions) { return d }
                if let d = difference(p.value, q.value, path: "\(path).\(p.key.scalarText ?? "?")", positions: positions) { return d }
            }
            return nil
        default:
            return "\(path): different kinds"
        }
    }

    func testTakesTheGeneratedShapesAndAgreesWithLibYAML() {
        for (name, text) in [("sidecar", Self.sidecarOutput), ("bootstrap", Self.bootstrapShape), ("repeated", Self.repeatedShape)] {
            XCTAssertTrue(YAMLDocument.fastPathAccepts(text), "the fast path declines the \(name) shape it exists for")
            assertSameAsLibYAML(text, name)
        }
    }

    /// Inputs at the subset's edges, each in and just outside it. Those marked `true` must be read by the
    /// fast path itself; all must give libyaml's result.
    static let edgeCases: [(String, Bool)] = [
        ("a: 1\n", true), ("a: 1", true), ("a:\n", true), ("a:", true), ("a:\nb: 2\n", true), ("  a: 1\n  b: 2\n", true),
        ("a: b c  \n", true), ("a : 1\n", true), ("a: http://x:80/y\n", true), ("a: -1\n", true), ("a: ---\n", true),
        ("a:\n- 1\n- 2\nb: 3\n", true), ("a:\n  - 1\n  -   x: 1\n      y: 2\n", true), ("- a\n- b\n", true),
        ("- a: 1\n  b: 2\n- c: 3\n", true), ("- a:\n  - x\n- b:\n  c: 1\n", true), ("a:\n\n\n  b: 1\n   \nc: 2\n", true),
        ("a: {b: 1, c: [2, 3], d: {}, e: []}\n", true), ("a: [ {x: 1}, [y], 'z' ]\n", true), ("a: {\"@type\": t, 'k': v}\n", true),
        ("\"a\": 1\n'b': 2\n", true), ("a: \"x\\\"y\\\\z\\n\\t\\r\\u0041\\u00e9\"\n", true), ("a: 'it''s'\n", true), ("a: ''\n", true),
        ("a: \"\"\n", true), ("a: {b: c d, e: f}\n", true), ("a: [b c, d]\n", true), ("a: x]y\n", true), ("a: x}y,z\n", true),
        ("---a: 1\n", true), ("a: b:c\n", true), ("a: \"x\" \n", true), ("a: 'x'  \n", true), ("a:\n  b:\n    c:\n", true),
        // Outside the subset (libyaml reads or rejects these).
        ("", false), ("\n\n", false), ("# comment\na: 1\n", false), ("a: 1 # comment\n", false), ("a: b#c\n", false),
        ("---\na: 1\n", false), ("a: 1\n...\n", false), ("a: 1\n---\nb: 2\n", false), ("%YAML 1.1\n---\na: 1\n", false),
        ("a:\tb\n", false), ("a: 1\r\n", false), ("a: é\n", false), ("a: &x 1\nb: *x\n", false), ("a: !!str 1\n", false),
        ("a: |\n  text\n", false), ("a: >\n  text\n", false), ("? a\n: 1\n", false), ("a: b\n  c\n", false),
        ("a: \"b\n  c\"\n", false), ("a: 'b\n  c'\n", false), ("a: {b: 1,\n  c: 2}\n", false), ("a: [1, 2,]\n", false),
        ("a: {b: }\n", false), ("a: {b}\n", false), ("a: [b: c]\n", false), ("a: {\"b\":c}\n", false), ("a: {b:c}\n", false),
        ("a: [a:b]\n", false), ("a: [x?y]\n", false), ("a: 1\na: 2\n", false), ("a: {b: 1, b: 2}\n", false), ("a: b: c\n", false),
        ("a: - b\n", false), ("-\n  a: 1\n", false), ("- - a\n", false), ("-\n- a\n", false), ("a: 1\n b: 2\n", false),
        ("a:\n  b: 1\n c: 2\n", false), ("  a: 1\nb: 2\n", false), ("- a\nb: 1\n", false), ("a: 1\n- b\n", false),
        ("a\n", false), ("\"a\"\n", false), ("[a, b]\n", false), ("{a: b}\n", false), ("a: \"\\x41\"\n", false),
        ("a: \"\\/\"\n", false), ("a: \"\\ud800\"\n", false), ("a: \"\\u0000\"\n", false), ("a: \"unterminated\n", false),
        ("a: 'unterminated\n", false), ("a: \"x\"y\n", false), ("a: {b: 1}}\n", false), ("a: [1]]\n", false), ("a: @x\n", false),
        ("a: `x\n", false), ("a: ?x\n", false), ("a: :x\n", false), ("a: ,x\n", false), ("a: *x\n", false), ("a: !x\n", false),
        ("a: %x\n", false), ("a: [-]\n", false), ("a: [-, 1]\n", false), ("\"a\" : 1\n", false), ("a:\n  text\n", false),
        ("a:\n  {b: 1}\n", false), ("a: 1\n  \n b: 2\n", false), (String(repeating: "k", count: 1100) + ": 1\n", false),
        (String(repeating: "- ", count: 1) + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "\n", false),
    ]

    func testEdgeCasesAgreeWithLibYAML() {
        for (text, taken) in Self.edgeCases {
            assertSameAsLibYAML(text, "edge case \(text.debugDescription)")
            XCTAssertEqual(YAMLDocument.fastPathAccepts(text), taken, "fast path on \(text.debugDescription)")
        }
    }

    /// Every YAML and JSON file in the repository (configurations, examples, the test corpora, templates).
    func testRepositoryYAMLAgreesWithLibYAML() throws {
        let root = TestSupport.root
        var files: [URL] = []
        for directory in ["Configs", "templates", "docs", "examples", "Tests/Corpus", "Tests/MeshCompilationTests", "Tests/SystemTests"] {
            guard let walker = FileManager.default.enumerator(at: root.appendingPathComponent(directory), includingPropertiesForKeys: nil) else { continue }
            for case let url as URL in walker where ["yaml", "yml", "json"].contains(url.pathExtension) { files.append(url) }
        }
        XCTAssertGreaterThan(files.count, 100, "the repository's YAML inputs were not found under \(root.path)")
        var taken = 0
        for url in files {
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
            assertSameAsLibYAML(text, url.path)
            if YAMLDocument.fastPathAccepts(text) { taken += 1 }
        }
        // Hand-written files have comments and so mostly go to libyaml (6 of 221 were taken when this was written).
        XCTAssertGreaterThan(taken, 3, "the fast path took \(taken) of \(files.count) repository files")
    }

    /// Seeded random edits of in-subset documents (bytes YAML gives meaning to inserted, deleted, replaced):
    /// whatever the fast path takes must match libyaml, and what it declines falls back to libyaml.
    func testRandomEditsAgreeWithLibYAML() {
        var generator = SplitMix64(seed: 0x5EED_0008)
        // Every other round edits with the bytes the subset itself uses, so more edits stay in it.
        let alphabets = [Array(" \n\n  :-\"'{}[],#&*!|>?%@\\/ax1.\t".utf8) + [0xC3, 0xA9], Array(" \n  :-\"'{}[],ax1".utf8)]
        let seeds = [Self.sidecarOutput, Self.bootstrapShape, Self.repeatedShape] + Self.edgeCases.filter(\.1).map(\.0)
        var taken = 0
        let rounds = 20_000
        for round in 0..<rounds {
            var bytes = Array(seeds[round % seeds.count].utf8)
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let position = bytes.isEmpty ? 0 : Int(generator.next() % UInt64(bytes.count + 1))
                let alphabet = alphabets[(round / seeds.count) % 2]
                let byte = alphabet[Int(generator.next() % UInt64(alphabet.count))]
                switch generator.next() % 3 {
                case 0: bytes.insert(byte, at: position)
                case 1: if position < bytes.count { bytes.remove(at: position) }
                default: if position < bytes.count { bytes[position] = byte }
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            assertSameAsLibYAML(text, "round \(round)")
            if YAMLDocument.fastPathAccepts(text) { taken += 1 }
        }
        // Most single edits keep a document in the subset: the comparison must have exercised the fast path.
        XCTAssertGreaterThan(taken, rounds / 4, "the fast path took only \(taken) of \(rounds) edited documents")
    }
}

extension YAMLFastPathTests {
    /// The copies of a flow collection share one node (the reading is not dead code), near-copies do not.
    func testRepeatedFlowCollectionsShareOneNode() throws {
        let (root, repeats) = try YAMLDocument.parseSharingRepeats(Self.repeatedShape)
        XCTAssertTrue(repeats.sharesAny)
        guard case .mapping(let top)? = root?.kind, case .sequence(let routes) = top[0].value.kind else { return XCTFail("unexpected shape") }
        func storage(_ node: YAMLNode) -> Int? {
            switch node.kind {
            case .mapping(let pairs): return pairs.withUnsafeBufferPointer { $0.baseAddress.map { Int(bitPattern: $0) } }
            case .sequence(let items): return items.withUnsafeBufferPointer { $0.baseAddress.map { Int(bitPattern: $0) } }
            case .scalar: return nil
            }
        }
        func value(_ node: YAMLNode, _ key: String) -> YAMLNode? {
            guard case .mapping(let pairs) = node.kind else { return nil }
            return pairs.first { $0.key.scalarText == key }?.value
        }
        let matches = routes.compactMap { value($0, "match") }.map(storage)
        let actions = routes.compactMap { value($0, "route") }.map(storage)
        // A text is known to repeat from its second copy on (the first is read before that is known): the
        // second and later copies are one node.
        XCTAssertEqual(matches[1], matches[3], "identical matches are one node (the second inside a flow mapping, at the same depth)")
        XCTAssertEqual(actions[1], actions[4], "identical route actions are one node")
        for (name, nodes) in [("matches", matches), ("actions", actions)] {
            XCTAssertNotEqual(nodes[2], nodes[1], "\(name): \"/a\" and \"/b\", num_retries 3 and 4, are different texts")
            XCTAssertNotEqual(nodes[2], nodes[0])
        }
        let nested = value(routes[5], "nested").flatMap { value($0, "match") }
        XCTAssertNotNil(nested)
        XCTAssertNotEqual(matches[1], nested.flatMap(storage), "the same text one level deeper is read again")
        // Without sharing, every copy is a node of its own with its own position.
        let unshared = try YAMLDocument.parse(Self.repeatedShape)
        guard case .mapping(let plainTop)? = unshared?.kind, case .sequence(let plainRoutes) = plainTop[0].value.kind else { return XCTFail("unexpected shape") }
        XCTAssertNotEqual(storage(value(plainRoutes[0], "match")!), storage(value(plainRoutes[1], "match")!))
        XCTAssertEqual(value(plainRoutes[1], "match")?.location.line, 4)
    }
}

/// A small deterministic generator (SplitMix64): the same edits on every run.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
