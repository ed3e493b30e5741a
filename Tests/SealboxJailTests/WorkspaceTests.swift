import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// A session's /work: a detached tmpfs filled before the run, attached in the jail, read after.
@Suite("Session workspace")
struct WorkspaceTests {
    static func run(_ script: String, in workspace: Workspace, files: [SeedFile] = []) async throws -> JailResult {
        var spec = JailSpec(command: ["/bin/sh", "-c", script], files: files)
        spec.workspace = workspace
        return try await Fixture.jail().run(spec)
    }

    static func contents(_ workspace: Workspace, _ path: String) throws -> String {
        let fd = try workspace.openFile(path)
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test("files written before the run are the jail's, and what the jail leaves is read back")
    func roundTrip() async throws {
        let workspace = try Workspace(limitBytes: 4 << 20)
        try workspace.makeDirectory("data", mode: 0o755)
        try workspace.writeFile("data/in.txt", mode: 0o644, contents: Array("seeded\n".utf8))
        let result = try await Self.run("""
            cat /work/data/in.txt; stat -c '%u %a' /work/data/in.txt /work
            echo made > /work/data/out.txt; mkdir -p /work/deep/er; chmod 4755 /work/data/out.txt
            ln -s /etc/passwd /work/link; mkfifo /work/fifo
            """, in: workspace, files: [SeedFile(name: "main.sh", contents: Array("echo hi\n".utf8))])
        #expect(result.status == .ok, "\(result.stderr)")
        #expect(result.stdout == "seeded\n1000 644\n1000 755\n")
        let (items, skipped) = try workspace.walk()
        #expect(items.map(\.path) == ["data", "data/in.txt", "data/out.txt", "deep", "deep/er", "link", "main.sh"])
        #expect(skipped == ["fifo"])
        #expect(try Self.contents(workspace, "data/out.txt") == "made\n")
        #expect(items.first { $0.path == "link" }?.target == "/etc/passwd")
        // The set-uid bit is never carried over.
        #expect(items.first { $0.path == "data/out.txt" }?.mode == 0o755)
        #expect(try Self.contents(workspace, "main.sh") == "echo hi\n")
    }

    @Test("the workspace never shows in the host's mount table, during or after a run")
    func invisibleOnHost() async throws {
        let before = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let workspace = try Workspace(limitBytes: 1 << 20)
        let result = try await Self.run("grep -c ' /work ' /proc/self/mountinfo", in: workspace)
        #expect(result.stdout == "1\n")
        let after = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(before.split(separator: "\n").count == after.split(separator: "\n").count)
        #expect(!after.contains("/work"))
    }

    @Test("the limit holds in the jail (ENOSPC) and for the caller filling it")
    func limit() async throws {
        let workspace = try Workspace(limitBytes: 1 << 20)
        let result = try await Self.run("dd if=/dev/zero of=/work/big bs=64k count=32 2>&1; echo rc=$?", in: workspace)
        #expect(result.stdout.contains("No space left on device"), "\(result.stdout)")
        #expect(result.stdout.hasSuffix("rc=1\n"))
        #expect(workspace.usage.freeBytes < 64 << 10)
        #expect { try workspace.writeFile("more", mode: 0o644, contents: [UInt8](repeating: 1, count: 1 << 20)) } throws: {
            ($0 as? JailError)?.message.contains("workspace full") == true
        }
    }

    @Test("paths that climb out or are empty are refused")
    func badPaths() throws {
        let workspace = try Workspace(limitBytes: 1 << 20)
        for path in ["../x", "/etc/passwd", "a//b", "", "a/./b", "a/.."] {
            #expect(throws: JailError.self) { try workspace.writeFile(path, mode: 0o644, contents: []) }
        }
    }

    @Test("a symlink the program left is not followed when the caller writes through it")
    func noFollow() async throws {
        let workspace = try Workspace(limitBytes: 1 << 20)
        let outside = try TemporaryDirectory.make("ws-nofollow")
        defer { TemporaryDirectory.remove(outside) }
        let result = try await Self.run("ln -s \(outside) /work/escape", in: workspace)
        #expect(result.status == .ok)
        #expect(throws: JailError.self) { try workspace.writeFile("escape/owned", mode: 0o644, contents: [1]) }
        #expect(!FileManager.default.fileExists(atPath: outside + "/owned"))
    }
}
