import Crypto

/// The canonical, unambiguous byte encoding of a record that its `hash` is the SHA-256 of.
///
/// Version 1 ("sealbox-effect-v1"), all integers big-endian:
///
///     encoding = u32(len(tag)) tag                                   tag = "sealbox-effect-v1"
///                field(seq) field(kind) field(created_at_ms) field(prev_hash)
///                field(intent_seq) field(run_id) field(session_id) field(tool) field(effect_class)
///                field(idempotency_key) field(target) field(args_digest) field(approval) field(token_id)
///                field(fresh) field(status) field(response) field(response_digest)
///                field(resource_version) field(irreversible) field(happened) field(duration_ms)
///                field(actor) field(note)
///     field(c)  = u32(len(name)) name type payload                    name = the column name, UTF-8
///     type 0x00 NULL     payload: nothing
///     type 0x01 INTEGER  payload: 8 bytes, two's complement          (seq, created_at_ms, intent_seq)
///     type 0x02 TEXT     payload: u32(byte count) UTF-8 bytes
///     type 0x03 BOOL     payload: 1 byte, 0x00 or 0x01               (fresh, irreversible, happened)
///     type 0x04 REAL     payload: 8 bytes, IEEE-754 binary64 bits    (duration_ms)
///     hash      = lowercase hex SHA-256(encoding)
///
/// Every column of the row except `hash` itself is covered, NULLs included, always in this order;
/// every variable-length value is length-prefixed and every value is typed, so no two different
/// rows encode to the same bytes (`""` vs NULL, `"ab"+"c"` vs `"a"+"bc"`, 1 vs "1" vs true all differ).
/// A verifier in another language needs nothing but this comment and a SHA-256.
public enum EffectHash {
    public static let domainTag = "sealbox-effect-v1"
    public static let genesisPrevHash = String(repeating: "0", count: 64)

    /// Column order of the encoding (also the column order of the `effects` table).
    public static let columns: [String] = [
        "seq", "kind", "created_at_ms", "prev_hash",
        "intent_seq", "run_id", "session_id", "tool", "effect_class", "idempotency_key", "target",
        "args_digest", "approval", "token_id", "fresh", "status", "response", "response_digest",
        "resource_version", "irreversible", "happened", "duration_ms", "actor", "note",
    ]

    enum Value {
        case int(Int64?)
        case text(String?)
        case bool(Bool?)
        case real(Double?)
    }

    /// The fields of `record` in `columns` order.
    static func fields(of r: EffectRecord) -> [Value] {
        [
            .int(r.seq), .text(r.kind), .int(r.createdAtMs), .text(r.prevHash),
            .int(r.intentSeq), .text(r.runID), .text(r.sessionID), .text(r.tool), .text(r.effectClass),
            .text(r.idempotencyKey), .text(r.target), .text(r.argsDigest), .text(r.approval), .text(r.tokenID),
            .bool(r.fresh), .text(r.status), .text(r.response), .text(r.responseDigest),
            .text(r.resourceVersion), .bool(r.irreversible), .bool(r.happened), .real(r.durationMs),
            .text(r.actor), .text(r.note),
        ]
    }

    public static func canonicalEncoding(of record: EffectRecord) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512 + (record.response?.utf8.count ?? 0))
        appendLengthPrefixed(Array(domainTag.utf8), to: &out)
        for (name, value) in zip(columns, fields(of: record)) {
            appendLengthPrefixed(Array(name.utf8), to: &out)
            switch value {
            case .int(nil), .text(nil), .bool(nil), .real(nil):
                out.append(0x00)
            case .int(let v?):
                out.append(0x01)
                appendBigEndian(UInt64(bitPattern: v), to: &out)
            case .text(let v?):
                out.append(0x02)
                appendLengthPrefixed(Array(v.utf8), to: &out)
            case .bool(let v?):
                out.append(0x03)
                out.append(v ? 1 : 0)
            case .real(let v?):
                out.append(0x04)
                appendBigEndian(v.bitPattern, to: &out)
            }
        }
        return out
    }

    /// Lowercase hex SHA-256 of the canonical encoding (the record's own `hash` is ignored).
    public static func compute(_ record: EffectRecord) -> String {
        hex(SHA256.hash(data: canonicalEncoding(of: record)))
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var chars: [UInt8] = []
        chars.reserveCapacity(64)
        for byte in digest {
            chars.append(digits[Int(byte >> 4)])
            chars.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: chars, as: UTF8.self)
    }

    private static func appendLengthPrefixed(_ bytes: [UInt8], to out: inout [UInt8]) {
        precondition(bytes.count <= Int(UInt32.max), "field longer than 4 GiB")
        let n = UInt32(bytes.count)
        out.append(UInt8(truncatingIfNeeded: n >> 24))
        out.append(UInt8(truncatingIfNeeded: n >> 16))
        out.append(UInt8(truncatingIfNeeded: n >> 8))
        out.append(UInt8(truncatingIfNeeded: n))
        out.append(contentsOf: bytes)
    }

    private static func appendBigEndian(_ v: UInt64, to out: inout [UInt8]) {
        for shift in stride(from: 56, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: v >> UInt64(shift)))
        }
    }
}
