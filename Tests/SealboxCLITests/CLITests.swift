import Foundation
import Glibc
import SealboxTestSupport
import Testing

@Suite("sealbox run", .needsRoot)
struct RunCLITests {
    /// The Unix convention: a piped stdin reaches the program; `--stdin-file -` says so; a
    /// stdin that is /dev/null (or a terminal) gives the program /dev/null.
    /// A busy sealbox (a server's sockets, many jails' pipes) holds more descriptors than the
    /// jail's RLIMIT_NOFILE of 1024. The program's seccomp listener is created after that
    /// limit is set, so it must find a free number below it: CI once saw every spawn fail
    /// with EMFILE at the seccomp stage while many tests ran at once. The descriptors are held
    /// by a sealbox process of its own, not by the test process: Foundation's Process.run in
    /// Swift 6.3.1 reads past a buffer when its process has more than about a thousand
    /// descriptors (swift-corelibs-foundation#5472), and other tests spawn processes meanwhile.
    @Test("a sealbox holding more descriptors than the jail's RLIMIT_NOFILE still spawns")
    func manyParentDescriptors() async throws {
        let script = """
            ulimit -n 4096 || exit 90
            for i in $(seq 3 1210); do eval "exec $i</dev/null"; done
            ls /proc/$$/fd | wc -l >&2
            exec "$0" run --lang python --code 'import os; print(len(os.listdir("/proc/self/fd")))' --json
            """
        let (status, stdout, stderr) = try await offPool { () throws -> (Int32, String, String) in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = ["-c", script, Binaries.sealbox]
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        }
        let held = Int(stderr.split(separator: "\n").first?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
        #expect(held > 1200, "the sealbox process held \(held) descriptors: \(stderr)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any], "\(status) \(stdout) \(stderr)")
        #expect(result["status"] as? String == "ok" && result["stdout"] as? String == "4\n", "\(result)")
    }

    @Test("stdin: piped through when it is a pipe; --stdin-file - is stdin; /dev/null stays /dev/null")
    func stdinPassthrough() async throws {
        let piped = try await CLI.run(["run", "--", "/bin/cat"], stdin: Data("hi from a pipe\n".utf8))
        #expect(piped.status == 0 && piped.stdout == "hi from a pipe\n", "\(piped.stderr)")
        let dash = try await CLI.run(["run", "--stdin-file", "-", "--lang", "python", "--code", "import sys; print(sys.stdin.read().upper())"],
                                     stdin: Data("dash".utf8))
        #expect(dash.status == 0 && dash.stdout == "DASH\n", "\(dash.stderr)")
        let none = try await CLI.run(["run", "--", "/bin/cat"])
        #expect(none.status == 0 && none.stdout.isEmpty, "\(none.stderr)")
    }

    /// A step's stdin from a pipe is read once: part of its identity, and still the program's.
    @Test("a step's piped stdin reaches the program and is part of the step: other stdin is step_conflict")
    func stepStdinFromAPipe() async throws {
        let dir = NSTemporaryDirectory() + "sealbox-step-stdin-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let session = try await CLI.run(["session", "new", "--state-dir", dir]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let step = ["run", "--state-dir", dir, "--session", session, "--step", "count", "--json", "--", "/usr/bin/wc", "-c"]
        let first = try await CLI.run(step, stdin: Data("12345".utf8))
        let firstResult = try first.json()
        #expect(first.status == 0 && firstResult["stdout"] as? String == "5\n", "\(first.stdout) \(first.stderr)")
        let same = try await CLI.run(step, stdin: Data("12345".utf8))
        let sameResult = try same.json()
        #expect(sameResult["replayed"] as? Bool == true, "\(same.stdout) \(same.stderr)")
        let other = try await CLI.run(step, stdin: Data("123".utf8))
        #expect(other.status == 125 && other.stderr.contains("step_conflict"), "\(other.status) \(other.stdout) \(other.stderr)")
    }

    /// A replayed step says so on stderr in text mode: the output is the sealed one.
    @Test("a replayed step says so in text mode")
    func replayedTextMode() async throws {
        let dir = NSTemporaryDirectory() + "sealbox-replay-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = dir + "/checkpoints.db"
        let session = try await CLI.run(["session", "new", "--checkpoints", store]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let step = ["run", "--checkpoints", store, "--session", session, "--step", "one", "--lang", "sh", "--code", "echo ran"]
        let first = try await CLI.run(step)
        #expect(first.status == 0 && first.stdout == "ran\n" && !first.stderr.contains("replayed"), "\(first.stderr)")
        let second = try await CLI.run(step)
        #expect(second.status == 0 && second.stdout == "ran\n", "\(second.stderr)")
        #expect(second.stderr.contains("sealbox: replayed: the step was sealed at checkpoint"), "\(second.stderr)")
    }

    @Test("--help names each default once (serve --state-dir)")
    func helpDefaultsOnce() async throws {
        let help = try await CLI.run(["serve", "--help"])
        let lines = help.stdout.components(separatedBy: "--state-dir <DIR>").dropFirst().first ?? ""
        let option = lines.components(separatedBy: "\n  --").first ?? ""
        #expect(option.components(separatedBy: "default").count - 1 == 1, "\(option)")
    }

    @Test("the issue's acceptance command: python 6*7 with --json")
    func acceptance() async throws {
        let out = try await CLI.run(["run", "--lang", "python", "--code", "print(6*7)", "--json"])
        #expect(out.status == 0, "\(out.stderr)")
        let json = try out.json()
        #expect(json["status"] as? String == "ok")
        #expect(json["stdout"] as? String == "42\n")
        // Every contract field is present.
        for key in ["id", "status", "exit_code", "signal", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
                    "stdout_bytes", "stderr_bytes", "wall_ms", "cpu_ms", "peak_memory_bytes", "violations", "limits",
                    "profile", "cgroup"] {
            #expect(json.keys.contains(key), "missing \(key)")
        }
        #expect(json["signal"] is NSNull)
        let limits = try #require(json["limits"] as? [String: Any])
        #expect(limits["timeout_ms"] as? Int == 10000)
        #expect(limits["memory_bytes"] as? Int == 268_435_456)
        #expect(limits["pids"] as? Int == 64)
        #expect(limits["disk_bytes"] as? Int == 67_108_864)
        #expect(limits["output_bytes"] as? Int == 1_048_576)
        #expect(limits["shm_bytes"] as? Int == 67_108_864, "a quarter of the memory limit")
        #expect(["v1", "v2"].contains(json["cgroup"] as? String ?? ""))
    }

    static let exitCases: [([String], Int32)] = [
        (["run", "--", "/bin/sh", "-c", "exit 7"], 7),
        (["run", "--", "/bin/sh", "-c", "kill -TERM $$"], 143),
        (["run", "--", "no-such-program"], 127),
        (["run", "--", "/etc/passwd"], 126),
        (["run", "--timeout", "0.2", "--", "sleep", "10"], 137),
        (["run", "--lang", "bash", "--code", "echo \"$1 $2\"; exit 4", "--", "a", "b"], 4),
    ]

    @Test("exit status: the program's code, 128+signal, 126, 127", arguments: exitCases)
    func exitStatus(arguments: [String], expected: Int32) async throws {
        #expect(try await CLI.run(arguments).status == expected)
    }

    @Test("--file, --env, --stdin-file, limits flags")
    func flags() async throws {
        let dir = NSTemporaryDirectory() + "sealbox-cli-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "import os, sys\nprint(os.environ['GREETING'], sys.stdin.read().strip())\n".write(toFile: dir + "/snippet.py", atomically: true, encoding: .utf8)
        try "from-stdin\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        let out = try await CLI.run(["run", "--lang", "python", "--file", dir + "/snippet.py", "--env", "GREETING=hello",
                               "--stdin-file", dir + "/in.txt", "--memory", "128M", "--pids", "16", "--disk", "8M",
                               "--output-limit", "64K", "--timeout", "5.5", "--shm", "3M", "--json"])
        let json = try out.json()
        #expect(json["stdout"] as? String == "hello from-stdin\n", "\(out.stdout) \(out.stderr)")
        let limits = try #require(json["limits"] as? [String: Any])
        #expect(limits["timeout_ms"] as? Int == 5500)
        #expect(limits["memory_bytes"] as? Int == 128 << 20)
        #expect(limits["pids"] as? Int == 16)
        #expect(limits["disk_bytes"] as? Int == 8 << 20)
        #expect(limits["output_bytes"] as? Int == 64 << 10)
        #expect(limits["shm_bytes"] as? Int == 3 << 20)
    }

