import Testing

@testable import SealboxBase

@Suite("Strict JSON decoder")
struct StrictJSONDecoderTests {
    struct Limits: Decodable {
        var timeout_ms: Int?
        var memory_bytes: UInt64?
        var cpus: Double?
        enum CodingKeys: String, CodingKey, CaseIterable { case timeout_ms, memory_bytes, cpus }
    }

    struct File: Decodable {
        var name: String
        var executable: Bool?
    }

    struct Body: Decodable {
        var language: String?
        var args: [String]?
        var env: [String: String]?
        var limits: Limits?
        var files: [File]?
        enum CodingKeys: String, CodingKey, CaseIterable { case language, args, env, limits, files }
    }

    func decode(_ text: String) throws(JSONDecodingError) -> Body {
        try StrictJSONDecoder.decode(Body.self, from: Array(text.utf8))
    }

    func failure(_ text: String) -> JSONDecodingError? {
        #expect(throws: JSONDecodingError.self) { try decode(text) }
    }

    @Test func decodesWhatItReads() throws {
        let body = try decode(#"{"language":"python","args":["a"],"env":{"K":"V"},"limits":{"timeout_ms":1e3,"memory_bytes":18446744073709551615,"cpus":0.5},"files":[{"name":"x"}]}"#)
        #expect(body.language == "python")
        #expect(body.args == ["a"])
        #expect(body.env == ["K": "V"])
        #expect(body.limits?.timeout_ms == 1000)
        #expect(body.limits?.memory_bytes == UInt64.max)
        #expect(body.limits?.cpus == 0.5)
        #expect(body.files?.first?.name == "x")
        #expect(body.files?.first?.executable == nil)
    }

    static let refusals: [(String, String?, String)] = [
        (#"{"language":"python","language":"sh"}"#, "language", "not valid JSON: line 1, column 22: duplicate member name \"language\" (each name may appear once in an object)"),
        (#"{"langauge":"python"}"#, "langauge", "unknown field \"langauge\" (known: args, env, files, language, limits)"),
        (#"{"limits":{"timeout":5}}"#, "limits.timeout", "unknown field \"limits.timeout\" (known: cpus, memory_bytes, timeout_ms)"),
        (#"{"limits":{"memory_bytes":-5}}"#, "limits.memory_bytes", "limits.memory_bytes must not be negative"),
        (#"{"limits":{"memory_bytes":"5"}}"#, "limits.memory_bytes", "limits.memory_bytes must be a whole number (0 or more), not a string"),
        (#"{"limits":{"timeout_ms":2.5}}"#, "limits.timeout_ms", "limits.timeout_ms must be a whole number"),
        (#"{"limits":{"timeout_ms":1e30}}"#, "limits.timeout_ms", "limits.timeout_ms is too large (at most 9223372036854775807)"),
        (#"{"limits":{"timeout_ms":99999999999999999999}}"#, "limits.timeout_ms", "limits.timeout_ms is too large (at most 9223372036854775807)"),
        (#"{"args":["a",1]}"#, "args[1]", "args[1] must be a string, not a number"),
        (#"{"args":"a"}"#, "args", "args must be an array, not a string"),
        (#"{"env":{"K":null}}"#, "env.K", "env.K must not be null"),
        (#"{"files":[{"executable":true}]}"#, "files[0].name", "files[0].name is required"),
        (#"{"files":[{"name":"a","mode":7}]}"#, "files[0].mode", "unknown field \"files[0].mode\""),
        (#"[1]"#, nil, "the body must be an object, not an array"),
        ("{", nil, "not valid JSON: line 1, column 2: unexpected end of input, expected a member name in double quotes"),
    ]

    @Test(arguments: refusals)
    func refusesNamingTheField(_ text: String, _ field: String?, _ message: String) {
        let error = failure(text)
        #expect(error?.field == field)
        #expect(error?.message == message)
    }

    @Test func messagesNeverNameSwiftTypes() {
        enum Kind: String, Decodable { case a }
        struct Holder: Decodable { var kind: Kind }
        let error = #expect(throws: JSONDecodingError.self) { try StrictJSONDecoder.decode(Holder.self, from: Array(#"{"kind":"b"}"#.utf8)) }
        #expect(error?.message == "kind is not a valid value")
        #expect(error?.field == "kind")
    }
}
