import CSealboxSpawn
import Glibc
import SealboxBase
import SealboxProfiles

/// A session's /work: a size-capped tmpfs that lives outside every jail (sbx_workspace.c).
/// The caller fills it before a run, the jail sees it as /work, and after the run the caller
/// reads what the program left there, through this object's fd: the jail is gone by then,
/// so nothing can change under the walk.
///
/// All paths are relative to the workspace root. Every lookup goes component by component
/// with O_NOFOLLOW, so a symlink the program left (`/work/x -> /etc`) is never followed.
public final class Workspace: @unchecked Sendable {
    public let limitBytes: UInt64
    /// Cap on files + directories + symlinks (the tmpfs inode count).
    public let maxEntries: Int
    /// The detached mount; handed to the jail's spawn, which attaches it at /work.
    let mountFD: Int32
    private let owner: (uid: UInt32, gid: UInt32)

    public static let maximumDepth = 64

    public enum Kind: String, Sendable {
        case file, directory, symlink
    }

    public struct Item: Sendable, Equatable {
        public var path: String
        public var kind: Kind
        public var mode: UInt32
        public var size: UInt64
        public var target: String?
    }

    public init(limitBytes: UInt64, maxEntries: Int = 65536) throws(JailError) {
        guard geteuid() == 0 else {
            throw JailError(.unsupportedHost, "session workspaces need root (a tmpfs outside the jail is mounted with fsmount)")
        }
        self.limitBytes = limitBytes
        self.maxEntries = maxEntries
        owner = (Executor.hostNobody, Executor.hostNobody)
        var stage: UnsafePointer<CChar>?
        let fd = sbx_workspace_create(limitBytes, UInt64(maxEntries), owner.uid, owner.gid, &stage)
        guard fd >= 0 else {
            throw JailError.syscall(.setup, "workspace: " + (stage.map { String(cString: $0) } ?? "create"), -fd)
        }
        mountFD = fd
    }

    /// A view of a /work that is already mounted (a live jail's own), through `directoryFD`,
    /// which it takes: for reading it (`walk`, `openFile`, `usage`), as a snapshot does.
    init(viewing directoryFD: Int32, limitBytes: UInt64, maxEntries: Int = 65536) {
        self.limitBytes = limitBytes
        self.maxEntries = maxEntries
        owner = (Executor.hostNobody, Executor.hostNobody)
        mountFD = directoryFD
    }

    deinit { close(mountFD) }

    // MARK: Filling (before a run)

    public func makeDirectory(_ path: String, mode: UInt32) throws(JailError) {
        let (parent, name) = try openParent(of: path)
        defer { close(parent) }
        if mkdirat(parent, name, 0o700) != 0 && errno != EEXIST { throw failure("mkdir", path) }
        try own(parent, name, mode: mode & 0o1777, path: path)
    }

    /// Creates or replaces a regular file with `contents`.
    public func writeFile(_ path: String, mode: UInt32, contents: [UInt8]) throws(JailError) {
        try writeFile(path, mode: mode) { out throws(JailError) in
            guard contents.withUnsafeBytes({ Interrupted.writeAll(out, $0) }) else { throw self.failure("write", path) }
        }
    }

