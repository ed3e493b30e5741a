import CSealboxSeccomp
import Glibc

/// A filter action after validation.
enum SeccompAction: Sendable, Hashable, CustomStringConvertible {
    case allow
    case errno(Int32)
    case killThread  // OCI SCMP_ACT_KILL is libseccomp's SCMP_ACT_KILL == SCMP_ACT_KILL_THREAD
    case killProcess
    case trap
    case log
    /// Internal: the compiled form of an ERRNO default action when violations are tracked.
    case notify

    /// errno values the kernel can return (MAX_ERRNO); libseccomp rejects larger ones.
    static let errnoRange = 0...4095

    var raw: UInt32 {
        switch self {
        case .allow: return sbx_seccomp_action(SBX_ACT_ALLOW, 0)
        case .errno(let e): return sbx_seccomp_action(SBX_ACT_ERRNO, UInt16(truncatingIfNeeded: e))
        case .killThread: return sbx_seccomp_action(SBX_ACT_KILL_THREAD, 0)
        case .killProcess: return sbx_seccomp_action(SBX_ACT_KILL_PROCESS, 0)
        case .trap: return sbx_seccomp_action(SBX_ACT_TRAP, 0)
        case .log: return sbx_seccomp_action(SBX_ACT_LOG, 0)
        case .notify: return sbx_seccomp_action(SBX_ACT_NOTIFY, 0)
        }
    }

    var description: String {
        switch self {
        case .allow: return "SCMP_ACT_ALLOW"
        case .errno(let e): return "SCMP_ACT_ERRNO(\(e))"
        case .killThread: return "SCMP_ACT_KILL_THREAD"
        case .killProcess: return "SCMP_ACT_KILL_PROCESS"
        case .trap: return "SCMP_ACT_TRAP"
        case .log: return "SCMP_ACT_LOG"
        case .notify: return "SCMP_ACT_NOTIFY"
        }
    }

    /// Parses an OCI action name. `path` is the JSON path of the action ("syscalls[3]" →
    /// "syscalls[3].action" / ".errnoRet"; "" for the default action).
    static func parse(_ name: String, errnoRet: Int?, actionPath: String, errnoPath: String) throws(FieldError) -> SeccompAction {
        let action: SeccompAction
        switch name {
        case "SCMP_ACT_ALLOW": action = .allow
        case "SCMP_ACT_ERRNO":
            let e = errnoRet ?? Int(EPERM)
            guard errnoRange.contains(e) else {
                throw FieldError(path: errnoPath, problem: "\(e) is out of range (\(errnoRange.lowerBound)...\(errnoRange.upperBound))")
            }
            return .errno(Int32(e))
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": action = .killThread
        case "SCMP_ACT_KILL_PROCESS": action = .killProcess
        case "SCMP_ACT_TRAP": action = .trap
        case "SCMP_ACT_LOG": action = .log
        case "SCMP_ACT_TRACE":
            throw FieldError(path: actionPath, problem: "SCMP_ACT_TRACE is not supported: sealbox runs no tracer (use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS)")
        case "SCMP_ACT_NOTIFY":
            throw FieldError(path: actionPath, problem: "SCMP_ACT_NOTIFY is reserved: sealbox uses user notification internally to record violations (use SCMP_ACT_ERRNO; denied syscalls are recorded when violations are tracked)")
        default:
            throw FieldError(path: actionPath, problem: "unknown action \"\(name)\"")
        }
        if let e = errnoRet {
            throw FieldError(path: errnoPath, problem: "errno \(e) given, but an errno is only used with SCMP_ACT_ERRNO (action is \(name))")
        }
        return action
    }
}

/// OCI comparison operators.
enum SeccompOperator: String, Sendable, CaseIterable {
    case ne = "SCMP_CMP_NE"
    case lt = "SCMP_CMP_LT"
    case le = "SCMP_CMP_LE"
    case eq = "SCMP_CMP_EQ"
    case ge = "SCMP_CMP_GE"
    case gt = "SCMP_CMP_GT"
    case maskedEq = "SCMP_CMP_MASKED_EQ"

