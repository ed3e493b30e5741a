#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CSealboxSeccomp
import Crypto
import SealboxBase
import Glibc

/// `sealbox profile learn`: run a workload under a recording filter, then write the smallest
/// allowlist profile under which it runs the same way.
///
/// The recording run behaves like the *base* profile (default.json unless told otherwise) with
/// one change: a syscall the base would deny by its default action is allowed and recorded
/// instead. Everything else the base decides stays decided, checked by the supervisor on every
/// call: its argument conditions (clone without namespace flags, sockets only for unix and IP,
/// ioctl without TIOCSTI), its explicit answers (clone3 → ENOSYS, so glibc falls back to clone
/// exactly as it will under the learned profile), and the dangerous syscalls, which are denied
/// with EPERM and reported, never learned. So the learned profile reproduces the recording run:
/// every call that succeeded then is allowed, every call that failed then fails the same way.
public struct ProfileLearner: Sendable {
    /// Syscalls sealbox's own jail start makes after the filter is installed and before the
    /// workload runs (sbx_child.c steps 10-11: hand the listener over, umask, execve, and on a
    /// failed exec the report write and exit). The supervisor cannot answer them, it is still
    /// waiting in the spawn call, so the recording filter allows them outright, and every
    /// learned profile must allow them for a jail to start under it.
    public static let jailStartSyscalls = ["execve", "exit_group", "sendmsg", "umask", "write"]

    public let base: LoadedProfile
    let plan: CompilePlan
    public let dangerous: Set<String>

    public init(base: LoadedProfile, dangerous: Set<String>) throws(ProfileError) {
        self.base = base
        self.plan = try ProfileValidator.plan(base.profile, name: base.name)
        self.dangerous = dangerous
    }

    /// The base's errno for calls nothing allows (EPERM when its default does not deny).
    var baseDenyErrno: Int32 {
        if case .errno(let e) = plan.defaultAction { return e }
        return EPERM
    }

    /// Rules of the base that apply to `name`, in profile order.
    func baseRules(for name: String) -> [CompilePlan.Rule] {
        plan.rules.filter { rule in rule.syscalls.contains { $0.name == name } }
    }

    /// How the base decides a syscall, which decides what learning does with it: the answer
    /// while recording, and where the syscall goes in the learned profile.
    enum BaseTreatment {
        /// An unconditional rule that lets it run (an unconditional rule overrides every
        /// other rule for the syscall, finding 1 in SeccompCompiler).
        case allowed
        /// An unconditional rule that stops it, e.g. clone3 → ENOSYS: answered so, and copied.
        case answered(CompilePlan.Rule)
        /// Only argument-checked rules: evaluated while recording, and copied.
        case argumentChecked([CompilePlan.Rule])
        /// No rule: only the base's default denies it, so learning allows it.
        case unlisted
    }

    func treatment(of name: String) -> BaseTreatment {
        let rules = baseRules(for: name)
        if let unconditional = rules.first(where: { !$0.isConditional }) {
            return unconditional.action.denies ? .answered(unconditional) : .allowed
        }
        return rules.isEmpty ? .unlisted : .argumentChecked(rules)
    }

    /// The recording filter: notify everything but the jail-start calls; `policy` answers as
    /// described on the type.
    public func recordingFilter() throws(ProfileError) -> CompiledSeccompFilter {
        let name = "learn(\(base.name))"
        var err = [CChar](repeating: 0, count: SeccompCompiler.errLen)
        var created: OpaquePointer?
        // Bad-arch: notify too, so a foreign-ABI call is named; the policy kills it (only the
        // native ABI is recorded, and a learned profile lists only the native one).
        guard sbx_seccomp_ctx_create(SeccompAction.notify.raw, SeccompAction.notify.raw, &created, &err, SeccompCompiler.errLen) == 0,
              let ctx = created
        else { throw ProfileError.profile(name, "cannot create the recording filter: \(SeccompCompiler.cString(err))") }
        defer { sbx_seccomp_ctx_release(ctx) }
        for syscall in Self.jailStartSyscalls {
            let nr = sbx_seccomp_syscall_resolve(syscall)
            guard sbx_seccomp_ctx_add_rule(ctx, SeccompAction.allow.raw, nr, nil, 0, &err, SeccompCompiler.errLen) == 0 else {
                throw ProfileError.profile(name, "\(syscall): \(SeccompCompiler.cString(err))")
            }
        }
        let program = try SeccompCompiler.exportBPF(ctx, name: name)
        return CompiledSeccompFilter(profileName: name, digest: SHA256.hex(program), program: program, policy: recordingPolicy())
    }

