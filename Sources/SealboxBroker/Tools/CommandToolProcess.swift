import Foundation
import SealboxBase
import SealboxLedger

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a command tool's program (`HostProcess`: posix_spawn, no shell), stdin /dev/null, stdout and stderr
/// captured (each capped; the rest is read and discarded so the program never blocks on a full
/// pipe), a fresh process group killed with SIGKILL at the deadline, every other descriptor closed.
enum CommandToolProcess {
    struct Result: Sendable {
        let exitCode: Int32?
        let signal: Int32?
        let stdout: Data
        let stderr: Data
        let stdoutTruncated: Bool
        let stderrTruncated: Bool
    }

    enum Failure: Error, Sendable {
        case spawn(Int32)
        case pipe(Int32)
        case timedOut
        case cancelled
    }

    static func run(
        argv: [String], environment: [String], workingDirectory: String, timeoutMs: Int, maxBytes: Int
    ) async -> Swift.Result<Result, Failure> {
        let control = CommandToolControl()
        return await withTaskCancellationHandler {
            await onOwnThread("sealbox-command-tool") {
                runBlocking(
                    argv: argv, environment: environment, workingDirectory: workingDirectory,
                    timeoutMs: timeoutMs, maxBytes: maxBytes, control: control)
            }
        } onCancel: {
            control.cancel()
        }
    }

    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

    /// A close-on-exec pipe (pipe2 when the C library has it, so no other spawn can inherit it).
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        if let pipe2 = cLibrarySymbol("pipe2", as: Pipe2.self) {
            return fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress, O_CLOEXEC) } == 0
        }
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }

    private static func runBlocking(
        argv: [String], environment: [String], workingDirectory: String, timeoutMs: Int, maxBytes: Int,
        control: CommandToolControl
    ) -> Swift.Result<Result, Failure> {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard makePipe(&outPipe) else { return .failure(.pipe(errno)) }
        guard makePipe(&errPipe) else {
            let e = errno
            close(outPipe[0]); close(outPipe[1])
            return .failure(.pipe(e))
        }

        let process: HostProcess
        do {
            process = try HostProcess.spawn(
                argv, environment: environment,
                options: .init(stdout: outPipe[1], stderr: errPipe[1], workingDirectory: workingDirectory, newProcessGroup: true),
                wrap: { _ = CommandOrphans.spawning($0) })
        } catch {
            close(outPipe[0]); close(outPipe[1]); close(errPipe[0]); close(errPipe[1])
            return .failure(.spawn(error.errno))
        }
        close(outPipe[1])
        close(errPipe[1])

        let start = ContinuousClock.now
        let deadline = start + .milliseconds(timeoutMs)
        var out = CappedBuffer(cap: maxBytes)
        var err = CappedBuffer(cap: maxBytes)
        var fds: [Int32] = [outPipe[0], errPipe[0]]
        var exited = false
        var exitedAt: ContinuousClock.Instant?
        var killedFor: Failure?
        var buffer = [UInt8](repeating: 0, count: 65536)

        while true {
            if !exited && process.hasExited { exited = true; exitedAt = .now }
            if exited && fds.allSatisfy({ $0 < 0 }) { break }
            // A grandchild may keep a pipe open after the program exited: give it a moment, no more.
            if exited, let at = exitedAt, ContinuousClock.now - at > .milliseconds(200) { break }
            if control.isCancelled { killedFor = .cancelled; break }
            let now = ContinuousClock.now
            if now >= deadline { killedFor = .timedOut; break }
            let remaining = deadline - now
            let waitMs = min(Int(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000) + 1, 50)
            if fds.allSatisfy({ $0 < 0 }) {
                usleep(UInt32(min(waitMs, 5) * 1000))
                continue
            }
            var pollFds = fds.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&pollFds, nfds_t(pollFds.count), Int32(waitMs))
            if n < 0 && errno != EINTR { break }
            for p in pollFds where p.revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    if p.fd == outPipe[0] { out.append(buffer, count) } else { err.append(buffer, count) }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(p.fd)
                    fds = fds.map { $0 == p.fd ? -1 : $0 }
                }
            }
        }
        for fd in fds where fd >= 0 { close(fd) }
        // The program is not reaped yet (hasExited uses WNOWAIT), so its pid still names our
        // process group: kill whatever is left of it (the program at a deadline, background
        // children after a normal exit), then reap.
        process.signal(SIGKILL, group: true)
        let status = process.wait()
        // What left the group (setsid, a double fork) and was orphaned to this broker dies too.
        CommandOrphans.finished(process.pid)
        if let killedFor { return .failure(killedFor) }
        let exitCode: Int32? = (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil
        let signal: Int32? = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f ? status & 0x7f : nil
        return .success(Result(
            exitCode: exitCode, signal: signal, stdout: out.data, stderr: err.data,
            stdoutTruncated: out.truncated, stderrTruncated: err.truncated
        ))
    }

    struct CappedBuffer {
        let cap: Int
        var data = Data()
        var truncated = false

        init(cap: Int) { self.cap = cap }

        mutating func append(_ bytes: [UInt8], _ count: Int) {
            let room = cap - data.count
            if count <= room {
                data.append(contentsOf: bytes[0..<count])
            } else {
                if room > 0 { data.append(contentsOf: bytes[0..<room]) }
                truncated = true
            }
        }
    }
}

/// Cancellation shared between the Swift task and the thread that supervises the process.
final class CommandToolControl: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    var isCancelled: Bool { lock.withLock { cancelled } }

    func cancel() { lock.withLock { cancelled = true } }
}
