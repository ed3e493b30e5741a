import Foundation
import Glibc
import SealboxLedger
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// The issue's acceptance scenario, as a user runs it: `sealbox run --tools ... --allow ...`.
@Suite("Jail ↔ broker end to end", .needsRoot, .serialized)
struct JailBrokerTests {
    static let snippet = """
        import sealbox
        r = sealbox.call("charge", {"n": 42})
        print("status", r["status"], "body", r["body"], "replayed", sealbox.last_effect["replayed"])
        """

    /// Everything the jailed code could look at for the secret. The hunter holds the needle
    /// (its argv); the process that talks to the broker is a separate child, whose memory the
    /// hunter reads through /proc/PID/mem after the call.
    static let hunt = """
        import os, subprocess, sys
        needle = sys.argv[1].encode()
        found = []
        child = subprocess.Popen([sys.executable, "-c",
            "import sealbox, sys, time; sealbox.call('charge', {'n': 42}); print('ready', flush=True); time.sleep(30)"],
            stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"ready"
        if any(needle in (k + "=" + v).encode() for k, v in os.environ.items()): found.append("env")
        me = str(os.getpid())
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            for name in ("environ", "cmdline"):
                if pid == me and name == "cmdline": continue  # the hunter's own argv holds the needle
                try:
                    if needle in open("/proc/%s/%s" % (pid, name), "rb").read(): found.append("/proc/%s/%s" % (pid, name))
                except OSError:
                    pass
        for root in ("/work", "/tmp", "/etc", "/run"):
            for dirpath, dirs, files in os.walk(root):
                for f in files:
                    try:
                        if needle in open(os.path.join(dirpath, f), "rb").read(1 << 20): found.append(os.path.join(dirpath, f))
                    except OSError:
                        pass
        scanned = 0
        mem = open("/proc/%d/mem" % child.pid, "rb")
        for line in open("/proc/%d/maps" % child.pid):
            addr, perms = line.split()[:2]
            if "r" not in perms: continue
            start, end = (int(x, 16) for x in addr.split("-"))
            try:
                mem.seek(start)
                chunk = mem.read(end - start)
                scanned += len(chunk)
                if needle in chunk: found.append("memory of the calling process: " + line.strip())
            except (OSError, ValueError, OverflowError):
                pass
        child.kill()
        print("FOUND" if found else "CLEAN", found, "scanned", scanned > 1000000)
        """

    @Test("a jailed snippet calls an http tool that needs a bearer token it never sees; a re-run does not repeat it")
    func acceptance() async throws {
        let dir = try TemporaryDirectory.make("accept")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        world.route("/charge", .json("{\"charged\":true}", status: 201))
        let ledgerPath = dir + "/ledger.sqlite"
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: ledgerPath).write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["HARNESS_API_TOKEN": BrokerHarness.secret]
        let args = ["run", "--tools", config, "--allow", "charge", "--session", "agent-accept", "--json", "--lang", "python", "--code", Self.snippet]

        let first = try await offPool { try Binaries.runBlocking(args, environment: env) }
        #expect(first.status == 0, "\(first.stderr) \(first.stdout)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any])
        #expect(result["stdout"] as? String == "status 201 body {'charged': True} replayed False\n", "\(result)")
        #expect(world.count("/charge") == 1)
        #expect(world.requests(to: "/charge").first?.header("Authorization") == "Bearer \(BrokerHarness.secret)")

        // In the log: intent and completion, sealed.
        let list = try await Binaries.run(["log", "list", "--session", "agent-accept", "--json", "--ledger", ledgerPath])
        let calls = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        #expect(calls.count == 1 && calls[0]["state"] as? String == "sealed" && calls[0]["tool"] as? String == "charge")
        let seq = try #require(calls.first?["intent_seq"] as? Int)
        let show = try await Binaries.run(["log", "show", "\(seq)", "--json", "--ledger", ledgerPath])
        let records = try #require(try JSONSerialization.jsonObject(with: Data(show.stdout.utf8)) as? [[String: Any]])
        #expect(records.map { $0["kind"] as? String } == ["intent", "completion"])

        // The agent crashed and re-runs the same snippet in the same session.
        let second = try await offPool { try Binaries.runBlocking(args, environment: env) }
        let rerun = try #require(try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any])
        #expect(rerun["stdout"] as? String == "status 201 body {'charged': True} replayed True\n", "\(rerun)")
        #expect(world.count("/charge") == 1, "the irreversible call reached the world once")

