import CSealboxSeccomp
import Crypto
import Glibc
import SealboxBase
import Synchronization

// How profiles become BPF, and what libseccomp 2.5.4 (Debian 12) actually does with them.
// Everything below was found by experiment on libseccomp 2.5.4 / kernel 6.18, not taken from
// documentation: from seccomp_rule_add return codes, the pseudo filter code and the exported BPF,
// and for every claim about behaviour by loading the program and making the syscall (the harness
// of Tests/SealboxProfilesTests/KernelFilterTests.swift, which keeps checking it).
//
// 1. An unconditional rule wins over every other rule for the same syscall, in either order.
//    `ioctl: ALLOW` plus `ioctl: ERRNO if (arg1 & 0xFFFFFFFF) == TIOCSTI` compiles to plain
//    "ioctl → ALLOW": seccomp_rule_add returns 0 for the conditional rule and drops it. The same
//    happens for two unconditional rules with different actions (the first one stays). So the
//    naive Docker-style "allow ioctl, deny TIOCSTI" silently allows TIOCSTI. ProfileValidator
//    refuses such profiles (checkUnconditionalOverrides) instead of compiling them wrongly.
// 2. A comparison whose mask is 0 (`MASKED_EQ value 0`) is "always true"; libseccomp folds it into
//    an unconditional rule, so it cannot serve as a low-priority catch-all either (1. applies).
// 3. A rule whose action equals the default action is rejected with -EACCES. Such a rule is
//    redundant anyway: the compiler skips it, in both tracking modes, so
//    the syscall falls through to the default action (and is recorded when violations are
//    tracked). Consequence: under `defaultAction: SCMP_ACT_ERRNO` (EPERM) a conditional EPERM
//    *exception* to an allowed syscall cannot be written as a deny rule at all.
// 4. What works for "deny TIOCSTI/TIOCLINUX, allow every other ioctl" under a default-deny
//    profile: only conditional ALLOW rules whose union is exactly the complement. The kernel
//    truncates the ioctl cmd to 32 bits, so the rules look only at the low 32 bits (MASKED_EQ
//    with masks inside 0xFFFFFFFF): for each bit where TIOCSTI (0x5412) and TIOCLINUX (0x541C)
//    agree, "allow if this bit differs"; for bits 1-3, where they differ, three two-bit patterns
//    that exclude exactly 001 and 110. 32 rules, profiles/default.json. Checked in the kernel:
//    0x5000-0x54FF (while developing) and, in KernelFilterTests.ioctlSweep, 0x5400-0x543F plus
//    every single-bit neighbour of both commands, each with high words 0, 0x1 and 0xFFFFFFFF:
//    exactly the two commands are denied (CVE-2019-10063: a 64-bit compare is bypassed by
//    setting high bits; sign-extended commands such as 0xFFFFFFFF802C542A stay allowed).
// 5. Two comparisons of the same argument in one rule: -EINVAL (ProfileValidator explains it).
// 6. x32: for an x86_64-only filter libseccomp emits `if nr >= 0x40000000 (X32_SYSCALL_BIT) and
//    nr != -1 → bad-arch action`, so x32 syscalls never reach the x86_64 allowlist; with the
//    bad-arch action KILL_PROCESS the x32 getpid (0x40000027) kills the caller with SIGSYS.
//    Adding SCMP_ARCH_X32 to a profile instead gives x32 its own, translated allowlist (rules must
//    be added after the arch; the compiler adds architectures first).
// 7. Syscall names that exist only on other architectures (chown32 on x86_64) resolve to pseudo
//    numbers (< -1); seccomp_rule_add_array accepts them and adds them only for the filter's
//    arches that have them. Names unknown everywhere resolve to -1 and are a profile error.
// 8. SCMP_ACT_NOTIFY as the default action is accepted (API level 6 on this kernel), and as a
//    rule action under another default. The exported program must be installed with
//    SECCOMP_FILTER_FLAG_NEW_LISTENER, and a supervisor must answer each notification.
// 9. Precedence between stacked filters (or actions) is fixed by the kernel: KILL_PROCESS >
//    KILL_THREAD > TRAP > ERRNO > USER_NOTIF > TRACE > LOG > ALLOW, so a kill cannot be
//    observed through a second, notifying filter. To name the syscall behind a kill, the kill
//    itself becomes a notification and the supervisor kills (NotificationPlan).
// 10. The bad-arch action may be SCMP_ACT_NOTIFY (SCMP_FLTATR_ACT_BADARCH accepts any action the
//    kernel supports). The notification then carries the foreign ABI's audit arch (i386 for
//    int 0x80) and its own syscall number; an x32 call carries the x86_64 arch and the number
//    with bit 30 set (0x40000027 for getpid). Checked in the kernel by KernelFilterTests.

