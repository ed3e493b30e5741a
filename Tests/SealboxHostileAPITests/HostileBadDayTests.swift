import Foundation
import Glibc
import SealboxTestSupport
import Testing

extension HostileAPI {
    /// A bad day in production: servers killed with SIGKILL and restarted at once, two
    /// servers on one state directory, a full disk, a shutdown killing steps, clients that
    /// send the same step four times at once, a workspace that earlier steps left odd.
    @Suite("Bad days")
    struct BadDays {
        /// The old broker outlives its killed server for a few seconds to seal the call in
        /// flight; it must never take the restarted server's broker away.
        @Test("kill -9 with a tool call in flight, restart at once: tools keep working, before and after the old broker exits")
        func killAndRestart() async throws {
            let dir = try TemporaryDirectory.make("hostile-restart")
            defer { TemporaryDirectory.remove(dir) }
            let tools = try Battery.toolsConfig(in: dir)
            let first = try await offPool { try ServeProcess(["--tools", tools]) }
            let target = Target(server: first)
            let state = first.stateDirectory, port = first.port
            defer { try? FileManager.default.removeItem(atPath: state) }
            let napping = Task {
                try? await target.run(python: "import sealbox; sealbox.call('nap', {'seconds': '3'})", #""tools":["nap"]"#)
            }
            // The call is in the broker when its intent is in the log.
            try await Battery.eventually(20, "the nap call in flight") {
                let listed = try await target.get("/v1/effects?tool=nap", key: first.operatorKey)
                return ((listed.json?["calls"] as? [[String: Any]]) ?? []).contains { $0["state"] as? String == "pending" }
            }
            let oldBrokers = Self.brokerPids(of: first.pid)
            #expect(oldBrokers.count == 1, "\(oldBrokers)")
            first.kill9()
            _ = await napping.value
            let second = try await offPool { try ServeProcess(["--tools", tools], stateDirectory: state, port: port, logName: "serve-2.log") }
            let restarted = Target(server: second)
            let health = try await restarted.get("/healthz")
            #expect(health.status == 200 && health.json?["broker"] as? String == "ok", "\(health.body)")
            let during = try await restarted.run(python: "import sealbox; print(sealbox.call('stamp', {'text': 'during'})['stdout'].strip())", #""tools":["stamp"]"#)
            #expect(during.status == 201 && during.json?["stdout"] as? String == "stamped during\n", "\(during.status) \(during.body.prefix(300))")
            // Once the old broker has sealed its call and exited, the new one still answers.
            try await Battery.eventually(20, "the old broker gone") { oldBrokers.allSatisfy { kill($0, 0) != 0 } }
            let after = try await restarted.run(python: "import sealbox; print(sealbox.call('stamp', {'text': 'after'})['stdout'].strip())", #""tools":["stamp"]"#)
            #expect(after.status == 201 && after.json?["stdout"] as? String == "stamped after\n", "\(after.status) \(after.body.prefix(300))")
            let healthAfter = try await restarted.get("/healthz")
            #expect(healthAfter.json?["broker"] as? String == "ok", "\(healthAfter.body)")
            #expect(try await offPool { second.stop() } == 0)
        }

        /// One server per state directory; the second says who holds it and touches nothing.
        @Test("a second serve on a state directory in use exits 125 naming the holder, and the first keeps its broker")
        func twoServersOneStateDirectory() async throws {
            let dir = try TemporaryDirectory.make("hostile-two")
            defer { TemporaryDirectory.remove(dir) }
            let tools = try Battery.toolsConfig(in: dir)
            let first = try await offPool { try ServeProcess(["--tools", tools]) }
            let brokerLog = try String(contentsOfFile: first.stateDirectory + "/broker.log", encoding: .utf8)
            let second = try await CLI.run(["serve", "--listen", "127.0.0.1:\(try ServeProcess.freePort())", "--state-dir", first.stateDirectory, "--tools", tools])
            #expect(second.status == 125)
            let line = try #require(try JSONSerialization.jsonObject(with: Data((second.stderr.split(separator: "\n").last ?? "").utf8)) as? [String: Any], "\(second.stderr)")
            #expect(line["level"] as? String == "error")
            #expect((line["msg"] as? String)?.contains("another sealbox serve (pid \(first.pid))") == true, "\(line)")
            #expect(try String(contentsOfFile: first.stateDirectory + "/broker.log", encoding: .utf8) == brokerLog, "the second server touched the first one's broker log")
            let target = Target(server: first)
            let stamped = try await target.run(python: "import sealbox; print(sealbox.call('stamp', {'text': 'still'})['stdout'].strip())", #""tools":["stamp"]"#)
            #expect(stamped.status == 201 && stamped.json?["stdout"] as? String == "stamped still\n", "\(stamped.body.prefix(300))")
            // A busy port: a JSON error naming the address, and no broker was started.
            let busy = try await CLI.run(["serve", "--listen", "127.0.0.1:\(first.port)", "--state-dir", dir + "/other", "--tools", tools])
            #expect(busy.status == 125)
            #expect(busy.stderr.contains("cannot listen on 127.0.0.1:\(first.port): the address is already in use"), "\(busy.stderr)")
            #expect(!busy.stderr.contains("broker started"), "\(busy.stderr)")
        }

        /// A full disk is the server's condition, not the client's fault: 507 with
        /// Retry-After, and /healthz says so, until there is room again.
        @Test("a full state disk: 507 with Retry-After for tools runs and sessions, /healthz degraded, recovered once space is freed")
        func fullDisk() async throws {
            let dir = try TemporaryDirectory.make("hostile-full")
            defer {
                umount2(dir + "/state", Int32(MNT_DETACH))
                TemporaryDirectory.remove(dir)
            }
            let tools = try Battery.toolsConfig(in: dir)
            try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
            // A small disk of the test's own for the state directory.
            #expect(mount("tmpfs", dir + "/state", "tmpfs", 0, "size=48m,mode=0700") == 0, "mount tmpfs: errno \(errno)")
            let server = try await offPool { try ServeProcess(["--tools", tools], stateDirectory: dir + "/state") }
            let target = Target(server: server)
            let session = try await target.session()
            // Fill it: what is left is less than a page.
            let filler = dir + "/state/filler"
            let fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            var block = [UInt8](repeating: 0x5a, count: 1 << 16)
            while block.withUnsafeMutableBytes({ write(fd, $0.baseAddress, $0.count) }) > 0 {}
            var one: UInt8 = 1
            while write(fd, &one, 1) > 0 {}
            close(fd)
            let tool = try await target.run(python: "import sealbox; sealbox.call('stamp', {'text': 'x'})", #""tools":["stamp"]"#)
            #expect(tool.status == 507 && tool.errorCode == "storage_full" && tool.headers["retry-after"] != nil, "\(tool.status) \(tool.body)")
            let newSession = try await target.post("/v1/sessions", "")
            #expect(newSession.status == 507, "\(newSession.status) \(newSession.body)")
            let step = try await target.run(python: "open('/work/f', 'w').write('x' * 100000)", #""session":"\#(session)","step":"s1""#)
            #expect(step.status == 507, "\(step.status) \(step.body.prefix(300))")
            let health = try await target.get("/healthz")
            #expect(health.status == 503 && health.json?["storage"] as? String == "full", "\(health.status) \(health.body)")
            unlink(filler)
            try await Battery.eventually(15, "healthz ok once there is room") { try await target.get("/healthz").status == 200 }
            let again = try await target.run(python: "import sealbox; print(sealbox.call('stamp', {'text': 'room'})['stdout'].strip())", #""tools":["stamp"]"#)
            #expect(again.status == 201 && again.json?["stdout"] as? String == "stamped room\n", "\(again.body.prefix(300))")
            #expect(try await offPool { server.stop() } == 0)
        }

        /// A step killed by a shutdown did not finish: it stays unsealed, and running it
        /// again runs it (a sealed kill would replay forever).
        @Test("steps killed by a SIGTERM shutdown stay unsealed; running them again runs them")
        func shutdownLeavesStepsUnsealed() async throws {
            let first = try await offPool { try ServeProcess(["--shutdown-grace", "0.5"]) }
            let target = Target(server: first)
            let state = first.stateDirectory, port = first.port
            defer { try? FileManager.default.removeItem(atPath: state) }
            let session = try await target.session()
            let stepBody = #""session":"\#(session)","step":"long""#
            let killed = Task { try await target.run(python: "import time; time.sleep(30)", stepBody) }
            try await Battery.eventually(10, "the step executing") { (try await target.get("/healthz").json?["running"] as? Int ?? 0) == 1 }
            kill(first.pid, SIGTERM)
            let answer = try await killed.value
            #expect(answer.status == 201 && answer.json?["status"] as? String == "signaled", "\(answer.body.prefix(300))")
            #expect((answer.json?["error"] as? String)?.contains("the service shut down") == true)
            #expect(answer.json?["checkpoint"] == nil, "the killed step was sealed: \(answer.body.prefix(300))")
            _ = try await offPool { first.stop() }
            #expect(first.logLines.contains { $0.contains("\"msg\":\"shutting down\"") }, "no shutdown line in the log")
            let second = try await offPool { try ServeProcess([], stateDirectory: state, port: port, logName: "serve-2.log") }
            let restarted = Target(server: second)
            let view = try await restarted.get("/v1/sessions/\(session)")
            #expect((view.json?["steps"] as? [Any])?.isEmpty == true, "\(view.body)")
            let facts = try await restarted.get("/v1/sessions/\(session)/facts")
            #expect(facts.body.contains("the service shut down"), "\(facts.body)")
            // Running it again runs it (here it times out: the same code, a short limit).
            let rerun = try await restarted.run(python: "import time; time.sleep(30)", stepBody + #","limits":{"timeout_ms":300}"#)
            #expect(rerun.status == 201 && rerun.json?["replayed"] as? Bool == false && rerun.json?["status"] as? String == "timeout", "\(rerun.body.prefix(300))")
            #expect(try await offPool { second.stop() } == 0)
        }

        /// Four simultaneous POSTs of one step: one executes, the others get its sealed
        /// result or 409 step_running; never a second execution, never a 500.
        @Test("concurrent identical steps execute once: the others replay it or get 409 step_running")
        func concurrentIdenticalSteps() async throws {
            let target = Target(server: try await offPool { try ServeProcess(["--max-concurrent", "4"]) })
            let session = try await target.session()
            let answers = await withTaskGroup(of: RawHTTP.Answer?.self) { group in
                for _ in 0..<4 {
                    group.addTask { try? await target.run(python: "import time, uuid; time.sleep(1); print(uuid.uuid4())", #""session":"\#(session)","step":"once""#) }
                }
                var all: [RawHTTP.Answer] = []
                for await answer in group { if let answer { all.append(answer) } }
                return all
            }
            #expect(answers.count == 4)
            #expect(answers.allSatisfy { $0.status == 201 || ($0.status == 409 && $0.errorCode == "step_running") }, "\(answers.map { "\($0.status) \($0.body.prefix(120))" })")
            let ran = answers.filter { $0.status == 201 && $0.json?["replayed"] as? Bool == false }
            #expect(ran.count == 1, "\(answers.map { "\($0.status) \($0.body.prefix(120))" })")
            let outputs = Set(answers.filter { $0.status == 201 }.compactMap { $0.json?["stdout"] as? String })
            #expect(outputs.count == 1, "every 201 carries the one execution's output: \(outputs)")
            let later = try await target.run(python: "import time, uuid; time.sleep(1); print(uuid.uuid4())", #""session":"\#(session)","step":"once""#)
            #expect(later.json?["replayed"] as? Bool == true && later.json?["stdout"] as? String == outputs.first, "\(later.body.prefix(300))")
        }

        /// What earlier steps left in /work is the session's state: a symlink or a directory
        /// where a run's file goes is a 409 naming it, and facts never call it running.
        @Test("a session workspace with a symlink or a directory in the way: 409 naming the file; facts show nothing running")
        func workspaceInTheWay() async throws {
            let target = Target(server: try await offPool { try ServeProcess() })
            let session = try await target.session()
            let setup = try await target.post("/v1/runs", #"{"language":"sh","code":"ln -s /etc/passwd /work/x; mkdir /work/main.py","session":"\#(session)","step":"setup"}"#)
            #expect(setup.status == 201 && setup.json?["status"] as? String == "ok", "\(setup.body.prefix(300))")
            let link = try await target.post("/v1/runs", #"{"language":"sh","code":"cat x","files":[{"name":"x","content":"mine"}],"session":"\#(session)","step":"two"}"#)
            #expect(link.status == 409 && link.errorCode == "workspace_conflict" && link.errorField == "files", "\(link.status) \(link.body)")
            #expect(link.errorMessage?.contains("/work/x") == true && link.errorMessage?.contains("symbolic link") == true, "\(link.body)")
            let directory = try await target.run(python: "print(1)", #""session":"\#(session)","step":"three""#)
            #expect(directory.status == 409 && directory.errorMessage?.contains("/work/main.py") == true, "\(directory.status) \(directory.body)")
            let facts = try await target.get("/v1/sessions/\(session)/facts")
            #expect(facts.status == 200 && !facts.body.contains("running now"), "\(facts.body)")
            // The step result in GET /v1/sessions/{id} is an object, not JSON in a string.
            let view = try await target.get("/v1/sessions/\(session)")
            let steps = (view.json?["steps"] as? [[String: Any]]) ?? []
            #expect((steps.first?["result"] as? [String: Any])?["status"] as? String == "ok", "\(view.body.prefix(400))")
        }

        /// What a killed server left behind is cleaned at the next start; the databases are
        /// the operator's only (0600).
        @Test("leftovers of a killed server are cleaned at restart: partial blobs and results, unowned sessions; kept results answer; databases are 0600")
        func leftovers() async throws {
            let first = try await offPool { try ServeProcess() }
            let state = first.stateDirectory, port = first.port
            defer { try? FileManager.default.removeItem(atPath: state) }
            let target = Target(server: first)
            let owned = try await target.session()
            let kept = try #require(try await target.run(python: "print('kept')").json?["id"] as? String)
            first.kill9()
            // What a server killed mid-write leaves: a partial blob of a dead writer, a
            // session created without its owner, a result written halfway.
            try FileManager.default.createDirectory(atPath: state + "/blobs", withIntermediateDirectories: true)
            #expect(FileManager.default.createFile(atPath: state + "/blobs/tmp-999999999-1", contents: Data("partial".utf8)))
            #expect(FileManager.default.createFile(atPath: state + "/results/r1.load.tmp-999999999-1", contents: Data("{\"half".utf8)))
            let made = try await CLI.run(["session", "new", "--checkpoints", state + "/checkpoints.db"])
            let unowned = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(made.status == 0 && !unowned.isEmpty, "\(made.stderr)")
            let second = try await offPool { try ServeProcess([], stateDirectory: state, port: port, logName: "serve-2.log") }
            let restarted = Target(server: second)
            #expect(!FileManager.default.fileExists(atPath: state + "/blobs/tmp-999999999-1"))
            #expect(try await restarted.get("/v1/sessions/\(unowned)", key: second.operatorKey).status == 404)
            #expect(try await restarted.get("/v1/sessions/\(owned)").status == 200)
            #expect(((try? FileManager.default.contentsOfDirectory(atPath: state + "/results")) ?? []).allSatisfy { !$0.contains("tmp") })
            let answered = try await restarted.get("/v1/runs/\(kept)")
            #expect(answered.status == 200 && answered.json?["stdout"] as? String == "kept\n", "a finished result outlives the server: \(answered.body)")
            #expect(second.logLines.contains { $0.contains("removed what a killed server left behind") }, "\(second.logLines)")
            for name in ["keys.db", "effects.db", "checkpoints.db"] {
                let mode = ((try FileManager.default.attributesOfItem(atPath: state + "/" + name))[.posixPermissions] as? Int) ?? 0
                #expect(mode & 0o077 == 0, "\(name) is \(String(mode, radix: 8))")
            }
            #expect(try await offPool { second.stop() } == 0)
        }

        /// The `sealbox broker` children of a serve process.
        static func brokerPids(of serve: Int32) -> [Int32] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return names.compactMap(Int32.init).filter { pid in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                guard fields.count > 2, Int32(fields[1]) == serve,
                      let argv = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
                return argv.split(separator: 0).dropFirst().first.map { String(decoding: $0, as: UTF8.self) } == "broker"
            }
        }
    }
}
