import CSealboxSpawn
import Foundation
import Glibc
import SealboxBase
import SealboxProfiles

/// Why a file operation on a live jail's /work failed, in terms an API can answer with.
public struct LiveFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// Not a relative path of plain names (empty part, `.`, `..`, NUL, too long), or one
        /// that leads out of /work (a symlink or mount on the way).
        case badPath = "bad_path"
        case notFound = "not_found"
        /// Not a regular file where one is read (a directory, FIFO, socket, device).
        case notAFile = "not_a_file"
        case notADirectory = "not_a_directory"
        /// A directory that is not empty, or a name taken by another kind.
        case conflict
        /// The workspace is full.
        case noSpace = "no_space"
        /// The jail's own user may not do it (the jail changed the permissions).
        case permissionDenied = "permission_denied"
        case sandboxEnded = "sandbox_ended"
        case io
    }

    public var kind: Kind
    /// Names the path as the caller gave it (relative to /work), never a host path.
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    static func from(errno code: Int32, _ what: String, _ path: String) -> LiveFileError {
        let shown = "/work/" + Printable.text(path, limit: 256)
        switch code {
        case ENOENT: return LiveFileError(.notFound, "\(shown): no such file or directory")
        case ENOTDIR: return LiveFileError(.notADirectory, "\(shown): a part of the path is not a directory")
        case EXDEV, ELOOP: return LiveFileError(.badPath, "\(shown): the path leads through a symlink or out of /work")
        case EISDIR: return LiveFileError(.conflict, "\(shown) is a directory")
        case EEXIST, ENOTEMPTY: return LiveFileError(.conflict, code == ENOTEMPTY ? "\(shown): the directory is not empty" : "\(shown) exists")
        case ENOSPC, EDQUOT, EFBIG: return LiveFileError(.noSpace, "\(shown): the workspace is full")
        case ENAMETOOLONG: return LiveFileError(.badPath, "\(shown): name too long")
        case EACCES, EPERM: return LiveFileError(.permissionDenied, "\(shown): the sandbox's user may not \(what) it")
        default: return LiveFileError(.io, "\(what) \(shown): \(ErrnoName.describe(code))")
        }
    }
}

/// One entry of a directory listing or a stat.
public struct LiveFileInfo: Sendable, Equatable, Codable {
    /// The name (in a listing) or the path as asked (for a stat), relative to /work.
    public var name: String
    /// file, directory, symlink, fifo, socket or other.
    public var type: String
    public var size: UInt64
    /// Permission bits.
    public var mode: UInt32
    public var modifiedMs: Int64
    /// A symlink's target text (never followed).
    public var target: String?

    enum CodingKeys: String, CodingKey {
        case name, type, size, mode, target
        case modifiedMs = "modified_ms"
    }
}

/// A page of a directory listing, in byte order of the names.
public struct LiveDirectoryPage: Sendable, Equatable {
    public var entries: [LiveFileInfo]
    /// Pass as `after` for the next page; nil on the last.
    public var next: String?
    /// Names that are not UTF-8, left out (an API cannot name them).
    public var skipped: Int
}

/// A file being uploaded into a live jail's /work (`LiveFiles.beginUpload`): `write` its
/// bytes, then `commit` (renamed into place) or `abort` (removed). Used by one task at a time.
public final class LiveUpload: @unchecked Sendable {
    /// The temporary file, open for writing.
    public let fd: Int32
    private let parent: Int32
    private let temporary: String
    private let name: String
    private let path: String
    private var open = true
    public private(set) var bytesWritten: UInt64 = 0

    init(parent: Int32, temporary: String, name: String, path: String, fd: Int32) {
        self.parent = parent
        self.temporary = temporary
        self.name = name
        self.path = path
        self.fd = fd
    }

    deinit { abort() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws(LiveFileError) {
        try LiveFiles.writeAll(fd, bytes, path: path)
        bytesWritten += UInt64(bytes.count)
    }

    /// Renames the file into place.
    public func commit() throws(LiveFileError) {
        guard open else { throw LiveFileError(.io, "the upload of /work/\(Printable.text(path, limit: 256)) was already finished") }
        open = false
        close(fd)
        let ids = Executor.outsideIDs
        let rc = sbx_rename_in(parent, temporary, name, ids.uid, ids.gid)
        if rc != 0 { _ = sbx_unlink_in(parent, temporary, 0, ids.uid, ids.gid) }
        close(parent)
        if rc != 0 { throw LiveFileError.from(errno: -rc, "rename into", path) }
    }

    /// Removes the temporary file; the old file, if any, stays. Idempotent.
    public func abort() {
        guard open else { return }
        open = false
        close(fd)
        let ids = Executor.outsideIDs
        _ = sbx_unlink_in(parent, temporary, 0, ids.uid, ids.gid)
        close(parent)
    }
}

/// The files of a live jail's /work, read and written from outside the jail (sbx_files.c):
/// every path is resolved beneath /work by the kernel, so no symlink, `..` or mount the jail
/// planted leads sealbox anywhere else; what is created is owned by the jail's user.
public struct LiveFiles: Sendable {
    let jail: LiveJail

