// Paths Envoy opens on its host while loading (config source files, the runtime disk layer's
// directory, Wasm modules, MaxMind databases): `validate --envoy` checks this host the same way,
// and agrees with the pinned Envoy on each case.
import EnvoySchema
import Foundation
import XCTest

final class HostPathTests: XCTestCase {
    static let cluster = "static_resources:\n  clusters: [{name: app, type: STATIC, load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}}]}]}}]\n"

    static func geoip(_ database: String) -> String {
        """
        static_resources:
          clusters: [{name: app, type: STATIC, load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 80}}}}]}]}}]
          listeners:
          - name: l
            address: {socket_address: {address: 127.0.0.1, port_value: 10000}}
            filter_chains:
            - filters:
              - name: hcm
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: http
                  route_config: {virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: app}}]}]}
                  http_filters:
                  - name: geoip
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.geoip.v3.Geoip
                      provider:
                        name: envoy.geoip_providers.maxmind
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.geoip_providers.maxmind.v3.MaxMindConfig
                          city_db_path: \(database)
                          common_provider_config: {geo_field_keys: {country: x-country}}
                  - {name: router, typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}

        """
    }

    static func wasm(_ module: String) -> String {
        geoip("x").replacingOccurrences(of: """
                  - name: geoip
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.geoip.v3.Geoip
                      provider:
                        name: envoy.geoip_providers.maxmind
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.geoip_providers.maxmind.v3.MaxMindConfig
                          city_db_path: x
                          common_provider_config: {geo_field_keys: {country: x-country}}
        """, with: """
                  - name: wasm
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                      config: {vm_config: {runtime: envoy.wasm.runtime.v8, code: {local: {filename: \(module)}}}}
        """)
    }

    func testHostPathsAreCheckedAsEnvoyChecksThem() throws {
        let directory = try TestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let existing = directory.appendingPathComponent("cds.yaml")
        try "resources: []\n".write(to: existing, atomically: true, encoding: .utf8)
        let empty = directory.appendingPathComponent("empty.mmdb")
        try Data().write(to: empty)
        let missing = directory.appendingPathComponent("missing").path
        let node = "node: {id: edge-1, cluster: edge}\n"
        let cases: [(name: String, yaml: String, valid: Bool)] = [
            ("file config source that exists", Self.cluster + node + "dynamic_resources: {cds_config: {path_config_source: {path: \(existing.path)}}}\n", true),
            ("file config source that is missing", Self.cluster + node + "dynamic_resources: {cds_config: {path_config_source: {path: \(missing)/cds.yaml}}}\n", false),
            ("runtime root in an existing directory", Self.cluster + "layered_runtime: {layers: [{name: d, disk_layer: {symlink_root: \(directory.path)/current}}]}\n", true),
            ("runtime root in a missing directory", Self.cluster + "layered_runtime: {layers: [{name: d, disk_layer: {symlink_root: \(missing)/current}}]}\n", false),
            ("missing Wasm module", Self.wasm("\(missing)/filter.wasm"), false),
            ("missing MaxMind database", Self.geoip("\(missing)/City.mmdb"), false),
            ("a MaxMind database that is not one", Self.geoip(empty.path), false),
        ]
        let envoy = TestSupport.envoy
        let haveEnvoy = FileManager.default.isExecutableFile(atPath: envoy)
        for (i, c) in cases.enumerated() {
            let file = directory.appendingPathComponent("case-\(i).yaml")
            try c.yaml.write(to: file, atomically: true, encoding: .utf8)
            let errors = BootstrapValidation.validate(path: file.path, pool: TestSupport.pool).filter { $0.severity == .error }
            if c.valid {
                XCTAssertEqual(errors, [], c.name)
            } else {
                XCTAssertEqual(errors.map(\.rule), ["envoy.host-path"], "\(c.name): \(errors)")
                XCTAssertTrue(errors.allSatisfy { $0.message.contains("this host (") }, "\(c.name): names the host checked")
            }
            // Without --envoy's host checks (a mesh's files live on the proxies' hosts) nothing is reported.
            XCTAssertEqual(BootstrapValidation.validate(text: c.yaml, file: file.path, syntax: .yaml, pool: TestSupport.pool, checkHostFiles: false).filter { $0.severity == .error }, [], c.name)
            if haveEnvoy {
                let run = try TestSupport.run(envoy, ["--mode", "validate", "-c", file.path, "-l", "critical", "--disable-hot-restart"], timeout: 60)
                XCTAssertEqual(run.status == 0, c.valid, "\(c.name): Envoy says \(String(decoding: run.stdout + run.stderr, as: UTF8.self).suffix(300))")
            }
        }
    }
}
