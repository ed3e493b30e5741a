#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Crypto
import Glibc
import SealboxBase

/// A profile as read from disk: the name it was asked for, the parsed and validated model, and
/// the exact bytes it was parsed from (the compile cache is keyed by those, so the two always
/// belong together: create values with `ProfileLoader` or `init(name:profile:)`).
public struct LoadedProfile: Sendable {
    public let name: String
    public let profile: SeccompProfile
    public let source: [UInt8]
    /// Hex SHA-256 of `source`, computed once: the compile cache's key starts from it, so a
    /// profile kept in a `ProfileCache` is not hashed again on every run.
    public let sourceDigest: String

    init(name: String, profile: SeccompProfile, source: [UInt8]) {
        self.name = name
        self.profile = profile
        self.source = source
        self.sourceDigest = SHA256.hex(source)
    }

    /// A profile built in code. It is validated, and its canonical JSON (sorted keys) becomes
    /// `source`.
    public init(name: String, profile: SeccompProfile) throws(ProfileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data: Data
        do {
            data = try encoder.encode(profile)
        } catch {
            throw ProfileError.profile(name, "cannot encode: \(error)")
        }
        _ = try ProfileValidator.plan(profile, name: name)
        self.init(name: name, profile: profile, source: Array(data))
    }
}

public enum ProfileLoader {
    /// Profiles larger than this are refused (Docker's default profile is ~13 KiB).
    public static let maxProfileBytes = 4 << 20

    /// nameOrPath: a name like "default" (looked up in the catalog at `profilesDirectory`) or a
    /// path containing "/" or ending ".json" (the command line's reading, `ProfileReference`).
    public static func load(_ nameOrPath: String, profilesDirectory: String) throws(ProfileError) -> LoadedProfile {
        try load(ProfileReference(commandLine: nameOrPath), profilesDirectory: profilesDirectory)
    }

    public static func load(_ reference: ProfileReference, profilesDirectory: String) throws(ProfileError) -> LoadedProfile {
        let (_, bytes) = try readSource(reference, profilesDirectory: profilesDirectory)
        return try parse(bytes, name: reference.description)
    }

    /// True when `nameOrPath` is used as a path (it contains "/" or ends in ".json"), false when
    /// it names a profile in the profiles directory.
    public static func isPath(_ nameOrPath: String) -> Bool {
        nameOrPath.contains("/") || nameOrPath.hasSuffix(".json")
    }

    /// The file `nameOrPath` stands for: itself when it is a path, else
    /// `<profilesDirectory>/<name>.json`.
    public static func path(for nameOrPath: String, profilesDirectory: String) -> String {
        if isPath(nameOrPath) { return nameOrPath }
        let dir = profilesDirectory.hasSuffix("/") ? String(profilesDirectory.dropLast()) : profilesDirectory
        return "\(dir)/\(nameOrPath).json"
    }

    /// Resolves `nameOrPath` like `load` and reads the file's bytes without parsing them
    /// (`sealbox profile check` parses them itself, collecting every problem). Errors: not found,
    /// not a regular file, too large, unreadable.
    public static func readSource(_ nameOrPath: String, profilesDirectory: String) throws(ProfileError) -> (path: String, bytes: [UInt8]) {
        guard !nameOrPath.isEmpty else { throw ProfileError("profile name is empty") }
        return try readSource(ProfileReference(commandLine: nameOrPath), profilesDirectory: profilesDirectory)
    }

    /// A catalog name is read through `ProfileCatalog` (beneath the directory, no symlink, no
    /// FIFO, messages without paths); a file by its path.
    public static func readSource(_ reference: ProfileReference, profilesDirectory: String) throws(ProfileError) -> (path: String, bytes: [UInt8]) {
        switch reference {
        case .catalog(let name):
            guard !name.isEmpty else { throw ProfileError("profile name is empty") }
            return (path(for: name, profilesDirectory: profilesDirectory), try ProfileCatalog(directory: profilesDirectory).read(name))
        case .file(let path):
            guard !path.isEmpty else { throw ProfileError("profile name is empty") }
            return (path, try readFile(path, name: path))
        }
    }

    /// Parses and validates profile JSON held in memory. `name` is used in messages.
    public static func parse(_ source: [UInt8], name: String) throws(ProfileError) -> LoadedProfile {
        let json: JSONValue
        do {
            json = try JSONReader.parse(source)
        } catch {
            throw ProfileError.profile(name, "invalid JSON: \(error.description)")
        }
        let profile: SeccompProfile
        do {
            profile = try SeccompProfile(json: json, nativeArchitecture: Architecture.nativeName)
        } catch {
            throw ProfileError.profile(name, error.text)
        }
        _ = try ProfileValidator.plan(profile, name: name)
        return LoadedProfile(name: name, profile: profile, source: source)
    }

    private static func readFile(_ path: String, name: String) throws(ProfileError) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR {
                throw ProfileError("profile \"\(name)\" not found (looked in \(path))")
            }
            throw ProfileError("profile \"\(name)\": cannot open \(path): \(errorText(e))")
        }
        defer { close(fd) }
        return try readOpened(fd, name: name, where: path)
    }

    /// Reads an opened profile: a regular file of at most `maxProfileBytes`. `place` says
    /// where it is in messages (a path for the operator's files, "in the catalog" otherwise).
    static func readOpened(_ fd: Int32, name: String, where place: String) throws(ProfileError) -> [UInt8] {
        let path = place
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw ProfileError("profile \"\(name)\": cannot stat \(path): \(errorText(errno))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw ProfileError("profile \"\(name)\": \(path) is not a regular file")
        }
        guard st.st_size <= maxProfileBytes else {
            throw ProfileError("profile \"\(name)\": \(path) is \(st.st_size) bytes, more than the \(maxProfileBytes) allowed")
        }
        // Regular: reads never block, so the descriptor can go back to blocking mode.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        switch SmallFile.read(descriptor: fd, limit: maxProfileBytes) {
        case .success(let bytes):
            return bytes
        case .failure(.errno(let e)):
            throw ProfileError("profile \"\(name)\": cannot read \(path): \(errorText(e))")
        case .failure(.tooLarge):
            throw ProfileError("profile \"\(name)\": \(path) is more than the \(maxProfileBytes) bytes allowed")
        }
    }

    static func errorText(_ code: Int32) -> String {
        guard let s = strerror(code) else { return "errno \(code)" }
        return String(cString: s)
    }
}
