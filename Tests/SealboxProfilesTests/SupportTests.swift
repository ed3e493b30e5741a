import Testing

@testable import SealboxProfiles

@Suite("Syscall names")
struct SyscallNameTests {
    static let known: [(String, Int32)] = [("read", 0), ("write", 1), ("ioctl", 16), ("getpid", 39), ("ptrace", 101), ("clone3", 435)]

    @Test(arguments: known)
    func roundTrip(_ name: String, _ number: Int32) {
        #expect(SyscallNames.number(of: name) == number)
        #expect(SyscallNames.name(of: number) == name)
    }

    @Test func unknownAndForeignNames() {
        #expect(SyscallNames.number(of: "ptracee") == nil)
        #expect(SyscallNames.number(of: "chown32") == nil)  // exists, but not on x86_64
        #expect(SyscallNames.name(of: -1) == nil)
        #expect(SyscallNames.name(of: 100_000) == nil)
        #expect(SyscallNames.nativeArchitecture == "SCMP_ARCH_X86_64")
    }
}

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

@Suite("SHA-256")
struct SHA256Tests {
    static let vectors: [(String, String)] = [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        (String(repeating: "a", count: 1000), "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3"),
    ]

    @Test(arguments: vectors)
    func knownAnswers(_ input: String, _ hex: String) {
        #expect(SHA256.hex(Array(input.utf8)) == hex)
    }
}
