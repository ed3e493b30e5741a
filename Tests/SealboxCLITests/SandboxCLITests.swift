import Foundation
import SealboxTestSupport
import Testing

/// `sealbox sandbox …` against a real `sealbox serve`: the user story from a shell.
@Suite("sealbox sandbox: the CLI of live sandboxes", .needsRoot)
struct SandboxCLITests {
    @Test("create, files put/ls/get, exec (streamed, its exit status), code that keeps state, hibernate, wake, kill")
    func story() async throws {
        let server = try ServeProcess()
        defer { _ = server.stop() }
        let env = ["SEALBOX_URL": "http://127.0.0.1:\(server.port)", "SEALBOX_API_KEY": server.key]
        func sandbox(_ arguments: [String], stdin: Data? = nil) async throws -> CLI.Output {
            try await CLI.run(["sandbox"] + arguments, stdin: stdin, environment: env)
        }
        let created = try await sandbox(["create", "--memory", "256M", "--env", "GREETING=hi"])
        #expect(created.status == 0, "\(created.stderr)")
        let id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(id.hasPrefix("sbx-"), "\(created.stdout)")

        let local = try TemporaryDirectory.make("sandbox-cli")
        defer { try? FileManager.default.removeItem(atPath: local) }
        try "a,b\n1,2\n3,4\n".write(toFile: local + "/data.csv", atomically: true, encoding: .utf8)
        let put = try await sandbox(["files", id, "put", local + "/data.csv", "src/data.csv"])
        #expect(put.status == 0 && put.stdout.contains("12 bytes"), "\(put.stdout) \(put.stderr)")
        let listed = try await sandbox(["files", id, "ls", "src"])
        #expect(listed.stdout.contains("data.csv") && listed.stdout.contains("file"), "\(listed.stdout)")

        let ran = try await sandbox(["exec", id, "--shell", "wc -l < src/data.csv; echo $GREETING >&2; exit 3"])
        #expect(ran.status == 3 && ran.stdout == "3\n" && ran.stderr.contains("hi"), "\(ran.status) \(ran.stdout) \(ran.stderr)")
        let argv = try await sandbox(["exec", id, "--", "sh", "-c", "echo made > out.txt"])
        #expect(argv.status == 0, "\(argv.stderr)")
        let got = try await sandbox(["files", id, "get", "out.txt"])
        #expect(got.stdout == "made\n", "\(got.stdout) \(got.stderr)")

        let load = try await sandbox(["code", id, "import csv\nrows = list(csv.reader(open('src/data.csv')))\nprint('loaded')"])
        #expect(load.status == 0 && load.stdout == "loaded\n", "\(load.stdout) \(load.stderr)")
        let count = try await sandbox(["code", id, "len(rows)"])
        #expect(count.stdout == "3\n", "the context kept rows: \(count.stdout) \(count.stderr)")
        let raised = try await sandbox(["code", id, "-"], stdin: Data("rows[10]".utf8))
        #expect(raised.status == 1 && raised.stderr.contains("IndexError"), "\(raised.stderr)")
        let shell = try await sandbox(["code", id, "--language", "bash", "cd src; false"])
        #expect(shell.status == 1, "a bash chunk's status: \(shell.status)")
        let node = try await sandbox(["code", id, "--language", "node", "[1, 2].map((n) => n * 21)"])
        #expect(node.stdout == "[ 21, 42 ]\n", "\(node.stdout) \(node.stderr)")

        let ls = try await sandbox(["ls"])
        #expect(ls.stdout.contains(id) && ls.stdout.contains("running"), "\(ls.stdout)")
        let slept = try await sandbox(["hibernate", id])
        #expect(slept.status == 0 && slept.stdout.contains("hibernated") && slept.stdout.contains("3 contexts"), "\(slept.stdout) \(slept.stderr)")
        let refused = try await sandbox(["exec", id, "--", "true"])
        #expect(refused.status == 125 && refused.stderr.contains("sandbox_hibernated"), "\(refused.stderr)")
        let woke = try await sandbox(["wake", id])
        #expect(woke.status == 0 && woke.stdout.contains("running"), "\(woke.stdout) \(woke.stderr)")
        let kept = try await sandbox(["exec", id, "--", "cat", "out.txt"])
        #expect(kept.stdout == "made\n", "\(kept.stdout) \(kept.stderr)")
        let killed = try await sandbox(["kill", id])
        #expect(killed.status == 0 && killed.stdout.contains("ended"), "\(killed.stdout)")
        let gone = try await sandbox(["exec", id, "--", "true"])
        #expect(gone.status == 125 && gone.stderr.contains("sandbox_ended"), "\(gone.stderr)")

        // In a session: a step runs once; run again, its seal answers.
        let inSession = try await sandbox(["create", "--new-session", "--json"])
        let made = try #require(try JSONSerialization.jsonObject(with: Data(inSession.stdout.utf8)) as? [String: Any], "\(inSession.stdout)")
        let stepped = try #require(made["id"] as? String)
        #expect((made["session"] as? String)?.isEmpty == false, "\(made)")
        for round in 0..<2 {
            let step = try await sandbox(["exec", stepped, "--step", "count", "--shell", "echo x >> n; wc -l < n"])
            #expect(step.status == 0 && step.stdout == "1\n", "round \(round): \(step.stdout) \(step.stderr)")
            #expect(step.stderr.contains("replayed") == (round == 1), "round \(round): \(step.stderr)")
        }
        _ = try await sandbox(["rm", stepped])

        // Bad input: a clear message, exit 125, no stack trace.
        let bad = try await sandbox(["files", id, "frobnicate"])
        #expect(bad.status == 125 && bad.stderr.contains("one of ls, get, put"), "\(bad.stderr)")
        let unreachable = try await CLI.run(["sandbox", "ls", "--url", "http://127.0.0.1:1"], environment: ["SEALBOX_API_KEY": "x"])
        #expect(unreachable.status == 125 && unreachable.stderr.contains("cannot reach"), "\(unreachable.stderr)")
        let help = try await CLI.run(["sandbox", "--help"])
        for verb in ["create", "exec", "code", "files", "ls", "rm", "pause", "resume", "hibernate", "wake", "kill"] {
            #expect(help.stdout.contains("  \(verb)"), "--help lists \(verb)")
        }
    }
}
