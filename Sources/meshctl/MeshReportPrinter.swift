// How `meshctl compile` and `meshctl validate` (Configs/ mode) print a compile report:
// text with the offending line and a caret, the JSON schema documented in
// docs/CONFIG.md ("Validate output"), or GitHub annotations.
import EnvoySchema
import Foundation
import MeshCompilation

struct MeshReportPrinter {
    let format: DiagnosticFormat

    func print(_ report: CompileReport, command: String, extra: [String: String] = [:]) {
        switch format {
        case .text:
            let printer = DiagnosticPrinter(format: .text)
            printer.printTextDiagnostics(report.diagnostics)
            let summary = "\(report.serviceCount) service\(report.serviceCount == 1 ? "" : "s"), \(report.gatewayCount) gateway\(report.gatewayCount == 1 ? "" : "s")"
                + (report.rawGroupCount > 0 ? ", \(report.rawGroupCount) raw group\(report.rawGroupCount == 1 ? "" : "s")" : "")
            let counts = [(report.errorCount, "error"), (report.warningCount, "warning")].map { "\($0.0) \($0.1)\($0.0 == 1 ? "" : "s")" }.joined(separator: ", ")
            let line = "\(command): \(summary): \(counts)"
            if report.errorCount > 0 { printError(line) } else { Swift.print(line) }
        case .github:
            DiagnosticPrinter(format: .github).printGitHub(report.diagnostics)
        case .json:
            Swift.print(json(report, command: command, extra: extra))
        }
    }

    /// Version 1 of the report schema (docs/CONFIG.md).
    func json(_ report: CompileReport, command: String, extra: [String: String]) -> String {
        func q(_ s: String) -> String {
            let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
            return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
        }
        let infos = report.diagnostics.count { $0.severity == .info }
        var out = "{\n  \"schema\": \"meshctl.report/v1\",\n  \"command\": \(q(command)),\n  \"ok\": \(report.errorCount == 0),\n"
        out += "  \"summary\": {\"errors\": \(report.errorCount), \"warnings\": \(report.warningCount), \"infos\": \(infos), "
        out += "\"services\": \(report.serviceCount), \"gateways\": \(report.gatewayCount), \"raw_groups\": \(report.rawGroupCount), \"proxy_groups\": \(report.groupCount), \"resources\": \(report.resourceCount)},\n"
        for key in extra.keys.sorted() { out += "  \(q(key)): \(q(extra[key]!)),\n" }
        out += "  \"diagnostics\": ["
        out += report.diagnostics.map { d in
            var fields = ["\"severity\": \(q(d.severity.rawValue))", "\"rule\": \(q(d.rule))", "\"file\": \(q(d.file ?? ""))"]
            fields += ["\"line\": \(d.location.map { String($0.line) } ?? "null")", "\"column\": \(d.location.map { String($0.column) } ?? "null")"]
            fields += ["\"path\": \(q(d.path))", "\"message\": \(q(d.message))"]
            return "\n    {" + fields.joined(separator: ", ") + "}"
        }.joined(separator: ",")
        out += report.diagnostics.isEmpty ? "]\n}" : "\n  ]\n}"
        return out
    }
}
