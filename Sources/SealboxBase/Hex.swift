import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials  // DataProtocol, which swift-crypto's hash takes
#else
import Foundation
#endif

/// Lowercase hexadecimal, two digits a byte: every digest, id and key sealbox prints.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension SHA256 {
    /// The digest of `bytes` in lowercase hex (64 characters).
    public static func hex(_ bytes: some DataProtocol) -> String {
        Hex.encode(hash(data: bytes))
    }

    /// The digest of the UTF-8 bytes of `text` in lowercase hex.
    public static func hex(text: String) -> String {
        hex(Array(text.utf8))
    }
}
