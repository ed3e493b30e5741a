import Glibc

/// A numeric IP address as text: the one reading of it (inet_pton: no names, no shorthand
/// such as "127.1", no brackets), for the broker's egress guard and the server's Host check.
public enum IPAddress {
    /// The 4 or 16 bytes of `text`, or nil when it is not a numeric address.
    public static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
