import Synchronization

/// Loaded profiles kept between runs, so a run pays for reading its profile file but not for
/// parsing and validating it again (the JSON, and one libseccomp name lookup per syscall
/// listed: most of a run's setup before this cache). An entry is reused only when the file's
/// bytes are exactly the ones it was parsed from, so an edited profile takes effect on the
/// next run, and there is no stat-then-read race to reason about.
public final class ProfileCache: Sendable {
    /// Distinct (name, path) pairs kept; past it the cache starts over (a server's runs name
    /// a handful of profiles; anything more is a caller cycling through paths).
    public static let capacity = 64

    private let entries = Mutex<[String: LoadedProfile]>([:])

    public init() {}

    public var count: Int { entries.withLock { $0.count } }

    /// Like `ProfileLoader.load`, reusing the parsed profile when the file is unchanged.
    public func load(_ nameOrPath: String, profilesDirectory: String) throws(ProfileError) -> LoadedProfile {
        try load(ProfileReference(commandLine: nameOrPath), profilesDirectory: profilesDirectory)
    }

    public func load(_ reference: ProfileReference, profilesDirectory: String) throws(ProfileError) -> LoadedProfile {
        let (path, bytes) = try ProfileLoader.readSource(reference, profilesDirectory: profilesDirectory)
        let key = reference.description + "\u{0}" + path
        if let hit = entries.withLock({ $0[key] }), hit.source == bytes { return hit }
        let loaded = try ProfileLoader.parse(bytes, name: reference.description)
        entries.withLock { entries in
            if entries.count >= Self.capacity && entries[key] == nil { entries.removeAll() }
            entries[key] = loaded
        }
        return loaded
    }
}
