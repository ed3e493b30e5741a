import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// The session workspace through the CLI: /work carries from step to step, snapshots are
/// content-addressed, forks start from their step's snapshot, the limit is enforced.
@Suite("Session workspace steps", .needsRoot, .serialized)
struct WorkspaceStepTests {
    final class Session {
        let dir: String
        let checkpoints: String
        let id: String

        init(limit: String = "64M") throws {
            dir = try TemporaryDirectory.make("ws")
            checkpoints = dir + "/checkpoints.sqlite"
            let created = try Binaries.runBlocking(["session", "new", "--checkpoints", checkpoints, "--workspace-limit", limit])
            guard created.status == 0 else { throw FixtureFailure("session new: \(created.stderr)") }
            id = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        deinit { TemporaryDirectory.remove(dir) }

        func step(_ key: String, _ script: String, session: String? = nil) async throws -> [String: Any] {
            let arguments = ["run", "--session", session ?? id, "--step", key, "--checkpoints", checkpoints, "--json",
                             "--lang", "sh", "--code", script]
            let run = try await offPool { try Binaries.runBlocking(arguments) }
            guard let object = try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any] else {
                throw FixtureFailure("step \(key): exit \(run.status), \(run.stderr)")
            }
            return object
        }

        /// Bytes under the blob store.
        var blobBytes: Int {
            let root = dir + "/blobs"
            let files = FileManager.default.enumerator(atPath: root)?.compactMap { $0 as? String } ?? []
            return files.reduce(0) { total, name in
                let attributes = try? FileManager.default.attributesOfItem(atPath: root + "/" + name)
                return total + ((attributes?[.type] as? FileAttributeType) == .typeRegular ? (attributes?[.size] as? Int ?? 0) : 0)
            }
        }
    }

    @Test("a 100-step session keeps a 1 MiB file as one stored copy, and each step sees the last one's files")
    func hundredSteps() async throws {
        let session = try Session()
        let first = try await session.step("0", "head -c 1048576 /dev/urandom > /work/data.bin; echo 0 > /work/count")
        #expect(first["status"] as? String == "ok")
        for n in 1..<100 {
            // Each step reads what the previous step left and changes one small file.
            let result = try await session.step("\(n)", "test $(cat /work/count) = \(n - 1) && echo \(n) > /work/count && test -s /work/data.bin")
            #expect(result["status"] as? String == "ok", "step \(n): \(result["stderr"] ?? "")")
            if result["status"] as? String != "ok" { break }
        }
        let last = try await session.step("final", "cat /work/count; sha256sum /work/data.bin | cut -c1-8")
        #expect((last["stdout"] as? String)?.hasPrefix("99\n") == true)
        let workspace = try #require(last["workspace"] as? [String: Any])
        #expect(workspace["files"] as? Int == 3)  // data.bin, count, main.sh
        // 101 snapshots keep data.bin: one copy of it, plus ~100 tiny count/main.sh blobs.
        #expect(session.blobBytes < (1 << 20) + 64 * 1024, "blob store holds \(session.blobBytes) bytes")
        let steps = try await Binaries.run(["session", "steps", session.id, "--json", "--checkpoints", session.checkpoints])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(steps.stdout.utf8)) as? [[String: Any]])
        #expect(list.count == 101 && list.allSatisfy { ($0["snapshot"] as? String)?.hasPrefix("sha256:") == true })
    }

    @Test("a fork starts from its step's workspace; the original keeps its own")
    func forkWorkspace() async throws {
        let session = try Session()
        _ = try await session.step("a", "echo a > /work/state")
        _ = try await session.step("b", "echo b > /work/state; echo extra > /work/b-only")
        let fork = try await Binaries.run(["session", "fork", session.id, "--at", "a", "--checkpoints", session.checkpoints])
        #expect(fork.status == 0, "\(fork.stderr)")
        let forkID = fork.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let inFork = try await session.step("b", "cat /work/state; ls /work", session: forkID)
        #expect(inFork["replayed"] as? Bool == false)
        #expect(inFork["stdout"] as? String == "a\nmain.sh\nstate\n")
        let inOriginal = try await session.step("c", "cat /work/state; ls /work")
        #expect(inOriginal["stdout"] as? String == "b\nb-only\nmain.sh\nstate\n")
        // The inherited step is replayed in the fork.
        let replayed = try await session.step("a", "echo a > /work/state", session: forkID)
        #expect(replayed["replayed"] as? Bool == true)
        let unsealed = try await Binaries.run(["session", "fork", session.id, "--at", "zzz", "--checkpoints", session.checkpoints])
        #expect(unsealed.status != 0 && unsealed.stderr.contains("not sealed"), "\(unsealed.stderr)")
    }

    @Test("filling the workspace fails the program's write with ENOSPC and says so")
    func limit() async throws {
        let session = try Session(limit: "2M")
        let result = try await session.step("fill", "dd if=/dev/zero of=/work/big bs=64k count=64 2>&1; echo rc=$?")
        #expect((result["stdout"] as? String)?.contains("No space left on device") == true)
        let workspace = try #require(result["workspace"] as? [String: Any])
        #expect(workspace["full"] as? Bool == true && workspace["limit_bytes"] as? Int == 2 << 20)
        let tooSmall = try await Binaries.run(["session", "new", "--checkpoints", session.checkpoints, "--workspace-limit", "10K"])
        #expect(tooSmall.status != 0 && tooSmall.stderr.contains("between 1M and 16G"), "\(tooSmall.stderr)")
    }
}
