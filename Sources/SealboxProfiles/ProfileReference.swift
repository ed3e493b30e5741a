import Glibc

/// Which profile a run uses: one of the operator's catalog by name, or (for the operator's own
/// command line only) a file by path. A tenant's request can only ever make a `.catalog`
/// reference: a name is looked up in the catalog, never joined into a path it could steer.
public enum ProfileReference: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    /// A profile of the catalog (the data directory's profiles/), by name.
    case catalog(String)
    /// A profile file the operator named (`sealbox run --profile ./job.json`).
    case file(String)

    /// `sealbox run --profile NAME|PATH`: a path when it contains "/" or ends in ".json", a
    /// catalog name otherwise.
    public init(commandLine text: String) {
        self = ProfileLoader.isPath(text) ? .file(text) : .catalog(text)
    }

    /// Literals in code read like the command line ("default", "./x.json").
    public init(stringLiteral value: String) {
        self.init(commandLine: value)
    }

    /// What results and messages call it: the name, or the path as given.
    public var description: String {
        switch self {
        case .catalog(let name): name
        case .file(let path): path
        }
    }
}

/// The operator's profiles: `<directory>/<name>.json`, looked up by name only. A name is 1-64
/// letters, digits, `_` or `-` (no dot, no slash, no NUL), so it can never leave the
/// directory; the file is opened with `O_NOFOLLOW | O_NONBLOCK` beneath the directory's own
/// descriptor and must be a regular file, so neither a symlink nor a FIFO planted in the
/// directory makes sealbox read elsewhere or block. Messages never name the directory.
public struct ProfileCatalog: Sendable {
    public let directory: String
    public static let maxNameBytes = 64

    public init(directory: String) {
        self.directory = directory
    }

    public static func isValidName(_ name: String) -> Bool {
        (1...maxNameBytes).contains(name.utf8.count) && name.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 95
        }
    }

    /// The names of the catalog's profiles, sorted: every `NAME.json` that is a regular file
    /// with a valid name. Empty when the directory cannot be read.
    public func names() -> [String] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        for file in DirectoryNames.read(dir).map({ String(decoding: $0, as: UTF8.self) }) {
            guard file.hasSuffix(".json") else { continue }
            let name = String(file.dropLast(".json".count))
            guard Self.isValidName(name) else { continue }
            var st = stat()
            guard lstat(directory + "/" + file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            names.append(name)
        }
        return names.sorted()
    }

    /// The bytes of profile `name`.
    public func read(_ name: String) throws(ProfileError) -> [UInt8] {
        guard Self.isValidName(name) else {
            throw ProfileError("\"\(Self.printable(name))\" is not a profile name (1-\(Self.maxNameBytes) letters, digits, _ or -; never a path)")
        }
        let dirFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dirFD >= 0 else { throw ProfileError("profile \"\(name)\": the profile catalog cannot be opened (\(ProfileLoader.errorText(errno)))") }
        defer { close(dirFD) }
        let fd = openat(dirFD, name + ".json", O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        if fd < 0 {
            let e = errno
            if e == ENOENT || e == ENOTDIR { throw ProfileError("profile \"\(name)\" not found among the installed profiles") }
            if e == ELOOP { throw ProfileError("profile \"\(name)\" is a symbolic link in the catalog, which is not followed") }
            throw ProfileError("profile \"\(name)\" cannot be opened (\(ProfileLoader.errorText(e)))")
        }
        defer { close(fd) }
        return try ProfileLoader.readOpened(fd, name: name, where: "the catalog entry")
    }

    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.prefix(Self.maxNameBytes).map { scalar in
            scalar.value < 0x20 || scalar.value == 0x7F || (0x80..<0xA0).contains(scalar.value) ? "?" : Character(scalar)
        })
    }
}
