import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// `sealbox session fork` through the CLI, with a real broker per run and a loopback world:
/// an irreversible effect the original sealed after the fork point is a fact for the fork,
/// answered from the log, never executed again; `session facts` says so.
@Suite("Session fork with effects", .needsRoot, .serialized)
struct ForkStepTests {
    @Test("a fork re-running the original's irreversible step gets the sealed answer; reads run again")
    func irreversibleAfterForkPointIsAFact() async throws {
        let dir = try TemporaryDirectory.make("fork")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        world.route("/lookup", .json("{\"rows\":3}"))
        world.route("/charge", .json("{\"charged\":true}"))
        let config = dir + "/broker.yaml"
        let ledger = dir + "/ledger.sqlite"
        try BrokerHarness.configYAML(port: world.port, ledger: ledger).write(toFile: config, atomically: true, encoding: .utf8)
        let checkpoints = dir + "/checkpoints.sqlite"
        let env = ["HARNESS_API_TOKEN": BrokerHarness.secret]
        let original = try await Binaries.run(["session", "new", "--checkpoints", checkpoints]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        func step(_ session: String, _ key: String, _ code: String) async throws -> [String: Any] {
            let arguments = ["run", "--session", session, "--step", key, "--checkpoints", checkpoints, "--tools", config,
                             "--allow", "lookup", "--allow", "charge", "--json", "--lang", "python", "--code", code]
            let run = try await offPool { try Binaries.runBlocking(arguments, environment: env) }
            return try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], "\(run.stderr)")
        }
        let read = "import sealbox; print(sealbox.call('lookup', {})['body']['rows'])"
        let charge = "import sealbox; r = sealbox.call('charge', {'n': 1}); print(r['body']['charged'], sealbox.last_effect['replayed'], sealbox.last_effect.get('from_session'))"

        _ = try await step(original, "look", read)
        let charged = try await step(original, "charge", charge)
        #expect(charged["stdout"] as? String == "True False None\n")
        #expect(world.count("/charge") == 1 && world.count("/lookup") == 1)

        let forked = try await Binaries.run(["session", "fork", original, "--at", "look", "--checkpoints", checkpoints])
        let fork = forked.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(forked.status == 0 && fork.hasPrefix("s"), "\(forked.stderr)")

        // The fork's own "charge" step executes (it is not sealed in the fork's history), but
        // its irreversible call is answered from the original's sealed effect.
        let inFork = try await step(fork, "charge", charge)
        #expect(inFork["replayed"] as? Bool == false)
        #expect(inFork["stdout"] as? String == "True True \(original)\n", "\(inFork["stderr"] ?? "")")
        #expect(world.count("/charge") == 1, "the world does not fork")
        // A read is not a fact: it runs again in the fork.
        _ = try await step(fork, "look-again", read)
        #expect(world.count("/lookup") == 2)

        let facts = try await Binaries.run(["session", "facts", fork, "--json", "--checkpoints", checkpoints, "--ledger", ledger])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(facts.stdout.utf8)) as? [String: Any], "\(facts.stderr)")
        #expect(object["clean"] as? Bool == true && object["forked_from"] as? String == original)
        let effects = try #require((object["true"] as? [String: Any])?["effects"] as? [[String: Any]])
        let siblingCharges = effects.filter { $0["tool"] as? String == "charge" && $0["origin"] as? String == "sibling" }
        #expect(siblingCharges.count == 1 && siblingCharges.first?["session"] as? String == original)
        let inherited = effects.filter { $0["origin"] as? String == "inherited" }
        #expect(inherited.map { $0["tool"] as? String } == ["lookup"])
        let steps = try #require((object["true"] as? [String: Any])?["steps"] as? [[String: Any]])
        #expect(steps.map { $0["step"] as? String } == ["look", "charge", "look-again"])
    }
}
