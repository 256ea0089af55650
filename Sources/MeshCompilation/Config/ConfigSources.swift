// Finding and reading the input files: Configs/mesh.yaml, Configs/services/*.yaml and
// the templates they name. Every file problem (missing, a symlink loop, not UTF-8,
// binary, empty) is a Diagnostic on that file, never a crash.
import EnvoySchema
import Foundation

/// Where the compiler reads from.
public struct CompileInputs: Sendable {
    public var configs: String
    public var templates: String
    /// What to do with files the generated resources name on the proxies' hosts (certificates, keys, CA bundles,
    /// config-source and runtime paths, Wasm and GeoIP files), checked on the host running the compile.
    public var hostFiles: HostFileCheck

    public init(configs: String = "Configs", templates: String = "templates", hostFiles: HostFileCheck = .warning) {
        self.configs = configs
        self.templates = templates
        self.hostFiles = hostFiles
    }
}

/// The files a mesh's resources name live on the proxies' hosts, not on the machine that compiles (CI): a file
/// missing here is a warning by default — it may well exist where Envoy runs — and an error when this host is
/// laid out like the proxies' (`--host-files error`), or not looked at (`off`).
public enum HostFileCheck: String, Sendable, CaseIterable {
    case off, warning, error

    /// The rules of EnvoySchema's host checks (BootstrapChecks.checkHostFiles).
    public static let rules: Set<String> = ["envoy.tls-file", "envoy.tls-key-mismatch", "envoy.host-path"]

    /// This machine's name, for messages that say where a file was looked for.
    static let thisHost: String = {
        var name = [CChar](repeating: 0, count: 256)
        return gethostname(&name, name.count - 1) == 0 ? String(cString: name) : "this host"
    }()
}

/// Why compiling cannot even start (a usage error: exit 2).
public struct CompileUsageError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

enum ConfigSources {
    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    enum Entry { case file, directory, symlinkLoop, other, missing }

    /// What is at `path`, following symlinks (a loop is reported as such).
    static func entry(_ path: String) -> Entry {
        var info = stat()
        if stat(path, &info) != 0 {
            return errno == ELOOP ? .symlinkLoop : .missing
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    /// The text of a configuration file, or the diagnostic that explains why there is none.
    static func read(_ path: String) -> Result<String, Diagnostic> {
        switch entry(path) {
        case .symlinkLoop:
            return .failure(Diagnostic(.error, rule: "input.symlink-loop", message: "is a symbolic link that leads back to itself (a loop); point it at a real file", path: "", file: path))
        case .missing:
            var link = stat()
            if lstat(path, &link) == 0 {
                return .failure(Diagnostic(.error, rule: "input.missing", message: "is a symbolic link to a file that does not exist; fix or remove the link", path: "", file: path))
            }
            return .failure(Diagnostic(.error, rule: "input.missing", message: "no such file", path: "", file: path))
        case .directory:
            return .failure(Diagnostic(.error, rule: "input.not-a-file", message: "is a directory, not a configuration file", path: "", file: path))
        case .other:
            return .failure(Diagnostic(.error, rule: "input.not-a-file", message: "is not a regular file", path: "", file: path))
        case .file:
            return ConfigDocument.readText(path: path)
        }
    }

    /// `*.yaml` and `*.yml` files of a directory, sorted (byte order), symlink loops included so they are reported.
    static func yamlFiles(in directory: String) -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        return names.filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasPrefix(".") }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            .map { join(directory, $0) }
    }
}