    public static let maximumPageSize = 10_000

    /// Opens a regular file for reading: its descriptor (the caller closes it) and size.
    /// FIFOs, sockets and devices are refused without waiting on them (O_NONBLOCK).
    public func openForReading(_ path: String) throws(LiveFileError) -> (fd: Int32, size: UInt64) {
        let relative = try Self.check(path)
        return try jail.withWorkDirectory { work throws(LiveFileError) in
            let fd = sbx_open_beneath(work, relative, O_RDONLY | O_NONBLOCK | O_NOFOLLOW, 0)
            guard fd >= 0 else { throw LiveFileError.from(errno: -fd, "open", path) }
            var info = Glibc.stat()
            guard fstat(fd, &info) == 0 else {
                let code = errno
                close(fd)
                throw LiveFileError.from(errno: code, "stat", path)
            }
            guard info.st_mode & S_IFMT == S_IFREG else {
                close(fd)
                throw LiveFileError(.notAFile, "/work/\(Printable.text(path, limit: 256)) is a \(Self.kind(info.st_mode)), not a file")
            }
            return (fd, UInt64(info.st_size))
        }
    }

    /// Starts creating or replacing the file at `path` (its missing parent directories are
    /// made): the bytes go to a temporary file in the same directory, renamed into place by
    /// `commit`, so a failed or abandoned upload (the workspace full, the caller gone) leaves
    /// the old file, or none, never half a file.
    public func beginUpload(_ path: String, mode: UInt32 = 0o644) throws(LiveFileError) -> LiveUpload {
        let parts = try Self.parts(path)
        return try jail.withWorkDirectory { work throws(LiveFileError) in
            let parent = try Self.openDirectory(work, parts.dropLast(), path: path, create: true, jail: jail)
            let temporary = ".sealbox-upload-\(RandomID.hex64(prefix: ""))"
            let ids = Executor.outsideIDs
            let fd = sbx_create_beneath(parent, temporary, O_WRONLY | O_EXCL, mode & 0o777, ids.uid, ids.gid)
            guard fd >= 0 else {
                close(parent)
                throw LiveFileError.from(errno: -fd, "create", path)
            }
            _ = fchmod(fd, mode & 0o777)  // exact, whatever the umask did
            return LiveUpload(parent: parent, temporary: temporary, name: parts[parts.count - 1], path: path, fd: fd)
        }
    }

    /// Creates or replaces the file at `path` with what `fill` writes to the descriptor it
    /// gets (see `beginUpload`).
    public func write(_ path: String, mode: UInt32 = 0o644, _ fill: (Int32) throws(LiveFileError) -> Void) throws(LiveFileError) {
        let upload = try beginUpload(path, mode: mode)
        do throws(LiveFileError) {
            try fill(upload.fd)
            try upload.commit()
        } catch {
            upload.abort()
            throw error
        }
    }

    /// Writes `bytes` to `path` (see `write(_:mode:_:)`).
    public func write(_ path: String, bytes: [UInt8], mode: UInt32 = 0o644) throws(LiveFileError) {
        try write(path, mode: mode) { fd throws(LiveFileError) in try Self.writeAll(fd, bytes, path: path) }
    }

    /// Writes all of `bytes` to `fd` (`Interrupted.writeAll`); a full workspace is `noSpace`.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws(LiveFileError) {
        guard Interrupted.writeAll(fd, bytes) else { throw LiveFileError.from(errno: errno, "write", path) }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws(LiveFileError) {
        guard bytes.withUnsafeBytes({ Interrupted.writeAll(fd, $0) }) else { throw LiveFileError.from(errno: errno, "write", path) }
    }

    /// What is at `path` (a symlink as itself, never followed).
    public func stat(_ path: String) throws(LiveFileError) -> LiveFileInfo {
        let relative = try Self.check(path)
        return try jail.withWorkDirectory { work throws(LiveFileError) in
            let fd = sbx_open_beneath(work, relative, LiveFiles.openPath | O_NOFOLLOW, 0)
            guard fd >= 0 else { throw LiveFileError.from(errno: -fd, "stat", path) }
            defer { close(fd) }
            return try Self.info(of: fd, name: path, path: path)
        }
    }

