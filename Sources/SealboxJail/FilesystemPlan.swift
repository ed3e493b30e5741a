import CSealboxSpawn
import Glibc
import SealboxBase
import SealboxProfiles

/// One step the child executes before pivot_root, with the jail-side path for messages.
struct FilesystemOp: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case mkdir(mode: UInt32)
        case mkfile
        case symlink(target: String)
        case bind(source: String, attributes: UInt64, lockedFlags: UInt)
        /// A bind whose source is a path inside the jail's own root (made by earlier ops): its
        /// mountinfo line names that path on the jail's tmpfs, never a host path.
        case bindWithin(jailSource: String, attributes: UInt64)
        case tmpfs(options: String)
        /// A new devpts instance (the jail's own ptys).
        case devpts(options: String)
        case proc
        case writeFile(contents: [UInt8], mode: UInt32)
        /// A detached mount (a session workspace), attached here with move_mount.
        case attachMount(fd: Int32)
    }

    var kind: Kind
    /// Path inside the jail ("/usr"), joined to the new root's mount point at spawn time.
    var jailPath: String

    var summary: String {
        switch kind {
        case .mkdir: return "mkdir \(jailPath)"
        case .mkfile: return "create mount point \(jailPath)"
        case .symlink(let target): return "symlink \(jailPath) -> \(target)"
        case .bind(let source, _, _): return "bind \(source) on \(jailPath)"
        case .bindWithin(let source, _): return "bind \(source) on \(jailPath)"
        case .tmpfs: return "mount tmpfs \(jailPath)"
        case .devpts: return "mount devpts \(jailPath)"
        case .proc: return "mount \(jailPath)"
        case .writeFile: return "write \(jailPath)"
        case .attachMount: return "attach the session workspace on \(jailPath)"
        }
    }
}

