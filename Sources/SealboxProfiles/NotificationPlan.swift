import CSealboxSeccomp
import Glibc

/// Which actions of a validated profile are compiled to SECCOMP_RET_USER_NOTIF, and what the
/// supervisor answers each notification with, so that the jailed program sees exactly what the
/// plain filter would have done while the supervisor learns *which* syscall was denied.
///
/// The kernel only tells the supervisor the syscall (number, architecture, arguments), never
/// which rule matched, so a rule is converted only where its answer follows from the syscall
/// alone:
/// - the default action, when it denies (SCMP_ACT_ERRNO → answer that errno; a kill → kill);
/// - a kill rule (and with `.everything`, an ERRNO rule) when every converted rule of that
///   syscall has the same answer. Under a notifying default a converted rule cannot keep its
///   own NOTIFY action (libseccomp refuses a rule with the default action, finding 3 in
///   SeccompCompiler), so the rule is dropped and the syscall reaches the default: exact when
///   the rule is unconditional (the whole syscall gets the rule's answer) or when its answer
///   equals the default's. Any other rule keeps its own action and is simply not recorded.
struct NotificationPlan {
    private struct Use: Hashable {
        var ruleIndex: Int
        var syscall: String
    }

    let compiledDefault: SeccompAction
    /// The filter's bad-arch action: a syscall through an ABI the profile does not list. With
    /// tracking it notifies, so the supervisor names the call ("exit (x86)") and kills, as
    /// SCMP_ACT_KILL_PROCESS would have; without, the kernel kills by itself, unnamed.
    let badArchAction: SeccompAction
    /// nil when nothing notifies.
    let policy: NotificationPolicy?
    /// Rule uses compiled as NOTIFY instead of their own action.
    private let converted: Set<Use>
    /// Rule uses left out of the program: their syscall reaches the notifying default.
    private let dropped: Set<Use>

    init(_ plan: CompilePlan, tracking: ViolationTracking) {
        var fallback: NotificationAnswer?
        if tracking != .off { fallback = Self.answer(for: plan.defaultAction) }
        let compiledDefault: SeccompAction = fallback != nil ? .notify : plan.defaultAction

        func candidate(_ action: SeccompAction) -> NotificationAnswer? {
            switch (tracking, action) {
            case (.off, _): return nil
            case (_, .killProcess), (_, .killThread): return .kill
            case (.everything, .errno(let e)): return .fail(errno: e)
            default: return nil
            }
        }

        // Every use of each syscall name by a rule that reaches the program.
        var usesByName: [String: [(rule: CompilePlan.Rule, answer: NotificationAnswer?)]] = [:]
        for rule in plan.rules where rule.action != plan.defaultAction {
            for syscall in rule.syscalls {
                usesByName[syscall.name, default: []].append((rule, candidate(rule.action)))
            }
        }

        var converted = Set<Use>(), dropped = Set<Use>()
        var bySyscall: [SyscallKey: NotificationAnswer] = [:]
        let arches = [Architecture.nativeToken] + plan.architectures.map(\.token).filter { $0 != Architecture.nativeToken }
        for (name, uses) in usesByName {
            let candidates = uses.filter { $0.answer != nil }
            let answers = Set(candidates.compactMap(\.answer))
            guard answers.count == 1, let answer = answers.first else { continue }
            let keys = arches.compactMap { arch -> SyscallKey? in
                let nr = sbx_seccomp_syscall_resolve_arch(arch, name)
                return nr >= 0 ? SyscallKey.inFilter(arch: arch, number: nr) : nil
            }
            let uses = candidates.map { Use(ruleIndex: $0.rule.index, syscall: name) }
            if compiledDefault == .notify {
                let unconditional = candidates.allSatisfy { !$0.rule.isConditional }
                if unconditional {
                    dropped.formUnion(uses)
                    if answer != fallback { for key in keys { bySyscall[key] = answer } }
                } else if answer == fallback {
                    dropped.formUnion(uses)
                }
            } else {
                converted.formUnion(uses)
                for key in keys { bySyscall[key] = answer }
            }
        }
        self.compiledDefault = compiledDefault
        self.converted = converted
        self.dropped = dropped
        badArchAction = tracking == .off ? .killProcess : .notify
        let notifies = compiledDefault == .notify || !converted.isEmpty || badArchAction == .notify
        // Under a default that does not notify, `fallback` is never consulted; EPERM is a
        // safe answer should a notification ever arrive unaccounted for.
        policy = notifies ? NotificationPolicy(fallback: fallback ?? .fail(errno: EPERM), bySyscall: bySyscall,
                                               architectures: Set(arches)) : nil
    }

    /// The action to compile for one syscall of one rule, or nil to leave the rule out.
    func compiledAction(_ rule: CompilePlan.Rule, _ syscall: String) -> SeccompAction? {
        let use = Use(ruleIndex: rule.index, syscall: syscall)
        if dropped.contains(use) { return nil }
        return converted.contains(use) ? .notify : rule.action
    }

    /// The supervisor's answer that reproduces a denying action; nil for actions that let the
    /// call run (ALLOW, LOG) or that the kernel must deliver itself (TRAP: the program's SIGSYS
    /// handler needs the kernel's siginfo).
    static func answer(for action: SeccompAction) -> NotificationAnswer? {
        switch action {
        case .errno(let e): return .fail(errno: e)
        case .killProcess, .killThread: return .kill
        case .allow, .log, .trap, .notify: return nil
        }
    }
}
