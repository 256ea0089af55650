// What Envoy's listener manager checks when it builds a listener (`ListenerImpl` and
// `FilterChainManagerImpl` in source/common/listener_manager): the addresses parse as IPs,
// `ipv4_compat` only where it means something, the filter chains the listener's socket type
// takes, and filter chain matches that select one chain per connection.

import Foundation

/// An IP address as Envoy parses a listener's (`Network::Utility::parseInternetAddressNoThrow`).
struct IPAddress: Equatable {
    /// 4 bytes for IPv4, 16 for IPv6.
    let bytes: [UInt8]

    var isV6: Bool { bytes.count == 16 }
    var isAny: Bool { bytes.allSatisfy { $0 == 0 } }
    /// `::ffff:a.b.c.d`.
    var isV4Mapped: Bool { isV6 && bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff }

    /// inet_pton's grammar (dotted quad without leading zeros, or IPv6 text); an IPv6 address may
    /// carry a `%zone` suffix, which Envoy resolves numerically.
    init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var host = Substring(text)
        if let percent = text.firstIndex(of: "%") {
            guard text.index(after: percent) < text.endIndex else { return nil }
            host = text[..<percent]
        }
        var v6 = in6_addr()
        guard host.contains(":"), inet_pton(AF_INET6, String(host), &v6) == 1 else { return nil }
        bytes = withUnsafeBytes(of: &v6) { Array($0) }
    }

    /// The range's address with the bits past `length` cleared, as Envoy's CidrRange keeps it.
    func masked(to length: Int) -> [UInt8] {
        bytes.enumerated().map { i, byte in
            let keep = max(0, min(8, length - i * 8))
            return keep == 8 ? byte : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
    }
}

extension MessageView {
    /// A bool field that is set to true.
    func isTrue(_ name: String) -> Bool { if case .bool(true)? = value(name) { return true } else { return false } }
}

extension BootstrapChecks {
    mutating func checkListenerManagerRules(_ listener: MessageView) {
        let name = listener.string("name") ?? ""
        checkListenerAddresses(listener)
        let kind = ConstraintValidator.listenerKind(listener.message, pool: pool)
        let chains = listener.children("filter_chains")
        let hasDefault = listener.has("default_filter_chain")
        switch kind {
        case .udp:
            if !chains.isEmpty || hasDefault {
                report("envoy.udp-listener-filter-chains", "listener '\(name)' is a connection-less UDP listener (its address's protocol is UDP and it has no quic_options): it takes no filter chains; its listener_filters (e.g. envoy.filters.udp_listener.udp_proxy) handle the datagrams, so remove filter_chains", path: listener.join(chains.isEmpty ? "default_filter_chain" : "filter_chains"), at: listener.location(of: chains.isEmpty ? "default_filter_chain" : "filter_chains"))
            }
            return
        case .quic:
            for chain in chains + (listener.child("default_filter_chain").map { [$0] } ?? []) where !chain.has("transport_socket") {
                report("envoy.quic-transport-socket", "listener '\(name)' is a QUIC listener: every filter chain needs a transport_socket (envoy.transport_sockets.quic with QuicDownstreamTransport)", path: chain.path, at: chain.location)
            }
        case .tcp:
            break
        }
        if chains.isEmpty && !hasDefault && !listener.has("api_listener") {
            report("envoy.listener-filter-chains", "listener '\(name)' has no filter chains; add filter_chains (or a default_filter_chain)", path: listener.path, at: listener.location)
        }
        if listener.has("filter_chain_matcher") {
            checkNamedFilterChains(chains, listener: name)
        } else {
            checkFilterChainMatches(chains, listener: name)
        }
    }