/// A compiled, installable filter.
public struct CompiledSeccompFilter: Sendable {
    public let profileName: String
    /// Hex SHA-256 of (source bytes + compile options); the cache key.
    public let digest: String
    /// Raw `struct sock_filter` array (8 bytes each, native endian), ready for
    /// seccomp(SECCOMP_SET_MODE_FILTER).
    public let program: [UInt8]
    public var instructionCount: Int { program.count / 8 }
    /// How the supervisor answers notified syscalls; nil when the program notifies nothing.
    public let policy: NotificationPolicy?
    /// True when the program returns SECCOMP_RET_USER_NOTIF for some syscalls: install with
    /// SECCOMP_FILTER_FLAG_NEW_LISTENER and answer every notification per `policy`.
    public var notifiesViolations: Bool { policy != nil }
    /// errno the default action answers with (EPERM when the default is not SCMP_ACT_ERRNO).
    public var violationErrno: Int32 {
        if case .fail(let e) = policy?.fallback { return e }
        return EPERM
    }

    public init(profileName: String, digest: String, program: [UInt8], policy: NotificationPolicy?) {
        self.profileName = profileName
        self.digest = digest
        self.program = program
        self.policy = policy
    }
}

/// Compiles profiles to BPF with libseccomp, caching by digest. Thread-safe. Parent side only.
public final class SeccompCompiler: Sendable {
    private struct Entry: Sendable {
        let program: [UInt8]
        let policy: NotificationPolicy?
    }

    private let cache = Mutex<[String: Entry]>([:])

    public init() {}

    /// Number of distinct compiled filters held.
    public var cachedCount: Int { cache.withLock { $0.count } }

    /// trackViolations: `.denials` when true (what `violations` of a run needs), `.off` when false.
    public func compile(_ loaded: LoadedProfile, trackViolations: Bool) throws(ProfileError) -> CompiledSeccompFilter {
        try compile(loaded, tracking: trackViolations ? .denials : .off)
    }

    /// Compiles `loaded`; with tracking, denying actions become SECCOMP_RET_USER_NOTIF wherever
    /// that keeps the profile's behaviour exact (see `NotificationPlan`), so a supervisor can
    /// record which syscall was denied and answer it as the profile would have.
    public func compile(_ loaded: LoadedProfile, tracking: ViolationTracking) throws(ProfileError) -> CompiledSeccompFilter {
        let digest = Self.digest(ofSourceDigest: loaded.sourceDigest, tracking: tracking)
        if let hit = cache.withLock({ $0[digest] }) {
            return CompiledSeccompFilter(profileName: loaded.name, digest: digest, program: hit.program, policy: hit.policy)
        }
        // Compile outside the lock: each compile has its own libseccomp context, and a slow compile
        // must not block cache hits. Two threads racing on the same digest produce identical
        // entries; the first stored one is kept.
        let built = try Self.build(loaded, tracking: tracking)
        let entry = Entry(program: built.program, policy: built.policy)
        let stored = cache.withLock { cache -> Entry in
            if let existing = cache[digest] { return existing }
            cache[digest] = entry
            return entry
        }
        return CompiledSeccompFilter(profileName: loaded.name, digest: digest, program: stored.program, policy: stored.policy)
    }

    /// libseccomp's pseudo filter code for the profile (debugging aid; not cached).
    public func pseudoFilterCode(_ loaded: LoadedProfile, trackViolations: Bool) throws(ProfileError) -> String {
        let plan = try ProfileValidator.plan(loaded.profile, name: loaded.name)
        let notify = NotificationPlan(plan, tracking: trackViolations ? .denials : .off)
        let ctx = try Self.buildContext(plan, notify: notify, name: loaded.name)
        defer { sbx_seccomp_ctx_release(ctx) }
        return try Self.exportPFC(ctx, name: loaded.name)
    }

    /// Options that change the program are part of the key, as are the host facts profiles can
    /// depend on (native arch for archMap, kernel for minKernel) and the libseccomp version.
    static func digest(ofSourceDigest source: String, tracking: ViolationTracking) -> String {
        let options = "\u{0}sealbox-seccomp-v4 track=\(tracking.rawValue) arch=\(Architecture.nativeToken) kernel=\(KernelVersion.runningRelease) libseccomp=\(sbx_seccomp_library_version())"
        return SHA256.hex(Array((source + options).utf8))
    }

