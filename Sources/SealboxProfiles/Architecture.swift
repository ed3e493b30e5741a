import CSealboxSeccomp
import Glibc

/// OCI `SCMP_ARCH_*` names ↔ libseccomp architecture tokens, and facts about the host that
/// profiles may depend on (`archMap`, `includes` / `excludes`).
enum Architecture {
    /// Every architecture name libseccomp 2.5 knows, in OCI spelling. libseccomp's own name is the
    /// suffix in lower case (SCMP_ARCH_X86_64 → "x86_64").
    static let ociNames = [
        "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
        "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
        "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
        "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
    ]

    /// libseccomp's token (an AUDIT_ARCH_* value) for an OCI name, or nil if unknown.
    static func token(for ociName: String) -> UInt32? {
        let prefix = "SCMP_ARCH_"
        guard ociName.hasPrefix(prefix), ociName.count > prefix.count else { return nil }
        let token = sbx_seccomp_arch_token(String(ociName.dropFirst(prefix.count)).lowercased())
        return token == 0 ? nil : token
    }

    static let nativeToken: UInt32 = sbx_seccomp_arch_native()

    /// The native architecture in OCI spelling ("SCMP_ARCH_X86_64"), if libseccomp knows it.
    static let nativeName: String? = ociNames.first { token(for: $0) == nativeToken }

    /// The names Docker's `includes.arches` / `excludes.arches` use for an architecture (Go's
    /// GOARCH, with moby's "x86" for 386), plus the libseccomp spelling.
    static func dockerAliases(of ociName: String) -> Set<String> {
        let base = String(ociName.dropFirst("SCMP_ARCH_".count)).lowercased()
        switch base {
        case "x86_64": return ["amd64", "x86_64"]
        case "x86": return ["x86", "386", "i386"]
        case "aarch64": return ["arm64", "aarch64"]
        default: return [base]
        }
    }
}

/// The running kernel's version, for `includes.minKernel` / `excludes.minKernel`.
struct KernelVersion: Comparable, Sendable, CustomStringConvertible {
    var major: Int
    var minor: Int

    /// Parses "4.8", "5.15.0-91-generic", ... (only major.minor count).
    init?(_ text: String) {
        let parts = text.split(separator: ".", maxSplits: 2)
        guard parts.count >= 2, let major = Int(parts[0]) else { return nil }
        let minorDigits = parts[1].prefix { $0.isNumber }
        guard let minor = Int(minorDigits), !minorDigits.isEmpty else { return nil }
        self.major = major
        self.minor = minor
    }

    var description: String { "\(major).\(minor)" }

    static func < (a: KernelVersion, b: KernelVersion) -> Bool {
        (a.major, a.minor) < (b.major, b.minor)
    }

    /// `uname -r` of the host, e.g. "6.18.44-fc-v595".
    static let runningRelease: String = {
        var u = utsname()
        guard uname(&u) == 0 else { return "" }
        return withUnsafeBytes(of: &u.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }()

    static let running: KernelVersion? = KernelVersion(runningRelease)
}
