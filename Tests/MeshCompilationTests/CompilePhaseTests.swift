// The compile's phases one at a time (load → mesh rules → templates → plan → render →
// assemble → group rules → report), each driven on its own on a small mesh — the demo cut
// down to catalog → inventory, no gateways — so a failure names the phase that broke.
// Diagnostics are checked as a user reads them: rule id, file, line and column, after the
// same mapping the report phase applies.
import EnvoySchema
import Foundation
@testable import MeshCompilation
import MeshModel
import MeshTestSupport
import XCTest

final class CompilePhaseTests: XCTestCase {
    // MARK: Driving the phases

    /// The demo mesh cut down to two services, catalog (which depends on inventory) and inventory, and no gateways.
    func smallMesh() throws -> MeshFixture {
        let fixture = try MeshFixture()
        for file in try FileManager.default.contentsOfDirectory(atPath: fixture.path("Configs/services")) where !["catalog.yaml", "inventory.yaml"].contains(file) {
            try fixture.remove("Configs/services/" + file)
        }
        let mesh = try fixture.read("Configs/mesh.yaml")
        let gateways = try XCTUnwrap(mesh.range(of: "\ngateways:\n"), "mesh.yaml has a gateways section")
        try fixture.write("Configs/mesh.yaml", String(mesh[..<gateways.lowerBound]) + "\n")
        return fixture
    }

    func compilation(_ fixture: MeshFixture, encode: Bool = false) -> Compilation {
        Compilation(inputs: fixture.inputs, pool: TestSupport.pool, encode: encode)
    }

    /// Phase 1 (locate, then read and parse).
    func load(_ compilation: inout Compilation) throws -> LoadedMesh {
        let sources = try XCTUnwrap(try compilation.locate(), "the Configs/ directory holds a mesh")
        return compilation.load(sources)
    }

    /// Phases 1–4: what the render phase starts from.
    func planned(_ compilation: inout Compilation) throws -> (model: CheckedMesh, plan: JobPlan) {
        let model = compilation.applyMeshRules(try load(&compilation))
        let templates = compilation.loadTemplates(model)
        return (model, compilation.planJobs(model, templates: templates))
    }

    /// What phases 1–6 hand on to the group rules and the report.
    struct Assembled {
        let loaded: LoadedMesh
        let model: CheckedMesh
        var plan: JobPlan
        let results: [JobResult]
        let groups: [ProxyGroupPlan]
    }

    func assembled(_ compilation: inout Compilation) throws -> Assembled {
        let loaded = try load(&compilation)
        let model = compilation.applyMeshRules(loaded)
        let plan = compilation.planJobs(model, templates: compilation.loadTemplates(model))
        let results = compilation.render(plan, model: model)
        return Assembled(loaded: loaded, model: model, plan: plan, results: results, groups: compilation.assembleGroups(plan, model: model))
    }

    /// The diagnostics raised so far, mapped to the user's files and positions as the report phase maps them
    /// (through the plan's jobs and provenance when there is a plan); the compilation itself is left as it is.
    func diagnostics(_ compilation: Compilation, plan: JobPlan? = nil) -> [Diagnostic] {
        var copy = compilation
        var provenance: [String: Provenance] = [:]
        if let plan {
            var builder = plan.builder
            for part in plan.provenanceParts { builder.record(part) }
            provenance = builder.provenance
        }
        return copy.finish(jobs: plan?.jobs ?? [], provenance: provenance).diagnostics
    }

    /// "rule file:line:column" with the file relative to the fixture, as a test can compare it.
    func placed(_ d: Diagnostic, in fixture: MeshFixture) -> String {
        let file = (d.file ?? "").replacingOccurrences(of: fixture.directory.path + "/", with: "")
        return "\(d.rule) \(file):\(d.location.map { "\($0.line):\($0.column)" } ?? "-")"
    }

    func describe(_ job: RenderJob) -> String {
        "\(job.role.rawValue) \(job.owner) \(job.template.map { URL(fileURLWithPath: $0.source.path).lastPathComponent } ?? "(raw)")"
    }

