import CSealboxSeccomp
import Glibc

/// One argument comparison of a rule, as the profile wrote it plus a readable form.
public struct ArgumentCondition: Sendable, Hashable, Codable {
    public var index: Int
    public var op: String
    public var value: UInt64
    public var valueTwo: UInt64
    /// e.g. `arg0 == 1 (AF_UNIX)`, `(arg0 & 0x7e020000) == 0 (none of CLONE_NEWNS|...)`.
    public var text: String
}

/// A conditional rule for one syscall: `action` when every condition holds.
public struct ConditionalRule: Sendable, Hashable, Codable {
    /// Index in the profile's `syscalls`.
    public var rule: Int
    public var action: String
    public var conditions: [ArgumentCondition]

    /// `allowed if arg0 == 1 (AF_UNIX)` / `SCMP_ACT_ERRNO(1) if ...`
    var text: String {
        let verb = action == "SCMP_ACT_ALLOW" ? "allowed" : ProfileAnalysis.short(action)
        return "\(verb) if \(conditions.map(\.text).joined(separator: " && "))"
    }

    /// Rules are compared by what they do, not by where they are in the file.
    var meaning: String { "\(action) \(conditions.map { "\($0.index) \($0.op) \($0.value) \($0.valueTwo)" }.sorted())" }
}

/// What a profile does with one syscall on the native architecture, after compilation: rules
/// that do not apply here (`includes` caps, arches, minKernel) and rules with the default action
/// (libseccomp drops them) are already gone, exactly as `SeccompCompiler` does.
public struct SyscallBehavior: Sendable, Hashable, Codable {
    public enum Verdict: String, Sendable, Codable {
        /// Every call runs (SCMP_ACT_ALLOW or SCMP_ACT_LOG).
        case allowed
        /// Depends on the arguments: `rules` in order, `action` when none matches.
        case conditional
        /// Every call is stopped with `action`.
        case denied
    }

    public var syscall: String
    public var category: SyscallCategory
    public var dangerous: Bool
    public var verdict: Verdict
    /// The action for allowed / denied; for conditional, the action when no rule matches.
    public var action: String
    /// True when `action` is the default action (no unconditional rule names the syscall).
    public var byDefault: Bool
    /// Conditional rules, in profile order (empty unless conditional).
    public var rules: [ConditionalRule]

    /// True if some call of this syscall can run.
    var allowsSome: Bool { verdict == .allowed || (verdict == .conditional && (rules.contains { !ProfileAnalysis.denies($0.action) } || !ProfileAnalysis.denies(action))) }

    /// One line: `allowed`, `SCMP_ACT_ERRNO(1) (default)`, `allowed if ...; otherwise ERRNO(1)`.
    public var summary: String {
        switch verdict {
        case .allowed, .denied:
            return (verdict == .allowed && action == "SCMP_ACT_ALLOW" ? "allowed" : ProfileAnalysis.short(action)) + (byDefault ? " (default)" : "")
        case .conditional:
            let otherwise = action == "SCMP_ACT_ALLOW" ? "allowed" : ProfileAnalysis.short(action)
            // default.json's ioctl has 32 rules; a line stays readable with the first few.
            let shown = rules.prefix(4).map(\.text)
            let hidden = rules.count - shown.count
            let more = hidden > 0 ? "; ... \(hidden) more rule\(hidden == 1 ? "" : "s")" : ""
            return shown.joined(separator: "; ") + more + "; otherwise \(otherwise)"
        }
    }

    /// Same effect (rule positions and default-vs-explicit do not matter).
    func sameEffect(as other: SyscallBehavior) -> Bool {
        verdict == other.verdict && action == other.action
            && Set(rules.map(\.meaning)) == Set(other.rules.map(\.meaning))
    }
}

