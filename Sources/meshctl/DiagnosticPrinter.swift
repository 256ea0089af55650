// Diagnostics as text (with the offending line and a caret), JSON, or GitHub workflow annotations.
import ArgumentParser
import EnvoySchema
import Foundation

enum DiagnosticFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
    /// `::error file=…,line=…,col=…,title=RULE::message` lines for GitHub Actions.
    case github
}

struct DiagnosticPrinter {
    let format: DiagnosticFormat
    var useColor: Bool { isatty(STDOUT_FILENO) != 0 && ProcessInfo.processInfo.environment["NO_COLOR"] == nil }

    func print(_ diagnostics: [Diagnostic], files: [(String, Bool)]) {
        switch format {
        case .text: printText(diagnostics, files: files)
        case .json: printJSON(diagnostics, files: files)
        case .github: printGitHub(diagnostics)
        }
    }

    func printText(_ diagnostics: [Diagnostic], files: [(String, Bool)]) {
        printTextDiagnostics(diagnostics)
        for (file, valid) in files where valid {
            let warnings = diagnostics.filter { $0.file == file && $0.severity == .warning }.count
            Swift.print("\(file): valid\(warnings > 0 ? " (\(warnings) warning\(warnings == 1 ? "" : "s"))" : "")")
        }
        let errors = diagnostics.filter { $0.severity == .error }.count
        if errors > 0 {
            let failed = files.filter { !$0.1 }.count
            printError("\(errors) error\(errors == 1 ? "" : "s") in \(failed) of \(files.count) file\(files.count == 1 ? "" : "s")")
        }
    }

    /// Each diagnostic as `file:line:col: severity: path: message [rule]`, then the line and a caret.
    func printTextDiagnostics(_ diagnostics: [Diagnostic]) {
        var lines: [String: [Substring]] = [:]
        for d in diagnostics {
            let label = d.severity.rawValue
            let colored = useColor ? (d.severity == .error ? "\u{1B}[1;31m\(label)\u{1B}[0m" : d.severity == .warning ? "\u{1B}[1;33m\(label)\u{1B}[0m" : "\u{1B}[1;36m\(label)\u{1B}[0m") : label
            var head = d.file ?? "<input>"
            if let l = d.location { head += ":\(l.line):\(l.column)" }
            Swift.print("\(head): \(colored): \(d.path.isEmpty ? "" : d.path + ": ")\(d.message) [\(d.rule)]")
            if let file = d.file, let location = d.location {
                if lines[file] == nil {
                    lines[file] = (try? String(contentsOfFile: file, encoding: .utf8)).map { $0.split(separator: "\n", omittingEmptySubsequences: false) } ?? []
                }
                let all = lines[file]!
                let index = Int(location.line) - 1
                if index >= 0 && index < all.count && all[index].count < 300 {
                    let line = all[index]
                    Swift.print("    \(line)")
                    Swift.print("    " + String(repeating: " ", count: max(0, Int(location.column) - 1)) + (useColor ? "\u{1B}[1;32m^\u{1B}[0m" : "^"))
                }
            }
        }
    }

    /// GitHub Actions workflow commands: one annotation per diagnostic (info becomes a notice).
    func printGitHub(_ diagnostics: [Diagnostic]) {
        func escapeData(_ s: String) -> String {
            s.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
        }
        func escapeProperty(_ s: String) -> String {
            escapeData(s).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
        }
        for d in diagnostics {
            let command = d.severity == .error ? "error" : d.severity == .warning ? "warning" : "notice"
            var properties: [String] = []
            if let file = d.file { properties.append("file=" + escapeProperty(file)) }
            if let l = d.location { properties += ["line=\(l.line)", "col=\(l.column)"] }
            properties.append("title=" + escapeProperty(d.rule))
            let message = (d.path.isEmpty ? "" : d.path + ": ") + d.message
            Swift.print("::\(command) \(properties.joined(separator: ","))::\(escapeData(message))")
        }
    }

    /// A JSON string literal.
    static func jsonString(_ s: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes])
        return String(decoding: data.dropFirst().dropLast(), as: UTF8.self)
    }

    /// - Parameter extra: members written first, each `(name, JSON value text)` (a command's own results).
    func printJSON(_ diagnostics: [Diagnostic], files: [(String, Bool)], extra: [(String, String)] = []) {
        let q = Self.jsonString
        var out = "{\n"
        for (name, value) in extra { out += "  \(q(name)): \(value),\n" }
        out += "  \"files\": [\n"
        out += files.map { "    {\"file\": \(q($0.0)), \"valid\": \($0.1)}" }.joined(separator: ",\n")
        out += "\n  ],\n  \"diagnostics\": [\n"
        out += diagnostics.map { d in
            var fields = ["\"severity\": \(q(d.severity.rawValue))", "\"rule\": \(q(d.rule))", "\"file\": \(q(d.file ?? ""))"]
            if let l = d.location { fields += ["\"line\": \(l.line)", "\"column\": \(l.column)"] }
            fields += ["\"path\": \(q(d.path))", "\"message\": \(q(d.message))"]
            return "    {" + fields.joined(separator: ", ") + "}"
        }.joined(separator: ",\n")
        out += "\n  ]\n}"
        Swift.print(out)
    }
}
