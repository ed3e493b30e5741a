import Foundation
import Testing
@testable import SealboxProfiles

@Suite("profile cache")
struct ProfileCacheTests {
    static func profile(allowing names: [String]) -> String {
        #"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["# + names.map { "\"\($0)\"" }.joined(separator: ",") + #"],"action":"SCMP_ACT_ALLOW"}]}"#
    }

    @Test func reusesAnUnchangedFileAndRereadsAnEditedOne() throws {
        let dir = NSTemporaryDirectory() + "sealbox-profile-cache-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/p.json"
        try Self.profile(allowing: ["read"]).write(toFile: path, atomically: true, encoding: .utf8)

        let cache = ProfileCache()
        let first = try cache.load(path, profilesDirectory: dir)
        let again = try cache.load(path, profilesDirectory: dir)
        #expect(cache.count == 1)
        #expect(first.sourceDigest == again.sourceDigest && again.profile.syscalls[0].names == ["read"])

        // Edited in place, same size even: the next load sees the new content.
        try Self.profile(allowing: ["rea"]).write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: ProfileError.self) { try cache.load(path, profilesDirectory: dir) }  // "rea" is no syscall
        try Self.profile(allowing: ["write"]).write(toFile: path, atomically: false, encoding: .utf8)
        let edited = try cache.load(path, profilesDirectory: dir)
        #expect(edited.profile.syscalls[0].names == ["write"])
        #expect(edited.sourceDigest != first.sourceDigest)
        #expect(cache.count == 1)

        // A name and a path to the same file are separate entries (their messages differ).
        _ = try cache.load("p", profilesDirectory: dir)
        #expect(cache.count == 2)
    }

    @Test func staysBounded() throws {
        let dir = NSTemporaryDirectory() + "sealbox-profile-cache-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cache = ProfileCache()
        for i in 0..<(ProfileCache.capacity + 5) {
            let path = "\(dir)/p\(i).json"
            try Self.profile(allowing: ["read"]).write(toFile: path, atomically: true, encoding: .utf8)
            _ = try cache.load(path, profilesDirectory: dir)
            #expect(cache.count <= ProfileCache.capacity)
        }
    }
}