/// Explain and diff: what a profile allows and denies, computed from the same `CompilePlan`
/// the compiler uses.
public enum ProfileAnalysis {
    /// Behaviour of every syscall of the native table plus every name the profile mentions.
    static func behaviors(_ plan: CompilePlan, extraNames: [String] = []) -> [String: SyscallBehavior] {
        var rulesBySyscall: [String: [CompilePlan.Rule]] = [:]
        for rule in plan.rules where rule.action != plan.defaultAction {  // SeccompCompiler finding 3
            for s in rule.syscalls where rulesBySyscall[s.name]?.last?.index != rule.index {
                rulesBySyscall[s.name, default: []].append(rule)
            }
        }
        var names = Set(SyscallCatalog.nativeSyscalls())
        names.formUnion(rulesBySyscall.keys)
        names.formUnion(extraNames)
        var out: [String: SyscallBehavior] = [:]
        for name in names {
            let rules = rulesBySyscall[name] ?? []
            var b = SyscallBehavior(syscall: name, category: SyscallCatalog.category(of: name), dangerous: SyscallCatalog.isDangerous(name),
                                    verdict: .denied, action: plan.defaultAction.description, byDefault: true, rules: [])
            if let plain = rules.first(where: { !$0.isConditional }) {
                // An unconditional rule overrides the others (SeccompCompiler finding 1); the
                // validator has already refused one next to rules with another action.
                b.action = plain.action.description
                b.byDefault = false
            } else if !rules.isEmpty {
                b.verdict = .conditional
                b.rules = rules.map { rule in
                    ConditionalRule(rule: rule.index, action: rule.action.description,
                                    conditions: rule.comparisons.map { condition($0, syscall: name) })
                }
            }
            if b.verdict != .conditional { b.verdict = denies(b.action) ? .denied : .allowed }
            out[name] = b
        }
        return out
    }

    static func denies(_ action: String) -> Bool {
        !(action == "SCMP_ACT_ALLOW" || action == "SCMP_ACT_LOG")
    }

    /// `SCMP_ACT_ERRNO(1)` → `ERRNO(1 EPERM)`, `SCMP_ACT_KILL_PROCESS` → `KILL_PROCESS`.
    static func short(_ action: String) -> String {
        var s = action.hasPrefix("SCMP_ACT_") ? String(action.dropFirst("SCMP_ACT_".count)) : action
        if s.hasPrefix("ERRNO("), s.hasSuffix(")"), let e = Int32(s.dropFirst(6).dropLast()), let name = errnoName(e) {
            s = "ERRNO(\(e) \(name))"
        }
        return s
    }

    static func errnoName(_ e: Int32) -> String? {
        let names: [Int32: String] = [
            EPERM: "EPERM", ENOENT: "ENOENT", EACCES: "EACCES", EINVAL: "EINVAL", ENOSYS: "ENOSYS",
            EOPNOTSUPP: "EOPNOTSUPP", EAFNOSUPPORT: "EAFNOSUPPORT", ENOTTY: "ENOTTY", EFAULT: "EFAULT", 0: "0",
        ]
        return names[e]
    }

    // MARK: - Readable conditions

    static func condition(_ c: sbx_seccomp_cmp, syscall: String) -> ArgumentCondition {
        let op = SeccompOperator.allCases.first { $0.raw == c.op } ?? .eq
        let arg = "arg\(c.arg)"
        let index = Int(c.arg)
        let text: String
        switch op {
        case .maskedEq:
            var t = "(\(arg) & \(hex(c.datum_a))) == \(number(c.datum_b))"
            if let note = maskedNote(syscall: syscall, index: index, mask: c.datum_a, value: c.datum_b) { t += " (\(note))" }
            text = t
        default:
            let symbol: String
            switch op {
            case .ne: symbol = "!="
            case .lt: symbol = "<"
            case .le: symbol = "<="
            case .ge: symbol = ">="
            case .gt: symbol = ">"
            default: symbol = "=="
            }
            var t = "\(arg) \(symbol) \(number(c.datum_a, syscall: syscall, index: index))"
            if let name = constantName(syscall: syscall, index: index, value: c.datum_a) { t += " (\(name))" }
            text = t
        }
        return ArgumentCondition(index: index, op: op.rawValue, value: c.datum_a, valueTwo: c.datum_b, text: text)
    }

