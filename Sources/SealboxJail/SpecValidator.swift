import Foundation
import Glibc
import SealboxBase

/// What a spec may hold, as predicates: `SpecValidator` enforces them before a jail is built,
/// and request decoders (HTTP, MCP) check them first so that a refusal names the request's
/// own field (`env.NAME`, `files[3].name`).
public enum SpecRules {
    /// Names the jail sets itself or that later components reserve.
    public static let reservedEnvironment: Set<String> = ["SEALBOX_TOKEN", "SEALBOX_BROKER"]
    public static let maxArguments = 4096
    public static let maxEnvironment = 1024
    /// Seed files per run: each becomes a write into /work before the program starts.
    public static let maxFiles = 1024
    public static let maxSeedBytes = 16 << 20
    public static let maxFileNameBytes = 255

    /// A plain name in /work: not empty, not `.` or `..`, no `/`, no NUL, at most 255 bytes.
    public static func isFileName(_ name: String) -> Bool {
        !name.isEmpty && name != "." && name != ".." && !name.contains("/") && !name.utf8.contains(0) && name.utf8.count <= maxFileNameBytes
    }

    /// Letters, digits and `_`, not starting with a digit.
    public static func isEnvironmentName(_ name: String) -> Bool {
        SpecValidator.isEnvironmentName(name)
    }
}

/// Checks a `JailSpec` before anything is created, with messages a user can act on.
enum SpecValidator {
    static var reservedEnvironment: Set<String> { SpecRules.reservedEnvironment }
    static var maxArguments: Int { SpecRules.maxArguments }
    static var maxSeedBytes: Int { SpecRules.maxSeedBytes }

    static func validate(_ spec: JailSpec) throws(JailError) {
        guard let program = spec.command.first, !program.isEmpty else {
            throw JailError(.invalidSpec, "no command to run")
        }
        guard spec.command.count <= maxArguments else {
            throw JailError(.invalidSpec, "too many arguments (\(spec.command.count), at most \(maxArguments))")
        }
        for argument in spec.command where argument.utf8.contains(0) {
            throw JailError(.invalidSpec, "argument contains a NUL byte")
        }
        for (name, value) in spec.environment {
            guard isEnvironmentName(name) else {
                throw JailError(.invalidSpec, "invalid environment variable name \"\(name)\" (use letters, digits and _; not starting with a digit)")
            }
            guard !reservedEnvironment.contains(name) else {
                throw JailError(.invalidSpec, "environment variable \(name) is reserved for sealbox")
            }
            guard !value.utf8.contains(0) else {
                throw JailError(.invalidSpec, "environment variable \(name) contains a NUL byte")
            }
        }
        guard spec.environment.count <= SpecRules.maxEnvironment else {
            throw JailError(.invalidSpec, "too many environment variables (\(spec.environment.count), at most \(SpecRules.maxEnvironment))")
        }
        guard spec.files.count <= SpecRules.maxFiles else {
            throw JailError(.invalidSpec, "too many files for /work (\(spec.files.count), at most \(SpecRules.maxFiles))")
        }
        var names = Set<String>()
        var total = 0
        for file in spec.files {
            guard SpecRules.isFileName(file.name) else {
                throw JailError(.invalidSpec, "invalid file name \"\(file.name)\" for /work (a plain name, no /)")
            }
            guard names.insert(file.name).inserted else {
                throw JailError(.invalidSpec, "file \(file.name) given twice")
            }
            total += file.contents.count
        }
        guard total <= maxSeedBytes, UInt64(total) <= spec.limits.diskBytes else {
            throw JailError(.invalidSpec, "files for /work total \(total) bytes, more than the disk limit or 16 MiB")
        }
        try LimitTable.validate(spec.limits)
    }

    static func runID(_ id: String) throws(JailError) -> String {
        guard !id.isEmpty, id.utf8.count <= 48,
              id.utf8.allSatisfy({ isAlphaNumeric($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else {
            throw JailError(.invalidSpec, "invalid run id \"\(id)\" (1-48 letters, digits, - or _)")
        }
        return id
    }

    /// The jail's whole environment: PATH, HOME, LANG, then the caller's values (which may
    /// override LANG or PATH). Nothing is inherited from the host.
    static func environment(_ spec: JailSpec) -> [(String, String)] {
        var env: [(String, String)] = [("PATH", Executor.jailPath), ("HOME", "/work"), ("LANG", "C.UTF-8")]
        if let door = spec.door {
            if door.clientDirectory != nil { env[0].1 += ":" + door.jailClientPath }
            env += door.environment.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value) }
        }
        for (name, value) in spec.environment {
            if let i = env.firstIndex(where: { $0.0 == name }) { env[i].1 = value } else { env.append((name, value)) }
        }
        return env
    }

    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9")) else { return false }
        return name.utf8.allSatisfy { isAlphaNumeric($0) || $0 == UInt8(ascii: "_") }
    }

    private static func isAlphaNumeric(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
            || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }
}

/// What the host must offer before any jail can be built.
enum HostCheck {
    static func requireJailSupport(
        euid: uid_t = geteuid(),
        read: (String) -> String? = { try? readSmallFile($0) }
    ) throws(JailError) {
        if euid != 0 {
            if let text = read("/proc/sys/kernel/unprivileged_userns_clone"), text.hasPrefix("0") {
                throw JailError(.unsupportedHost, "not running as root and unprivileged user namespaces are disabled (sysctl kernel.unprivileged_userns_clone=0): run sealbox as root or enable them")
            }
            if let text = read("/proc/sys/user/max_user_namespaces"), text.hasPrefix("0") {
                throw JailError(.unsupportedHost, "not running as root and user namespaces are disabled (sysctl user.max_user_namespaces=0): run sealbox as root or enable them")
            }
        }
        guard read("/proc/self/ns/user") != nil || access("/proc/self/ns/user", F_OK) == 0 else {
            throw JailError(.unsupportedHost, "this kernel has no user namespaces (CONFIG_USER_NS)")
        }
    }

    static func capLastCap() -> Int32 {
        if let text = try? readSmallFile("/proc/sys/kernel/cap_last_cap"),
           let value = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            return value
        }
        return 63
    }

    static func makeDirectory(_ path: String, mode: mode_t) throws(JailError) {
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw JailError.syscall(.setup, "mkdir \(path)", errno)
        }
        var st = stat()
        guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw JailError(.setup, "\(path) exists and is not a directory")
        }
    }

    static func readSmallFile(_ path: String) throws(JailError) -> String {
        switch SmallFile.read(path, limit: 4096) {
        case .success(let data): return String(decoding: data, as: UTF8.self)
        case .failure(.errno(let code)): throw JailError.syscall(.setup, "read \(path)", code)
        case .failure(.tooLarge): throw JailError(.setup, "\(path) is unexpectedly large")
        }
    }
}
