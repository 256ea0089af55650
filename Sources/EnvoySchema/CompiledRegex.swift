// RE2, the regex engine Envoy uses for `safe_regex` and protoc-gen-validate uses
// for `pattern` rules. The only file of EnvoySchema that touches CRE2.
internal import CRE2

/// A compiled RE2 regular expression. Immutable; RE2 matching is thread-safe.
public final class CompiledRegex: @unchecked Sendable {
    // @unchecked Sendable: the RE2 handle is immutable after init and RE2 documents matching as thread-safe.
    private let handle: OpaquePointer
    public let pattern: String

    private init(handle: OpaquePointer, pattern: String) {
        self.handle = handle
        self.pattern = pattern
    }

    deinit { meshctl_re2_free(handle) }

    /// Why RE2 refused a pattern, in RE2's words.
    public struct SyntaxError: Error, Equatable, Sendable {
        public let message: String
    }

    /// Compiles `pattern` with RE2's default options, as Envoy does.
    public static func compile(_ pattern: String) -> Result<CompiledRegex, SyntaxError> {
        var errorBuffer = [CChar](repeating: 0, count: 512)
        var utf8 = Array(pattern.utf8)
        let handle = utf8.withUnsafeMutableBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                meshctl_re2_compile(chars.baseAddress, chars.count, &errorBuffer, errorBuffer.count)
            }
        }
        guard let handle else {
            let message = errorBuffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            return .failure(SyntaxError(message: message))
        }
        return .success(CompiledRegex(handle: handle, pattern: pattern))
    }

    /// RE2's program size: Envoy refuses regexes over its maximum (100 by default).
    public var programSize: Int { Int(meshctl_re2_program_size(handle)) }

    /// True if `text` contains a match.
    public func containsMatch(in text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                meshctl_re2_partial_match(handle, chars.baseAddress, chars.count) != 0
            }
        }
    }
}