    @Test("a foreign-ABI kill is named on stderr: the syscall, and that it came through the i386 ABI")
    func foreignABIKillIsExplained() async throws {
        // The probe arrives on stdin and runs as the jail's program itself (exec), so its
        // death is the run's verdict.
        let probe = try Data(contentsOf: URL(fileURLWithPath: Binaries.probe))
        let out = try await CLI.run(["run", "--", "/bin/sh", "-c", "cat > /tmp/probe && chmod +x /tmp/probe && exec /tmp/probe i386_getpid"], stdin: probe)
        #expect(out.status == 159, "\(out.stderr)")
        #expect(out.stderr.contains("sealbox: killed by seccomp profile default for calling getpid (x86) (through the 32-bit i386 ABI (int $0x80), which the profile does not list)"), "\(out.stderr)")
        let json = try await CLI.run(["run", "--json", "--", "/bin/sh", "-c", "cat > /tmp/probe && chmod +x /tmp/probe && exec /tmp/probe x32_getpid"], stdin: probe)
        let violations = try #require(try json.json()["violations"] as? [[String: Any]])
        #expect(violations.count == 1 && violations.first?["syscall"] as? String == "getpid (x32)" && violations.first?["abi"] as? String == "x32"
                    && violations.first?["action"] as? String == "kill", "\(json.stdout)")
    }

    @Test("without --json the program's output passes through and a note explains the verdict")
    func plainOutput() async throws {
        // The timeout leaves the shell seconds to print even when the machine is loaded (CI
        // runs two dozen jails at once); 0.2 s was not always enough to reach the first echo.
        let out = try await CLI.run(["run", "--timeout", "4", "--", "/bin/sh", "-c", "echo out; echo err >&2; exec sleep 60"])
        #expect(out.stdout == "out\n")
        #expect(out.stderr.hasPrefix("err\n"))
        #expect(out.stderr.contains("sealbox: timed out after 4s"))
    }
}

