import CSealboxSeccomp

/// Syscall names ↔ numbers on the native architecture, via libseccomp's tables (the same ones the
/// compiler uses, so a violation reported by number maps back to the name in the profile).
public enum SyscallNames {
    /// The name of native syscall `number`, or nil if libseccomp does not know it.
    public static func name(of number: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: 64)
        guard sbx_seccomp_syscall_name(number, &buf, buf.count) == 0 else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The native number of syscall `name`, or nil if it is unknown or does not exist on this
    /// architecture (e.g. "chown32" on x86_64).
    public static func number(of name: String) -> Int32? {
        let nr = sbx_seccomp_syscall_resolve(name)
        return nr >= 0 ? nr : nil
    }

    /// The native architecture in OCI spelling, e.g. "SCMP_ARCH_X86_64".
    public static var nativeArchitecture: String? { Architecture.nativeName }
}
