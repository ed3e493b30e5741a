import Crypto
import Foundation
import SealboxBase

/// The idempotency key the world sees (the `Idempotency-Key` header of an http tool).
///
/// Every tenant's calls reach the world with the same operator credential, and worlds that
/// deduplicate (payment APIs) do it by that key alone. If the jail's own key went out as it
/// is, tenant B calling `charge` with key `order-1001` would be answered with tenant A's
/// charge, and B could claim A's `auto:` key first from arguments it guesses. So the world
/// key is a keyed hash of what identifies the effect inside sealbox: the session family (a
/// tenant's sessions never share one), the tool and the jail's key, keyed by a secret the
/// effect log holds (`Ledger.worldKeySecret`) and the jail never sees:
///
///     sbx1-<first 128 bits of HMAC-SHA256(secret, lp("sealbox-world-key-v1") lp(root) lp(tool) lp(key)), hex>
///
/// (`lp`: 8-byte big-endian length, then the bytes). The same call re-executed after a crash
/// sends the same key; `sealbox log show SEQ` prints it, so an operator can find the call in
/// the world's own logs.
public enum WorldKey {
    public static let version = "sbx1-"

    public static func derive(secret: [UInt8], familyRoot: String, tool: String, key: String) -> String {
        var message = LengthPrefixed(width: .u64)
        for part in ["sealbox-world-key-v1", familyRoot, tool, key] { message.append(text: part) }
        let mac = HMAC<SHA256>.authenticationCode(for: message.bytes, using: SymmetricKey(data: secret))
        return version + Hex.encode(Array(mac).prefix(16))
    }
}