    private static func build(_ loaded: LoadedProfile, tracking: ViolationTracking) throws(ProfileError)
        -> (program: [UInt8], policy: NotificationPolicy?)
    {
        let plan = try ProfileValidator.plan(loaded.profile, name: loaded.name)
        let notify = NotificationPlan(plan, tracking: tracking)
        let ctx = try buildContext(plan, notify: notify, name: loaded.name)
        defer { sbx_seccomp_ctx_release(ctx) }
        return (try exportBPF(ctx, name: loaded.name), notify.policy)
    }

    static func exportBPF(_ ctx: OpaquePointer, name: String) throws(ProfileError) -> [UInt8] {
        var err = [CChar](repeating: 0, count: Int(SBX_SECCOMP_ERR_LEN))
        var buffer: UnsafeMutablePointer<UInt8>?
        var length = 0
        let rc = sbx_seccomp_ctx_export_bpf(ctx, &buffer, &length, &err, Self.errLen)
        guard rc == 0, let buffer else { throw ProfileError.profile(name, "export: \(cString(err))") }
        defer { sbx_seccomp_free(buffer) }
        let program = Array(UnsafeBufferPointer(start: buffer, count: length))
        // BPF_MAXINSNS: the kernel refuses longer programs with EINVAL.
        guard program.count / 8 <= 4096 else {
            throw ProfileError.profile(name, "the compiled filter has \(program.count / 8) instructions, more than the kernel's 4096")
        }
        return program
    }

    static func exportPFC(_ ctx: OpaquePointer, name: String) throws(ProfileError) -> String {
        var err = [CChar](repeating: 0, count: Int(SBX_SECCOMP_ERR_LEN))
        var text: UnsafeMutablePointer<CChar>?
        let rc = sbx_seccomp_ctx_export_pfc(ctx, &text, &err, Self.errLen)
        guard rc == 0, let text else { throw ProfileError.profile(name, "export: \(Self.cString(err))") }
        defer { sbx_seccomp_free(text) }
        return String(cString: text)
    }

    static func buildContext(_ plan: CompilePlan, notify: NotificationPlan, name: String) throws(ProfileError) -> OpaquePointer {
        var err = [CChar](repeating: 0, count: Int(SBX_SECCOMP_ERR_LEN))
        var created: OpaquePointer?
        // Bad-arch action KILL_PROCESS: a syscall through another ABI (int 0x80, x32) that the
        // profile did not list kills the whole process, rather than one thread (libseccomp's
        // default) or returning an errno a program might retry around. With tracking the
        // kill is the supervisor's, after it has named the call (NotificationPlan).
        var rc = sbx_seccomp_ctx_create(notify.compiledDefault.raw, notify.badArchAction.raw, &created, &err, Self.errLen)
        guard rc == 0, let ctx = created else {
            throw ProfileError.profile(name, "defaultAction: \(cString(err))")
        }
        do throws(ProfileError) {
            // Architectures before rules: libseccomp adds a rule only for the arches present then.
            for arch in plan.architectures {
                rc = sbx_seccomp_ctx_add_arch(ctx, arch.token, &err, Self.errLen)
                guard rc == 0 else { throw ProfileError.profile(name, "architecture \(arch.name): \(cString(err))") }
            }
            for rule in plan.rules {
                // Finding 3: a rule with the default action is redundant and libseccomp refuses it.
                if rule.action == plan.defaultAction { continue }
                for syscall in rule.syscalls {
                    guard let action = notify.compiledAction(rule, syscall.name) else { continue }
                    rc = rule.comparisons.withUnsafeBufferPointer { cmps in
                        sbx_seccomp_ctx_add_rule(ctx, action.raw, syscall.number, cmps.baseAddress,
                                                 UInt32(cmps.count), &err, Self.errLen)
                    }
                    guard rc == 0 else {
                        throw ProfileError.profile(name, "syscalls[\(rule.index)] (\(syscall.name)): \(cString(err))")
                    }
                }
            }
        } catch {
            sbx_seccomp_ctx_release(ctx)
            throw error
        }
        return ctx
    }

    static let errLen = Int(SBX_SECCOMP_ERR_LEN)

    static func cString(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
