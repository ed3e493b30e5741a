import SealboxBase
import Testing
@testable import SealboxJail

@Suite("Size parsing")
struct ByteSizeTests {
    @Test("accepted sizes", arguments: [
        ("1048576", UInt64(1_048_576)), ("64k", 65536), ("64K", 65536), ("256M", 268_435_456), ("256MiB", 268_435_456),
        ("1G", 1 << 30), ("1.5G", 1_610_612_736), ("2gb", 2 << 30), (" 8M ", 8 << 20), ("0", 0), ("1T", 1 << 40), ("512b", 512),
    ])
    func accepted(text: String, bytes: UInt64) throws {
        #expect(try ByteSize.parse(text, flag: "--memory") == bytes)
    }

    @Test("rejected sizes name the flag and the value", arguments: ["", "M", "12Q", "-5M", "1..2M", "abc", "5 M M", "1e3", "nan", "99999999999T"])
    func rejected(text: String) {
        #expect {
            try ByteSize.parse(text, flag: "--disk")
        } throws: { error in
            let message = (error as? JailError)?.message ?? ""
            return message.contains("--disk") && message.contains("\"\(text)\"")
        }
    }

    @Test("format", arguments: [(UInt64(268_435_456), "256M"), (1 << 30, "1G"), (65536, "64K"), (1000, "1000")])
    func format(bytes: UInt64, text: String) {
        #expect(ByteSize.format(bytes) == text)
    }
}