    /// One page of the directory at `path` ("" or "." for /work itself): names after `after`
    /// in byte order, at most `limit`.
    public func list(_ path: String, after: String? = nil, limit: Int = 1000) throws(LiveFileError) -> LiveDirectoryPage {
        let relative = path.isEmpty || path == "." ? "." : try Self.check(path)
        let limit = max(1, min(limit, Self.maximumPageSize))
        return try jail.withWorkDirectory { work throws(LiveFileError) in
            let fd = sbx_open_beneath(work, relative, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0)
            guard fd >= 0 else { throw LiveFileError.from(errno: -fd, "open directory", path) }
            guard let dir = fdopendir(fd) else {
                let code = errno
                close(fd)
                throw LiveFileError.from(errno: code, "read directory", path)
            }
            defer { closedir(dir) }
            var skipped = 0
            var names: [String] = []
            for raw in DirectoryNames.read(dir) {
                guard let name = String(validating: raw, as: UTF8.self) else {
                    skipped += 1
                    continue
                }
                if let after, !Self.byteOrder(after, name) { continue }
                names.append(name)
            }
            names.sort(by: Self.byteOrder)
            let page = names.prefix(limit)
            var entries: [LiveFileInfo] = []
            entries.reserveCapacity(page.count)
            for name in page {
                let child = openat(dirfd(dir), name, LiveFiles.openPath | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else { continue }  // removed meanwhile
                defer { close(child) }
                if let info = try? Self.info(of: child, name: name, path: path + "/" + name) { entries.append(info) }
            }
            return LiveDirectoryPage(entries: entries, next: names.count > limit ? page.last : nil, skipped: skipped)
        }
    }

    /// Makes the directory at `path` and any missing parent. An existing directory is fine.
    public func makeDirectory(_ path: String) throws(LiveFileError) {
        let parts = try Self.parts(path)
        try jail.withWorkDirectory { work throws(LiveFileError) in
            close(try Self.openDirectory(work, parts[...], path: path, create: true, jail: jail))
        }
    }

    /// Removes the file, symlink or directory at `path`; a directory with what is in it only
    /// when `recursive` (at most `maximumRemovals` entries, else nothing more is removed and
    /// the call says so).
    public func remove(_ path: String, recursive: Bool = false) throws(LiveFileError) {
        let parts = try Self.parts(path)
        try jail.withWorkDirectory { work throws(LiveFileError) in
            let parent = try Self.openDirectory(work, parts.dropLast(), path: path, create: false, jail: jail)
            defer { close(parent) }
            var budget = Self.maximumRemovals
            try Self.remove(parts[parts.count - 1], in: parent, recursive: recursive, path: path, budget: &budget)
        }
    }

    public static let maximumRemovals = 1_000_000

    /// O_PATH (010000000 on Linux), which Glibc's Swift overlay does not export.
    static let openPath: Int32 = 0o10000000

    // MARK: internals

    private static func remove(_ name: String, in parent: Int32, recursive: Bool, path: String, budget: inout Int) throws(LiveFileError) {
        var info = Glibc.stat()
        guard fstatat(parent, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { throw LiveFileError.from(errno: errno, "stat", path) }
        budget -= 1
        guard budget >= 0 else { throw LiveFileError(.conflict, "/work/\(Printable.text(path, limit: 256)): more than \(maximumRemovals) entries; removed in part") }
        let ids = Executor.outsideIDs
        if info.st_mode & S_IFMT != S_IFDIR {
            let rc = sbx_unlink_in(parent, name, 0, ids.uid, ids.gid)
            guard rc == 0 else { throw LiveFileError.from(errno: -rc, "remove", path) }
            return
        }
        if recursive {
            let fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { throw LiveFileError.from(errno: errno, "open directory", path) }
            guard let dir = fdopendir(fd) else {
                let code = errno
                close(fd)
                throw LiveFileError.from(errno: code, "read directory", path)
            }
            defer { closedir(dir) }
            for raw in DirectoryNames.read(dir) {
                let child = String(decoding: raw, as: UTF8.self)
                // A name that is not UTF-8 cannot be spelled as a String: removed by its bytes
                // (a file; such a directory stops the removal with a clear error).
                if Array(child.utf8) != raw {
                    let rc = (raw + [0]).withUnsafeBytes { sbx_unlink_in(dirfd(dir), $0.baseAddress!.assumingMemoryBound(to: CChar.self), 0, ids.uid, ids.gid) }
                    if rc != 0 { throw LiveFileError.from(errno: -rc, "remove an entry (its name is not UTF-8) of", path) }
                    continue
                }
                try remove(child, in: dirfd(dir), recursive: true, path: path + "/" + child, budget: &budget)
            }
        }
        let rc = sbx_unlink_in(parent, name, 1, ids.uid, ids.gid)
        guard rc == 0 else { throw LiveFileError.from(errno: -rc, "remove", path) }
    }

    /// Opens (creating when asked) each directory of `parts` beneath `work`; the last one's
    /// descriptor (O_PATH-free, so it can be written in) is returned.
    private static func openDirectory(_ work: Int32, _ parts: ArraySlice<String>, path: String, create: Bool, jail: LiveJail) throws(LiveFileError) -> Int32 {
        var current = dup(work)
        guard current >= 0 else { throw LiveFileError.from(errno: errno, "open", "") }
        // The jail's /work descriptor is O_PATH: reopen it as a directory that can be written in.
        let opened = sbx_open_beneath(current, ".", O_RDONLY | O_DIRECTORY, 0)
        close(current)
        guard opened >= 0 else { throw LiveFileError.from(errno: -opened, "open", "") }
        current = opened
        let ids = Executor.outsideIDs
        var walked: [String] = []
        for part in parts {
            walked.append(part)
            var next = sbx_open_beneath(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0)
            if next == -ENOENT && create {
                let made = sbx_mkdir_in(current, part, 0o755, ids.uid, ids.gid)
                if made != 0 && made != -EEXIST {
                    close(current)
                    throw LiveFileError.from(errno: -made, "make directory", walked.joined(separator: "/"))
                }
                next = sbx_open_beneath(current, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0)
            }
            // A symlink on the way is ENOTDIR here (O_DIRECTORY | O_NOFOLLOW): say what it is.
            var link = Glibc.stat()
            let isLink = next == -ENOTDIR && fstatat(current, part, &link, AT_SYMLINK_NOFOLLOW) == 0 && link.st_mode & S_IFMT == S_IFLNK
            close(current)
            if isLink { throw LiveFileError.from(errno: ELOOP, "open directory", walked.joined(separator: "/")) }
            guard next >= 0 else { throw LiveFileError.from(errno: -next, "open directory", walked.joined(separator: "/")) }
            current = next
        }
        return current
    }

    private static func info(of fd: Int32, name: String, path: String) throws(LiveFileError) -> LiveFileInfo {
        var info = Glibc.stat()
        guard fstat(fd, &info) == 0 else { throw LiveFileError.from(errno: errno, "stat", path) }
        var target: String?
        if info.st_mode & S_IFMT == S_IFLNK {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlinkat(fd, "", &buffer, Int(PATH_MAX))
            if n >= 0 { target = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        }
        return LiveFileInfo(
            name: name, type: kind(info.st_mode), size: UInt64(max(info.st_size, 0)), mode: UInt32(info.st_mode & 0o7777),
            modifiedMs: Int64(info.st_mtim.tv_sec) * 1000 + Int64(info.st_mtim.tv_nsec) / 1_000_000, target: target)
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFREG: return "file"
        case S_IFDIR: return "directory"
        case S_IFLNK: return "symlink"
        case S_IFIFO: return "fifo"
        case S_IFSOCK: return "socket"
        default: return "other"
        }
    }

    /// A path relative to /work, as the kernel will get it; or `badPath`.
    static func check(_ path: String) throws(LiveFileError) -> String {
        try parts(path).joined(separator: "/")
    }

    static func parts(_ path: String) throws(LiveFileError) -> [String] {
        guard let parts = Workspace.components(path) else {
            throw LiveFileError(.badPath, "\"\(Printable.text(path, limit: 256))\" is not a path in /work: give it relative to /work, without empty, . or .. parts, at most 4095 bytes")
        }
        return parts
    }

    static func byteOrder(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }
}

extension LiveJail {
    /// Its /work's files (`LiveFiles`).
    public var files: LiveFiles { LiveFiles(jail: self) }

    /// `body` with a descriptor on the jail's /work, valid for the call (a duplicate made
    /// while the jail has not ended, so `end` never closes it underneath).
    func withWorkDirectory<T>(_ body: (Int32) throws(LiveFileError) -> T) throws(LiveFileError) -> T {
        let fd = duplicateWorkDirectory()
        guard fd >= 0 else { throw LiveFileError(.sandboxEnded, "the sandbox has ended") }
        defer { close(fd) }
        return try body(fd)
    }
}