/// Builds the jail's filesystem: a tmpfs root holding read-only binds of the rootfs, a fresh
/// /proc, a small /dev (see `addDevices`), and /work + /tmp as writable self-binds of that same
/// tmpfs, so the disk limit (the tmpfs size) covers both together. The root itself is remounted
/// read-only after pivot_root; the self-binds and /dev's own mounts stay writable.
struct FilesystemPlan: Sendable {
    static let readOnlyAttributes = UInt64(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
    /// Host device nodes bound into /dev. tty is the caller's controlling terminal, whatever
    /// it is (tty_open resolves 5:0 to current->signal->tty, ENXIO without one): in a jail,
    /// only a pty of the jail's own devpts can ever be that. Everything else a Debian /dev
    /// holds is left out on purpose: docs/threat-model.md, "/dev".
    static let deviceNodes = ["null", "zero", "full", "random", "urandom", "tty"]
    /// devpts options: a private instance whose ptmx anyone in the jail may open, and whose
    /// ptys belong to the jail's one group (the only gid mapped in its user namespace, so the
    /// only one devpts accepts; Debian's tty group 5 does not exist in the jail) with mode 0620.
    /// `max` bounds the jail's ptys: every devpts instance but the host's draws on one pool
    /// (kernel.pty.max less kernel.pty.reserve), which one jail must not drain for the others.
    static let maxPtys = 64
    static var devptsOptions: String { "newinstance,ptmxmode=0666,mode=0620,gid=\(Executor.jailGID),max=\(maxPtys)" }
    /// Inodes of /dev/shm (each semaphore or segment is one): bounds the kernel memory of
    /// empty files, as `size` bounds the data.
    static let shmInodes = 16384

    /// /dev/shm's tmpfs options for a size in bytes.
    static func shmOptions(bytes: UInt64) -> String { "size=\(bytes),nr_inodes=\(shmInodes),mode=1777" }
    /// Top-level names of a rootfs directory that the jail provides itself.
    /// (.sealbox-rootfs is scripts/build-rootfs.sh's marker.)
    static let providedByJail: Set<String> = ["proc", "dev", "sys", "tmp", "work", "run", "lost+found", ".sealbox-rootfs"]

    private(set) var ops: [FilesystemOp] = []

    static func build(
        rootfs: RootfsSource, etcDirectory: String, files: [SeedFile], binds: [BindMount], door: JailDoor? = nil,
        workspaceFD: Int32? = nil, shmBytes: UInt64 = Limits().devShmBytes
    ) throws(JailError) -> FilesystemPlan {
        var plan = FilesystemPlan()
        switch rootfs {
        case .host: try plan.addHostRootfs(etcDirectory: etcDirectory)
        case .directory(let dir): try plan.addDirectoryRootfs(dir)
        }
        plan.add(.mkdir(mode: 0o555), "/proc")
        plan.add(.proc, "/proc")
        plan.addDevices(shmBytes: shmBytes)
        plan.add(.mkdir(mode: 0o755), "/work")
        if let workspaceFD {
            // A session's /work is its own tmpfs, already holding the seed files (Executor).
            plan.add(.attachMount(fd: workspaceFD), "/work")
        } else {
            plan.add(.bind(source: "", attributes: UInt64(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV), lockedFlags: 0), "/work")
        }
        plan.add(.mkdir(mode: 0o1777), "/tmp")
        plan.add(.bind(source: "", attributes: UInt64(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV), lockedFlags: 0), "/tmp")
        for file in files where workspaceFD == nil {
            plan.add(.writeFile(contents: file.contents, mode: file.executable ? 0o755 : 0o644), "/work/" + file.name)
        }
        for bind in binds { try plan.addExtraBind(bind) }
        if let door { try plan.addDoor(door, rootfs: rootfs) }
        return plan
    }

    /// The door's socket, and its clients: on PATH at `jailClientPath`, and for python's
    /// `import` over the rootfs's /usr/local/lib/python3.*/dist-packages (on python's default
    /// path; empty on Debian, so nothing is hidden that a jail would miss). The clients are
    /// copied into the jail's root, not bound: a bind's mountinfo line would show the host's
    /// install path.
    private mutating func addDoor(_ door: JailDoor, rootfs: RootfsSource) throws(JailError) {
        try addExtraBind(BindMount(hostPath: door.socketPath, jailPath: door.jailSocketPath, readOnly: true))
        guard let client = door.clientDirectory else { return }
        add(.mkdir(mode: 0o755), door.jailClientPath)
        for name in try Self.listDirectory(client).sorted() {
            let host = client + "/" + name
            var st = stat()
            guard stat(host, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            switch SmallFile.read(host, limit: Self.maxCopiedFileBytes, flags: O_RDONLY | O_CLOEXEC | O_NOFOLLOW) {
            case .success(let contents):
                add(.writeFile(contents: contents, mode: (st.st_mode & 0o111) != 0 ? 0o755 : 0o644), door.jailClientPath + "/" + name)
            case .failure(.errno(let code)):
                throw JailError(.rootfs, "cannot read the client file \(host): \(ErrnoName.describe(code))")
            case .failure(.tooLarge):
                throw JailError(.rootfs, "the client file \(host) is larger than 1 MiB")
            }
        }
        let rootPrefix: String
        switch rootfs {
        case .host: rootPrefix = ""
        case .directory(let dir): rootPrefix = dir
        }
        let localLib = rootPrefix + "/usr/local/lib"
        for name in ((try? Self.listDirectory(localLib)) ?? []).sorted() where name.hasPrefix("python3") {
            let site = "/usr/local/lib/\(name)/dist-packages"
            var st = stat()
            if stat(rootPrefix + site, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
                add(.bindWithin(jailSource: door.jailClientPath, attributes: Self.readOnlyAttributes), site)
            }
        }
    }

    private mutating func add(_ kind: FilesystemOp.Kind, _ jailPath: String) {
        ops.append(FilesystemOp(kind: kind, jailPath: jailPath))
    }

    /// Binds a host path read-only, creating the right kind of mount point.
    private mutating func addReadOnlyBind(host: String, jail: String) throws(JailError) {
        var st = stat()
        guard stat(host, &st) == 0 else {
            throw JailError(.rootfs, "cannot bind \(host) into the jail: \(ErrnoName.describe(errno))")
        }
        add((st.st_mode & S_IFMT) == S_IFDIR ? .mkdir(mode: 0o755) : .mkfile, jail)
        add(.bind(source: host, attributes: Self.readOnlyAttributes, lockedFlags: Self.lockedFlags(of: host)), jail)
    }

    /// Mirrors a top-level host entry: a symlink stays a symlink (merged /usr), a directory is
    /// bound read-only, a missing one is skipped.
    private mutating func mirror(host: String, jail: String) throws(JailError) {
        var st = stat()
        guard lstat(host, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFLNK {
            add(.symlink(target: try Self.readLink(host)), jail)
        } else {
            try addReadOnlyBind(host: host, jail: jail)
        }
    }

    private mutating func addHostRootfs(etcDirectory: String) throws(JailError) {
        try addReadOnlyBind(host: "/usr", jail: "/usr")
        for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            try mirror(host: "/" + name, jail: "/" + name)
        }
        add(.mkdir(mode: 0o755), "/etc")
        let synthetic = try Self.listDirectory(etcDirectory).filter { !$0.hasPrefix(".") }.sorted()
        guard synthetic.contains("passwd") else {
            throw JailError(.rootfs, "synthetic /etc at \(etcDirectory) has no passwd file")
        }
        // Small files are copied into the root tmpfs rather than bound: no host path shows in
        // the jail's mountinfo, and a write is cheaper than a mount. The root is read-only
        // after pivot_root, so they are too.
        for name in synthetic { try addCopy(host: etcDirectory + "/" + name, jail: "/etc/" + name) }
        // The loader's cache and configuration, and matplotlib's defaults (Debian keeps them
        // in /etc, and matplotlib refuses to import without them): small, nothing secret.
        for name in ["ld.so.cache", "ld.so.conf", "matplotlibrc"] where !synthetic.contains(name) && access("/etc/" + name, R_OK) == 0 {
            try addCopy(host: "/etc/" + name, jail: "/etc/" + name)
        }
        // Debian's alternatives symlinks (awk, editor, ...) and the timezone; nothing secret.
        for name in ["alternatives", "localtime"] where !synthetic.contains(name) {
            try mirror(host: "/etc/" + name, jail: "/etc/" + name)
        }
    }

    static let maxCopiedFileBytes = 1 << 20

    private mutating func addCopy(host: String, jail: String) throws(JailError) {
        let contents: [UInt8]
        switch SmallFile.read(host, limit: Self.maxCopiedFileBytes, flags: O_RDONLY | O_CLOEXEC | O_NOFOLLOW) {
        case .success(let data):
            contents = data
        case .failure(.errno(let code)):
            throw JailError(.rootfs, "cannot read \(host): \(ErrnoName.describe(code))")
        case .failure(.tooLarge):
            throw JailError(.rootfs, "\(host) is larger than 1 MiB; put large files in a --rootfs directory")
        }
        add(.writeFile(contents: contents, mode: 0o644), jail)
    }

    private mutating func addDirectoryRootfs(_ dir: String) throws(JailError) {
        var st = stat()
        guard stat(dir, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw JailError(.rootfs, "rootfs \(dir) is not a directory")
        }
        let entries = try Self.listDirectory(dir)
        guard entries.contains("usr") || entries.contains("bin") else {
            throw JailError(.rootfs, "rootfs \(dir) does not look like a root filesystem (no usr/ or bin/); build one with scripts/build-rootfs.sh")
        }
        for name in entries.sorted() where !Self.providedByJail.contains(name) {
            try mirror(host: dir + "/" + name, jail: "/" + name)
        }
    }

    /// /dev: the harmless host nodes, the links every program expects, the jail's own ptys
    /// and its own /dev/shm. /dev itself lives in the root tmpfs and is read-only after
    /// pivot_root; /dev/pts and /dev/shm are mounts of their own and stay writable.
    private mutating func addDevices(shmBytes: UInt64) {
        add(.mkdir(mode: 0o755), "/dev")
        for node in Self.deviceNodes {
            add(.mkfile, "/dev/" + node)
            // Device binds keep their device semantics (they are the host's devtmpfs nodes);
            // they are made nosuid/noexec, not read-only, so /dev/null stays writable.
            add(.bind(source: "/dev/" + node, attributes: UInt64(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC), lockedFlags: Self.lockedFlags(of: "/dev/" + node)), "/dev/" + node)
        }
        add(.symlink(target: "/proc/self/fd"), "/dev/fd")
        add(.symlink(target: "/proc/self/fd/0"), "/dev/stdin")
        add(.symlink(target: "/proc/self/fd/1"), "/dev/stdout")
        add(.symlink(target: "/proc/self/fd/2"), "/dev/stderr")
        // Terminals: a private devpts, and /dev/ptmx pointing into it (devpts(5), "the
        // recommended way": a symlink to pts/ptmx), so posix_openpt, openpty and forkpty work
        // and the host's ptys, or another jail's, are not there to open. TIOCSTI stays
        // denied by the profiles' ioctl rules.
        add(.mkdir(mode: 0o755), "/dev/pts")
        add(.devpts(options: Self.devptsOptions), "/dev/pts")
        add(.symlink(target: "pts/ptmx"), "/dev/ptmx")
        // POSIX shared memory and semaphores (shm_open, sem_open: files in /dev/shm): a tmpfs
        // of the jail's own, sticky and world-writable like the host's, size-capped; it goes
        // with the jail's mount namespace, so nothing outlives the run.
        add(.mkdir(mode: 0o1777), "/dev/shm")
        add(.tmpfs(options: Self.shmOptions(bytes: shmBytes)), "/dev/shm")
    }

    private mutating func addExtraBind(_ bind: BindMount) throws(JailError) {
        guard bind.jailPath.hasPrefix("/"), !bind.jailPath.split(separator: "/").contains("..") else {
            throw JailError(.invalidSpec, "bind target \(bind.jailPath) must be an absolute path without ..")
        }
        var parent = ""
        for component in bind.jailPath.split(separator: "/").dropLast() {
            parent += "/" + component
            add(.mkdir(mode: 0o755), parent)
        }
        var st = stat()
        guard stat(bind.hostPath, &st) == 0 else {
            throw JailError(.invalidSpec, "cannot bind \(bind.hostPath): \(ErrnoName.describe(errno))")
        }
        add((st.st_mode & S_IFMT) == S_IFDIR ? .mkdir(mode: 0o755) : .mkfile, bind.jailPath)
        let attributes = bind.readOnly ? Self.readOnlyAttributes : UInt64(MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)
        add(.bind(source: bind.hostPath, attributes: attributes, lockedFlags: Self.lockedFlags(of: bind.hostPath)), bind.jailPath)
    }

    /// Mount flags of the mount holding `path` that a user namespace may not clear; only the
    /// MS_REMOUNT fallback (kernels without mount_setattr) needs them.
    static func lockedFlags(of path: String) -> UInt {
        UInt(sbx_locked_mount_flags(path))
    }

    static func readLink(_ path: String) throws(JailError) -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink(path, &buffer, Int(PATH_MAX))
        guard n >= 0 else { throw JailError(.rootfs, "readlink \(path): \(ErrnoName.describe(errno))") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func listDirectory(_ path: String) throws(JailError) -> [String] {
        guard let dir = opendir(path) else {
            throw JailError(.rootfs, "cannot read \(path): \(ErrnoName.describe(errno))")
        }
        defer { closedir(dir) }
        return DirectoryNames.read(dir).map { String(decoding: $0, as: UTF8.self) }
    }
}