@Suite("sealbox errors")
struct ErrorCLITests {
    static let badInputs: [([String], String)] = [
        (["run", "--bogus"], "Unknown option '--bogus'"),
        (["run", "--memory", "12Q", "--", "true"], "invalid size \"12Q\" for --memory"),
        (["run", "--disk", "lots", "--", "true"], "invalid size \"lots\" for --disk"),
        (["run", "--shm", "lots", "--", "true"], "invalid size \"lots\" for --shm"),
        (["run", "--memory", "64M", "--shm", "128M", "--", "true"], "/dev/shm size (134217728 bytes) must not exceed the memory limit"),
        (["run", "--lang", "rust", "--code", "x"], "unknown --lang \"rust\""),
        (["run", "--lang", "python"], "needs --file PATH or --code TEXT"),
        (["run", "--lang", "python", "--file", "/nonexistent/x.py"], "--file /nonexistent/x.py: no such readable file"),
        (["run", "--code", "print(1)"], "need --lang"),
        (["run"], "nothing to run"),
        (["run", "--timeout", "0", "--", "true"], "--timeout must be"),
        (["run", "--env", "NOEQUALS", "--", "true"], "--env expects NAME=VALUE"),
        (["run", "--env", "SEALBOX_TOKEN=x", "--", "true"], "reserved"),
        (["run", "--stdin-file", "/nonexistent", "--", "true"], "--stdin-file /nonexistent"),
        (["run", "--profile", "nosuch", "--", "true"], "nosuch"),
        (["run", "--rootfs", "/nonexistent", "--", "true"], "rootfs /nonexistent"),
        (["bench", "spawn", "-n", "0"], "--count must be"),
        ]

