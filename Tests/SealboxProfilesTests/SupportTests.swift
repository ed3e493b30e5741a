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