    func recordingPolicy() -> NotificationPolicy {
        var bySyscall: [SyscallKey: NotificationAnswer] = [:]
        var byArguments: [SyscallKey: ConditionalAnswer] = [:]
        var names = Set(dangerous)
        for rule in plan.rules { names.formUnion(rule.syscalls.map(\.name)) }
        for name in names {
            guard let number = SyscallNames.number(of: name) else { continue }
            let key = SyscallKey.native(number)
            switch treatment(of: name) {
            case .allowed, .unlisted:
                if dangerous.contains(name) { bySyscall[key] = .fail(errno: EPERM) }
            case .answered(let rule):
                bySyscall[key] = NotificationPlan.answer(for: rule.action) ?? .fail(errno: EPERM)
            case .argumentChecked(let rules):
                let conditional = rules.map { rule in
                    ConditionalAnswer.Rule(checks: rule.comparisons.map(ArgumentCheck.init),
                                           answer: NotificationPlan.answer(for: rule.action) ?? .proceed)
                }
                byArguments[key] = ConditionalAnswer(rules: conditional, otherwise: .fail(errno: baseDenyErrno))
            }
        }
        return NotificationPolicy(fallback: .proceed, bySyscall: bySyscall, byArguments: byArguments)
    }

    /// What a recording run showed, sorted into what the learned profile does with it.
    public struct Findings: Sendable, Codable, Equatable {
        /// Allowed unconditionally by the learned profile (jail start included).
        public var allowed: [String] = []
        /// Allowed under the base's argument conditions (its rules copied).
        public var conditional: [String] = []
        /// Answered by an explicit rule of the base (e.g. clone3 → ENOSYS), copied.
        public var answeredByBase: [String] = []
        /// Allowed although the base profile would have denied them.
        public var beyondBase: [String] = []
        /// Dangerous syscalls the workload tried: denied while learning and in the profile.
        public var dangerous: [Flag] = []
        /// Calls outside the base's argument conditions: denied while learning and in the profile.
        public var outsideConditions: [Flag] = []

        public struct Flag: Sendable, Codable, Equatable {
            public var syscall: String
            public var count: Int
            public var firstArgs: [UInt64]

            enum CodingKeys: String, CodingKey {
                case syscall, count
                case firstArgs = "first_args"
            }
        }

        enum CodingKeys: String, CodingKey {
            case allowed, conditional
            case answeredByBase = "answered_by_base"
            case beyondBase = "beyond_base"
            case dangerous
            case outsideConditions = "outside_conditions"
        }
    }

    /// A recorded syscall as the supervisor reported it (a `JailResult.RecordedSyscall`).
    public struct Recorded: Sendable {
        public var syscall: String
        public var native: Bool
        public var count: Int
        /// "allow", "errno" or "kill"
        public var answer: String
        public var firstArgs: [UInt64]

        public init(syscall: String, native: Bool, count: Int, answer: String, firstArgs: [UInt64]) {
            self.syscall = syscall
            self.native = native
            self.count = count
            self.answer = answer
            self.firstArgs = firstArgs
        }
    }

    /// The three places a syscall can take in a learned profile, filled from findings and
    /// written back to them (`findings`, `allowing`, `merging` share it).
    private struct Placement {
        var allowed: Set<String>
        var conditional: Set<String>
        var answered: Set<String>

        init(_ f: Findings) {
            allowed = Set(f.allowed)
            conditional = Set(f.conditional)
            answered = Set(f.answeredByBase)
        }

        /// Files `name` by the base's treatment: copied base rules, or an unconditional allow.
        mutating func place(_ name: String, _ treatment: BaseTreatment) {
            switch treatment {
            case .argumentChecked: conditional.insert(name)
            case .answered: answered.insert(name)
            case .allowed, .unlisted: allowed.insert(name)
            }
        }

        func applied(to f: Findings) -> Findings {
            var out = f
            out.allowed = allowed.sorted()
            out.conditional = conditional.sorted()
            out.answeredByBase = answered.sorted()
            return out
        }
    }

    /// Sorts the recording into findings.
    public func findings(_ recorded: [Recorded]) -> Findings {
        var f = Findings()
        f.allowed = Self.jailStartSyscalls
        var placement = Placement(f)
        var beyond = Set<String>()
        var dangerousSeen: [String: Findings.Flag] = [:], outside: [String: Findings.Flag] = [:]
        func flag(_ into: inout [String: Findings.Flag], _ call: Recorded) {
            into[call.syscall, default: Findings.Flag(syscall: call.syscall, count: 0, firstArgs: call.firstArgs)].count += call.count
        }
        for call in recorded where call.native {
            let name = call.syscall
            let treatment = treatment(of: name)
            switch treatment {
            case .argumentChecked(let rules):
                placement.place(name, treatment)
                // Denied although the base only has allow rules for it: no condition held.
                if call.answer != "allow" && !rules.contains(where: \.action.denies) { flag(&outside, call) }
            case .answered:
                placement.place(name, treatment)
            case .allowed, .unlisted:
                if dangerous.contains(name) {
                    flag(&dangerousSeen, call)
                } else {
                    placement.place(name, treatment)
                    if case .unlisted = treatment { beyond.insert(name) }
                }
            }
        }
        f = placement.applied(to: f)
        f.beyondBase = beyond.sorted()
        f.dangerous = dangerousSeen.values.sorted { $0.syscall < $1.syscall }
        f.outsideConditions = outside.values.sorted { $0.syscall < $1.syscall }
        return f
    }

