import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxJail

@Suite("Isolation", .needsRoot)
struct IsolationTests {
    @Test("the jail never sees a host environment variable")
    func environment() async throws {
        setenv("SEALBOX_TEST_SECRET", "hunter2-\(getpid())", 1)
        defer { unsetenv("SEALBOX_TEST_SECRET") }
        let r = try await Fixture.run(["/bin/sh", "-c", "env; cat /proc/self/environ; cat /proc/1/environ; cat /proc/1/cmdline"],
                                environment: [("GREETING", "hi")])
        let names = Set(r.stdout.split(separator: "\n").compactMap { $0.split(separator: "=").first.map(String.init) })
        // sh adds PWD itself; everything else is exactly the documented set.
        #expect(names.subtracting(["PWD"]) == ["PATH", "HOME", "LANG", "GREETING"], "\(r.stdout)")
        #expect(!r.stdout.contains("hunter2"))
        #expect(!r.stderr.contains("hunter2"))
        #expect(r.stderr.contains("/proc/1/environ: Permission denied"))
    }

    @Test("identity: uid 1000 inside, host nobody outside, no capabilities, no new privileges")
    func identity() async throws {
        let r = try await Fixture.sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; hostname")
        let lines = r.stdout.split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }
        #expect(lines.prefix(4) == ["1000", "1000", "1000 65534 1", "1000 65534 1"])
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(lines.contains("\(cap): 0000000000000000"), "\(cap) not empty: \(r.stdout)")
        }
        #expect(lines.contains("NoNewPrivs: 1"))
        #expect(lines.last == "sealbox")
    }

    @Test("host files are unreachable; / is read-only; /work and /tmp are writable")
    func filesystem() async throws {
        let secretDir = try TemporaryDirectory.make("hostfile")
        defer { TemporaryDirectory.remove(secretDir) }
        let paths = ["/root", "/home", "/run", "/var", "/etc/shadow", "/sys", "/boot", Binaries.repoRoot, Binaries.buildDirectory, secretDir]
        let script = paths.map { "test -e '\($0)' && echo \"visible $0\"" }.joined(separator: "; ")
            + "; ls /; ls /dev; touch /x 2>/dev/null || echo ro-root; touch /usr/x 2>/dev/null || echo ro-usr; echo a > /work/a && echo b > /tmp/b && echo rw-work-tmp"
        let r = try await Fixture.sh(script)
        #expect(!r.stdout.contains("visible"), "\(r.stdout)")
        let words = Set(r.stdout.split(separator: "\n").map(String.init))
        #expect(words.isSuperset(of: ["ro-root", "ro-usr", "rw-work-tmp"]))
        let devices = r.stdout.split(separator: "\n").map(String.init).filter { ["null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr"].contains($0) }
        #expect(Set(devices) == ["null", "zero", "full", "random", "urandom", "fd", "stdin", "stdout", "stderr"])
    }

    @Test("/proc belongs to the jail's pid namespace; pid 1 is sealbox's init and shows nothing of the host")
    func procfs() async throws {
        let r = try await Fixture.sh("echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '; echo; tr '\\0' ' ' < /proc/1/cmdline")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "2")
        #expect(!lines[1].split(separator: " ").contains { Int($0)! > 100 }, "only jail pids: \(lines[1])")
        #expect(lines.last?.hasPrefix("sealbox-init") == true, "\(r.stdout)")
        #expect(!r.stdout.contains("swift") && !r.stdout.contains(".xctest"))
    }

    @Test("network: only lo, and the host's loopback server is unreachable")
    func network() async throws {
        let server = try LoopbackServer()
        defer { server.stop() }
        let hostAddress = LoopbackServer.firstNonLoopbackIPv4() ?? "192.0.2.1"
        let code = """
            import socket
            # /proc/net/dev, not socket.if_nameindex(): that needs AF_NETLINK, which the profile denies.
            print(sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]))
            for host in ("127.0.0.1", "\(hostAddress)"):
                s = socket.socket()
                s.settimeout(2)
                try:
                    s.connect((host, \(server.port)))
                    print(host, "connected")
                except OSError as e:
                    print(host, type(e).__name__)
            """
        let r = try await Fixture.python(code)
        #expect(r.status == .ok, "\(r.error ?? r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "['lo']")
        #expect(lines.contains("127.0.0.1 ConnectionRefusedError"))
        #expect(lines.contains { $0.hasPrefix(hostAddress + " ") && !$0.hasSuffix("connected") })
        #expect(server.acceptedCount == 0)
        // The server itself works: the host side can reach it.
        #expect(try LoopbackServer.connectOnce(port: server.port))
        #expect(server.waitForAccepts(1))
    }
}

/// A real TCP server on 127.0.0.1 that counts the connections it accepted.
final class LoopbackServer: @unchecked Sendable {  // accepted is guarded by lock
    let fd: Int32
    let port: UInt16
    private let lock = NSLock()
    private var accepted = 0
    private var running = true
    private var thread: Thread?

    init() throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard sock >= 0 else { throw FixtureError("socket: \(errno)") }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(sock, 16) == 0 else { throw FixtureError("bind/listen: \(errno)") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        fd = sock
        port = UInt16(bigEndian: addr.sin_port)
        let t = Thread { [self] in acceptLoop() }
        thread = t
        t.start()
    }

    private func acceptLoop() {
        while lock.withLock({ running }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 50) > 0 {
                let client = accept(fd, nil, nil)
                if client >= 0 {
                    lock.withLock { accepted += 1 }
                    close(client)
                }
            }
        }
    }

    var acceptedCount: Int { lock.withLock { accepted } }

    func waitForAccepts(_ n: Int) -> Bool {
        for _ in 0..<100 where acceptedCount < n { usleep(20_000) }
        return acceptedCount >= n
    }

    func stop() {
        lock.withLock { running = false }
        usleep(100_000)
        close(fd)
    }

    static func connectOnce(port: UInt16) throws -> Bool {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(s) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    static func firstNonLoopbackIPv4() -> String? {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0 else { return nil }
        defer { freeifaddrs(list) }
        var cursor = list
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sa = entry.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var host = [CChar](repeating: 0, count: 64)
            let addr = sa.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
            var copy = addr
            inet_ntop(AF_INET, &copy, &host, 64)
            let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if !text.hasPrefix("127.") { return text }
        }
        return nil
    }
}

@Suite("Descriptors", .needsRoot)
struct DescriptorTests {
    @Test("no descriptor but 0, 1, 2 reaches the program, even one the parent opened without CLOEXEC")
    func onlyStdio() async throws {
        let leaked = open("/etc/hostname", O_RDONLY)  // deliberately inheritable
        #expect(leaked >= 0)
        defer { close(leaked) }
        let r = try await Fixture.python("import os\nprint(sorted(int(fd) for fd in os.listdir('/proc/self/fd')))")
        // listdir holds one descriptor of its own while it reads the directory.
        #expect(r.stdout == "[0, 1, 2, 3]\n", "\(r.status) \(r.error ?? r.stderr)")
    }
}
