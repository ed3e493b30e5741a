import Crypto
import SealboxBase

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

    package enum Value {
        case int(Int64?)
        case text(String?)
        case bool(Bool?)
        case real(Double?)
    }

    /// The fields of `record` in `columns` order.
    package static func fields(of r: EffectRecord) -> [Value] {
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
        var out = LengthPrefixed(width: .u32, reservingCapacity: 512 + (record.response?.utf8.count ?? 0))
        out.append(text: domainTag)
        for (name, value) in zip(columns, fields(of: record)) {
            out.append(text: name)
            switch value {
            case .int(nil), .text(nil), .bool(nil), .real(nil):
                out.appendTag(0x00)
            case .int(let v?):
                out.appendTag(0x01)
                out.appendBigEndian(v)
            case .text(let v?):
                out.appendTag(0x02)
                out.append(text: v)
            case .bool(let v?):
                out.appendTag(0x03)
                out.appendTag(v ? 1 : 0)
            case .real(let v?):
                out.appendTag(0x04)
                out.appendBigEndian(v.bitPattern)
            }
        }
        return out.bytes
    }

    /// Lowercase hex SHA-256 of the canonical encoding (the record's own `hash` is ignored).
    public static func compute(_ record: EffectRecord) -> String {
        SHA256.hex(canonicalEncoding(of: record))
    }
}
