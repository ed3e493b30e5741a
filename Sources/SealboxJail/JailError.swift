import Glibc

/// The one error type of SealboxJail: a stable code, a readable message and, when a syscall
/// failed, the stage and errno ("mount /proc: EPERM (Operation not permitted)").
/// A program that exits non-zero, is killed, or trips a limit is a `JailResult`, never this.
public struct JailError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// The caller asked for something invalid (bad size, bad env name, missing file).
        case invalidSpec = "invalid_spec"
        /// The seccomp profile could not be loaded or compiled.
        case profile
        /// The root filesystem is missing or malformed.
        case rootfs
        /// A cgroup could not be created, limited or removed.
        case cgroup
        /// This host cannot run jails (no user namespaces, not root, old kernel).
        case unsupportedHost = "unsupported_host"
        /// Setting up the jail failed in a syscall.
        case setup
        /// A session's /work, as earlier steps left it, has something in the way of this run's
        /// files (a directory or a symlink where a file goes). The tenant's to fix.
        case workspace
    }

    public let code: Code
    public let message: String
    public let stage: String?
    public let errno: Int32?
    /// The part of the spec at fault, when it is one (`files`).
    public var field: String?

    public init(_ code: Code, _ message: String, stage: String? = nil, errno: Int32? = nil, field: String? = nil) {
        self.code = code
        self.message = message
        self.stage = stage
        self.errno = errno
        self.field = field
    }

    public var description: String { message }

    static func syscall(_ code: Code, _ stage: String, _ errnoValue: Int32) -> JailError {
        JailError(code, "\(stage): \(ErrnoName.describe(errnoValue))", stage: stage, errno: errnoValue)
    }
}

/// Symbolic errno names, so messages read "EPERM (Operation not permitted)" like strace.
public enum ErrnoName {
    private static let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
        E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD", EAGAIN: "EAGAIN",
        ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT", EBUSY: "EBUSY", EEXIST: "EEXIST",
        EXDEV: "EXDEV", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL",
        ENFILE: "ENFILE", EMFILE: "EMFILE", ENOTTY: "ENOTTY", ETXTBSY: "ETXTBSY", EFBIG: "EFBIG",
        ENOSPC: "ENOSPC", ESPIPE: "ESPIPE", EROFS: "EROFS", EMLINK: "EMLINK", EPIPE: "EPIPE",
        ERANGE: "ERANGE", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS", ELOOP: "ELOOP",
        EOVERFLOW: "EOVERFLOW", EOPNOTSUPP: "EOPNOTSUPP", ETIMEDOUT: "ETIMEDOUT", EUSERS: "EUSERS",
        EAFNOSUPPORT: "EAFNOSUPPORT", ENETUNREACH: "ENETUNREACH", ECONNREFUSED: "ECONNREFUSED",
        EADDRNOTAVAIL: "EADDRNOTAVAIL", EDQUOT: "EDQUOT",
    ]

    public static func name(_ value: Int32) -> String { names[value] ?? "errno \(value)" }

    public static func describe(_ value: Int32) -> String {
        "\(name(value)) (\(String(cString: strerror(value))))"
    }
}