    /// The names of the services whose upstream values a job's template receives.
    func upstreamNames(_ job: RenderJob) -> [String] {
        guard case .list(let items)? = job.roots["upstreams"] else { return [] }
        return items.compactMap { item -> String? in
            guard case .object(let object) = item, case .string(let name) = object["name"] else { return nil }
            return name
        }
    }

    func names(_ result: JobResult, _ kind: ResourceKind) -> [String] { result.resources.filter { $0.kind == kind }.map(\.name) }

    func summary(_ diagnostics: [Diagnostic]) -> String { diagnostics.map(\.description).joined(separator: "\n") }

    // MARK: Phase 1, load

    func testLoadReportsAYAMLErrorAtFileLineAndColumnAndReadsTheOtherFiles() throws {
        let fixture = try smallMesh()
        try fixture.replace("Configs/services/inventory.yaml", "name: inventory\n", with: "name: inventory: bad\n")
        var compilation = compilation(fixture)
        let loaded = try load(&compilation)

        let found = diagnostics(compilation)
        XCTAssertEqual(found.map { placed($0, in: fixture) }, ["yaml.syntax Configs/services/inventory.yaml:1:16"], summary(found))
        XCTAssertEqual(loaded.mesh.name, "demo", "mesh.yaml is read")
        XCTAssertEqual(loaded.services.map { $0.definition?.name.value }, ["catalog", nil], "the broken file yields no service; the next one is still read")
        XCTAssertEqual(loaded.services.first?.definition?.dependencies.map(\.service.value), ["inventory"])
        XCTAssertEqual(compilation.report.files, ["Configs/mesh.yaml", "Configs/services/catalog.yaml", "Configs/services/inventory.yaml"].map(fixture.path))
    }

    func testLoadNamesAnEmptyConfigsDirectoryAndStops() throws {
        let fixture = try smallMesh()
        try fixture.remove("Configs/mesh.yaml")
        try fixture.remove("Configs/services")
        var compilation = compilation(fixture)
        XCTAssertNil(try compilation.locate(), "nothing to load")
        XCTAssertEqual(diagnostics(compilation).map { placed($0, in: fixture) }, ["config.empty Configs:-"])
    }

    // MARK: Phase 2, mesh rules

    func testMeshRulesRejectADuplicateServiceAndAnUnknownDependencyAndDropThem() throws {
        let fixture = try smallMesh()
        try fixture.write("Configs/services/zz-inventory.yaml", try fixture.read("Configs/services/inventory.yaml"))
        try fixture.replace("Configs/services/catalog.yaml", "dependencies: [inventory]", with: "dependencies: [inventory, inventroy]")
        var compilation = compilation(fixture)
        let loaded = try load(&compilation)
        XCTAssertEqual(compilation.pending.count, 0, "every file reads cleanly: what follows is the mesh rules' finding")

        let model = compilation.applyMeshRules(loaded)
        let found = diagnostics(compilation)
        let line = try fixture.line(of: "dependencies: [inventory, inventroy]", in: "Configs/services/catalog.yaml")
        XCTAssertEqual(found.map { placed($0, in: fixture) },
                       ["mesh.unknown-dependency Configs/services/catalog.yaml:\(line):27", "config.duplicate-service Configs/services/zz-inventory.yaml:1:7"], summary(found))
        XCTAssertTrue(found[0].message.contains("depends on 'inventroy'"), found[0].message)
        XCTAssertTrue(found[1].message.contains("already defined in \(fixture.path("Configs/services/inventory.yaml")):1"), found[1].message)
        XCTAssertEqual(model.services.keys.sorted(), ["catalog", "inventory"])
        XCTAssertEqual(model.services["inventory"]?.file, fixture.path("Configs/services/inventory.yaml"), "the first definition is kept")
        XCTAssertEqual(model.services["catalog"]?.dependencies.map(\.service.value), ["inventory"], "the unknown dependency is dropped after it is reported")
        XCTAssertEqual(compilation.report.serviceCount, 2)
    }

    // MARK: Phase 3, templates