    var raw: UInt32 {
        switch self {
        case .ne: return SBX_CMP_NE.rawValue
        case .lt: return SBX_CMP_LT.rawValue
        case .le: return SBX_CMP_LE.rawValue
        case .eq: return SBX_CMP_EQ.rawValue
        case .ge: return SBX_CMP_GE.rawValue
        case .gt: return SBX_CMP_GT.rawValue
        case .maskedEq: return SBX_CMP_MASKED_EQ.rawValue
        }
    }
}

/// A validated profile, ready to hand to libseccomp.
struct CompilePlan: Sendable {
    struct Syscall: Sendable, Equatable {
        var name: String
        /// libseccomp's number on the native arch; < -1 is a pseudo number (the syscall exists only
        /// on other architectures; libseccomp adds it for the filter's arches that have it).
        var number: Int32
    }

    struct Rule: Sendable {
        /// Index in `profile.syscalls`, for messages.
        var index: Int
        var syscalls: [Syscall]
        var action: SeccompAction
        var comparisons: [sbx_seccomp_cmp]
        var isConditional: Bool { !comparisons.isEmpty }
    }

    var defaultAction: SeccompAction
    var architectures: [(name: String, token: UInt32)]
    /// Rules that apply on this host (after `includes` / `excludes`), in profile order.
    var rules: [Rule]
}

enum ProfileValidator {
    static let maxArguments = 6

    /// Validates `profile` completely and returns what to compile. Every error names the profile
    /// and the exact JSON path.
    static func plan(_ profile: SeccompProfile, name: String) throws(ProfileError) -> CompilePlan {
        do {
            return try planOrFieldError(profile)
        } catch {
            throw ProfileError.profile(name, error.text)
        }
    }

    private static func planOrFieldError(_ profile: SeccompProfile) throws(FieldError) -> CompilePlan {
        let defaultAction = try SeccompAction.parse(profile.defaultAction, errnoRet: profile.defaultErrnoRet,
                                                    actionPath: "defaultAction", errnoPath: "defaultErrnoRet")

        var arches: [(name: String, token: UInt32)] = []
        for (i, arch) in profile.architectures.enumerated() {
            guard let token = Architecture.token(for: arch) else {
                throw FieldError(path: "architectures[\(i)]", problem: "unknown architecture \"\(arch)\" (expected a name like SCMP_ARCH_X86_64)")
            }
            if !arches.contains(where: { $0.token == token }) { arches.append((arch, token)) }
        }

        var rules: [CompilePlan.Rule] = []
        for (i, rule) in profile.syscalls.enumerated() {
            let path = "syscalls[\(i)]"
            let action = try SeccompAction.parse(rule.action, errnoRet: rule.errnoRet,
                                                 actionPath: "\(path).action", errnoPath: "\(path).errnoRet")
            guard !rule.names.isEmpty else {
                throw FieldError(path: "\(path).names", problem: "lists no syscalls")
            }
            var syscalls: [CompilePlan.Syscall] = []
            for name in rule.names {
                // Unknown to libseccomp everywhere → error. Known but absent on this arch (a pseudo
                // number) → kept; libseccomp skips it for the arches that lack it.
                let nr = sbx_seccomp_syscall_resolve(name)
                guard nr != SBX_SECCOMP_NR_ERROR else { throw FieldError(text: "unknown syscall \"\(name)\" in \(path).names") }
                syscalls.append(.init(name: name, number: nr))
            }
            let comparisons = try validateArgs(rule.args, path: "\(path).args")
            guard try applies(rule, path: path) else { continue }
            rules.append(.init(index: i, syscalls: syscalls, action: action, comparisons: comparisons))
        }
        try checkUnconditionalOverrides(rules)
        return CompilePlan(defaultAction: defaultAction, architectures: arches, rules: rules)
    }

