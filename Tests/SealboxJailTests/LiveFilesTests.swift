import Foundation
import Glibc
import SealboxBase
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// A live jail's files from outside (`LiveFiles`, sbx_files.c), against a jail that plants
/// symlinks, FIFOs and odd names in its /work.
@Suite("Live jails: files", .needsRoot)
struct LiveFilesTests {
    static func start(workspace: Workspace?) throws -> LiveJail {
        var spec = JailSpec(command: [])
        spec.workspace = workspace
        return try Fixture.jail().startLiveJail(spec)
    }

    static func sh(_ jail: LiveJail, _ script: String) async throws -> JailResult {
        try await jail.run(LiveCommand(command: ["/bin/sh", "-c", script]))
    }

    @Test("upload and download are binary-safe; parents are made; the jail's user owns and may change what was uploaded")
    func roundTrip() async throws {
        for workspace in [nil, try Workspace(limitBytes: 32 << 20)] as [Workspace?] {
            let jail = try Self.start(workspace: workspace)
            defer { jail.end() }
            let bytes = (0..<(3 << 16)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }
            try jail.files.write("data/deep/blob.bin", bytes: bytes, mode: 0o640)
            let (fd, size) = try jail.files.openForReading("data/deep/blob.bin")
            defer { close(fd) }
            #expect(size == UInt64(bytes.count))
            var back = [UInt8](repeating: 0, count: bytes.count + 1)
            let n = back.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            #expect(n == bytes.count && Array(back.prefix(n)) == bytes)
            let info = try jail.files.stat("data/deep/blob.bin")
            #expect(info.type == "file" && info.size == UInt64(bytes.count) && info.mode == 0o640)
            let inside = try await Self.sh(jail, "stat -c '%u %a' data/deep/blob.bin; echo more >> data/deep/blob.bin && echo appended; sha256sum < data/deep/blob.bin | cut -c1-8")
            #expect(inside.stdout.hasPrefix("\(Executor.jailUID) 640\nappended\n"), "\(inside.stdout) \(inside.stderr)")
            // Replaced whole, and a directory is made on demand.
            try jail.files.write("data/deep/blob.bin", bytes: Array("short\n".utf8))
            #expect(try await Self.sh(jail, "cat data/deep/blob.bin").stdout == "short\n")
            try jail.files.makeDirectory("made/a/b")
            try jail.files.makeDirectory("made/a/b")
            #expect(try jail.files.stat("made/a/b").type == "directory")
            #expect(try await Self.sh(jail, "touch made/a/b/by-jail && echo ok").stdout == "ok\n")
        }
    }