    func testTemplatesPhaseReportsAMissingTemplateWhereMeshYamlNamesIt() throws {
        let fixture = try smallMesh()
        try fixture.replace("Configs/mesh.yaml", "  sidecar: sidecar.yaml\n", with: "  sidecar: sidecr.yaml\n")
        var compilation = compilation(fixture)
        let model = compilation.applyMeshRules(try load(&compilation))
        XCTAssertEqual(compilation.pending.count, 0)

        let templates = compilation.loadTemplates(model)
        let found = diagnostics(compilation)
        let line = try fixture.line(of: "sidecar: sidecr.yaml", in: "Configs/mesh.yaml")
        XCTAssertEqual(found.map { placed($0, in: fixture) }, ["config.missing-template Configs/mesh.yaml:\(line):12"], summary(found))
        XCTAssertTrue(found.first?.message.contains("template 'sidecr.yaml' does not exist") == true, summary(found))
        XCTAssertEqual(templates.keys.sorted(), [fixture.path("templates/upstream.yaml")], "the other template is still usable")
    }

    func testTemplatesPhaseDropsATemplateThatReadsAMissingContextValue() throws {
        let fixture = try smallMesh()
        try fixture.replace("templates/upstream.yaml", "{{ service.connect_timeout }}", with: "{{ service.conect_timeout }}")
        var compilation = compilation(fixture)
        let model = compilation.applyMeshRules(try load(&compilation))
        let templates = compilation.loadTemplates(model)
        let found = diagnostics(compilation)
        let line = try fixture.line(of: "service.conect_timeout", in: "templates/upstream.yaml")
        XCTAssertEqual(found.map { placed($0, in: fixture) }, ["template.undefined-variable templates/upstream.yaml:\(line):23"], summary(found))
        XCTAssertEqual(templates.keys.sorted(), [fixture.path("templates/sidecar.yaml")], "a template with errors is not rendered")
    }

    // MARK: Phase 4, plan

    func testPlanMakesAnUpstreamAndASidecarJobPerServiceAndHandsTheDependencyToTheSidecar() throws {
        let fixture = try smallMesh()
        var compilation = compilation(fixture)
        let (_, plan) = try planned(&compilation)
        XCTAssertEqual(diagnostics(compilation), [])

        XCTAssertEqual(plan.names, ["catalog", "inventory"])
        XCTAssertEqual(plan.jobs.map(describe), ["upstream catalog upstream.yaml", "sidecar catalog sidecar.yaml",
                                                 "upstream inventory upstream.yaml", "sidecar inventory sidecar.yaml"])
        let catalogSidecar = try XCTUnwrap(plan.sidecarJob["catalog"].map { plan.jobs[$0] })
        let inventorySidecar = try XCTUnwrap(plan.sidecarJob["inventory"].map { plan.jobs[$0] })
        XCTAssertEqual(upstreamNames(catalogSidecar), ["inventory"], "catalog's sidecar is rendered with inventory as its upstream")
        XCTAssertEqual(upstreamNames(inventorySidecar), [])
        XCTAssertEqual(plan.sidecarReach["catalog"], ["inventory"])
        XCTAssertEqual(plan.sidecarReach["inventory"], [])
        XCTAssertEqual(plan.upstreamJob["inventory"], 2)
        XCTAssertTrue(plan.variantJob.isEmpty, "every group subscribes by ADS: no second rendering of an upstream")
        guard case .string(let source)? = catalogSidecar.roots["config_source"] else { return XCTFail("no config_source") }
        XCTAssertEqual(source, SubscriptionMode.adsStateOfTheWorld.configSource)
    }

    // MARK: Phase 5, render

