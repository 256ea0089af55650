// SHA-256 (OpenSSLSupport's, over libcrypto) as the store names things: lowercase hex.
import OpenSSLSupport

/// SHA-256 of byte strings, as lowercase hex (the store's object names and xDS resource versions).
enum Digest {
    /// Lowercase hex SHA-256 of `bytes`.
    static func sha256Hex(_ bytes: some ContiguousBytesLike) -> String {
        hex(bytes.withBytes { SHA256.digest($0, count: $1) })
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var chars = [UInt8](repeating: 0, count: bytes.count * 2)
        for (i, b) in bytes.enumerated() {
            chars[2 * i] = digits[Int(b >> 4)]
            chars[2 * i + 1] = digits[Int(b & 15)]
        }
        return String(decoding: chars, as: UTF8.self)
    }

    /// True when `text` looks like a lowercase hex SHA-256 (64 characters).
    static func isHash(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
}

/// Byte containers the digest can read without copying.
protocol ContiguousBytesLike {
    func withBytes<R>(_ body: (UnsafeRawPointer?, Int) -> R) -> R
}

extension Array: ContiguousBytesLike where Element == UInt8 {
    func withBytes<R>(_ body: (UnsafeRawPointer?, Int) -> R) -> R {
        withUnsafeBytes { body($0.baseAddress, $0.count) }
    }
}

extension ArraySlice: ContiguousBytesLike where Element == UInt8 {
    func withBytes<R>(_ body: (UnsafeRawPointer?, Int) -> R) -> R {
        withUnsafeBytes { body($0.baseAddress, $0.count) }
    }
}

/// 64-bit FNV-1a: a fast, stable spread of resource names over index shards (not a security hash).
enum ShardHash {
    static func of(_ name: String) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in name.utf8 {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }
}
