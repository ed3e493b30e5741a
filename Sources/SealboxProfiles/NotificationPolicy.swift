import CSealboxSeccomp
import Glibc

/// How much of a profile's denials the supervisor sees (seccomp user notification).
public enum ViolationTracking: String, Sendable, CaseIterable {
    /// The filter acts alone; nothing is recorded.
    case off
    /// The default action when it denies (SCMP_ACT_ERRNO, or a kill), and every kill rule:
    /// what `violations` of an ordinary run needs. Explicit ERRNO rules stay silent: they are
    /// deliberate answers such as `clone3 → ENOSYS`, which every glibc program meets and
    /// falls back from.
    case denials
    /// Also every explicit SCMP_ACT_ERRNO rule (`sealbox profile test`: report everything).
    case everything
}

/// What the supervisor does with one notified syscall.
public enum NotificationAnswer: Sendable, Hashable, CustomStringConvertible {
    /// The syscall fails with this errno and never runs (the profile's SCMP_ACT_ERRNO).
    case fail(errno: Int32)
    /// The calling process is killed while the syscall is held (the profile's kill action).
    case kill
    /// The syscall runs as if unfiltered. Recording only (`profile learn`), never enforcing:
    /// the arguments may change between the check and the call (seccomp_unotify(2)).
    case proceed

    public var description: String {
        switch self {
        case .fail(let e): return "errno \(e)"
        case .kill: return "kill"
        case .proceed: return "allow"
        }
    }
}

/// A syscall as a notification names it: its architecture (AUDIT_ARCH_*, the same value as a
/// libseccomp token) and its number there.
public struct SyscallKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var arch: UInt32
    public var number: Int32

    public init(arch: UInt32, number: Int32) {
        self.arch = arch
        self.number = number
    }

    public static func native(_ number: Int32) -> SyscallKey { SyscallKey(arch: Architecture.nativeToken, number: number) }

    /// x32 calls reach seccomp with the x86_64 audit arch and this bit in the number
    /// (`__X32_SYSCALL_BIT`); libseccomp's "x32" token is its own, never a notification's.
    public static let x32SyscallBit: Int32 = 0x4000_0000
    static let x86_64Token = sbx_seccomp_arch_token("x86_64")
    static let x32Token = sbx_seccomp_arch_token("x32")

    /// The key a notification carries for syscall `number` of the filter architecture `token`
    /// (as libseccomp resolves it): the same, except that x32 calls come as x86_64 ones.
    public static func inFilter(arch token: UInt32, number: Int32) -> SyscallKey {
        SyscallKey(arch: token == x32Token ? x86_64Token : token, number: number)
    }

    /// A call through the x32 ABI (x86_64 arch, x32 bit set).
    public var isX32: Bool { arch == Self.x86_64Token && number & Self.x32SyscallBit != 0 }

    public var isNative: Bool { arch == Architecture.nativeToken && !isX32 }

    /// The libseccomp token of the ABI the call came through ("x32" has its own).
    public var abiToken: UInt32 { isX32 ? Self.x32Token : arch }

    /// nil for the native ABI; otherwise libseccomp's name of the ABI the call came through:
    /// "x86" (i386, `int $0x80` or a 32-bit binary), "x32".
    public var abi: String? {
        guard !isNative else { return nil }
        return Architecture.libseccompName(of: abiToken) ?? String(abiToken, radix: 16)
    }

    /// "ptrace"; a call through another ABI carries it: "exit (x86)", "getpid (x32)".
    public var name: String {
        let base = SyscallNames.name(arch: abiToken, number: number) ?? "syscall \(number)"
        guard let abi else { return base }
        return "\(base) (\(abi))"
    }

    public var description: String { name }

    public static func < (a: SyscallKey, b: SyscallKey) -> Bool { (a.arch, a.number) < (b.arch, b.number) }
}

/// A test of a syscall's arguments, evaluated by the supervisor exactly as the kernel's filter
/// evaluates a libseccomp comparison (64-bit values; MASKED_EQ: `(arg & value) == valueTwo`).
public struct ArgumentCheck: Sendable, Hashable {
    public var index: Int
    public var op: String
    public var value: UInt64
    public var valueTwo: UInt64

