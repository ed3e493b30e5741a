import Foundation
import Glibc
import SealboxTestSupport
import Testing

/// One state directory, one set of names: what `sealbox serve --state-dir D` writes,
/// `sealbox log` and `sealbox session` read from the same `--state-dir D` with no other flag.
@Suite("state layout", .needsRoot, .serialized)
struct StateLayoutCLITests {
    @Test("serve --state-dir D, then log list / log verify / session facts --state-dir D show the server's records")
    func serveThenLogAndFacts() async throws {
        let dir = NSTemporaryDirectory() + "sealbox-layout-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let tools = try TestTools.write(in: dir)
        let state = dir + "/state"
        let server = try ServeProcess(["--tools", tools], stateDirectory: state)
        let port = server.port, key = server.key
        let made = try await offPool { try RawHTTP.post(port: port, "/v1/sessions", key: key, body: "") }
        let session = try #require(made.json?["id"] as? String, "\(made.status) \(made.body)")
        let code = #"import json, sealbox; print(json.dumps(sealbox.call(\"stamp\", {\"text\": \"layout\"})))"#
        let body = #"{"session":"\#(session)","step":"one","language":"python","code":"\#(code)","tools":["stamp"]}"#
        let ran = try await offPool { try RawHTTP.post(port: port, "/v1/runs", key: key, body: body) }
        #expect(ran.json?["status"] as? String == "ok" && (ran.json?["stdout"] as? String)?.contains("stamped layout") == true,
                "\(ran.status) \(ran.body.prefix(600))")
        _ = server.stop()

        let list = try await CLI.run(["log", "list", "--state-dir", state, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        #expect(list.stdout.contains("\"stamp\"") && list.stdout.contains("sealed"), "log list showed: \(list.stdout.prefix(600)) \(list.stderr)")
        let verify = try await CLI.run(["log", "verify", "--state-dir", state])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        let facts = try await CLI.run(["session", "facts", session, "--state-dir", state, "--json"])
        #expect(facts.status == 0, "\(facts.stderr)")
        let object = try facts.json()
        let truth = try #require(object["true"] as? [String: Any], "\(facts.stdout.prefix(600))")
        #expect((truth["steps"] as? [Any])?.count == 1, "\(truth)")
        #expect(facts.stdout.contains("\"stamp\""), "the sealed call is missing from the facts: \(facts.stdout.prefix(800))")
        let steps = try await CLI.run(["session", "steps", session, "--state-dir", state, "--json"])
        #expect(steps.status == 0 && steps.stdout.contains("\"one\""), "\(steps.stdout.prefix(400)) \(steps.stderr)")

        // A state directory of an earlier sealbox (the CLI's old names): refused with the move
        // to make, never read as an empty log; after the move, the same records.
        let old = dir + "/old"
        try FileManager.default.createDirectory(atPath: old, withIntermediateDirectories: true)
        for (from, to) in [("effects.db", "ledger.sqlite"), ("checkpoints.db", "checkpoints.sqlite")] {
            try FileManager.default.copyItem(atPath: state + "/" + from, toPath: old + "/" + to)
            for suffix in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: state + "/" + from + suffix) {
                try FileManager.default.copyItem(atPath: state + "/" + from + suffix, toPath: old + "/" + to + suffix)
            }
        }
        let refused = try await CLI.run(["log", "list", "--state-dir", old])
        #expect(refused.status != 0 && refused.stderr.contains("mv ledger.sqlite effects.db"), "\(refused.status) \(refused.stdout) \(refused.stderr)")
        let refusedFacts = try await CLI.run(["session", "facts", session, "--state-dir", old])
        #expect(refusedFacts.status != 0 && refusedFacts.stderr.contains("mv checkpoints.sqlite checkpoints.db"), "\(refusedFacts.stderr)")
        let move = try await CLI.run(["run", "--", "/bin/true"])  // a plain run never minds the state directory
        #expect(move.status == 0, "\(move.stderr)")
        let problem = refused.stderr[refused.stderr.range(of: "run: ")!.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
        let moved = try await offPool { () throws -> Int32 in
            let shell = Process()
            shell.executableURL = URL(fileURLWithPath: "/bin/sh")
            shell.arguments = ["-c", problem]
            shell.currentDirectoryURL = URL(fileURLWithPath: old)
            try shell.run()
            shell.waitUntilExit()
            return shell.terminationStatus
        }
        #expect(moved == 0, "the printed move failed: \(problem)")
        let after = try await CLI.run(["log", "list", "--state-dir", old, "--json"])
        #expect(after.status == 0 && after.stdout == list.stdout, "\(after.stdout.prefix(400)) \(after.stderr)")
    }
}
