import Crypto
import SealboxBase

/// Mints and verifies capability tokens with the broker's secret key. Only the broker holds one;
/// the jail only ever sees tokens.
public struct TokenAuthority: Sendable {
    private let key: [UInt8]

    /// `key`: 32 random bytes (`randomKey()`), kept by the broker and never written into a jail.
    public init(key: [UInt8]) {
        precondition(key.count >= 32, "a token key has at least 32 bytes")
        self.key = key
    }

    /// 32 bytes from the system CSPRNG.
    public static func randomKey() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// A fresh token id: 128 random bits as 32 lowercase hex digits.
    static func randomTokenID() -> String {
        RandomID.hex(bytes: 16)
    }

    /// Mints a token for one run that allows exactly `tools` until `expiresAtMs` (unix ms).
    /// Traps when the arguments cannot make a valid token (see `tryMint`); a broker that builds
    /// the grant from operator input should call `tryMint`.
    public func mint(runID: String, sessionID: String, tools: [String], expiresAtMs: Int64) -> (token: String, tokenID: String) {
        do {
            return try tryMint(runID: runID, sessionID: sessionID, tools: tools, expiresAtMs: expiresAtMs)
        } catch {
            preconditionFailure("cannot mint token: \(error)")
        }
    }

    /// Like `mint`, but throws `denied` for an empty run id, session id or tool name, or when the
    /// token would exceed 4 KiB (too many or too long tool names).
    public func tryMint(runID: String, sessionID: String, tools: [String], expiresAtMs: Int64) throws(TokenError) -> (token: String, tokenID: String) {
        guard !runID.isEmpty, !sessionID.isEmpty else { throw .denied("run id and session id must be non-empty") }
        guard tools.allSatisfy({ !$0.isEmpty }) else { throw .denied("tool names must be non-empty") }
        let root = TokenRoot(
            tokenID: Self.randomTokenID(),
            runID: runID,
            sessionID: sessionID,
            tools: TokenFormat.normalize(tools: tools),
            expiresAtMs: expiresAtMs
        )
        let signature = TokenFormat.hmac(key: key, message: root.json.canonicalBytes)
        let token = try TokenFormat.encode(DecodedToken(root: root, caveats: [], signature: signature))
        return (token, root.tokenID)
    }

    /// Checks, in this order: well-formed (else `denied`), signature chain (constant-time; else
    /// `denied`), issued for `runID` — the run of the socket the call arrived on (else `denied`),
    /// not revoked by token id or run id (else `revoked`), `nowMs` before the effective expiry
    /// (else `expired`), `tool` in the effective scope (else `denied`, naming the tool).
    public func verify(_ token: String, tool: String, runID: String, nowMs: Int64, revocations: RevocationList) throws(TokenError) -> TokenClaims {
        let decoded = try TokenFormat.decode(token)
        let rootSignature = TokenFormat.hmac(key: key, message: decoded.root.json.canonicalBytes)
        let expected = TokenFormat.chain(rootSignature, over: decoded.caveats)
        guard TokenFormat.constantTimeEqual(expected, decoded.signature) else {
            throw .denied("token signature does not verify")
        }
        let root = decoded.root
        guard root.runID == runID else {
            throw .denied("token was issued for another run")
        }
        guard !revocations.isRevoked(tokenID: root.tokenID, runID: root.runID) else {
            throw TokenError(.revoked, "token has been revoked")
        }
        let expiresAtMs = decoded.effectiveExpiresAtMs
        guard nowMs < expiresAtMs else {
            throw TokenError(.expired, "token expired at \(expiresAtMs) (unix ms)")
        }
        let tools = decoded.effectiveTools
        guard tools.contains(tool) else {
            throw .denied("tool \(Self.quoted(tool)) is not granted by this token")
        }
        return TokenClaims(
            tokenID: root.tokenID,
            runID: root.runID,
            sessionID: root.sessionID,
            tools: tools,
            expiresAtMs: expiresAtMs,
            caveatCount: decoded.caveats.count
        )
    }

    /// The tool name as sent, JSON-quoted (so control characters cannot forge lines) and cut at
    /// 200 characters, for error messages.
    private static func quoted(_ tool: String) -> String {
        var bytes: [UInt8] = []
        TokenJSON.writeString(String(tool.prefix(200)), into: &bytes)
        return String(decoding: bytes, as: UTF8.self) + (tool.count > 200 ? "..." : "")
    }
}