    private static func validateArgs(_ args: [SeccompProfile.Arg], path: String) throws(FieldError) -> [sbx_seccomp_cmp] {
        guard args.count <= maxArguments else {
            throw FieldError(path: path, problem: "\(args.count) comparisons; a rule can compare at most \(maxArguments) arguments, once each")
        }
        var seen: [Int: Int] = [:]  // argument index → position in args
        var out: [sbx_seccomp_cmp] = []
        for (j, arg) in args.enumerated() {
            let p = "\(path)[\(j)]"
            guard (0..<maxArguments).contains(arg.index) else {
                throw FieldError(path: "\(p).index", problem: "\(arg.index) is out of range (0...\(maxArguments - 1))")
            }
            guard let op = SeccompOperator(rawValue: arg.op) else {
                throw FieldError(path: "\(p).op", problem: "unknown operator \"\(arg.op)\" (expected one of \(SeccompOperator.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            // libseccomp 2.5.4 rejects a second comparison of the same argument in one rule with
            // EINVAL (verified); say so in the profile's terms instead.
            if let first = seen[arg.index] {
                throw FieldError(path: "\(p).index", problem: "argument \(arg.index) is already compared by \(path)[\(first)]; a rule can compare each argument once (write two rules: rules are OR-ed, comparisons in a rule AND-ed)")
            }
            seen[arg.index] = j
            if op == .maskedEq && arg.valueTwo & ~arg.value != 0 {
                throw FieldError(path: p, problem: "SCMP_CMP_MASKED_EQ can never match: valueTwo 0x\(String(arg.valueTwo, radix: 16)) has bits outside the mask (value) 0x\(String(arg.value, radix: 16))")
            }
            out.append(sbx_seccomp_cmp(arg: UInt32(arg.index), op: op.raw, datum_a: arg.value, datum_b: arg.valueTwo))
        }
        return out
    }

    /// Docker's includes/excludes, evaluated for a jail that holds no capabilities.
    private static func applies(_ rule: SeccompProfile.Rule, path: String) throws(FieldError) -> Bool {
        let native = Architecture.nativeName.map(Architecture.dockerAliases(of:)) ?? []
        func kernelAtLeast(_ text: String, _ p: String) throws(FieldError) -> Bool {
            guard let wanted = KernelVersion(text) else {
                throw FieldError(path: p, problem: "invalid kernel version \"\(text)\" (expected e.g. \"5.10\")")
            }
            guard let running = KernelVersion.running else { return false }
            return running >= wanted
        }
        if let inc = rule.includes {
            let keep = inc.caps.isEmpty  // rules for capabilities the jail does not have
                && (inc.arches.isEmpty || inc.arches.contains(where: native.contains))
            let kernelOK = try inc.minKernel.map { (k) throws(FieldError) in try kernelAtLeast(k, "\(path).includes.minKernel") } ?? true
            if !keep || !kernelOK { return false }
        }
        if let exc = rule.excludes {
            // exc.caps: the jail holds none of them, so they never exclude the rule.
            if exc.arches.contains(where: native.contains) { return false }
            if let k = exc.minKernel, try kernelAtLeast(k, "\(path).excludes.minKernel") { return false }
        }
        return true
    }

    /// libseccomp keeps only the unconditional rule when a syscall has an unconditional rule and
    /// other rules with a different action (verified on 2.5.4 in both orders, see
    /// SeccompCompiler.swift). The other rule would be silently ignored, so refuse the profile.
    private static func checkUnconditionalOverrides(_ rules: [CompilePlan.Rule]) throws(FieldError) {
        var bySyscall: [String: [CompilePlan.Rule]] = [:]
        for rule in rules {
            for s in rule.syscalls { bySyscall[s.name, default: []].append(rule) }
        }
        for rule in rules where !rule.isConditional {
            for s in rule.syscalls {
                guard let other = bySyscall[s.name]?.first(where: { $0.index != rule.index && $0.action != rule.action }) else { continue }
                let (first, second) = rule.index < other.index ? (rule, other) : (other, rule)
                throw FieldError(
                    path: "syscalls[\(second.index)]",
                    problem: "\(s.name): conflicts with syscalls[\(first.index)]: syscalls[\(rule.index)] is an unconditional \(rule.action) rule, and libseccomp lets an unconditional rule override every rule with another action for the same syscall, so syscalls[\(other.index)] (\(other.action)) would never take effect; use only conditional rules for \(s.name) (see profiles/README.md)")
            }
        }
    }
}
