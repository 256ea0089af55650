// meshctl's template renderer against Stencil itself: the same bytes for every shipped
// template and every demo service, and for each language feature the renderer implements;
// plus the errors Stencil would not give (undefined variables, unclosed tags).
@testable import MeshCompilation
import MeshTestSupport
import XCTest

final class TemplateEngineTests: XCTestCase {
    static let item = ContextSchema.object("item", ["name": .string, "port": .int, "on": .bool, "tags": .list(.string)])
    static let roots: [String: TemplateValue] = [
        "title": .string("mesh \"demo\": one"), "count": .int(3), "zero": .int(0), "yes": .bool(true), "empty": .list([]), "nothing": .null,
        "items": .list([
            .object(TemplateObject(item, ["name": .string("a"), "port": .int(80), "on": .bool(true), "tags": .list([.string("x"), .string("y")])])),
            .object(TemplateObject(item, ["name": .string("b"), "port": .int(443), "on": .bool(false), "tags": .list([])])),
        ]),
        "words": .list([.string("alpha"), .string("beta")]),
    ]

    struct Case {
        let name: String
        let template: String
        var expected: String? = nil
    }

    static let cases: [Case] = [
        Case(name: "variables and members", template: "{{ title }} {{ count }} {{ yes }} {{ items.first.name }} {{ items.count }} {{ nothing }}.", expected: "mesh \"demo\": one 3 true a 2 ."),
        Case(name: "json filter quotes for YAML", template: "t: {{ title|json }} l: {{ words|json }} n: {{ count|json }}", expected: "t: \"mesh \\\"demo\\\": one\" l: [\"alpha\", \"beta\"] n: 3"),
        Case(name: "filters", template: "{{ words|join:\", \" }} {{ title|uppercase }} {{ nothing|default:\"dflt\" }} {{ words|join:\"-\"|uppercase }}"),
        Case(name: "for loop with forloop", template: "{% for i in items %}{{ forloop.counter }}/{{ forloop.length }}:{{ i.name }}{% if not forloop.last %},{% endif %}{% endfor %}", expected: "1/2:a,2/2:b"),
        Case(name: "for loop empty branch", template: "{% for i in empty %}x{% empty %}none{% endfor %}", expected: "none"),
        Case(name: "for loop where", template: "{% for i in items where i.on %}{{ i.name }}{% endfor %}", expected: "a"),
        Case(name: "nested loops", template: "{% for i in items %}{% for t in i.tags %}{{ i.name }}{{ t }} {% endfor %}{% endfor %}", expected: "axay"),
        Case(name: "if elif else", template: "{% if zero %}z{% elif count > 2 %}big{% else %}small{% endif %}", expected: "big"),
        Case(name: "comparisons", template: "{% if count == 3 and title != \"x\" %}a{% endif %}{% if items.first.port <= 80 %}b{% endif %}{% if \"beta\" in words %}c{% endif %}{% if nothing == nothing %}d{% endif %}", expected: "abcd"),
        Case(name: "operator precedence", template: "{% if yes or zero and zero %}1{% endif %}{% if not yes or yes %}2{% endif %}{% if ( yes or zero ) and zero %}3{% endif %}", expected: "12"),
        Case(name: "truthiness", template: "{% if empty %}e{% endif %}{% if words %}w{% endif %}{% if zero %}z{% endif %}{% if title %}t{% endif %}{% if nothing %}n{% endif %}", expected: "wt"),
        Case(name: "smart trimming of block lines", template: "a:\n  {% for i in items %}\n  - {{ i.name }}\n  {% endfor %}\nb: 1\n", expected: "a:\n  - a\n  - b\nb: 1\n"),
        Case(name: "explicit whitespace control", template: "x {%- if yes -%}  \n  y  {%+ endif +%} z"),
        Case(name: "comments", template: "a{# comment #}b\n{# line #}\nc", expected: "ab\n\nc"),
        Case(name: "blocks spanning lines", template: "{% if yes\n   and count %}ok{% endif %}", expected: "ok"),
    ]

