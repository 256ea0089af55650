// SHA-256 through libcrypto for the store's content addresses and xDS resource
// versions. The algorithm is fetched once; every hash after that is one EVP_Digest call.
internal import COpenSSL

/// SHA-256 of bytes in memory.
public enum SHA256 {
    private static let algorithm = FetchedAlgorithm()

    /// The 32-byte digest of `count` bytes at `pointer`.
    public static func digest(_ pointer: UnsafeRawPointer?, count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { o in
            EVP_Digest(pointer, count, o.baseAddress, &length, algorithm.md, nil)
        }
        // EVP_Digest fails only when libcrypto cannot allocate: nothing sensible can continue.
        precondition(ok == 1 && length == 32, "libcrypto SHA-256 failed")
        return out
    }
}

/// Owns the explicitly fetched SHA-256 implementation (avoids an implicit fetch per call).
private final class FetchedAlgorithm: @unchecked Sendable {
    // @unchecked Sendable: immutable after init; EVP_MD objects are safe to share between threads.
    let md: OpaquePointer?

    init() {
        md = EVP_MD_fetch(nil, "SHA256", nil)
        precondition(md != nil, "libcrypto has no SHA-256")
    }

    deinit { EVP_MD_free(md) }
}
