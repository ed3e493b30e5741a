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

