import Foundation
import Hummingbird
import SealboxJail
import SealboxProfiles

/// `GET /v1/profiles`: the seccomp profiles a run may name in `profile`, from the data
/// directory's profiles/*.json. Each is loaded the way a run loads it, so a profile listed
/// without `error` is one a run can use.
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

    func listProfiles() throws(APIError) -> Response {
        let directory = executor.profilesDirectory
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".json") && !$0.hasPrefix(".") }
                .map { String($0.dropLast(".json".count)) }
                .sorted()
        } catch {
            throw APIError(.internalServerError, "profiles", "cannot list \(directory): \(error.localizedDescription)")
        }
        let listed = names.prefix(Self.maxListedProfiles).map { name in Self.summary(name, directory: directory) }
        return try Self.jsonResponse(.ok, ProfileList(profiles: Array(listed), truncated: names.count > listed.count))
    }

    static func summary(_ name: String, directory: String) -> ProfileSummary {
        do throws(ProfileError) {
            let loaded = try ProfileLoader.load(name, profilesDirectory: directory)
            // `comment` is Docker's free-text key; the model ignores it, so read it from the bytes.
            let object = try? JSONSerialization.jsonObject(with: Data(loaded.source)) as? [String: Any]
            return ProfileSummary(
                name: name, comment: object?["comment"] as? String, defaultAction: loaded.profile.defaultAction,
                syscallRules: loaded.profile.syscalls.count, error: nil)
        } catch {
            return ProfileSummary(name: name, error: error.description)
        }
    }
}
