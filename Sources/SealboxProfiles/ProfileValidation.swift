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
    /// and the exact JSON path. Throws the first error: what `sealbox run` reports.
    static func plan(_ profile: SeccompProfile, name: String) throws(ProfileError) -> CompilePlan {
        var report = DiagnosticCollector(mode: .throwFirstError)
        do {
            guard let plan = try validate(ReadProfile(profile), report: &report) else {
                preconditionFailure("validate returns nil only after reporting an error, which throws in this mode")
            }
            return plan
        } catch {
            throw ProfileError.profile(name, error.text)
        }
    }

    /// Every check, in the order `sealbox run` has always reported the first error in. With a
    /// `.collectAll` report each error is recorded and validation goes on without the broken
    /// part (a rule whose action is unknown is left out of the plan, an unknown name out of its
    /// rule, ...), and the warnings are computed too; the result is then nil if there was any
    /// error. Every error recorded is one `sealbox run` would refuse the profile for, had it come
    /// first: recovery never invents problems, it only keeps looking.
    static func validate(_ input: ReadProfile, report: inout DiagnosticCollector) throws(FieldError) -> CompilePlan? {
        let profile = input.profile
        let errorsBefore = report.errorCount

        var defaultAction: SeccompAction?
        if input.defaultActionReadable {
            defaultAction = try report.recover { () throws(FieldError) in
                try SeccompAction.parse(profile.defaultAction, errnoRet: profile.defaultErrnoRet,
                                        actionPath: "defaultAction", errnoPath: "defaultErrnoRet")
            }
            if defaultAction == .log {
                report.warning("defaultAction", "SCMP_ACT_LOG allows every syscall no rule matches and only writes it to the kernel audit log (not to sealbox's violations); use SCMP_ACT_ERRNO to deny")
            }
        }

        var arches: [(name: String, token: UInt32)] = []
        for (i, arch) in profile.architectures.enumerated() {
            guard let token = Architecture.token(for: arch) else {
                try report.error(FieldError(path: "architectures[\(i)]", problem: "unknown architecture \"\(arch)\" (expected a name like SCMP_ARCH_X86_64)"))
                continue
            }
            if !arches.contains(where: { $0.token == token }) { arches.append((arch, token)) }
        }
        // The filter always holds the native architecture (libseccomp's context starts with it).
        var filterArches = arches
        if !filterArches.contains(where: { $0.token == Architecture.nativeToken }) {
            filterArches.insert((Architecture.nativeName ?? "native", Architecture.nativeToken), at: 0)
        }

        var rules: [CompilePlan.Rule] = []
        // rule index → syscall name → its position in `names`, to point warnings at the name.
        var namePositions: [Int: [String: Int]] = [:]
        for (k, rule) in profile.syscalls.enumerated() {
            let i = input.ruleIndices[k]
            let path = "syscalls[\(i)]"
            let action = try report.recover { () throws(FieldError) in
                try SeccompAction.parse(rule.action, errnoRet: rule.errnoRet,
                                        actionPath: "\(path).action", errnoPath: "\(path).errnoRet")
            }
            if rule.names.isEmpty {
                try report.error(FieldError(path: "\(path).names", problem: "lists no syscalls"))
            }
            var syscalls: [CompilePlan.Syscall] = []
            var positions: [String: Int] = [:]
            for (j, name) in rule.names.enumerated() {
                let namePath = "\(path).names[\(j)]"
                // Unknown to libseccomp everywhere → error. Known but absent on this arch (a pseudo
                // number) → kept; libseccomp skips it for the arches that lack it.
                let nr = sbx_seccomp_syscall_resolve(name)
                guard nr != SBX_SECCOMP_NR_ERROR else {
                    let hint = report.collectsWarnings ? SyscallCatalog.suggestion(for: name).map { " (did you mean \"\($0)\"?)" } ?? "" : ""
                    try report.error(FieldError(path: namePath, problem: "unknown syscall \"\(name)\"\(hint)",
                                                text: "unknown syscall \"\(name)\" in \(path).names"))
                    continue
                }
                if report.collectsWarnings {
                    if let first = positions[name] {
                        report.warning(namePath, "\(name) is listed twice in this rule (first at names[\(first)])")
                    } else if let note = absenceNote(name, filterArches: filterArches) {
                        report.warning(namePath, note)
                    }
                }
                if positions[name] == nil { positions[name] = j }
                syscalls.append(.init(name: name, number: nr))
            }
            namePositions[i] = positions
            let comparisons = try validateArgs(rule.args, path: "\(path).args", report: &report)
            let applies = try applies(rule, path: path, report: &report)
            if report.collectsWarnings, let action {
                ruleWarnings(rule, path: path, action: action, defaultAction: defaultAction, applies: applies, report: &report)
            }
            guard let action, let comparisons, applies == true, !syscalls.isEmpty else { continue }
            rules.append(.init(index: i, syscalls: syscalls, action: action, comparisons: comparisons))
        }
        try checkUnconditionalOverrides(rules, namePositions: namePositions, report: &report)
        if report.collectsWarnings { checkRepeats(rules, namePositions: namePositions, report: &report) }
        guard report.errorCount == errorsBefore, let defaultAction else { return nil }
        return CompilePlan(defaultAction: defaultAction, architectures: arches, rules: rules)
    }

    /// Nil when `name` exists on one of the filter's architectures; otherwise what a reader of
    /// the profile should know: the entry does nothing here (libseccomp skips it).
    private static func absenceNote(_ name: String, filterArches: [(name: String, token: UInt32)]) -> String? {
        guard !filterArches.contains(where: { sbx_seccomp_syscall_resolve_arch($0.token, name) >= 0 }) else { return nil }
        let elsewhere = Architecture.ociNames.filter { arch in
            Architecture.token(for: arch).map { sbx_seccomp_syscall_resolve_arch($0, name) >= 0 } ?? false
        }
        return "\(name) does not exist on \(filterArches.map(\.name).joined(separator: ", ")) (only on \(elsewhere.joined(separator: ", "))), so this entry has no effect"
    }

    private static func validateArgs(_ args: [SeccompProfile.Arg], path: String, report: inout DiagnosticCollector) throws(FieldError) -> [sbx_seccomp_cmp]? {
        let errorsBefore = report.errorCount
        if args.count > maxArguments {
            try report.error(FieldError(path: path, problem: "\(args.count) comparisons; a rule can compare at most \(maxArguments) arguments, once each"))
        }
        var seen: [Int: Int] = [:]  // argument index → position in args
        var out: [sbx_seccomp_cmp] = []
        for (j, arg) in args.enumerated() {
            let p = "\(path)[\(j)]"
            let indexOK = (0..<maxArguments).contains(arg.index)
            if !indexOK {
                try report.error(FieldError(path: "\(p).index", problem: "\(arg.index) is out of range (0...\(maxArguments - 1))"))
            }
            let op = SeccompOperator(rawValue: arg.op)
            if op == nil {
                try report.error(FieldError(path: "\(p).op", problem: "unknown operator \"\(arg.op)\" (expected one of \(SeccompOperator.allCases.map(\.rawValue).joined(separator: ", ")))"))
            }
            guard indexOK, let op else { continue }
            // libseccomp 2.5.4 rejects a second comparison of the same argument in one rule with
            // EINVAL (verified); say so in the profile's terms instead.
            if let first = seen[arg.index] {
                try report.error(FieldError(path: "\(p).index", problem: "argument \(arg.index) is already compared by \(path)[\(first)]; a rule can compare each argument once (write two rules: rules are OR-ed, comparisons in a rule AND-ed)"))
                continue
            }
            seen[arg.index] = j
            if op == .maskedEq && arg.valueTwo & ~arg.value != 0 {
                try report.error(FieldError(path: p, problem: "SCMP_CMP_MASKED_EQ can never match: valueTwo 0x\(String(arg.valueTwo, radix: 16)) has bits outside the mask (value) 0x\(String(arg.value, radix: 16))"))
                continue
            }
            out.append(sbx_seccomp_cmp(arg: UInt32(arg.index), op: op.raw, datum_a: arg.value, datum_b: arg.valueTwo))
        }
        return report.errorCount == errorsBefore ? out : nil
    }

    /// Docker's includes/excludes, evaluated for a jail that holds no capabilities. Nil when a
    /// `minKernel` cannot be read (reported).
    private static func applies(_ rule: SeccompProfile.Rule, path: String, report: inout DiagnosticCollector) throws(FieldError) -> Bool? {
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
            guard let kernelOK = try report.recover({ () throws(FieldError) in
                try inc.minKernel.map { (k) throws(FieldError) in try kernelAtLeast(k, "\(path).includes.minKernel") } ?? true
            }) else { return nil }
            if !keep || !kernelOK { return false }
        }
        if let exc = rule.excludes {
            // exc.caps: the jail holds none of them, so they never exclude the rule.
            if exc.arches.contains(where: native.contains) { return false }
            if let k = exc.minKernel {
                guard let newEnough = try report.recover({ () throws(FieldError) in try kernelAtLeast(k, "\(path).excludes.minKernel") }) else { return nil }
                if newEnough { return false }
            }
        }
        return true
    }

    /// Warnings about one rule: things that load fine but do not do what they seem to.
    private static func ruleWarnings(_ rule: SeccompProfile.Rule, path: String, action: SeccompAction, defaultAction: SeccompAction?,
                                     applies: Bool?, report: inout DiagnosticCollector) {
        if let caps = rule.includes?.caps, !caps.isEmpty {
            report.warning("\(path).includes.caps", "this rule is skipped: it is for processes holding \(caps.joined(separator: ", ")), and sealbox grants jailed code no capabilities")
        }
        // A rule that does not apply on this host does nothing else worth a word.
        guard applies == true else { return }
        if action == defaultAction {
            report.warning("\(path).action", "\(action) is also the defaultAction: the rule is redundant and libseccomp drops it (see profiles/README.md, rule 2)")
        } else if action == .log {
            report.warning("\(path).action", "SCMP_ACT_LOG allows the syscall and only writes it to the kernel audit log, not to sealbox's violations")
        }
        for (j, arg) in rule.args.enumerated() {
            guard let op = SeccompOperator(rawValue: arg.op),
                  let hole = SyscallCatalog.highBitsBypass(op: op, mask: arg.value, denies: action.denies) else { continue }
            let affected = rule.names.filter { SyscallCatalog.is32BitArgument(syscall: $0, index: arg.index) }
            guard !affected.isEmpty else { continue }
            report.warning("\(path).args[\(j)]", "the kernel reads argument \(arg.index) of \(affected.joined(separator: ", ")) as a 32-bit int, but \(op.rawValue) compares all 64 bits: \(hole) (CVE-2019-10063; see profiles/README.md, rule 4). Compare the low 32 bits only: SCMP_CMP_MASKED_EQ with value 0xFFFFFFFF\(action.denies ? "" : " in allow rules that cover what may pass"), or allow the complement")
        }
    }

    /// libseccomp keeps only the unconditional rule when a syscall has an unconditional rule and
    /// other rules with a different action (verified on 2.5.4 in both orders, see
    /// SeccompCompiler.swift). The other rule would be silently ignored, so refuse the profile.
    private static func checkUnconditionalOverrides(_ rules: [CompilePlan.Rule], namePositions: [Int: [String: Int]],
                                                    report: inout DiagnosticCollector) throws(FieldError) {
        var bySyscall: [String: [CompilePlan.Rule]] = [:]
        for rule in rules {
            for s in rule.syscalls { bySyscall[s.name, default: []].append(rule) }
        }
        var reported: Set<String> = []  // "name first second": two unconditional rules meet twice
        for rule in rules where !rule.isConditional {
            for s in rule.syscalls {
                for other in bySyscall[s.name] ?? [] where other.index != rule.index && other.action != rule.action {
                    let (first, second) = rule.index < other.index ? (rule, other) : (other, rule)
                    guard reported.insert("\(s.name) \(first.index) \(second.index)").inserted else { continue }
                    let problem = "\(s.name): conflicts with syscalls[\(first.index)]: syscalls[\(rule.index)] is an unconditional \(rule.action) rule, and libseccomp lets an unconditional rule override every rule with another action for the same syscall, so syscalls[\(other.index)] (\(other.action)) would never take effect; use only conditional rules for \(s.name) (see profiles/README.md)"
                    let at = namePositions[second.index]?[s.name].map { "syscalls[\(second.index)].names[\($0)]" } ?? "syscalls[\(second.index)]"
                    try report.error(FieldError(path: at, problem: problem, text: "syscalls[\(second.index)]: \(problem)"))
                    // `sealbox run` names the first conflict only; profile check names every one.
                    if !report.collectsWarnings { return }
                }
            }
        }
    }

    /// Warnings for a syscall given the same action twice: the later entry does nothing.
    private static func checkRepeats(_ rules: [CompilePlan.Rule], namePositions: [Int: [String: Int]], report: inout DiagnosticCollector) {
        var earlier: [String: [CompilePlan.Rule]] = [:]
        for rule in rules {
            for s in rule.syscalls {
                defer { earlier[s.name, default: []].append(rule) }
                guard let j = namePositions[rule.index]?[s.name] else { continue }
                let at = "syscalls[\(rule.index)].names[\(j)]"
                for prior in earlier[s.name] ?? [] where prior.action == rule.action && prior.index != rule.index {
                    if !prior.isConditional && !rule.isConditional {
                        report.warning(at, "\(s.name) is listed twice with the same action: syscalls[\(prior.index)] already gives it \(rule.action)")
                    } else if !prior.isConditional || !rule.isConditional {
                        let conditional = prior.isConditional ? prior.index : rule.index
                        let plain = prior.isConditional ? rule.index : prior.index
                        report.warning(at, "\(s.name): the conditions of syscalls[\(conditional)] have no effect: syscalls[\(plain)] gives it \(rule.action) unconditionally")
                    } else if sameComparisons(prior.comparisons, rule.comparisons) {
                        report.warning(at, "\(s.name) is listed twice with the same action and conditions: syscalls[\(prior.index)] is the same rule")
                    } else {
                        continue
                    }
                    break
                }
            }
        }
    }

    private static func sameComparisons(_ a: [sbx_seccomp_cmp], _ b: [sbx_seccomp_cmp]) -> Bool {
        func key(_ c: sbx_seccomp_cmp) -> [UInt64] { [UInt64(c.arg), UInt64(c.op), c.datum_a, c.datum_b] }
        return a.map(key).sorted { $0.lexicographicallyPrecedes($1) } == b.map(key).sorted { $0.lexicographicallyPrecedes($1) }
    }
}

extension SeccompAction {
    /// True for actions that stop the syscall (ERRNO, KILL_*, TRAP); ALLOW and LOG let it run.
    var denies: Bool {
        switch self {
        case .allow, .log: return false
        case .errno, .killThread, .killProcess, .trap, .notify: return true
        }
    }
}
