// What counts as an IP address literal, decided once for the whole project by the C
// library's own parser (inet_pton), so the bootstrap generator, the compiler's
// endpoint checks, certificate SANs and TLS peer verification all agree.
#if canImport(Glibc)
import Glibc
#endif

/// IP address literals.
public enum IPAddress {
    /// True when `text` is an IPv4 dotted quad or an IPv6 address as inet_pton(3) reads them (no brackets, no port).
    public static func isLiteral(_ text: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    /// True when `host` names this machine only: `localhost`, an IPv4 literal in 127.0.0.0/8, or `::1` (brackets
    /// allowed). Decided on the parsed address, so "127.example.com" or "127.0.0.1.nip.io" is not loopback.
    public static func isLoopback(_ host: String) -> Bool {
        if host == "localhost" { return true }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        var v4 = in_addr(), v6 = in6_addr()
        if inet_pton(AF_INET, bare, &v4) == 1 {
            return UInt32(bigEndian: v4.s_addr) >> 24 == 127
        }
        if inet_pton(AF_INET6, bare, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.prefix(15).allSatisfy { $0 == 0 } && bytes[15] == 1 }
        }
        return false
    }
}
