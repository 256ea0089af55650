// Snapshot resources as readable YAML or JSON for `meshctl snapshot show|diff` and the admin endpoint's diffs.
import EnvoySchema
import Foundation
import SnapshotStorage
import XDSProtocol

/// Turns resource bytes into YAML or JSON with the embedded Envoy schema; bytes it cannot decode
/// are shown as base64 with the reason.
public struct ResourceRenderer: Sendable {
    let pool: DescriptorPool? = try? DescriptorPool.envoy
    /// Secrets show only that they exist and their content hash (the admin endpoint, which has no authentication).
    public var redactsSecrets: Bool

    public init(redactsSecrets: Bool = false) { self.redactsSecrets = redactsSecrets }

    /// Why a resource could not be decoded.
    struct Undecodable: Error, CustomStringConvertible {
        let description: String
    }

    /// What stands in for a secret's contents when they must not be shown (never its bytes, not even base64).
    private func redacted(_ r: Resource) -> String? {
        guard redactsSecrets && r.typeURL == TypeURL.secret else { return nil }
        return "secret \(r.name): contents not shown (content hash \(r.hash.prefix(12)))"
    }

    private func decode(_ r: Resource) -> Result<(DynamicMessage, DescriptorPool), Undecodable> {
        guard let pool else { return .failure(Undecodable(description: "the embedded Envoy schema did not load")) }
        guard let id = pool.messageID(typeURL: r.typeURL) else { return .failure(Undecodable(description: "unknown type \(r.typeURL)")) }
        do {
            return .success((try DynamicMessage(serialized: r.body, type: id, pool: pool), pool))
        } catch {
            return .failure(Undecodable(description: "not a valid \(r.typeURL): \(error)"))
        }
    }

    /// The resource as YAML (for diffs).
    public func yaml(_ r: Resource) -> String {
        if let redacted = redacted(r) { return "# \(redacted)\n" }
        switch decode(r) {
        case .success(let (message, pool)): return TextWriter(pool: pool).yaml(message)
        case .failure(let why): return "# cannot decode (\(why))\nbytes_base64: \(Data(r.body).base64EncodedString())\n"
        }
    }

    /// A `resource:` mapping (or `bytes_base64:` fallback) for a YAML document.
    public func yamlField(_ r: Resource) -> String {
        if let redacted = redacted(r) { return "redacted: \(TextQuoting.yamlScalar(redacted))\n" }
        switch decode(r) {
        case .success(let (message, pool)):
            let body = TextWriter(pool: pool).yaml(message)
            let indented = body.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }.joined(separator: "\n")
            return "resource:\n" + indented + (indented.hasSuffix("\n") ? "" : "\n")
        case .failure(let why):
            return "decode_error: \(TextQuoting.yamlScalar(why.description))\nbytes_base64: \(Data(r.body).base64EncodedString())\n"
        }
    }

    /// A `"resource": {...}` member (or `"bytes_base64"` fallback) for a JSON object.
    public func jsonField(_ r: Resource) -> String {
        if let redacted = redacted(r) { return "\"redacted\": \(TextQuoting.json(redacted))" }
        switch decode(r) {
        case .success(let (message, pool)):
            let text = TextWriter(pool: pool).jsonText(message, pretty: false).trimmingCharacters(in: .whitespacesAndNewlines)
            return "\"resource\": \(text)"
        case .failure(let why):
            return "\"decode_error\": \(TextQuoting.json(why.description)), \"bytes_base64\": \(TextQuoting.json(Data(r.body).base64EncodedString()))"
        }
    }
}
