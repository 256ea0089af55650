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
}