    func testRenderGivesEachJobItsResources() throws {
        let fixture = try smallMesh()
        var compilation = compilation(fixture, encode: true)
        let (model, plan) = try planned(&compilation)
        let results = compilation.render(plan, model: model)
        XCTAssertEqual(diagnostics(compilation, plan: plan), [])
        XCTAssertEqual(results.count, plan.jobs.count)

        let inventoryUpstream = results[try XCTUnwrap(plan.upstreamJob["inventory"])]
        XCTAssertEqual(names(inventoryUpstream, .clusters), ["inventory.http"])
        XCTAssertEqual(names(inventoryUpstream, .clusterLoadAssignments), ["inventory.http"])
        XCTAssertEqual(names(inventoryUpstream, .listeners), [])

        let catalogSidecar = results[try XCTUnwrap(plan.sidecarJob["catalog"])]
        XCTAssertEqual(names(catalogSidecar, .listeners), ["catalog.http.inbound", "catalog.outbound"])
        XCTAssertEqual(names(catalogSidecar, .routeConfigurations), ["catalog.http.inbound", "catalog.outbound"])
        XCTAssertEqual(names(catalogSidecar, .clusters), ["catalog.http.local"])
        XCTAssertEqual(names(catalogSidecar, .secrets), ["mesh-identity", "mesh-ca"])

        let inventorySidecar = results[try XCTUnwrap(plan.sidecarJob["inventory"])]
        XCTAssertEqual(names(inventorySidecar, .listeners), ["inventory.http.inbound"], "no dependencies: no outbound listener")
        XCTAssertEqual(names(inventorySidecar, .routeConfigurations), ["inventory.http.inbound"])

        for result in results {
            for resource in result.resources {
                XCTAssertEqual(resource.encoded?.name, resource.name, "\(resource.name) is encoded")
                XCTAssertEqual(resource.encoded?.typeURL, "type.googleapis.com/" + resource.kind.typeName)
            }
        }
    }

    func testRenderReportsADuplicateDomainAtTheServiceThatClaimsIt() throws {
        let fixture = try smallMesh()
        let inventory = try fixture.read("Configs/services/inventory.yaml")
        try fixture.write("Configs/services/pricing.yaml", inventory.replacingOccurrences(of: "name: inventory", with: "name: pricing")
            .replacingOccurrences(of: "10160", with: "10170").replacingOccurrences(of: "19160", with: "19170"))
        try fixture.replace("Configs/services/catalog.yaml", "dependencies: [inventory]", with: "dependencies: [inventory, pricing]")
        for service in ["inventory", "pricing"] {
            try fixture.replace("Configs/services/\(service).yaml", "owners: [team-catalog]\n", with: "owners: [team-catalog]\nhosts: [stock]\n")
        }
        var compilation = compilation(fixture)
        let (model, plan) = try planned(&compilation)
        XCTAssertEqual(compilation.pending.count, 0)

        _ = compilation.render(plan, model: model)
        let found = diagnostics(compilation, plan: plan)
        let line = try fixture.line(of: "hosts: [stock]", in: "Configs/services/pricing.yaml")
        XCTAssertEqual(found.map { placed($0, in: fixture) }, ["xref.duplicate-domain Configs/services/pricing.yaml:\(line):9"], summary(found))
        XCTAssertTrue(found.first?.message.contains("domain 'stock' is already served by virtual host 'inventory' of route configuration 'catalog.outbound'") == true,
                      summary(found))
    }

    func testRenderReportsARawPatchThatMatchesNothing() throws {
        let fixture = try smallMesh()
        try fixture.append("Configs/services/inventory.yaml", "envoy:\n  patch:\n    clusters:\n      inventory.htp:\n        connect_timeout: 2s\n")
        var compilation = compilation(fixture)
        let (model, plan) = try planned(&compilation)
        XCTAssertEqual(compilation.pending.count, 0)

        _ = compilation.render(plan, model: model)
        let found = diagnostics(compilation, plan: plan)
        let line = try fixture.line(of: "inventory.htp", in: "Configs/services/inventory.yaml")
        XCTAssertEqual(found.map { placed($0, in: fixture) }, ["config.raw-unknown-resource Configs/services/inventory.yaml:\(line):7"], summary(found))
        XCTAssertTrue(found.first?.message.contains("did you mean 'inventory.http'?") == true, summary(found))
    }

    // MARK: Phase 6, assemble