    @Test("bad input exits 125 with a readable message and no stack trace", arguments: badInputs)
    func badInput(arguments: [String], fragment: String) async throws {
        let out = try await CLI.run(arguments)
        #expect(out.status == 125, "exit \(out.status): \(out.stderr)")
        #expect(out.stderr.contains(fragment), "\(out.stderr)")
        #expect(!out.stderr.contains("Fatal error") && !out.stderr.contains("Stack dump"))
    }

    @Test("--help explains the flags and exit codes", arguments: [["--help"], ["run", "--help"], ["bench", "spawn", "--help"]])
    func help(arguments: [String]) async throws {
        let out = try await CLI.run(arguments)
        #expect(out.status == 0)
        #expect(out.stdout.contains("USAGE") || out.stdout.contains("Usage"))
        if arguments.first == "--help" { #expect(out.stdout.contains("125")) }
        if arguments == ["run", "--help"] {
            for flag in ["--lang", "--file", "--code", "--stdin-file", "--profile", "--timeout", "--memory", "--pids", "--disk", "--shm", "--output-limit", "--env", "--json"] {
                #expect(out.stdout.contains(flag), "help lacks \(flag)")
            }
        }
    }
}

@Suite("sealbox bench", .needsRoot)
struct BenchCLITests {
    @Test("bench sandbox --json reports every figure beside its anchor")
    func benchSandbox() async throws {
        let out = try await CLI.run(["bench", "sandbox", "-n", "10", "--warmup", "1", "--file-mb", "2", "--idle", "3", "--json"])
        #expect(out.status == 0, "\(out.stderr)")
        let json = try out.json()
        #expect(json["count"] as? Int == 10 && json["file_mb"] as? Int == 2 && json["idle_sandboxes"] as? Int == 3)
        #expect((json["python_increments_seconds"] as? Double ?? 0) > 0)
        for key in ["anchor_cold_run", "create_from_pool", "command_true", "python_chunk"] {
            let latency = try #require(json[key] as? [String: Double], "\(key)")
            let p50 = try #require(latency["p50_ms"]), p99 = try #require(latency["p99_ms"]), max = try #require(latency["max_ms"])
            #expect(p50 > 0 && p50 <= p99 && p99 <= max, "\(key): \(latency)")
        }
        #expect((json["upload_mb_per_s"] as? Double ?? 0) > 0 && (json["download_mb_per_s"] as? Double ?? 0) > 0)
        #expect((json["idle_cpu_percent"] as? Double ?? -1) >= 0)
    }