    static func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

    /// Small numbers in decimal, the rest (and ioctl commands) in hex.
    static func number(_ v: UInt64, syscall: String = "", index: Int = -1) -> String {
        (syscall == "ioctl" && index == 1) || v >= 0x1000 ? hex(v) : String(v)
    }

    static let socketFamilies: [UInt64: String] = [
        0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 3: "AF_AX25", 4: "AF_IPX", 5: "AF_APPLETALK", 9: "AF_X25",
        10: "AF_INET6", 15: "AF_KEY", 16: "AF_NETLINK", 17: "AF_PACKET", 29: "AF_CAN", 30: "AF_TIPC",
        31: "AF_BLUETOOTH", 38: "AF_ALG", 40: "AF_VSOCK", 44: "AF_XDP",
    ]
    static let ioctlCommands: [UInt64: String] = [
        0x5401: "TCGETS", 0x5402: "TCSETS", 0x540E: "TIOCSCTTY", 0x5412: "TIOCSTI", 0x5413: "TIOCGWINSZ",
        0x5414: "TIOCSWINSZ", 0x541B: "FIONREAD", 0x541C: "TIOCLINUX", 0x5421: "FIONBIO", 0x5451: "FIOCLEX",
    ]
    static let personalities: [UInt64: String] = [
        0: "PER_LINUX", 8: "PER_LINUX32", 0x20000: "UNAME26", 0x20008: "PER_LINUX32|UNAME26", 0xFFFF_FFFF: "query",
    ]
    static let cloneFlags: [(UInt64, String)] = [
        (0x80, "CLONE_NEWTIME"), (0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"),
        (0x800, "CLONE_SIGHAND"), (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"),
        (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"), (0x40000, "CLONE_SYSVSEM"),
        (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"), (0x200000, "CLONE_CHILD_CLEARTID"),
        (0x400000, "CLONE_DETACHED"), (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"),
        (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
        (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"), (0x80000000, "CLONE_IO"),
    ]

    /// The name of a well-known constant compared with `syscall`'s argument `index`.
    static func constantName(syscall: String, index: Int, value: UInt64) -> String? {
        switch (syscall, index) {
        case ("socket", 0), ("socketpair", 0): return socketFamilies[value]
        case ("ioctl", 1): return ioctlCommands[value]
        case ("personality", 0): return personalities[value]
        case ("clone", 0), ("unshare", 0): return flagNames(value)
        default: return nil
        }
    }

    static func flagNames(_ bits: UInt64) -> String? {
        let known = cloneFlags.reduce(UInt64(0)) { $0 | $1.0 }
        guard bits != 0, bits & ~known == 0 else { return nil }  // unknown bits: show the number only
        return cloneFlags.filter { bits & $0.0 != 0 }.map(\.1).joined(separator: "|")
    }

    /// MASKED_EQ: flags tested for clone/unshare; a 32-bit command or family under a full mask.
    static func maskedNote(syscall: String, index: Int, mask: UInt64, value: UInt64) -> String? {
        if (syscall == "clone" || syscall == "unshare") && index == 0, let flags = flagNames(mask) {
            if value == 0 { return mask.nonzeroBitCount == 1 ? "no \(flags)" : "none of \(flags)" }
            if value == mask { return mask.nonzeroBitCount == 1 ? "\(flags) set" : "all of \(flags)" }
            return nil
        }
        if mask & 0xFFFF_FFFF == 0xFFFF_FFFF, let name = constantName(syscall: syscall, index: index, value: value) {
            return mask == 0xFFFF_FFFF ? "\(name), low 32 bits" : name
        }
        return nil
    }
}