    func testAssembleGroupsEachSidecarWithTheUpstreamsItReaches() throws {
        let fixture = try smallMesh()
        var compilation = compilation(fixture)
        let run = try assembled(&compilation)
        let plan = run.plan, groups = run.groups
        XCTAssertEqual(diagnostics(compilation, plan: plan), [])

        XCTAssertEqual(groups.map(\.name), ["catalog", "inventory"])
        XCTAssertEqual(compilation.report.groupCount, 2)
        let catalog = groups[0], inventory = groups[1]
        XCTAssertEqual(catalog.kind, "sidecar")
        XCTAssertEqual(catalog.identities, ["spiffe://mesh.local/proxy/catalog"])
        XCTAssertEqual(catalog.xds, .adsStateOfTheWorld)
        XCTAssertEqual(catalog.jobs.map { describe(plan.jobs[$0]) }, ["sidecar catalog sidecar.yaml", "upstream inventory upstream.yaml"])
        XCTAssertEqual(catalog.jobs.last, plan.upstreamJob["inventory"], "an ADS group shares the one rendering of inventory's upstream")
        XCTAssertEqual(inventory.jobs.map { describe(plan.jobs[$0]) }, ["sidecar inventory sidecar.yaml"])
    }

    func testAssembleGivesAPerTypeSidecarTheUpstreamRenderedForItsMode() throws {
        let fixture = try smallMesh()
        try fixture.replace("Configs/mesh.yaml", "  identity: \"spiffe://{trust_domain}/proxy/{service}\"\n",
                            with: "  identity: \"spiffe://{trust_domain}/proxy/{service}\"\n  xds: per-type\n")
        var compilation = compilation(fixture)
        let run = try assembled(&compilation)
        let plan = run.plan
        XCTAssertEqual(diagnostics(compilation, plan: plan), [])

        let catalog = try XCTUnwrap(run.groups.first { $0.name == "catalog" })
        XCTAssertEqual(catalog.xds, .perType)
        let upstream = try XCTUnwrap(catalog.jobs.last)
        XCTAssertEqual(describe(plan.jobs[upstream]), "upstream inventory upstream.yaml")
        XCTAssertNotEqual(upstream, plan.upstreamJob["inventory"], "not the ADS rendering")
        XCTAssertEqual(upstream, plan.variantJob["inventory|\(SubscriptionMode.perType.configSource)"])
        guard case .string(let source)? = plan.jobs[upstream].roots["config_source"] else { return XCTFail("no config_source") }
        XCTAssertEqual(source, SubscriptionMode.perType.configSource, "inventory's cluster fetches its endpoints the way catalog's proxies subscribe")
    }

    // MARK: Phase 7, group rules

    func testGroupRulesCatchRoutesToClustersTheGroupDoesNotHave() throws {
        let fixture = try smallMesh()
        try fixture.append("Configs/services/inventory.yaml", """
            envoy:
              patch:
                route_configurations:
                  inventory.http.inbound:
                    virtual_hosts:
                    - name: local
                      domains: ["*"]
                      routes:
                      - match: {prefix: /a}
                        route: {cluster: nosuch-plain}
                      - match: {prefix: /b}
                        route: {cluster: catalog.http}

            """)
        var compilation = compilation(fixture)
        let run = try assembled(&compilation)
        XCTAssertEqual(diagnostics(compilation, plan: run.plan), [], "each resource is valid on its own: only the group's rules can see the problem")

        compilation.checkGroupRules(run.groups, results: run.results, model: run.model)
        let found = diagnostics(compilation, plan: run.plan)
        let missing = try fixture.line(of: "nosuch-plain", in: "Configs/services/inventory.yaml")
        let undeclared = try fixture.line(of: "cluster: catalog.http", in: "Configs/services/inventory.yaml")
        // Each at the route's `cluster` field, in the user's service file.
        XCTAssertEqual(found.map { placed($0, in: fixture) }, ["xref.route-cluster Configs/services/inventory.yaml:\(missing):21",
                                                               "mesh.undeclared-dependency Configs/services/inventory.yaml:\(undeclared):21"], summary(found))
        XCTAssertTrue(found.first?.message.contains("cluster 'nosuch-plain', which proxy group 'inventory' does not have") == true, summary(found))
        XCTAssertTrue(found.last?.message.contains("'inventory' does not declare 'catalog' as a dependency") == true, summary(found))
    }

