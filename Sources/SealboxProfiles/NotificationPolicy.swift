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

    public var isNative: Bool { arch == Architecture.nativeToken }

    /// "ptrace"; a call through another ABI carries its architecture: "getpid (x86)".
    public var name: String {
        let base = SyscallNames.name(arch: arch, number: number) ?? "syscall \(number)"
        guard !isNative else { return base }
        return "\(base) (\(Architecture.libseccompName(of: arch) ?? String(arch, radix: 16)))"
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

/// What the supervisor answers each notified syscall with: per syscall when the compiler
/// turned an explicit rule into a notification, else the profile's default.
public struct NotificationPolicy: Sendable {
    public var fallback: NotificationAnswer
    public var bySyscall: [SyscallKey: NotificationAnswer]
    public var byArguments: [SyscallKey: ConditionalAnswer]

    public init(fallback: NotificationAnswer, bySyscall: [SyscallKey: NotificationAnswer] = [:],
                byArguments: [SyscallKey: ConditionalAnswer] = [:]) {
        self.fallback = fallback
        self.bySyscall = bySyscall
        self.byArguments = byArguments
    }

    public func answer(for key: SyscallKey, args: [UInt64]) -> NotificationAnswer {
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
