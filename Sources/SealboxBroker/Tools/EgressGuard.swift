import Foundation
import Glibc
import SealboxBase

/// An IPv4 or IPv6 address range: an address and a prefix length ("10.0.0.0/8", "::1/128").
struct IPRange: Sendable, Equatable {
    /// 4 or 16 bytes.
    let bytes: [UInt8]
    let prefix: Int

    /// "10.0.0.0/8", "192.168.1.5", "::1", "[fe80::]/10"; nil when not an address or range.
    init?(_ text: String) {
        var address = Substring(text)
        var prefix: Int?
        if let slash = text.lastIndex(of: "/") {
            guard let p = Int(text[text.index(after: slash)...]) else { return nil }
            prefix = p
            address = text[..<slash]
        }
        if address.hasPrefix("[") && address.hasSuffix("]") { address = address.dropFirst().dropLast() }
        guard let bytes = IPRange.parse(String(address)) else { return nil }
        let bits = bytes.count * 8
        guard (0...bits).contains(prefix ?? bits) else { return nil }
        self.bytes = bytes
        self.prefix = prefix ?? bits
    }

    /// The 4 or 16 bytes of a numeric address (`IPAddress.bytes`).
    static func parse(_ text: String) -> [UInt8]? {
        IPAddress.bytes(text)
    }

    func contains(_ address: [UInt8]) -> Bool {
        guard address.count == bytes.count else { return false }
        var left = prefix
        for i in 0..<bytes.count where left > 0 {
            let bits = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if address[i] & mask != bytes[i] & mask { return false }
            left -= bits
        }
        return true
    }
}

/// Where an http tool may connect, by address. `allow_hosts` names hosts; a name is resolved by
/// the broker, and the connection is pinned to the address it checked (no second lookup can
/// answer differently). Loopback, private, link-local (the cloud metadata service at
/// 169.254.169.254), shared, multicast and unspecified addresses are refused unless the tool's
/// `allow_hosts` names that address or a range holding it, or the tool sets
/// `allow_private_networks: true`: a public name that resolves inward is the classic way to
/// reach what a jail must not.
struct EgressGuard: Sendable, Equatable {
    /// Addresses and ranges `allow_hosts` names.
    let allowed: [IPRange]
    let allowPrivateNetworks: Bool

    static let restricted: [(range: IPRange, kind: String)] = [
        ("0.0.0.0/8", "an unspecified"), ("10.0.0.0/8", "a private"), ("100.64.0.0/10", "a shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "a loopback"), ("169.254.0.0/16", "a link-local (cloud metadata)"), ("172.16.0.0/12", "a private"),
        ("192.0.0.0/24", "a protocol-assignment"), ("192.168.0.0/16", "a private"), ("198.18.0.0/15", "a benchmarking"),
        ("224.0.0.0/4", "a multicast"), ("240.0.0.0/4", "a reserved"),
        ("::/128", "an unspecified"), ("::1/128", "a loopback"), ("fc00::/7", "a private (unique local)"),
        ("fe80::/10", "a link-local"), ("ff00::/8", "a multicast"),
    ].map { (IPRange($0.0)!, $0.1) }

    init(allowHosts: [String], allowPrivateNetworks: Bool) {
        self.allowed = allowHosts.compactMap(IPRange.init)
        self.allowPrivateNetworks = allowPrivateNetworks
    }

    /// What kind of address `address` (4 or 16 bytes) is when the broker must not connect to it
    /// ("a loopback address"); nil when it may.
    func refusal(_ address: [UInt8]) -> String? {
        // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is that IPv4 address.
        if address.count == 16, address[0..<10].allSatisfy({ $0 == 0 }), address[10] == 0xFF, address[11] == 0xFF {
            return refusal(Array(address[12...]))
        }
        if allowPrivateNetworks || allowed.contains(where: { $0.contains(address) }) { return nil }
        guard let hit = Self.restricted.first(where: { $0.range.contains(address) }) else { return nil }
        return "\(hit.kind) address"
    }

    static func text(_ address: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = address.count == 4 ? AF_INET : AF_INET6
        let ok = address.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) } != nil
        return ok ? String(cString: buffer) : "?"
    }

    /// The address to connect to instead of looking `host` up again: the first address it
    /// resolves to that this guard allows; nil when `host` is an address itself (checked here).
    /// Throws `.hostNotFound` or `.refused` (naming the first address refused).
    func pin(_ host: String) async throws(EgressFailure) -> String? {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if let literal = IPRange.parse(bare) {
            if let kind = refusal(literal) { throw .refused("\(Self.text(literal)), \(kind)") }
            return nil
        }
        let candidates = await Self.resolve(bare)
        guard !candidates.isEmpty else { throw .hostNotFound }
        var firstRefusal: String?
        for address in candidates {
            guard let kind = refusal(address) else { return Self.text(address) }
            if firstRefusal == nil { firstRefusal = "\(Self.text(address)), \(kind)" }
        }
        throw .refused("\(host) resolves to \(firstRefusal ?? "?")")
    }

    /// getaddrinfo on a thread of its own (it blocks; the cooperative pool must not).
    static func resolve(_ name: String) async -> [[UInt8]] {
        await withCheckedContinuation { continuation in
            let thread = Thread {
                var hints = addrinfo()
                hints.ai_family = AF_UNSPEC
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var list: UnsafeMutablePointer<addrinfo>?
                guard getaddrinfo(name, nil, &hints, &list) == 0 else {
                    continuation.resume(returning: [])
                    return
                }
                defer { freeaddrinfo(list) }
                var found: [[UInt8]] = []
                var entry = list
                while let e = entry {
                    if let sa = e.pointee.ai_addr {
                        if e.pointee.ai_family == AF_INET {
                            var a = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                            found.append(withUnsafeBytes(of: &a) { Array($0) })
                        } else if e.pointee.ai_family == AF_INET6 {
                            var a = sa.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                            found.append(withUnsafeBytes(of: &a) { Array($0) })
                        }
                    }
                    entry = e.pointee.ai_next
                }
                var seen = Set<[UInt8]>()
                continuation.resume(returning: found.filter { seen.insert($0).inserted })
            }
            thread.name = "sealbox-broker-resolve"
            thread.start()
        }
    }
}

enum EgressFailure: Error, Sendable {
    case hostNotFound
    case refused(String)
}