        // The shell client works too.
        let shell = try await offPool {
            try Binaries.runBlocking(["run", "--tools", config, "--allow", "charge", "--session", "agent-accept", "--", "sealbox-call", "charge", "n=42"], environment: env)
        }
        #expect(shell.status == 0 && shell.stdout.contains("\"charged\": true"), "\(shell.stdout) \(shell.stderr)")
        #expect(world.count("/charge") == 1)
    }

    @Test("the secret is nowhere in the jail: env, /proc, files, its own memory")
    func secretInvisible() async throws {
        let dir = try TemporaryDirectory.make("secret")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        world.route("/charge", .json("{\"charged\":true}"))
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: dir + "/ledger.sqlite").write(toFile: config, atomically: true, encoding: .utf8)
        let script = dir + "/hunt.py"
        try Self.hunt.write(toFile: script, atomically: true, encoding: .utf8)
        let out = try await offPool {
            try Binaries.runBlocking(["run", "--tools", config, "--allow", "charge", "--json", "--lang", "python", "--file", script, "--", BrokerHarness.secret],
                             environment: ["HARNESS_API_TOKEN": BrokerHarness.secret])
        }
        let result = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any], "\(out.stderr)")
        // The hunter read more than a megabyte of the calling process's memory and found the
        // secret nowhere; the world did get it, from the broker.
        #expect(result["stdout"] as? String == "CLEAN [] scanned True\n", "\(result["stdout"] ?? "") \(result["stderr"] ?? "")")

        // Positive control: the same hunt does find what the jail legitimately holds, the token.
        let control = try await offPool {
            try Binaries.runBlocking(["run", "--tools", config, "--allow", "charge", "--json", "--lang", "python", "--file", script, "--", "sbx1."],
                             environment: ["HARNESS_API_TOKEN": BrokerHarness.secret])
        }
        let controlResult = try #require(try JSONSerialization.jsonObject(with: Data(control.stdout.utf8)) as? [String: Any])
        let found = controlResult["stdout"] as? String ?? ""
        #expect(found.hasPrefix("FOUND") && found.contains("'env'") && found.contains("memory of the calling process"), "\(found)")
        #expect(world.requests(to: "/charge").first?.header("Authorization") == "Bearer \(BrokerHarness.secret)")
    }

    @Test("a running broker: sealbox run --broker, human approval from the CLI, operator revoke, one socket per jail")
    func runningBroker() async throws {
        let dir = try TemporaryDirectory.make("running", subdirectories: ["state"])
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        world.route("/deploy", .json("{\"deployed\":true}"))
        let ledgerPath = dir + "/ledger.sqlite"
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: ledgerPath).write(toFile: config, atomically: true, encoding: .utf8)
        let broker = try BrokerCrashTests.BrokerProcess(config: config, stateDirectory: dir + "/state",
                                                        environment: ["HARNESS_API_TOKEN": BrokerHarness.secret])
        defer { broker.killHard() }
        let control = broker.control
        let deploy = ["run", "--broker", control, "--allow", "deploy", "--session", "ops-1", "--", "sealbox-call", "deploy", "note=v1", "--key", "rel-1"]

        let waiting = try await offPool { try Binaries.runBlocking(deploy) }
        #expect(waiting.status == 1 && waiting.stderr.contains("awaiting_approval"), "\(waiting.stderr)")
        let list = try await Binaries.run(["log", "list", "--status", "awaiting_approval", "--json", "--ledger", ledgerPath])
        let pending = try #require((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])?.first)
        let seq = try #require(pending["intent_seq"] as? Int)
        #expect(world.count("/deploy") == 0)
        let approved = try await Binaries.run(["log", "approve", "\(seq)", "--ledger", ledgerPath])
        #expect(approved.status == 0, "\(approved.stderr)")
        let done = try await offPool { try Binaries.runBlocking(deploy) }
        #expect(done.status == 0 && done.stdout.contains("deployed"), "\(done.stdout) \(done.stderr)")
        #expect(world.count("/deploy") == 1)

        // A jail sees its own broker socket and the clients, nothing of other runs.
        let look = try await offPool {
            try Binaries.runBlocking(["run", "--broker", control, "--allow", "lookup", "--", "/bin/sh", "-c", "ls /run/sealbox; ls /run/sealbox/client"])
        }
        #expect(look.stdout == "broker.sock\nclient\nsealbox-call\nsealbox.py\n", "\(look.stdout) \(look.stderr)")
        // The clients are copies in the jail's own root: mountinfo names no host install path.
        let mounts = try await offPool {
            try Binaries.runBlocking(["run", "--broker", control, "--allow", "lookup", "--", "/bin/cat", "/proc/self/mountinfo"])
        }
        let clientHost = Binaries.repoRoot + "/client"
        #expect(mounts.status == 0 && mounts.stdout.contains("/run/sealbox/client") && !mounts.stdout.contains(clientHost), "\(mounts.stdout)")

        // An operator revokes a run from the CLI; the broker confirms.
        let opened = try BrokerControlClient.send(ControlRequest(op: "open_run", runID: "ops-revoke", sessionID: "ops-1", tools: ["lookup"], ttlMs: 60_000), socket: control)
        let revoke = try await Binaries.run(["broker", "revoke", "--run", "ops-revoke", "--socket", control])
        #expect(revoke.status == 0 && revoke.stdout.hasPrefix("revoked run ops-revoke"), "\(revoke.stdout) \(revoke.stderr)")
        let refused = try await BrokerHarness.call(BrokerHarness.Run(id: "ops-revoke", token: opened.token!, tokenID: opened.tokenID!, socket: opened.socket!), "lookup")
        #expect(refused.error?.code == .revoked)
    }
}