    /// Adds syscalls named by the operator (`profile learn --allow`). Names must be known on
    /// this architecture and not dangerous; those the base restricts keep the base's rules.
    public func allowing(_ names: [String], in f: Findings) throws(ProfileError) -> Findings {
        var placement = Placement(f)
        for name in names {
            guard SyscallNames.number(of: name) != nil else {
                throw ProfileError("unknown syscall \"\(name)\" on this architecture")
            }
            guard !dangerous.contains(name) else {
                throw ProfileError("\(name) is dangerous; add it to the profile by hand if you must")
            }
            placement.place(name, treatment(of: name))
        }
        return placement.applied(to: f)
    }

    /// Adds what an earlier learned profile allows (`profile learn --merge`), so one profile
    /// can cover several workloads: its unconditional allows, and the syscalls for which it
    /// carries rules of the base.
    public func merging(_ f: Findings, with earlier: LoadedProfile) throws(ProfileError) -> Findings {
        let earlierPlan = try ProfileValidator.plan(earlier.profile, name: earlier.name)
        var placement = Placement(f)
        for rule in earlierPlan.rules {
            for syscall in rule.syscalls where syscall.number >= 0 {
                let treatment = treatment(of: syscall.name)
                switch treatment {
                case .argumentChecked, .answered:
                    placement.place(syscall.name, treatment)
                case .allowed, .unlisted:
                    // Only what the earlier profile itself allowed outright, never a dangerous one.
                    if rule.action == .allow && !rule.isConditional && !dangerous.contains(syscall.name) {
                        placement.place(syscall.name, treatment)
                    }
                }
            }
        }
        return placement.applied(to: f)
    }

    /// The learned profile as OCI JSON (pretty, stable order), with a `comment` that says how
    /// it was made and what was left out.
    public func profileJSON(_ f: Findings, comment: String) -> String {
        var rules: [JSONValue] = []
        if !f.allowed.isEmpty {
            rules.append(.object([("names", .array(f.allowed.map(JSONValue.string))), ("action", .string("SCMP_ACT_ALLOW"))]))
        }
        // The base's own rules for the syscalls that depend on them, in the base's order and
        // restricted to the syscalls seen.
        let copied = Set(f.conditional + f.answeredByBase)
        for rule in plan.rules {
            let names = rule.syscalls.map(\.name).filter { copied.contains($0) }
            guard !names.isEmpty else { continue }
            let source = base.profile.syscalls[rule.index]
            var object: [(key: String, value: JSONValue)] = [("names", .array(names.map(JSONValue.string))), ("action", .string(source.action))]
            if let e = source.errnoRet { object.append(("errnoRet", .number(e))) }
            if !source.args.isEmpty {
                object.append(("args", .array(source.args.map {
                    .object([("index", .number($0.index)), ("value", .number($0.value)), ("valueTwo", .number($0.valueTwo)), ("op", .string($0.op))])
                })))
            }
            if let c = source.comment { object.append(("comment", .string(c))) }
            rules.append(.object(object))
        }
        var defaultAction = "SCMP_ACT_ERRNO"
        var defaultErrno: Int32? = EPERM
        switch plan.defaultAction {
        case .errno(let e): defaultErrno = e
        case .killProcess: defaultAction = "SCMP_ACT_KILL_PROCESS"; defaultErrno = nil
        case .killThread: defaultAction = "SCMP_ACT_KILL_THREAD"; defaultErrno = nil
        default: break  // a permissive base: the learned profile still denies by default
        }
        var top: [(key: String, value: JSONValue)] = [("comment", .string(comment)), ("defaultAction", .string(defaultAction))]
        if let e = defaultErrno { top.append(("defaultErrnoRet", .number(e))) }
        top.append(("architectures", .array([.string(Architecture.nativeName ?? "SCMP_ARCH_NATIVE")])))
        top.append(("syscalls", .array(rules)))
        // Written in this order (JSONSerialization sorts or scrambles it), so a learned
        // profile reads top-down: comment, defaultAction, ..., syscalls.
        return JSONWriter.pretty.string(.object(top)) + "\n"
    }
}
