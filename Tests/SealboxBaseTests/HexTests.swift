import Crypto
import SealboxBase
import Testing

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

@Suite("Hex and length prefixes")
struct HexTests {
    @Test func lowercaseTwoDigitsAByte() {
        #expect(Hex.encode([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test func lengthPrefixesAreBigEndianInTheirWidth() {
        var narrow = LengthPrefixed(width: .u32)
        narrow.append(text: "ab")
        narrow.appendTag(7)
        #expect(narrow.bytes == [0, 0, 0, 2, 0x61, 0x62, 7])
        var wide = LengthPrefixed(width: .u64)
        wide.append([0xff])
        #expect(wide.bytes == [0, 0, 0, 0, 0, 0, 0, 1, 0xff])
        // "ab"+"c" and "a"+"bc" differ.
        var left = LengthPrefixed(width: .u32), right = LengthPrefixed(width: .u32)
        left.append(text: "ab"); left.append(text: "c")
        right.append(text: "a"); right.append(text: "bc")
        #expect(left.bytes != right.bytes)
    }
}
