/// Text someone else chose (a tenant's field value, a member name, a step key), as a message,
/// a log line or a terminal shows it: control, format and separator characters written as
/// `\u{1b}`, so it cannot move the cursor, clear a screen, reverse the text around it
/// (bidirectional overrides) or forge a second log line. One rule for every place that quotes.
public enum Printable {
    /// True for the characters `text` escapes (and step keys refuse).
    public static func isUnsafe(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .unassigned, .privateUse: return true
        default: return false
        }
    }

    /// At most `limit` characters (then "…"), unsafe ones escaped.
    public static func text(_ text: String, limit: Int = .max) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit { return out + "…" }
            count += 1
            if isUnsafe(scalar) {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