    func testGroupRulesCatchTwoListenersOnOneAddress() throws {
        let fixture = try smallMesh()
        try fixture.replace("Configs/services/catalog.yaml", "outbound_port: 10121", with: "outbound_port: 10120")
        var compilation = compilation(fixture)
        let run = try assembled(&compilation)
        XCTAssertEqual(diagnostics(compilation, plan: run.plan), [], "the listeners are valid on their own: only the group's rules can see the clash")

        compilation.checkGroupRules(run.groups, results: run.results, model: run.model)
        let found = diagnostics(compilation, plan: run.plan)
        let line = try fixture.line(of: "outbound_port: 10120", in: "Configs/services/catalog.yaml")
        XCTAssertEqual(found.map { placed($0, in: fixture) }, ["xref.duplicate-address Configs/services/catalog.yaml:\(line):18"], summary(found))
        XCTAssertTrue(found.first?.message.contains("listener 'catalog.outbound' binds 127.0.0.1:10120, which listener 'catalog.http.inbound'") == true, summary(found))
    }

    // MARK: Phase 8, report

    func testReportEncodesEachGroupWithItsAccessRecord() throws {
        let fixture = try smallMesh()
        var compilation = compilation(fixture, encode: true)
        var run = try assembled(&compilation)
        compilation.checkGroupRules(run.groups, results: run.results, model: run.model)

        let report = compilation.makeReport(plan: &run.plan, groups: run.groups, results: run.results, loaded: run.loaded, model: run.model)
        XCTAssertEqual(report.diagnostics, [], report.summary())
        XCTAssertEqual(report.groups.map(\.group), ["catalog", "inventory"])
        let catalog = report.groups[0].resources
        XCTAssertEqual(catalog["type.googleapis.com/envoy.config.cluster.v3.Cluster"]?.keys.sorted(), ["catalog.http.local", "inventory.http"])
        XCTAssertEqual(catalog["type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"]?.keys.sorted(), ["inventory.http"])
        let access = try XCTUnwrap(catalog[GroupAccess.typeURL]?["catalog"].flatMap { GroupAccess.decode($0.body) })
        XCTAssertEqual(access.identities, ["spiffe://mesh.local/proxy/catalog"])
        XCTAssertEqual(access.subscriptionMode, .adsStateOfTheWorld)
        XCTAssertNil(report.groups[1].resources["type.googleapis.com/envoy.config.cluster.v3.Cluster"]?["catalog.http"], "inventory does not reach catalog")
        XCTAssertEqual(report.resourceCount, run.results.reduce(0) { $0 + $1.resources.count })
    }

    func testReportMapsATemplateMistakeToTheTemplateOnceAndEncodesNothing() throws {
        let fixture = try smallMesh()
        try fixture.replace("templates/sidecar.yaml", "        codec_type: AUTO\n        forward_client_cert_details", with: "        codec_typ: AUTO\n        forward_client_cert_details")
        var compilation = compilation(fixture, encode: true)
        var run = try assembled(&compilation)
        compilation.checkGroupRules(run.groups, results: run.results, model: run.model)
        XCTAssertGreaterThan(compilation.pending.count, 1, "both sidecars render the mistake")

        let report = compilation.makeReport(plan: &run.plan, groups: run.groups, results: run.results, loaded: run.loaded, model: run.model)
        let line = try fixture.line(of: "codec_typ: AUTO", in: "templates/sidecar.yaml")
        XCTAssertEqual(report.diagnostics.map { placed($0, in: fixture) }, ["schema.unknown-field templates/sidecar.yaml:\(line):9"], report.summary())
        XCTAssertTrue(report.diagnostics.first?.message.contains("(rendering for 'catalog')") == true, report.summary())
        XCTAssertEqual(report.groups.map(\.group), [], "nothing is encoded while there are errors")
    }
}
