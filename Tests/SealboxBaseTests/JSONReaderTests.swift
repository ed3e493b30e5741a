import Testing

@testable import SealboxBase

@Suite("JSON reader")
struct JSONReaderTests {
    @Test func values() throws {
        let v = try JSONReader.parse(Array(#" {"a": [1, -2.5e3, true, false, null, "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"], "b": {}} "#.utf8))
        #expect(v["a"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null, .string("x\"\\/\u{8}\u{c}\n\r\té😀")]))
        #expect(v["b"] == .object([]))
        #expect(try JSONReader.parse(Array("\u{FEFF}18446744073709551615".utf8)) == .number("18446744073709551615"))
    }

    static let errors: [(String, String)] = [
        ("", "line 1, column 1: unexpected end of input, expected a value"),
        ("{\"a\": 01}", "line 1, column 7: invalid number: leading zeros are not allowed"),
        ("[1,]", "line 1, column 4: unexpected ']', expected a value"),
        ("{\"a\" 1}", "line 1, column 6: unexpected '1', expected ':' after member name \"a\""),
        ("\"abc", "line 1, column 1: unterminated string"),
        ("\"\\q\"", "line 1, column 2: invalid escape '\\q' in string"),
        ("\"\\ud800\"", "line 1, column 8: unpaired UTF-16 surrogate in \\u escape"),
        ("[1]\n x", "line 2, column 2: unexpected 'x' after the top-level value"),
        ("tru", "line 1, column 1: invalid literal, expected true"),
        (String(repeating: "[", count: 65) + String(repeating: "]", count: 65), "line 1, column 65: nesting deeper than 64 levels"),
    ]

    @Test(arguments: errors)
    func syntaxErrors(_ text: String, _ message: String) {
        let error = #expect(throws: JSONSyntaxError.self) { try JSONReader.parse(Array(text.utf8)) }
        #expect(error?.description == message)
    }
}

@Suite("JSON positions")
struct JSONPositionTests {
    @Test func recordsEveryValueAndKeyByPath() throws {
        let text = "\u{FEFF}{\"a\": [1,\n  {\"b\" : true}],\n\"c\":null}"
        var positions = JSONPositions()
        let value = try JSONReader.parse(Array(text.utf8), positions: &positions)
        #expect(value == (try JSONReader.parse(Array(text.utf8))))
        // The BOM counts as three columns, like the columns of syntax errors.
        #expect(positions.values[""] == JSONPosition(line: 1, column: 4))
        #expect(positions.keys["a"] == JSONPosition(line: 1, column: 5))
        #expect(positions.values["a"] == JSONPosition(line: 1, column: 10))
        #expect(positions.values["a[0]"] == JSONPosition(line: 1, column: 11))
        #expect(positions.values["a[1]"] == JSONPosition(line: 2, column: 3))
        #expect(positions.keys["a[1].b"] == JSONPosition(line: 2, column: 4))
        #expect(positions.values["a[1].b"] == JSONPosition(line: 2, column: 10))
        #expect(positions.values["c"] == JSONPosition(line: 3, column: 5))
        #expect(positions.values.count == 6)
        // Missing paths fall back to the nearest recorded ancestor.
        #expect(positions.position(of: "a[1].zzz") == JSONPosition(line: 2, column: 3))
        #expect(positions.position(of: "a[7]") == JSONPosition(line: 1, column: 10))
        #expect(positions.position(of: "nope") == JSONPosition(line: 1, column: 4))
    }
}

@Suite("Duplicate member names")
struct JSONDuplicateTests {
    /// JSONSerialization keeps the last of two equal names and JSONDecoder the first: a body
    /// checked with one and used with the other meant two things (a profile path passed the
    /// "name, not a path" check). The reader refuses them, at any depth, naming where.
    static let cases: [(String, String, String)] = [
        (#"{"profile":"/etc/shadow","profile":"default"}"#, "profile", "line 1, column 26: duplicate member name \"profile\" (each name may appear once in an object)"),
        (#"{"limits":{"pids":1,"pids":2}}"#, "limits.pids", "line 1, column 21: duplicate member name \"pids\" (each name may appear once in an object)"),
        (#"{"files":[{"name":"a"},{"name":"b","name":"c"}]}"#, "files[1].name", "line 1, column 36: duplicate member name \"name\" (each name may appear once in an object)"),
        // The same name spelt with an escape is the same name.
        (#"{"a":1,"\u0061":2}"#, "a", "line 1, column 8: duplicate member name \"a\" (each name may appear once in an object)"),
    ]

    @Test(arguments: cases)
    func refused(_ text: String, _ path: String, _ message: String) {
        let error = #expect(throws: JSONSyntaxError.self) { try JSONReader.parse(Array(text.utf8)) }
        #expect(error?.path == path)
        #expect(error?.description == message)
    }

    @Test func sameNameInSiblingObjectsIsFine() throws {
        let value = try JSONReader.parse(Array(#"[{"a":1},{"a":2}]"#.utf8))
        #expect(value == .array([.object([(key: "a", value: .number("1"))]), .object([(key: "a", value: .number("2"))])]))
    }

    @Test func namesInMessagesAreEscaped() {
        let error = #expect(throws: JSONSyntaxError.self) { try JSONReader.parse(Array("{\"\\u001b[2J\":1,\"\\u001b[2J\":2}".utf8)) }
        #expect(error?.description.contains("\u{1b}") == false)
        #expect(error?.description.contains("\\u{1b}[2J") == true)
    }
}