    @Test("bench spawn --json reports percentiles")
    func benchSpawn() async throws {
        let out = try await CLI.run(["bench", "spawn", "-n", "20", "--warmup", "2", "--json"])
        #expect(out.status == 0, "\(out.stderr)")
        let json = try out.json()
        #expect(json["count"] as? Int == 20)
        let p50 = try #require(json["p50_ms"] as? Double)
        let p90 = try #require(json["p90_ms"] as? Double)
        let p99 = try #require(json["p99_ms"] as? Double)
        let max = try #require(json["max_ms"] as? Double)
        #expect(p50 > 0 && p50 <= p90 && p90 <= p99 && p99 <= max)
        #expect(json["failures"] as? Int == 0)
        #expect(out.stderr.contains("spawn 20/20"))
        // Where the time went: every phase, p50 <= p99, and the spawn's steps add up to no
        // more than the whole run.
        let phases = try #require(json["phases"] as? [String: [String: Double]])
        let expected = ["setup", "run", "teardown"] + ["clone", "maps", "identity", "mounts", "pivot", "setup", "fork", "exec", "activate"].map { "spawn." + $0 }
        #expect(Set(phases.keys) == Set(expected))
        for (name, stats) in phases {
            let (a, b) = (try #require(stats["p50_ms"]), try #require(stats["p99_ms"]))
            #expect(a >= 0 && a <= b, "\(name): \(stats)")
        }
        let stepsP50 = expected.filter { $0.hasPrefix("spawn.") }.compactMap { phases[$0]?["p50_ms"] }.reduce(0, +)
        #expect(stepsP50 > 0 && stepsP50 < max)
    }

    @Test("bench spawn --pool: every recorded run takes a prepared jail and pays only the handover, the execve and the program")
    func benchSpawnPool() async throws {
        let out = try await CLI.run(["bench", "spawn", "-n", "20", "--warmup", "0", "--pool", "2", "--json"])
        #expect(out.status == 0, "\(out.stderr)")
        let json = try out.json()
        #expect(json["count"] as? Int == 20 && json["failures"] as? Int == 0)
        let pool = try #require(json["pool"] as? [String: Int])
        #expect(pool["size"] == 2 && pool["hits"] == 20 && pool["misses"] == 0, "\(pool)")
        let phases = try #require(json["phases"] as? [String: [String: Double]])
        #expect((phases["spawn.activate"]?["p50_ms"] ?? 0) > 0)
        #expect((phases["spawn.exec"]?["p50_ms"] ?? 0) > 0)
        #expect(phases["spawn.clone"]?["p99_ms"] == 0 && phases["spawn.mounts"]?["p99_ms"] == 0, "\(phases)")
        let bad = try await CLI.run(["bench", "spawn", "--pool", "300"])
        #expect(bad.status != 0 && bad.stderr.contains("--pool must be between 0 and"), "\(bad.stderr)")
    }

    @Test("bench spawn --concurrency runs in parallel; --svg writes a percentile curve")
    func benchSpawnConcurrentWithPlot() async throws {
        let svg = NSTemporaryDirectory() + "sealbox-bench-\(getpid()).svg"
        defer { unlink(svg) }
        let out = try await CLI.run(["bench", "spawn", "-n", "24", "--warmup", "1", "--concurrency", "4", "--svg", svg, "--json"])
        #expect(out.status == 0, "\(out.stderr)")
        let json = try out.json()
        #expect(json["count"] as? Int == 24 && json["concurrency"] as? Int == 4 && json["failures"] as? Int == 0)
        #expect((json["runs_per_second"] as? Double ?? 0) > 0)
        let image = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(image.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(image.contains("<polyline") && image.contains(">percentile<") && image.contains(">latency (ms)<"))
        // One point per run plus the closing one at the right edge.
        let points = try #require(image.split(separator: "points=\"").last?.split(separator: "\"").first)
        #expect(points.split(separator: " ").count == 25)
        let bad = try await CLI.run(["bench", "spawn", "--concurrency", "0"])
        #expect(bad.status == 125 && bad.stderr.contains("--concurrency must be between 1 and 1024"))
    }
}

@Suite("sealbox without root", .needsRoot)
struct UnprivilegedCLITests {
    @Test("as an ordinary user: jails still work, without cgroup limits, and sealbox says so")
    func unprivileged() throws {
        // A world-readable copy of the binary and its data, so uid 65534 can reach them
        // wherever the checkout lives.
        let fm = FileManager.default
        let dir = "/tmp/sealbox-unpriv-\(UUID().uuidString.prefix(8))"
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        defer { try? fm.removeItem(atPath: dir) }
        // cp, not FileManager: the file being written must not be open in this (multithreaded)
        // process, or a child another test forks meanwhile inherits the write descriptor and
        // exec of the copy fails with ETXTBSY.
        let copy = try Process.run(URL(fileURLWithPath: "/bin/cp"), arguments: ["-r", Binaries.sealbox, Binaries.repoRoot + "/profiles", Binaries.repoRoot + "/rootfs", dir])
        copy.waitUntilExit()
        #expect(copy.terminationStatus == 0)
        _ = try? Process.run(URL(fileURLWithPath: "/bin/chmod"), arguments: ["-R", "a+rX", dir]).waitUntilExit()

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups", "--",
                             "/usr/bin/env", "SEALBOX_DATA_DIR=\(dir)", dir + "/sealbox", "run", "--json", "--", "/bin/sh", "-c", "id -u; cat /proc/self/uid_map"]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: stdout) as? [String: Any])
        #expect(json["cgroup"] as? String == "none")
        let lines = (json["stdout"] as? String ?? "").split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }
        #expect(lines == ["1000", "1000 65534 1"])
        #expect(stderr.contains("no usable cgroups"))
    }
}
