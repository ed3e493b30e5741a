import SealboxBase

/// What a step key may be: 1-200 bytes of UTF-8 with no control or format characters. Keys
/// are chosen by agents and end up in SQLite (where a NUL would cut the key short, so that
/// `a\0b` and `a` became one step), in terminals (`sealbox session facts`) and in logs, so
/// NUL, escape sequences, line breaks and bidirectional overrides are refused outright
/// rather than escaped in some places and not in others.
public enum StepKey {
    public static let maxBytes = 200

    /// Why `key` is not a step key, or nil when it is one.
    public static func problem(_ key: String) -> String? {
        guard !key.isEmpty, key.utf8.count <= maxBytes else { return "must be 1-\(maxBytes) bytes" }
        for scalar in key.unicodeScalars where isRefused(scalar) {
            return "must not contain control or format characters (U+\(String(scalar.value, radix: 16, uppercase: true)))"
        }
        return nil
    }

    static func isRefused(_ scalar: Unicode.Scalar) -> Bool {
        Printable.isUnsafe(scalar)
    }
}