    func testRendererAgreesWithStencilOnEveryFeature() throws {
        for c in Self.cases {
            let template = try CompiledTemplate(source: TemplateSource(path: "t.yaml", text: c.template))
            let ours = try template.renderString(Self.roots)
            let stencil = try StencilReference.render(c.template, roots: Self.roots)
            XCTAssertEqual(ours, stencil, "\(c.name): meshctl and Stencil differ")
            if let expected = c.expected { XCTAssertEqual(ours, expected, c.name) }
        }
    }

    func testRendererAgreesWithStencilOnTheShippedTemplatesForEveryDemoService() throws {
        let inputs = CompileInputs(configs: TestSupport.root.appendingPathComponent("Configs").path, templates: TestSupport.root.appendingPathComponent("templates").path)
        let report = try MeshCompiler.compile(inputs, pool: TestSupport.pool, encode: false)
        XCTAssertEqual(report.errorCount, 0, report.summary())
        // Two jobs per service (upstream, sidecar), one per proxyless gRPC client (grpc-client.yaml), one per gateway.
        let proxyless = report.jobs.filter { $0.role == .grpcClient }.count
        XCTAssertGreaterThan(proxyless, 0, "the demo has a proxyless client")
        XCTAssertEqual(report.jobs.count, 2 * (report.serviceCount - proxyless) + proxyless + report.gatewayCount)
        for job in report.jobs {
            let template = try XCTUnwrap(job.template, "the demo has no raw groups: every job renders a template")
            let ours = try template.renderString(job.roots)
            let stencil = try StencilReference.render(template.source.text, roots: job.roots)
            XCTAssertEqual(ours, stencil, "\(template.source.path) for \(job.owner)")
        }
    }

    func testUndefinedVariablesAreErrorsAtTheirPosition() throws {
        let template = try CompiledTemplate(source: TemplateSource(path: "t.yaml", text: "a: 1\nb: {{ items.first.nmae }}\n{% for i in itemz %}{% endfor %}\n"))
        let errors = TemplateChecker.check(template, roots: ["items": .list(.object(Self.item))])
        XCTAssertEqual(errors.map(\.kind), [.undefinedVariable, .undefinedVariable])
        XCTAssertEqual(errors.map { template.source.position(ofByte: $0.offset).line }, [2, 3])
        XCTAssertEqual(template.source.position(ofByte: errors[0].offset).column, 7)
        XCTAssertTrue(errors[0].message.contains("did you mean 'items.first.name'"), errors[0].message)
        XCTAssertTrue(errors[1].message.contains("did you mean 'items'"), errors[1].message)
    }

    func testTemplateSyntaxProblemsArePreciseErrors() throws {
        let cases: [(String, TemplateError.Kind, Int)] = [
            ("a: 1\nb: {{ x\n", .syntax, 2),
            ("{% if x %}\n{% endfor %}\n", .syntax, 2),
            ("a\n{% include \"x\" %}\n", .unsupported, 2),
            ("{{ x|unknownfilter }}", .syntax, 1),
            ("{{ x if y else z }}", .unsupported, 1),
        ]
        for (text, kind, line) in cases {
            do {
                _ = try CompiledTemplate(source: TemplateSource(path: "t.yaml", text: text))
                XCTFail("\(text.debugDescription) parsed")
            } catch {
                XCTAssertEqual(error.kind, kind, text.debugDescription)
                XCTAssertEqual(TemplateSource(path: "t.yaml", text: text).position(ofByte: error.offset).line, line, text.debugDescription)
            }
        }
    }

    func testRenderingTracksWhereOutputCameFrom() throws {
        let text = "first: {{ title|json }}\n{% for i in items %}\n- name: {{ i.name }}\n  port: {{ i.port }}\n{% endfor %}\n"
        let template = try CompiledTemplate(source: TemplateSource(path: "t.yaml", text: text))
        let rendered = try template.render(Self.roots, tracking: true)
        // Output line 3 is the second item's "- name: b"; its value comes from the {{ i.name }} on template line 3.
        XCTAssertEqual(rendered.text.split(separator: "\n")[3], "- name: b")
        let offset = try XCTUnwrap(rendered.sourceOffset(line: 4, column: 9))
        XCTAssertEqual(template.source.position(ofByte: offset).line, 3)
        let port = try XCTUnwrap(rendered.sourceOffset(line: 5, column: 3))
        XCTAssertEqual(template.source.position(ofByte: port).line, 4)
        XCTAssertEqual(template.source.position(ofByte: port).column, 3)
    }
}