    /// Envoy resolves a listener's socket addresses as IPs (no DNS) unless a resolver is named,
    /// and accepts `ipv4_compat` only on `::` or an IPv4-mapped IPv6 address.
    mutating func checkListenerAddresses(_ listener: MessageView) {
        let main = listener.child("address")?.child("socket_address")
        let mainIP = main.flatMap { parsedListenerIP($0) }
        if let main, main.isTrue("ipv4_compat"), let ip = mainIP, !Self.ipv4CompatAllowed(ip) {
            report("envoy.ipv4-compat", "ipv4_compat may only be set on the IPv6 address '::' or an IPv4-mapped IPv6 address (::ffff:a.b.c.d); \(main.string("address") ?? "") is neither: remove ipv4_compat or listen on '::'", path: main.join("ipv4_compat"), at: main.location(of: "ipv4_compat"))
        }
        for additional in listener.children("additional_addresses") {
            guard let address = additional.child("address") else {
                report("envoy.listener-address-ip", "an additional address needs an address (socket_address with an IP and port)", path: additional.path, at: additional.location)
                continue
            }
            guard let socket = address.child("socket_address") else { continue }
            _ = parsedListenerIP(socket)
            // Envoy (ListenerImpl::checkIpv4CompatAddress) judges an additional address's ipv4_compat
            // against the listener's main address, so that is what decides here too.
            if socket.isTrue("ipv4_compat"), let ip = mainIP, !Self.ipv4CompatAllowed(ip) {
                report("envoy.ipv4-compat", "ipv4_compat on an additional address needs the listener's main address to be '::' or an IPv4-mapped IPv6 address (Envoy checks it against the main address); remove ipv4_compat", path: socket.join("ipv4_compat"), at: socket.location(of: "ipv4_compat"))
            }
        }
    }

    static func ipv4CompatAllowed(_ ip: IPAddress) -> Bool { ip.isV6 && (ip.isAny || ip.isV4Mapped) }

    /// The socket address's IP, reporting an address that is not one (unless a custom resolver is named).
    mutating func parsedListenerIP(_ socket: MessageView) -> IPAddress? {
        if let resolver = socket.string("resolver_name"), !resolver.isEmpty { return nil }
        let text = socket.string("address") ?? ""
        if let ip = IPAddress(text) { return ip }
        report("envoy.listener-address-ip", "listener address '\(text)' is not an IP address: Envoy binds listeners to IPs and does not resolve names here; use e.g. 0.0.0.0 (every IPv4 address), :: (every IPv6 address) or 127.0.0.1", path: socket.join("address"), at: socket.location(of: "address"))
        return nil
    }

    /// With a filter_chain_matcher, chains are chosen by name: each needs a distinct one.
    mutating func checkNamedFilterChains(_ chains: [MessageView], listener: String) {
        var seen: Set<String> = []
        for chain in chains {
            let name = chain.string("name") ?? ""
            if name.isEmpty {
                report("envoy.filter-chain-name", "listener '\(listener)' uses filter_chain_matcher, so every filter chain needs a name (the matcher's actions select chains by name)", path: chain.path, at: chain.location)
            } else if !seen.insert(name).inserted {
                report("envoy.filter-chain-name", "filter chain name '\(name)' is used twice in listener '\(listener)'; the filter_chain_matcher selects chains by name, so names must be unique", path: chain.join("name"), at: chain.location(of: "name"))
            }
        }
    }

