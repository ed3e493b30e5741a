/// The ids sealbox makes: random values in lowercase hex, from the system CSPRNG
/// (`SystemRandomNumberGenerator`, getrandom(2) on Linux). Each kind keeps its public shape:
///
/// | id | shape | made by |
/// |---|---|---|
/// | run | 16 hex digits | `RandomID.run()` |
/// | broker run | `r` + 1-16 hex digits | `RandomID.hex64(prefix: "r", padded: false)` |
/// | session | `s` + 1-16 hex digits | `RandomID.hex64(prefix: "s", padded: false)` |
/// | broker lease | `b` + 16 hex digits | `RandomID.hex64(prefix: "b")` |
/// | token | 32 hex digits (128 bits) | `RandomID.hex(bytes: 16)` |
/// | API key id | hex of its random bytes | `RandomID.bytes(n)` |
public enum RandomID {
    /// `count` bytes from the system CSPRNG.
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// `count` random bytes in hex (2 × `count` digits).
    public static func hex(bytes count: Int) -> String {
        Hex.encode(bytes(count))
    }

    /// `prefix` and a random 64-bit value in hex: 16 digits, or without leading zeros when
    /// not `padded` (the shape session and broker run ids have always had).
    public static func hex64(prefix: String = "", padded: Bool = true) -> String {
        let value = UInt64.random(in: 0...UInt64.max)
        let digits = String(value, radix: 16)
        guard padded, digits.count < 16 else { return prefix + digits }
        return prefix + String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// A run id: 16 hex digits (the executor's, the server's and the pool's runs alike).
    public static func run() -> String {
        hex64()
    }
}
