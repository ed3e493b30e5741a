/// Sizes and durations as people type them, on the command line and in config files alike:
/// one reading of "256M" for every surface (the jail's flags and the broker's config used to
/// parse them apart, and disagreed on "T").
public enum ByteSize {
    public enum Problem: Error, Sendable, Equatable {
        /// Not a number with an optional unit.
        case invalid
        /// A size at or above the caller's limit.
        case tooLarge
    }

    /// Binary units, case-insensitive, with or without `B`/`iB`.
    static let multipliers: [String: UInt64] = [
        "": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
        "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
    ]

    /// "256M", "64k", "1.5G", "1048576", "512MiB", " 8 M ": a non-negative decimal number
    /// (white space anywhere is ignored) and an optional binary unit, rounded to whole bytes;
    /// sizes at or above `limit` bytes are `.tooLarge`.
    public static func read(_ text: String, below limit: Double = 9.0e18) -> Result<UInt64, Problem> {
        guard let parsed = UnitText.split(text), let multiplier = multipliers[parsed.unit] else { return .failure(.invalid) }
        let bytes = parsed.number * Double(multiplier)
        guard bytes < limit else { return .failure(.tooLarge) }
        return .success(UInt64(bytes.rounded()))
    }

    /// As `read`, nil for anything that is not a size below `limit` bytes, for callers that
    /// word their own error (the broker's config: sizes below 10^15).
    public static func parse(_ text: String, below limit: Double) -> Int? {
        guard case .success(let bytes) = read(text, below: limit) else { return nil }
        return Int(exactly: bytes)
    }

    /// "256M"-style rendering for messages: the largest binary unit that divides exactly.
    public static func format(_ bytes: UInt64) -> String {
        for (unit, size) in [("G", UInt64(1) << 30), ("M", UInt64(1) << 20), ("K", UInt64(1) << 10)] where bytes >= size && bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)"
    }

    public static func format(_ bytes: Int) -> String {
        bytes < 0 ? "\(bytes)" : format(UInt64(bytes))
    }
}

/// Durations as config files spell them: "500ms", "10s", "2m", "1.5s", "1h", a bare number
/// of seconds.
public enum DurationText {
    /// Whole milliseconds, or nil when `text` is not a duration or is 10^12 ms or more.
    public static func milliseconds(_ text: String) -> Int? {
        guard let parsed = UnitText.split(text) else { return nil }
        let n = parsed.number
        let scale: Double
        switch parsed.unit {
        case "ms": scale = 1
        case "", "s", "sec", "secs", "second", "seconds": scale = 1000
        case "m", "min", "mins", "minute", "minutes": scale = 60_000
        case "h", "hour", "hours": scale = 3_600_000
        default: return nil
        }
        guard n * scale < 1e12 else { return nil }
        return Int((n * scale).rounded())
    }

    /// "2m", "10s", "500ms": the largest unit that divides exactly.
    public static func format(milliseconds ms: Int) -> String {
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}

/// "1.5 G" → (1.5, "g"): a non-negative decimal number and the letters after it, white space
/// anywhere ignored, the unit lowercased. nil when the number part is not plain digits and dots.
enum UnitText {
    static func split(_ text: String) -> (number: Double, unit: String)? {
        let compact = text.filter { !$0.isWhitespace }.lowercased()
        var digits = Substring(compact)
        var unit = ""
        while let last = digits.last, last.isLetter {
            unit = String(last) + unit
            digits = digits.dropLast()
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let number = Double(digits), number.isFinite else { return nil }
        return (number, unit)
    }
}
