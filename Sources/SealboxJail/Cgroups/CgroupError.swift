import Glibc

/// The single error type of the cgroup drivers.
///
/// `description` reads like `write /sys/fs/cgroup/pids/sealbox/x/pids.max: EINVAL (Invalid argument)`,
/// optionally followed by `: <message>`. Without an errno it is `<stage> <path>: <message>`.
public struct CgroupError: Error, CustomStringConvertible, Sendable, Equatable {
    /// What was being done: "open", "write", "read", "mkdir", "rmdir", "kill", "validate", "detect", ...
    public var stage: String
    /// The file or directory involved (may be empty when no path applies).
    public var path: String
    /// The errno of the failing system call, if one failed.
    public var errno: Int32?
    /// Extra human-readable context.
    public var message: String

    public init(stage: String, path: String, errno: Int32? = nil, message: String = "") {
        self.stage = stage
        self.path = path
        self.errno = errno
        self.message = message
    }

    public var description: String {
        var text = path.isEmpty ? stage : "\(stage) \(path)"
        if let errno {
            text += ": \(CgroupError.errnoName(errno)) (\(CgroupError.errnoDescription(errno)))"
        }
        if !message.isEmpty {
            text += ": \(message)"
        }
        return text
    }

    /// Symbolic name of an errno value ("EINVAL"), or "errno N" for unlisted values.
    public static func errnoName(_ code: Int32) -> String {
        switch code {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case ESRCH: return "ESRCH"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case ENXIO: return "ENXIO"
        case E2BIG: return "E2BIG"
        case EBADF: return "EBADF"
        case ECHILD: return "ECHILD"
        case EAGAIN: return "EAGAIN"
        case ENOMEM: return "ENOMEM"
        case EACCES: return "EACCES"
        case EFAULT: return "EFAULT"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case EXDEV: return "EXDEV"
        case ENODEV: return "ENODEV"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case EINVAL: return "EINVAL"
        case ENFILE: return "ENFILE"
        case EMFILE: return "EMFILE"
        case EFBIG: return "EFBIG"
        case ENOSPC: return "ENOSPC"
        case EROFS: return "EROFS"
        case ERANGE: return "ERANGE"
        case ENAMETOOLONG: return "ENAMETOOLONG"
        case ENOTEMPTY: return "ENOTEMPTY"
        case ELOOP: return "ELOOP"
        case EOPNOTSUPP: return "EOPNOTSUPP"
        case ECANCELED: return "ECANCELED"
        default: return "errno \(code)"
        }
    }

    /// `strerror` text for an errno value.
    public static func errnoDescription(_ code: Int32) -> String {
        guard let cString = strerror(code) else { return "unknown error" }
        return String(cString: cString)
    }
}
