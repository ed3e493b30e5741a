/// Durations ("500ms", "10s", "2m", "1.5s", a bare number = seconds) and sizes ("1M", "64K",
/// "512KiB", a bare number = bytes; binary units) as the config file spells them.
enum ConfigUnits {
    static func milliseconds(_ text: String) -> Int? {
        let t = text.filter { !$0.isWhitespace }.lowercased()
        var digits = Substring(t)
        var unit = ""
        while let last = digits.last, last.isLetter { unit = String(last) + unit; digits = digits.dropLast() }
        let scale: Double
        switch unit {
        case "ms": scale = 1
        case "", "s", "sec", "secs", "second", "seconds": scale = 1000
        case "m", "min", "mins", "minute", "minutes": scale = 60_000
        case "h", "hour", "hours": scale = 3_600_000
        default: return nil
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let n = Double(digits), n.isFinite, n >= 0, n * scale < 1e12 else { return nil }
        return Int((n * scale).rounded())
    }

    static func bytes(_ text: String) -> Int? {
        let t = text.filter { !$0.isWhitespace }.lowercased()
        var digits = Substring(t)
        var unit = ""
        while let last = digits.last, last.isLetter { unit = String(last) + unit; digits = digits.dropLast() }
        let multipliers: [String: Double] = [
            "": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024,
            "m": 1_048_576, "mb": 1_048_576, "mib": 1_048_576,
            "g": 1_073_741_824, "gb": 1_073_741_824, "gib": 1_073_741_824,
        ]
        guard let m = multipliers[unit], !digits.isEmpty,
              digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }),
              let n = Double(digits), n.isFinite, n >= 0, n * m < 1e15 else { return nil }
        return Int((n * m).rounded())
    }

    static func formatDuration(_ ms: Int) -> String {
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }

    static func formatBytes(_ bytes: Int) -> String {
        for (unit, size) in [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)] where bytes >= size && bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)"
    }
}
