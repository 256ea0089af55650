// Paths other than TLS material that Envoy opens on its own host while it loads a bootstrap:
// file-based config sources, the runtime's disk layer, Wasm modules, MaxMind databases.
// `validate --envoy` runs on that host, so it checks them the same way and names the host.
import Foundation

extension BootstrapChecks {
    /// The host these checks looked at, for messages.
    static let hostName = ProcessInfo.processInfo.hostName

    /// Envoy refuses a file-based subscription whose path does not exist
    /// (`Config::Utility::checkFilesystemSubscriptionBackingPath`).
    mutating func checkConfigSourcePath(_ source: MessageView) {
        for (owner, field) in [(source, "path"), (source.child("path_config_source"), "path")] {
            guard let owner, let path = owner.string(field), !path.isEmpty else { continue }
            if !FileManager.default.fileExists(atPath: path) {
                report("envoy.host-path", "config source file \(path) does not exist on this host (\(Self.hostName)); Envoy refuses to subscribe to a missing path", path: owner.join(field), at: owner.location(of: field))
            }
        }
    }

    /// The disk layer's symlink root is watched through its directory, which must exist.
    mutating func checkRuntimeDiskLayer(_ layer: MessageView) {
        guard let root = layer.string("symlink_root"), !root.isEmpty else { return }
        let directory = (root as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory, isDirectory: &isDirectory) || !isDirectory.boolValue {
            report("envoy.host-path", "the runtime disk layer's symlink_root \(root) cannot be watched: its directory \(directory) does not exist on this host (\(Self.hostName))", path: layer.join("symlink_root"), at: layer.location(of: "symlink_root"))
        }
    }

    /// A Wasm VM's module from a local file is read when the filter is built.
    mutating func checkWasmCode(_ vmConfig: MessageView) {
        guard let local = vmConfig.child("code")?.child("local"), let path = local.string("filename"), !path.isEmpty else { return }
        if !FileManager.default.isReadableFile(atPath: path) {
            report("envoy.host-path", "the Wasm module \(path) does not exist on this host (\(Self.hostName)) or cannot be read", path: local.join("filename"), at: local.location(of: "filename"))
        }
    }

    /// The MaxMind provider opens each database when it is built; libmaxminddb first looks for the
    /// metadata marker near the end of the file.
    mutating func checkMaxMindDatabases(_ config: MessageView) {
        for field in ["city_db_path", "asn_db_path", "anon_db_path", "isp_db_path", "country_db_path"] {
            guard let path = config.string(field), !path.isEmpty else { continue }
            guard let handle = FileHandle(forReadingAtPath: path) else {
                report("envoy.host-path", "the MaxMind database \(path) does not exist on this host (\(Self.hostName)) or cannot be read", path: config.join(field), at: config.location(of: field))
                continue
            }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            try? handle.seek(toOffset: size > 131_072 ? size - 131_072 : 0)
            let tail = (try? handle.readToEnd()) ?? Data()
            if tail.range(of: Data([0xAB, 0xCD, 0xEF] + Array("MaxMind.com".utf8))) == nil {
                report("envoy.host-path", "\(path) on this host (\(Self.hostName)) is not a MaxMind database (no metadata section)", path: config.join(field), at: config.location(of: field))
            }
        }
    }
}
