/// Sizes as users type them: "256M", "64k", "1.5G", "1048576", "512MiB". Binary units.
public enum ByteSize {
    public static func parse(_ text: String, flag: String) throws(JailError) -> UInt64 {
        let trimmed = text.trimmingWhitespace().lowercased()
        var digits = Substring(trimmed)
        var unitText = ""
        while let last = digits.last, last.isLetter {
            unitText = String(last) + unitText
            digits = digits.dropLast()
        }
        let multipliers: [String: UInt64] = [
            "": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
            "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
        ]
        guard let multiplier = multipliers[unitText],
              let number = Double(digits.trimmingWhitespace()), number.isFinite, number >= 0,
              !digits.isEmpty, digits.allSatisfy({ $0.isNumber || $0 == "." || $0 == " " }) else {
            throw JailError(.invalidSpec, "invalid size \"\(text)\" for \(flag) (a number with an optional K, M, G or T suffix, e.g. 256M)")
        }
        let bytes = number * Double(multiplier)
        guard bytes < 9.0e18 else { throw JailError(.invalidSpec, "size \"\(text)\" for \(flag) is too large") }
        return UInt64(bytes.rounded())
    }

    /// "256M"-style rendering for messages.
    public static func format(_ bytes: UInt64) -> String {
        for (unit, size) in [("G", UInt64(1) << 30), ("M", UInt64(1) << 20), ("K", UInt64(1) << 10)] where bytes >= size && bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)"
    }
}

extension StringProtocol {
    func trimmingWhitespace() -> String {
        String(drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
