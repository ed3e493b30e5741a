import Foundation
import Hummingbird
import SealboxBase
import SealboxJail
import SealboxProfiles

/// `GET /v1/profiles`: the seccomp profiles the caller's key may name in `profile`: the
/// catalog (the data directory's profiles/*.json) less what the key's grant excludes. Each is
/// loaded the way a run loads it, so a profile listed without `error` is one a run can use.
extension SealboxAPI {
    /// More files than this in profiles/ are not listed (the answer says so with `truncated`).
    static let maxListedProfiles = 256

    struct ProfileSummary: Encodable {
        var name: String
        var comment: String?
        var defaultAction: String?
        var syscallRules: Int?
        /// Why the profile cannot be used; a run naming it gets 400 with the same words.
        var error: String?

        enum CodingKeys: String, CodingKey {
            case name, comment, error
            case defaultAction = "default_action"
            case syscallRules = "syscall_rules"
        }
    }

    struct ProfileList: Encodable {
        var profiles: [ProfileSummary]
        var truncated: Bool
    }

    func listProfiles(_ identity: APIIdentity) throws(APIError) -> Response {
        let directory = executor.profilesDirectory
        let grant = profileGrant(for: identity)
        let names = ProfileCatalog(directory: directory).names().filter(grant.allows)
        let listed = names.prefix(Self.maxListedProfiles).map { name in Self.summary(name, directory: directory) }
        return try Self.jsonResponse(.ok, ProfileList(profiles: Array(listed), truncated: names.count > listed.count))
    }

    static func summary(_ name: String, directory: String) -> ProfileSummary {
        do throws(ProfileError) {
            let loaded = try ProfileLoader.load(ProfileReference.catalog(name), profilesDirectory: directory)
            // `comment` is Docker's free-text key; the model ignores it, so read it from the bytes.
            var comment: String?
            if case .string(let text)? = (try? JSONReader.parse(loaded.source))?["comment"] { comment = text }
            return ProfileSummary(
                name: name, comment: comment, defaultAction: loaded.profile.defaultAction,
                syscallRules: loaded.profile.syscalls.count, error: nil)
        } catch {
            return ProfileSummary(name: name, error: error.description)
        }
    }
}