    @Test("symlinks, .., absolute paths and NUL never lead outside /work; FIFOs are refused without waiting")
    func hostilePaths() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let marker = "sealbox-escape-\(UInt32.random(in: 0...UInt32.max))"
        let planted = try await Self.sh(jail, """
            ln -s /etc etc-link; ln -s / root-link; ln -s ../.. up-link; ln -s /etc/passwd passwd-link
            mkdir real; ln -s /tmp real/tmp-link; mkfifo pipe; echo inside > plain
            ln /etc/hostname hard-link 2>/dev/null || echo no-hard-link
            """)
        #expect(planted.status == .ok && planted.stdout == "no-hard-link\n", "a hard link across mounts is refused by the kernel: \(planted.stderr)")
        for path in ["etc-link/passwd", "root-link/etc/passwd", "up-link/etc/passwd", "passwd-link", "real/tmp-link/x"] {
            #expect(throws: LiveFileError.self, "read \(path)") { _ = try jail.files.openForReading(path) }
            #expect { try jail.files.openForReading(path) } throws: { ($0 as? LiveFileError)?.kind == .badPath }
        }
        for path in ["etc-link/\(marker)", "root-link/tmp/\(marker)", "real/tmp-link/\(marker)", "up-link/\(marker)"] {
            #expect { try jail.files.write(path, bytes: [1]) } throws: { ($0 as? LiveFileError)?.kind == .badPath }
            #expect { try jail.files.makeDirectory(path) } throws: { ($0 as? LiveFileError)?.kind == .badPath }
        }
        #expect(!FileManager.default.fileExists(atPath: "/etc/\(marker)") && !FileManager.default.fileExists(atPath: "/tmp/\(marker)"))
        #expect(!FileManager.default.fileExists(atPath: "/\(marker)"))
        for path in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./plain", "a\u{0}b", String(repeating: "n", count: 300)] {
            #expect { try jail.files.openForReading(path) } throws: { ($0 as? LiveFileError)?.kind == .badPath }
        }
        // The link itself can be looked at and removed, never followed.
        #expect(try jail.files.stat("etc-link").type == "symlink" && jail.files.stat("etc-link").target == "/etc")
        try jail.files.remove("etc-link")
        #expect(FileManager.default.fileExists(atPath: "/etc/passwd"))
        // A FIFO with no writer: refused at once, not waited on.
        #expect { try jail.files.openForReading("pipe") } throws: { ($0 as? LiveFileError)?.kind == .notAFile }
        #expect { try jail.files.openForReading("real") } throws: { ($0 as? LiveFileError)?.kind == .notAFile }
        #expect { try jail.files.openForReading("absent") } throws: { ($0 as? LiveFileError)?.kind == .notFound }
        #expect { try jail.files.write("plain/x", bytes: [1]) } throws: { ($0 as? LiveFileError)?.kind == .notADirectory }
        #expect { try jail.files.write("real", bytes: [1]) } throws: { ($0 as? LiveFileError)?.kind == .conflict }
        // A symlink to a file inside /work is not followed either.
        _ = try await Self.sh(jail, "ln -s plain plain-link")
        #expect { try jail.files.openForReading("plain-link") } throws: { ($0 as? LiveFileError)?.kind == .badPath }
    }

    @Test("a full workspace: the upload fails as no_space, leaves the old file and no temporary file")
    func fullWorkspace() async throws {
        let jail = try Self.start(workspace: try Workspace(limitBytes: 4 << 20))
        defer { jail.end() }
        try jail.files.write("keep.txt", bytes: Array("old\n".utf8))
        #expect { try jail.files.write("keep.txt", bytes: [UInt8](repeating: 7, count: 8 << 20)) } throws: { ($0 as? LiveFileError)?.kind == .noSpace }
        #expect(try await Self.sh(jail, "cat keep.txt; ls -A | wc -l").stdout == "old\n1\n")
    }

    @Test("listing is paged in byte order and skips names that are not UTF-8; removal is recursive only when asked")
    func listAndRemove() async throws {
        let jail = try Self.start(workspace: try Workspace(limitBytes: 64 << 20, maxEntries: 120_000))
        defer { jail.end() }
        let made = try await jail.run(LiveCommand(command: ["python3", "-c", """
            import os
            os.mkdir('big')
            for i in range(100000): open('big/f%06d' % i, 'w').close()
            open(b'big/\\xff\\xfe', 'w').close()
            """], timeoutMs: 120_000))
        #expect(made.status == .ok, "\(made.stderr)")
        var seen = 0, pages = 0, last: String?, skipped = 0
        while pages < 20 {
            let page = try jail.files.list("big", after: last, limit: 10_000)
            pages += 1
            seen += page.entries.count
            skipped = page.skipped
            if let first = page.entries.first, let last { #expect(LiveFiles.byteOrder(last, first.name)) }
            #expect(page.entries.allSatisfy { $0.type == "file" && $0.size == 0 })
            guard let next = page.next else { break }
            last = next
        }
        #expect(seen == 100_000 && pages == 10 && skipped == 1)
        let top = try jail.files.list("")
        #expect(top.entries.map(\.name) == ["big"] && top.entries[0].type == "directory" && top.next == nil)
        #expect { try jail.files.remove("big") } throws: { ($0 as? LiveFileError)?.kind == .conflict }
        try jail.files.remove("big", recursive: true)
        #expect(try jail.files.list(".").entries.isEmpty)
        jail.end()
        #expect { try jail.files.list(".") } throws: { ($0 as? LiveFileError)?.kind == .sandboxEnded }
    }
}
