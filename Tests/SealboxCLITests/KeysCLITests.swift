import Foundation
import Glibc
import SealboxTestSupport
import Testing

/// `sealbox keys create/list/revoke` through the built binary, on a temp state directory.
@Suite("sealbox keys")
struct KeysCLITests {
    static func stateDirectory(_ name: String = #function) -> String {
        NSTemporaryDirectory() + "sealbox-cli-keys-\(name.filter { $0.isLetter })-\(UUID().uuidString)"
    }

    @Test("create (text and --json), list (never secrets), revoke, revoke again: a round trip")
    func roundTrip() async throws {
        let dir = Self.stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let created = try await CLI.run(["keys", "create", "--tenant", "acme", "--name", "ci", "--state-dir", dir])
        #expect(created.status == 0, "\(created.stderr)")
        let key = created.stdout.trimmingCharacters(in: .newlines)
        #expect(key.wholeMatch(of: /sbx_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/) != nil, "stdout must be the key alone: \(created.stdout)")
        #expect(created.stderr.contains("cannot be shown again"))
        #expect(!created.stderr.contains(key))
        let textID = String(key.dropFirst(4).prefix(16))

        let json = try await CLI.run(["keys", "create", "--tenant", "default", "--operator", "--json", "--state-dir", dir])
        #expect(json.status == 0, "\(json.stderr)")
        let object = try json.json()
        let operatorID = try #require(object["id"] as? String)
        let operatorKey = try #require(object["key"] as? String)
        #expect(operatorKey.hasPrefix("sbx_\(operatorID)_"))
        #expect(object["operator"] as? Bool == true)
        #expect(object["tenant"] as? String == "default")
        #expect(object.keys.sorted() == ["created_ms", "id", "key", "name", "operator", "profiles", "revoked_ms", "tenant"])

        let list = try await CLI.run(["keys", "list", "--json", "--state-dir", dir])
        #expect(list.status == 0, "\(list.stderr)")
        let keys = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(keys.map { $0["id"] as? String } == [textID, operatorID])
        #expect(keys.allSatisfy { $0["key"] == nil })
        let secrets = [key, operatorKey].map { String($0.dropFirst(4 + 16 + 1)) }
        let table = try await CLI.run(["keys", "list", "--state-dir", dir])
        #expect(table.stdout.contains(textID) && table.stdout.contains("operator") && table.stdout.contains("acme"))
        for secret in secrets { #expect(!list.stdout.contains(secret) && !table.stdout.contains(secret)) }
        #expect(try await CLI.run(["keys", "list", "--tenant", "acme", "--json", "--state-dir", dir]).stdout.contains(operatorID) == false)

        let revoked = try await CLI.run(["keys", "revoke", textID, "--state-dir", dir])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(revoked.stdout.contains("revoked key \(textID)"))
        let again = try await CLI.run(["keys", "revoke", textID, "--state-dir", dir])
        #expect(again.status == 0)
        #expect(again.stdout.contains("already revoked"))
        let after = try #require(try JSONSerialization.jsonObject(with: Data(try await CLI.run(["keys", "list", "--json", "--state-dir", dir]).stdout.utf8)) as? [[String: Any]])
        #expect(after.first { $0["id"] as? String == textID }?["revoked_ms"] is NSNumber)
        #expect(after.first { $0["id"] as? String == operatorID }?["revoked_ms"] is NSNull)
    }

    @Test("bad input is a one-line error with status 125, never a stack trace", arguments: [
        ["keys", "create", "--tenant", "no spaces"],
        ["keys", "create"],
        ["keys", "create", "--tenant", "t", "--name", String(repeating: "n", count: 200)],
        ["keys", "revoke", "0123456789abcdef"],
        ["keys", "revoke", "not-an-id"],
    ])
    func badInput(arguments: [String]) async throws {
        let dir = Self.stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A store to act on, so revoke's failure is about the id.
        _ = try await CLI.run(["keys", "create", "--tenant", "t", "--state-dir", dir])
        let out = try await CLI.run(arguments + ["--state-dir", dir])
        #expect(out.status == 125, "\(arguments): \(out.status) \(out.stderr)")
        #expect(!out.stderr.isEmpty)
        #expect(!out.stderr.contains("Fatal error"))
    }

    @Test("list and revoke do not make a key store where there is none")
    func missingStore() async throws {
        let dir = Self.stateDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for arguments in [["keys", "list"], ["keys", "revoke", "0123456789abcdef"]] {
            let out = try await CLI.run(arguments + ["--state-dir", dir])
            #expect(out.status == 125)
            #expect(out.stderr.contains("no key store"), "\(out.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir))
    }

    @Test("--help shows examples")
    func help() async throws {
        let out = try await CLI.run(["keys", "--help"])
        #expect(out.status == 0)
        #expect(out.stdout.contains("sealbox keys create --tenant acme"))
        let create = try await CLI.run(["keys", "create", "--help"])
        #expect(create.stdout.contains("--operator") && create.stdout.contains("--state-dir"))
    }
}