    /// Envoy files every chain under each combination of its match criteria (destination port, IP
    /// range, server name, transport protocol, application protocol, direct source IP, source
    /// type, source IP, source port) and refuses a listener where two chains land on the same
    /// combination: a connection there would have two chains to pick from.
    mutating func checkFilterChainMatches(_ chains: [MessageView], listener: String) {
        var owners: [String: (index: Int, name: String)] = [:]
        for (index, chain) in chains.enumerated() {
            let name = chain.string("name") ?? ""
            let label = name.isEmpty ? "filter_chains[\(index)]" : "'\(name)'"
            let match = chain.child("filter_chain_match")
            if let match, (match.string("address_suffix") ?? "") != "" || match.has("suffix_len") {
                report("envoy.filter-chain-unimplemented", "filter chain \(label) uses address_suffix/suffix_len, which Envoy does not implement; remove them", path: match.path, at: match.location)
                continue
            }
            guard let keys = filterChainKeys(match, chain: label) else { continue }
            var clash: (index: Int, name: String)?
            for key in keys {
                // A chain may clash with itself: a criterion listed twice files it twice under one key.
                if let owner = owners[key] { clash = owner; break }
                owners[key] = (index, label)
            }
            if let clash, clash.index == index {
                report("envoy.filter-chain-overlap", "filter chain \(label) of listener '\(listener)' lists one match criterion twice (a repeated server name, prefix range, application protocol or source port); list each once", path: chain.path, at: match?.location ?? chain.location)
            } else if let clash {
                let what = Set(keys) == Set(owners.filter { $0.value.index == clash.index }.keys) ? "has the same filter_chain_match as" : "overlaps with"
                report("envoy.filter-chain-overlap", "filter chain \(label) of listener '\(listener)' \(what) filter chain \(clash.name): a connection matching both would have two chains; make the matches differ (server_names, prefix_ranges, transport_protocol …) or merge the chains", path: chain.path, at: match?.location ?? chain.location)
            }
        }
    }

    /// Every combination of the chain's criteria, as Envoy's lookup tables key them; nil when a
    /// criterion is malformed (reported).
    mutating func filterChainKeys(_ match: MessageView?, chain label: String) -> [String]? {
        guard let match else { return ["0|||||||0|0"] }
        var valid = true
        func cidrs(_ field: String) -> [String] {
            var out: [String] = []
            for range in match.children(field) {
                let text = range.string("address_prefix") ?? ""
                var length = 0
                if case .uint(let n)? = range.wrapped("prefix_len") { length = Int(n) }
                guard let ip = IPAddress(text), length <= ip.bytes.count * 8 else {
                    valid = false  // reported as envoy.cidr-range by the constraint pass
                    continue
                }
                out.append(ip.masked(to: length).map { String($0) }.joined(separator: ".") + "/\(length)")
            }
            return out.isEmpty ? [""] : out
        }
        var serverNames: [String] = []
        for (serverName, location) in match.strings("server_names") {
            if serverName.contains("*") && !serverName.hasPrefix("*.") {
                report("envoy.filter-chain-server-name", "filter chain \(label): partial wildcard '\(serverName)' in server_names is not supported; use a full wildcard such as *.example.com", path: match.join("server_names"), at: location)
                valid = false
            }
            let lower = serverName.lowercased()
            serverNames.append(lower.hasPrefix("*.") ? String(lower.dropFirst()) : lower)
        }
        let destinationIPs = cidrs("prefix_ranges"), directSourceIPs = cidrs("direct_source_prefix_ranges"), sourceIPs = cidrs("source_prefix_ranges")
        guard valid else { return nil }
        var port: UInt64 = 0
        if case .uint(let n)? = match.wrapped("destination_port") { port = n }
        let transport = match.string("transport_protocol") ?? ""
        let applications = match.stringValues("application_protocols")
        let sourceType = match.enumNumber("source_type") ?? 0
        var sourcePorts: [UInt64] = (match.value("source_ports")?.listValue ?? []).compactMap { if case .uint(let n) = $0.value { return n } else { return nil } }
        if sourcePorts.isEmpty { sourcePorts = [0] }
        var keys: [String] = []
        for ip in destinationIPs {
            for server in serverNames.isEmpty ? [""] : serverNames {
                for application in applications.isEmpty ? [""] : applications {
                    for direct in directSourceIPs {
                        for source in sourceIPs {
                            for sourcePort in sourcePorts {
                                keys.append("\(port)|\(ip)|\(server)|\(transport)|\(application)|\(direct)|\(sourceType)|\(source)|\(sourcePort)")
                            }
                        }
                    }
                }
            }
        }
        return keys
    }
}