    /// Creates or replaces a regular file with what `source` holds from offset 0.
    public func writeFile(_ path: String, mode: UInt32, copyingFrom source: Int32) throws(JailError) {
        try writeFile(path, mode: mode) { out throws(JailError) in
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            var offset: off_t = 0
            while true {
                let n = Interrupted.retry { buffer.withUnsafeMutableBytes { pread(source, $0.baseAddress, $0.count, offset) } }
                if n < 0 { throw self.failure("read source of", path) }
                if n == 0 { return }
                offset += off_t(n)
                guard buffer.withUnsafeBytes({ Interrupted.writeAll(out, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }) else {
                    throw self.failure("write", path)
                }
            }
        }
    }

    public func makeSymlink(_ path: String, target: String) throws(JailError) {
        guard !target.isEmpty, !target.utf8.contains(0), target.utf8.count < Int(PATH_MAX) else {
            throw JailError(.invalidSpec, "workspace symlink \(path): bad target")
        }
        let (parent, name) = try openParent(of: path)
        defer { close(parent) }
        unlinkat(parent, name, 0)
        guard symlinkat(target, parent, name) == 0 else { throw failure("symlink", path) }
        guard fchownat(parent, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("chown", path) }
    }

    private func writeFile(_ path: String, mode: UInt32, body: (Int32) throws(JailError) -> Void) throws(JailError) {
        let (parent, name) = try openParent(of: path)
        defer { close(parent) }
        let out = openat(parent, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard out >= 0 else { throw failure(errno == ENOSPC ? "workspace full writing" : "create", path) }
        defer { close(out) }
        try body(out)
        guard fchown(out, owner.uid, owner.gid) == 0, fchmod(out, mode & 0o1777) == 0 else { throw failure("chown/chmod", path) }
    }

    private func own(_ parent: Int32, _ name: String, mode: UInt32, path: String) throws(JailError) {
        guard fchownat(parent, name, owner.uid, owner.gid, AT_SYMLINK_NOFOLLOW) == 0,
              fchmodat(parent, name, mode, 0) == 0 else { throw failure("chown/chmod", path) }
    }

    // MARK: Reading (after a run)

    /// Every file, directory and symlink, parents before children. Other kinds (fifos,
    /// sockets) and names that are not UTF-8 are not kept; they are returned in `skipped`.
    public func walk() throws(JailError) -> (items: [Item], skipped: [String]) {
        var items: [Item] = []
        var skipped: [String] = []
        let root = openat(mountFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard root >= 0 else { throw failure("open", ".") }
        var pending: [(fd: Int32, prefix: String, depth: Int)] = [(root, "", 0)]
        defer { for entry in pending { close(entry.fd) } }
        while let (dirFD, prefix, depth) = pending.popLast() {
            defer { close(dirFD) }
            for name in try Self.names(in: dirFD, path: prefix) {
                guard let text = String(validating: name, as: UTF8.self) else {
                    skipped.append(prefix + String(decoding: name, as: UTF8.self))
                    continue
                }
                let path = prefix + text
                var st = stat()
                guard fstatat(dirFD, text, &st, AT_SYMLINK_NOFOLLOW) == 0 else { throw failure("stat", path) }
                guard items.count < maxEntries else {
                    throw JailError(.invalidSpec, "workspace holds more than \(maxEntries) entries")
                }
                let mode = UInt32(st.st_mode) & 0o1777
                switch st.st_mode & S_IFMT {
                case S_IFREG:
                    items.append(Item(path: path, kind: .file, mode: mode, size: UInt64(st.st_size)))
                case S_IFLNK:
                    items.append(Item(path: path, kind: .symlink, mode: 0o777, size: 0, target: try readLink(dirFD, text, path)))
                case S_IFDIR:
                    guard depth < Self.maximumDepth else {
                        throw JailError(.invalidSpec, "workspace nests directories deeper than \(Self.maximumDepth) levels at \(path)")
                    }
                    items.append(Item(path: path, kind: .directory, mode: mode, size: 0))
                    let child = openat(dirFD, text, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                    guard child >= 0 else { throw failure("open", path) }
                    pending.append((child, path + "/", depth + 1))
                default:
                    skipped.append(path)
                }
            }
        }
        items.sort { $0.path.utf8.lexicographicallyPrecedes($1.path.utf8) }
        return (items, skipped)
    }

    /// Opens a regular file of the workspace for reading; the caller closes it.
    public func openFile(_ path: String) throws(JailError) -> Int32 {
        let (parent, name) = try openParent(of: path)
        defer { close(parent) }
        let fd = openat(parent, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", path) }
        return fd
    }

    /// Bytes in use and free, as the tmpfs counts them (its limit is the workspace limit).
    public var usage: (usedBytes: UInt64, freeBytes: UInt64) {
        var fs = statvfs()
        guard fstatvfs(mountFD, &fs) == 0 else { return (0, 0) }
        let block = UInt64(fs.f_frsize)
        return ((UInt64(fs.f_blocks) - UInt64(fs.f_bfree)) * block, UInt64(fs.f_bavail) * block)
    }

    // MARK: Paths

    /// Checks a relative path: components that are not empty, ".", "..", and no NUL.
    static func components(_ path: String) -> [String]? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !parts.isEmpty, path.utf8.count < Int(PATH_MAX), !path.utf8.contains(0) else { return nil }
        for part in parts where part.isEmpty || part == "." || part == ".." || part.utf8.count > Int(NAME_MAX) {
            return nil
        }
        return parts
    }

    /// The directory holding `path` (opened without following symlinks) and the last name.
    private func openParent(of path: String) throws(JailError) -> (Int32, String) {
        guard let parts = Self.components(path) else {
            throw JailError(.invalidSpec, "workspace path \"\(path)\" must be relative, without empty, . or .. parts")
        }
        var dirFD = openat(mountFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw failure("open", ".") }
        for part in parts.dropLast() {
            let next = openat(dirFD, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            let saved = errno
            close(dirFD)
            guard next >= 0 else {
                errno = saved
                throw failure("open directory of", path)
            }
            dirFD = next
        }
        return (dirFD, parts[parts.count - 1])
    }

    private static func names(in dirFD: Int32, path: String) throws(JailError) -> [[UInt8]] {
        let copy = dup(dirFD)
        guard copy >= 0, let dir = fdopendir(copy) else {
            throw JailError.syscall(.setup, "workspace: read directory /work/\(path)", errno)
        }
        defer { closedir(dir) }
        return DirectoryNames.read(dir)
    }

    private func readLink(_ dirFD: Int32, _ name: String, _ path: String) throws(JailError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlinkat(dirFD, name, &buffer, Int(PATH_MAX))
        guard n >= 0 else { throw failure("readlink", path) }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func failure(_ what: String, _ path: String) -> JailError {
        let code = errno
        if code == ENOSPC {
            return JailError(.invalidSpec, "workspace full: /work/\(path) does not fit in the workspace limit of \(ByteSize.format(limitBytes))", errno: code)
        }
        return JailError.syscall(.setup, "workspace: \(what) /work/\(path)", code)
    }
}
