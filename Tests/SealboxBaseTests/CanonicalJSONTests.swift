import Foundation
import SealboxBase
import Testing

/// Canonical v1 is pinned to the bytes the broker wrote before JSON values kept their
/// literal: its old value type held numbers as doubles and went through JSONEncoder
/// (`.sortedKeys`, `.withoutEscapingSlashes`). Args digests, `auto:` keys and stored
/// responses of existing logs were made from those bytes.
@Suite("Canonical JSON")
struct CanonicalJSONTests {
    /// The broker's old JSON value, as it encoded itself.
    enum OldJSON: Encodable {
        case null, bool(Bool), number(Double), string(String), array([OldJSON]), object([String: OldJSON])

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .null: try c.encodeNil()
            case .bool(let b): try c.encode(b)
            case .number(let n):
                if n.rounded() == n && abs(n) < 9.0e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
            case .string(let s): try c.encode(s)
            case .array(let a): try c.encode(a)
            case .object(let o): try c.encode(o)
            }
        }

        init(_ value: JSONValue) {
            switch value {
            case .null: self = .null
            case .bool(let b): self = .bool(b)
            case .number(let literal): self = .number(Double(literal)!)
            case .string(let s): self = .string(s)
            case .array(let a): self = .array(a.map(OldJSON.init))
            case .object(let members): self = .object(Dictionary(uniqueKeysWithValues: members.map { ($0.key, OldJSON($0.value)) }))
            }
        }
    }

    static func oldBytes(_ value: JSONValue) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return [UInt8](try encoder.encode(OldJSON(value)))
    }

    /// Everything below 2^53 in magnitude (numbers at or past it were refused in arguments).
    static let documents: [String] = [
        #"{"b":1,"a":2,"B":3,"a10":4,"a9":5,"A":6,"_":7,"é":8,"e":9,"Z":10,"":11,"ß":12,"ｆ":13,"😀":14,"e\u0301x":15,"\u007f":16}"#,
        #"{"s":"q\"\\/\b\f\n\r\t\u0000\u001f\u007fé😀\u2028<>&'"}"#,
        #"[0,-0,1,-1,1.0,1e3,2.5,-2.25,0.1,1e-7,123456.789,9.0e15,8999999999999999,9.005e15,9007199254740991,-9007199254740991,5e-324,1E2,0.000001,100.5]"#,
        #"{"args":{"n":1,"note":"x"},"nested":[{"z":null,"y":true,"x":false},[],{}]}"#,
    ]

    @Test(arguments: documents)
    func v1MatchesTheBytesTheBrokerWroteBefore(_ document: String) throws {
        let value = try JSONReader.parse(Array(document.utf8))
        #expect(CanonicalJSON.v1.string(value) == String(decoding: try Self.oldBytes(value), as: UTF8.self))
    }

    @Test func knownAnswers() throws {
        let value = try JSONReader.parse(Array(#"{"note":"a/b é","n":1.0,"list":[3,"x"]}"#.utf8))
        #expect(CanonicalJSON.v1.string(value) == #"{"list":[3,"x"],"n":1,"note":"a/b é"}"#)
        #expect(CanonicalJSON.asciiV1.string(value) == #"{"list":[3,"x"],"n":1.0,"note":"a/b \u00e9"}"#)
    }

    /// Integers a double cannot hold (refused before): written digit for digit.
    @Test func integersPast2To53KeepEveryDigit() throws {
        for literal in ["9007199254740993", "18446744073709551615", "-18446744073709551616", "123456789012345678901234567890"] {
            let value = try JSONReader.parse(Array("[\(literal)]".utf8))
            #expect(CanonicalJSON.v1.string(value) == "[\(literal)]")
        }
        #expect(JSONNumber.canonicalText("1e400") == "1e400")
    }

    @Test func numbersCompareByValue() {
        #expect(JSONValue.number("1").sameValue(as: .number("1.0")))
        #expect(JSONValue.number("1e2").sameValue(as: .number(100)))
        #expect(!JSONValue.number("1").sameValue(as: .number("2")))
        #expect(JSONValue.number("2.0").isWholeNumber && !JSONValue.number("2.5").isWholeNumber)
        #expect(JSONValue.number("18446744073709551615").isWholeNumber)
    }

    @Test func prettyLayoutKeepsDocumentOrderAndPacksNameLists() {
        let names: [JSONValue] = (0..<30).map { .string("syscall\($0)") }
        let value: JSONValue = .object([("z", .string("first")), ("names", .array(names)), ("rules", .array([.object([("a", .number(1))])]))])
        let text = JSONWriter.pretty.string(value)
        #expect(text.hasPrefix("{\n  \"z\": \"first\",\n  \"names\": [\n    \"syscall0\", \"syscall1\""))
        #expect(text.split(separator: "\n").allSatisfy { $0.count <= 4 + 90 })
        #expect(text.hasSuffix("  \"rules\": [\n    {\n      \"a\": 1\n    }\n  ]\n}"))
        #expect((try? JSONReader.parse(Array(text.utf8))) == value)
    }
}
