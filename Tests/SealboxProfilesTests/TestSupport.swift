import CSealboxSeccomp
import Glibc
import SealboxProfiles

/// Paths of the checked-in profiles, found relative to this file (Tests/SealboxProfilesTests/…).
enum Fixtures {
    static let repositoryRoot: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)  // TestSupport.swift, SealboxProfilesTests, Tests
        return parts.joined(separator: "/")
    }()

    static let profilesDirectory = repositoryRoot + "/profiles"

    /// A private scratch directory for files a test writes.
    static func temporaryDirectory() -> String {
        var template = Array("/tmp/sealbox-profiles-test.XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        return String(cString: made!)
    }

    static func write(_ text: String, to path: String) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        precondition(fd >= 0, "cannot create \(path)")
        defer { close(fd) }
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        precondition(n == bytes.count)
    }

    static func parse(_ json: String, name: String = "x.json") throws(ProfileError) -> LoadedProfile {
        try ProfileLoader.parse(Array(json.utf8), name: name)
    }
}

/// What happened to a probe child.
enum ProbeOutcome: Equatable, CustomStringConvertible {
    /// The syscall probe returned this errno (0: it succeeded); for exec probes, the exit status.
    case exited(Int32)
    case signaled(Int32)
    case timedOut

    var description: String {
        switch self {
        case .exited(let code): return "exited(\(code): \(code == 0 ? "ok" : String(cString: strerror(code))))"
        case .signaled(let sig): return "signaled(\(sig))"
        case .timedOut: return "timedOut"
        }
    }
}

struct ProbeResult {
    var outcome: ProbeOutcome
    /// Syscall numbers the harness answered as a supervisor (listener mode).
    var notified: [Int32]
    /// The architecture (AUDIT_ARCH_*) each of them came with.
    var notifiedArches: [UInt32] = []
    /// Names as a run's violations give them: "ptrace", "getpid (x86)", "getpid (x32)".
    var notifiedNames: [String] {
        notified.indices.map { i in
            i < notifiedArches.count ? SyscallKey(arch: notifiedArches[i], number: notified[i]).name : (SyscallNames.name(of: notified[i]) ?? "#\(notified[i])")
        }
    }
}

struct ProbeSetupFailure: Error, CustomStringConvertible {
    let stage: Int32
    let errno: Int32
    var description: String { "selftest harness failed at stage \(stage): \(String(cString: strerror(errno)))" }
}

/// Runs probes in a forked child under a compiled filter, via sbx_seccomp_selftest.
enum Probe {
    enum ABI: Sendable {
        case native, i386
        var raw: Int32 { self == .native ? Int32(SBX_SELFTEST_ABI_NATIVE.rawValue) : Int32(SBX_SELFTEST_ABI_I386.rawValue) }
    }

    /// Calls syscall `nr` with `args` in a child that installed `filter` (nil: no filter, a baseline).
    static func syscall(_ nr: Int, _ args: [UInt] = [], filter: CompiledSeccompFilter?, abi: ABI = .native) throws -> ProbeResult {
        var req = sbx_seccomp_selftest_req()
        req.nr = nr
        req.abi = abi.raw
        let a = args + Array(repeating: 0, count: 6 - args.count)
        req.args = (a[0], a[1], a[2], a[3], a[4], a[5])
        req.timeout_ms = 10_000
        return try run(&req, filter: filter)
    }

    /// Execs `argv` (argv[0] is the path) with stdio on /dev/null in a child that installed `filter`.
    static func exec(_ argv: [String], env: [String] = ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "LANG=C.UTF-8"],
                     filter: CompiledSeccompFilter?, timeoutMS: Int32 = 30_000) throws -> ProbeResult {
        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup($0) } + [nil]
        defer {
            cArgv.forEach { free($0) }
            cEnv.forEach { free($0) }
        }
        var req = sbx_seccomp_selftest_req()
        req.timeout_ms = timeoutMS
        return try cArgv.withUnsafeBufferPointer { argvBuf in
            try cEnv.withUnsafeBufferPointer { envBuf in
                try argv[0].withCString { path in
                    req.path = path
                    req.argv = argvBuf.baseAddress
                    req.envp = envBuf.baseAddress
                    return try run(&req, filter: filter)
                }
            }
        }
    }

    private static func run(_ req: inout sbx_seccomp_selftest_req, filter: CompiledSeccompFilter?) throws -> ProbeResult {
        var res = sbx_seccomp_selftest_result()
        let rc: Int32
        if let filter {
            req.use_listener = filter.notifiesViolations ? 1 : 0
            req.answer_errno = filter.violationErrno
            rc = filter.program.withUnsafeBytes { prog in
                req.prog = prog.baseAddress
                req.prog_len = prog.count
                return sbx_seccomp_selftest(&req, &res)
            }
        } else {
            rc = sbx_seccomp_selftest(&req, &res)
        }
        guard rc == 0 else { throw ProbeSetupFailure(stage: res.setup_stage, errno: res.setup_errno) }
        let outcome: ProbeOutcome
        if res.timed_out != 0 {
            outcome = .timedOut
        } else if res.signaled != 0 {
            outcome = .signaled(res.signal_number)
        } else {
            outcome = .exited(res.exit_code)
        }
        let count = min(Int(res.notified_count), Int(SBX_SELFTEST_MAX_NOTIFIED))
        let notified = withUnsafeBytes(of: res.notified_nr) { Array($0.bindMemory(to: Int32.self).prefix(count)) }
        let arches = withUnsafeBytes(of: res.notified_arch) { Array($0.bindMemory(to: UInt32.self).prefix(count)) }
        return ProbeResult(outcome: outcome, notified: notified, notifiedArches: arches)
    }
}

/// Syscall numbers by name (native arch), failing loudly for typos in tests.
func nr(_ name: String) -> Int {
    guard let n = SyscallNames.number(of: name) else { preconditionFailure("no native syscall \(name)") }
    return Int(n)
}
