/// Offline attenuation: any holder of a token can narrow it without the broker key, by appending
/// a caveat and extending the HMAC chain with the current signature as the key. Nobody can remove
/// a caveat: that needs the signature from before it, which the token no longer carries.
public enum TokenAttenuation {
    /// Returns `token` with one more caveat allowing at most `tools` (nil: no tool restriction)
    /// and expiring no later than `expiresAtMs` (nil: no new expiry). The effective expiry is the
    /// earliest of all, so a later `expiresAtMs` than the token's is accepted but changes nothing.
    ///
    /// Throws `denied` for a malformed token, neither argument given, a tool not in the token's
    /// current scope (a caveat could not widen it anyway; this reports the mistake), a 17th caveat,
    /// or a result over 4 KiB. Does not check the signature: only the broker can.
    public static func attenuate(_ token: String, tools: [String]?, expiresAtMs: Int64?) throws(TokenError) -> String {
        guard tools != nil || expiresAtMs != nil else {
            throw .denied("attenuation needs tools, an expiry, or both")
        }
        var caveat = TokenCaveat(tools: nil, expiresAtMs: expiresAtMs)
        if let tools {
            guard tools.allSatisfy({ !$0.isEmpty }) else { throw .denied("tool names must be non-empty") }
            let scope = try TokenFormat.decode(token).effectiveTools
            let outside = TokenFormat.normalize(tools: tools).filter { !scope.contains($0) }
            guard outside.isEmpty else {
                throw .denied("cannot widen a token: not in its scope: \(outside.joined(separator: ", "))")
            }
            caveat.tools = TokenFormat.normalize(tools: tools)
        }
        return try TokenFormat.append(caveat, to: token)
    }
}
