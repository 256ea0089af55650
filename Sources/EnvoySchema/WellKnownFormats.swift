// protoc-gen-validate's well-known string formats (hostname, ip, uri, HTTP
// header names and values, ...), checked the way its C++ validators check them.
import Foundation

enum WellKnownFormats {
    static func matches(_ format: WellKnownString, _ s: String, strict: Bool) -> Bool {
        switch format {
        case .hostname: return isHostname(s)
        case .ip: return isIPv4(s) || isIPv6(s)
        case .ipv4: return isIPv4(s)
        case .ipv6: return isIPv6(s)
        case .address: return isHostname(s) || isIPv4(s) || isIPv6(s)
        case .email: return isEmail(s)
        case .uri: return isURI(s)
        case .uriRef: return !s.contains(where: { $0 == " " || $0 == "\n" })
        case .uuid: return isUUID(s)
        case .httpHeaderName:
            if !strict { return !s.utf8.contains(where: { $0 == 0 || $0 == 10 || $0 == 13 }) }
            var bytes = Substring(s).utf8[...]
            if bytes.first == UInt8(ascii: ":") { bytes = bytes.dropFirst() }
            return !bytes.isEmpty && bytes.allSatisfy(isTokenCharacter)
        case .httpHeaderValue:
            if !strict { return !s.utf8.contains(where: { $0 == 0 || $0 == 10 || $0 == 13 }) }
            return !s.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7f })
        }
    }

    static func describe(_ format: WellKnownString, strict: Bool) -> String {
        switch format {
        case .hostname: return "a valid hostname"
        case .ip: return "a valid IP address"
        case .ipv4: return "a valid IPv4 address"
        case .ipv6: return "a valid IPv6 address"
        case .address: return "a valid hostname or IP address"
        case .email: return "a valid email address"
        case .uri: return "an absolute URI"
        case .uriRef: return "a valid URI reference"
        case .uuid: return "a UUID"
        case .httpHeaderName: return strict ? "a valid HTTP header name (RFC 7230 token characters)" : "a valid HTTP header name (no NUL, CR or LF)"
        case .httpHeaderValue: return strict ? "a valid HTTP header value (no control characters)" : "a valid HTTP header value (no NUL, CR or LF)"
        }
    }

    /// RFC 7230 `tchar`.
    static func isTokenCharacter(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): return true
        default: return "!#$%&'*+-.^_|~`".utf8.contains(c)
        }
    }

    static func isHostname(_ s: String) -> Bool {
        var host = Substring(s)
        if host.hasSuffix(".") { host = host.dropLast() }
        guard !host.isEmpty, host.utf8.count <= 253 else { return false }
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            guard !label.isEmpty, label.utf8.count <= 63, label.first != "-", label.last != "-",
                  label.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 }) else { return false }
        }
        return true
    }

    static func isIPv4(_ s: String) -> Bool {
        var address = in_addr()
        return inet_pton(AF_INET, s, &address) == 1
    }

    static func isIPv6(_ s: String) -> Bool {
        var address = in6_addr()
        return inet_pton(AF_INET6, s, &address) == 1
    }

    static func isEmail(_ s: String) -> Bool {
        var address = Substring(s)
        if let open = address.firstIndex(of: "<"), address.hasSuffix(">") {
            address = address[address.index(after: open)..<address.index(before: address.endIndex)]
        }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[0].utf8.count <= 64 else { return false }
        return isHostname(String(parts[1]))
    }

    static func isURI(_ s: String) -> Bool {
        guard let colon = s.firstIndex(of: ":"), colon != s.startIndex else { return false }
        let scheme = s[..<colon]
        guard let first = scheme.first, first.isASCII, first.isLetter else { return false }
        return scheme.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "+-.".contains($0)) }
            && !s.contains(where: { $0 == " " || $0 == "\n" })
    }

    static func isUUID(_ s: String) -> Bool {
        let groups = s.split(separator: "-", omittingEmptySubsequences: false)
        guard groups.map(\.count) == [8, 4, 4, 4, 12] else { return false }
        return groups.allSatisfy { $0.allSatisfy(\.isHexDigit) }
    }
}
