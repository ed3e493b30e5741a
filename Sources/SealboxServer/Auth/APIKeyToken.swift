import Crypto
import Foundation
import SealboxBase

/// The text of an API key: `sbx_<id>_<secret>`.
///   id      16 lowercase hex digits (8 random bytes): public, names the key in lists, logs and
///           `sealbox keys revoke`, and is how the store finds the row.
///   secret  32 random bytes, base64url without padding (43 characters): shown once, stored
///           only as its SHA-256.
/// The `sbx_` prefix lets secret scanners (and people) recognise a leaked key.
struct APIKeyToken: Sendable, Equatable {
    static let prefix = "sbx_"
    static let idBytes = 8
    static let secretBytes = 32
    /// Longer input is refused before any parsing or hashing.
    static let maxLength = 256

    let id: String
    let secret: String

    var text: String { Self.prefix + id + "_" + secret }

    /// SHA-256 of the secret's text: what keys.db keeps. A fast hash is right here (unlike for
    /// passwords): the secret has 256 random bits, nothing to guess.
    var secretDigest: [UInt8] { Self.digest(secret) }

    static func digest(_ secret: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(secret.utf8)))
    }

    /// A fresh key from the system's CSPRNG (getrandom(2) on Linux).
    static func generate() -> APIKeyToken {
        APIKeyToken(id: RandomID.hex(bytes: Self.idBytes), secret: base64URL(RandomID.bytes(Self.secretBytes)))
    }

    /// nil for anything that is not exactly the format above (the caller answers 401 without
    /// saying which part was wrong).
    static func parse(_ text: String) -> APIKeyToken? {
        guard text.utf8.count <= maxLength, text.hasPrefix(prefix) else { return nil }
        let rest = text.dropFirst(prefix.count)
        // The id has no "_"; the secret may (base64url), so split at the first one only.
        guard let underscore = rest.firstIndex(of: "_") else { return nil }
        let id = String(rest[..<underscore])
        let secret = String(rest[rest.index(after: underscore)...])
        guard isID(id), secret.utf8.count == base64URLLength(secretBytes),
              secret.utf8.allSatisfy(isBase64URL)
        else { return nil }
        return APIKeyToken(id: id, secret: secret)
    }

    /// A key id as printed by `sealbox keys list`.
    static func isID(_ id: String) -> Bool {
        id.utf8.count == idBytes * 2
            && id.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0) }
    }

    /// Compares every byte whatever the first difference, so the time taken says nothing about
    /// how much of a guessed secret was right.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    private static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    private static func base64URLLength(_ bytes: Int) -> Int { (bytes * 8 + 5) / 6 }

    private static func isBase64URL(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }
}