    public func holds(_ args: [UInt64]) -> Bool {
        guard index >= 0, index < args.count else { return false }
        let a = args[index]
        switch op {
        case "SCMP_CMP_NE": return a != value
        case "SCMP_CMP_LT": return a < value
        case "SCMP_CMP_LE": return a <= value
        case "SCMP_CMP_EQ": return a == value
        case "SCMP_CMP_GE": return a >= value
        case "SCMP_CMP_GT": return a > value
        case "SCMP_CMP_MASKED_EQ": return a & value == valueTwo
        default: return false
        }
    }

    public init(index: Int, op: String, value: UInt64, valueTwo: UInt64) {
        self.index = index
        self.op = op
        self.value = value
        self.valueTwo = valueTwo
    }

    init(_ cmp: sbx_seccomp_cmp) {
        index = Int(cmp.arg)
        value = cmp.datum_a
        valueTwo = cmp.datum_b
        op = SeccompOperator.allCases.first { $0.raw == cmp.op }?.rawValue ?? "?"
    }
}

/// Answers that depend on the arguments: the first rule whose checks all hold decides,
/// otherwise `otherwise`. Used while learning, where the base profile's argument conditions
/// (no namespace flags for clone, no netlink sockets, no TIOCSTI) stay enforced.
public struct ConditionalAnswer: Sendable {
    public struct Rule: Sendable {
        public var checks: [ArgumentCheck]
        public var answer: NotificationAnswer
    }

    public var rules: [Rule]
    public var otherwise: NotificationAnswer

    public func answer(_ args: [UInt64]) -> NotificationAnswer {
        rules.first { rule in rule.checks.allSatisfy { $0.holds(args) } }?.answer ?? otherwise
    }
}

/// What the supervisor answers each notified syscall with: a call through an ABI the filter
/// does not list is killed (it came from the bad-arch action); otherwise per syscall when the
/// compiler turned an explicit rule into a notification, else the profile's default.
public struct NotificationPolicy: Sendable {
    public var fallback: NotificationAnswer
    public var bySyscall: [SyscallKey: NotificationAnswer]
    public var byArguments: [SyscallKey: ConditionalAnswer]
    /// The ABIs the filter has an allowlist for (libseccomp tokens, x32 as its own token; the
    /// native one always). A notification through any other came from the filter's bad-arch
    /// action, which stands for SCMP_ACT_KILL_PROCESS: it is answered `.kill`, whatever
    /// `fallback` says (a recording filter's `.proceed` included).
    public var architectures: Set<UInt32>

    public init(fallback: NotificationAnswer, bySyscall: [SyscallKey: NotificationAnswer] = [:],
                byArguments: [SyscallKey: ConditionalAnswer] = [:], architectures: Set<UInt32> = []) {
        self.fallback = fallback
        self.bySyscall = bySyscall
        self.byArguments = byArguments
        self.architectures = architectures.union([Architecture.nativeToken])
    }

    /// Whether `key` came through an ABI the filter does not list (its bad-arch action).
    public func isForeign(_ key: SyscallKey) -> Bool {
        !architectures.contains(key.abiToken)
    }

    public func answer(for key: SyscallKey, args: [UInt64]) -> NotificationAnswer {
        if isForeign(key) { return .kill }
        if let conditional = byArguments[key] { return conditional.answer(args) }
        return bySyscall[key] ?? fallback
    }
}

extension SyscallNames {
    /// The name of syscall `number` of architecture `arch` (an AUDIT_ARCH_* value).
    public static func name(arch: UInt32, number: Int32) -> String? {
        var buf = [CChar](repeating: 0, count: 64)
        guard sbx_seccomp_syscall_name_arch(arch, number, &buf, buf.count) == 0 else { return nil }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

extension Architecture {
    /// libseccomp's spelling of an architecture token ("x86", "x32"), for messages.
    static func libseccompName(of token: UInt32) -> String? {
        ociNames.first { self.token(for: $0) == token }.map { String($0.dropFirst("SCMP_ARCH_".count)).lowercased() }
    }
}
