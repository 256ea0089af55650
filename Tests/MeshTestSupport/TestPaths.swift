// Where tests find the repository, the built meshctl, the project's tools and scratch space.
import Foundation

public enum TestPaths {
    /// The package root (three levels above this file).
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The meshctl binary built next to the test bundle (whatever the scratch path), else the default debug build.
    public static var meshctl: String {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let bundle = Bundle.main.bundleURL
        for directory in [Bundle.main.executableURL?.deletingLastPathComponent(), executable, bundle, bundle.deletingLastPathComponent()].compactMap({ $0 }) {
            let candidate = directory.appendingPathComponent("meshctl").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return root.appendingPathComponent(".build/debug/meshctl").path
    }

    /// A tool from the project's venvs (the Makefile exports their paths).
    public static func tool(_ variable: String, default relative: String) -> String {
        if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { return path }
        return root.appendingPathComponent(relative).path
    }

    public static var python: String { tool("MESHCTL_PYTHON", default: ".venv/bin/python") }
    public static var envoy: String { tool("MESHCTL_ENVOY", default: ".venv-envoy/bin/envoy") }

    /// The project's Python (with xds-protos and grpcio), if it exists.
    public static let installedPython: String? = {
        var candidates: [String] = []
        if let configured = ProcessInfo.processInfo.environment["MESHCTL_PYTHON"], !configured.isEmpty { candidates.append(configured) }
        candidates.append(root.appendingPathComponent(".venv/bin/python").path)
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// A new, empty directory under the system temporary directory, named `prefix-XXXXXXXX`.
    public static func temporaryDirectory(_ prefix: String = "meshctl-test") throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
