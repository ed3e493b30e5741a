import CSealboxSpawn
import Foundation
import Glibc
import SealboxBase

/// What one chunk of code did in a context.
public struct ContextChunkResult: Sendable, Codable {
    public struct Failure: Sendable, Codable {
        /// The exception's type (`ZeroDivisionError`, `KeyboardInterrupt` after a timeout).
        public var name: String
        public var value: String
        public var traceback: String
    }

    public struct Display: Sendable, Codable {
        /// `image/png`.
        public var mime: String
        /// Base64.
        public var data: String
    }

    /// The last expression's repr, when the chunk ended with one that was not None.
    public var value: String?
    public var stdout: String
    public var stderr: String
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// The exception the chunk raised, if it did.
    public var error: Failure?
    /// Rich outputs: a PNG of each matplotlib figure left open.
    public var display: [Display]
    /// A shell context's chunk: its exit status.
    public var exitCode: Int?
    public var durationMs: Double
    /// It ran past its timeout and was interrupted (SIGINT); `error` says how it stopped.
    public var timedOut: Bool
    /// A step's chunk (a sandbox in a session): answered from its seal, not run again.
    public var replayed: Bool?
    /// A step's chunk: the checkpoint that sealed it.
    public var checkpoint: Int64?
    /// A step's chunk that ran but was not sealed: why (it can be sent again).
    public var unsealed: String?

    enum CodingKeys: String, CodingKey {
        case value, stdout, stderr, error, display
        case stdoutTruncated = "stdout_truncated"
        case stderrTruncated = "stderr_truncated"
        case exitCode = "exit_code"
        case durationMs = "duration_ms"
        case timedOut = "timed_out"
        case replayed, checkpoint, unsealed
    }
}

/// A long-lived interpreter in a live jail that runs chunks of code one after another, with
/// its variables, imports and working directory kept (`ContextDriver`: python, node, bash).
/// Started as a command of the jail, so it is filtered, limited and owned like any: its
/// process group is its own.
///
/// A chunk's output is what fds 1 and 2 of the interpreter (and its children) received while
/// it ran, read here as it comes, at most `outputLimit` bytes a stream; its answer comes on
/// a separate channel (the socket given as stdin). A chunk past its timeout gets SIGINT
/// (KeyboardInterrupt in Python, an interrupted script in node, the foreground command in
/// bash), and the context lives on; one that does not stop within `interruptGraceMs` is
/// killed, and with it the context, which says so (`endReason`). A context whose interpreter
/// died answers every later chunk with that reason; make a new one.
public final class LiveContext: @unchecked Sendable {  // `lock` guards `ended` and the descriptors' use
    public let id: String
    public let language: String
    private let jail: LiveJail
    private let launched: LiveJail.Launched
    private let channel: Int32
    private let lock = NSLock()
    private var ended: String?

    public static let languages: [String] = ContextDriver.all.keys.sorted()
    /// Per stream and for a value, what one chunk answers at most.
    public static let outputLimit = 1 << 20
    /// An answer longer than this is not a driver's: the context is ended.
    static let maximumAnswer = 64 << 20
    static let interruptGraceMs = 2000

    private init(id: String, language: String, jail: LiveJail, launched: LiveJail.Launched, channel: Int32) {
        self.id = id
        self.language = language
        self.jail = jail
        self.launched = launched
        self.channel = channel
    }

    deinit { close() }

    /// Starts a context of `language` in `jail`, in `workingDirectory`, with `environment`
    /// over the jail's.
    public static func start(in jail: LiveJail, language: String, id: String, environment: [(name: String, value: String)] = [],
                             workingDirectory: String = "/work") throws(JailError) -> LiveContext {
        guard let driver = ContextDriver.all[language] else {
            throw JailError(.invalidSpec, "a context's language is one of \(languages.joined(separator: ", ")), not \(Printable.text(language, limit: 32))")
        }
        let command = LiveCommand(command: driver.command(outputLimit), environment: environment,
                                  workingDirectory: workingDirectory, timeoutMs: Int(Int32.max))
        try LiveJail.validate(command)
        // A socket: both ways on one descriptor, and sealbox writes to it with MSG_NOSIGNAL, so
        // an interpreter that died makes the write fail with EPIPE instead of sending SIGPIPE.
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw JailError.syscall(.setup, "socketpair for a context's channel", errno)
        }
        var launched: LiveJail.Launched
        do throws(JailError) {
            launched = try jail.launch(command, stdinFD: pair[0])
        } catch {
            Glibc.close(pair[0])
            Glibc.close(pair[1])
            throw error
        }
        Glibc.close(pair[0])
        if let failure = launched.failure {
            launched.closeReadEnds()
            Glibc.close(pair[1])
            throw JailError(.setup, "the \(language) context could not start: \(failure.message)")
        }
        // Read as they come, never blocking: what a chunk printed is drained when it answers.
        for fd in [launched.out, launched.err, pair[1]] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        // The interpreter's notified calls (a profile that notifies) are answered all its
        // life, between chunks too (a timer, a thread of numpy's BLAS), not only while
        // sealbox waits for a chunk.
        if launched.notifyFD >= 0 {
            jail.serveNotifications(launched.notifyFD)
            launched.notifyFD = -1
        }
        return LiveContext(id: id, language: language, jail: jail, launched: launched, channel: pair[1])
    }

    /// Why it ended (its interpreter exited, was killed, or `close` was called), or nil.
    public var endReason: String? { lock.withLock { ended } }

    /// Runs `code`; blocks until the chunk answered. Throws when the context has ended (or ends
    /// now: the reason says why).
    public func run(_ code: String, timeoutMs: Int) throws(JailError) -> ContextChunkResult {
        if code.utf8.contains(0) { throw JailError(.invalidSpec, "a chunk's code cannot contain a NUL character") }
        lock.lock()
        defer { lock.unlock() }
        if let ended { throw JailError(.setup, "the context has ended: \(ended)") }
        let began = DispatchTime.now().uptimeNanoseconds
        var output = ChunkOutput(limit: Self.outputLimit)
        // What background processes printed since the last chunk is this one's.
        output.drain(out: launched.out, err: launched.err)
        guard Self.send(channel, Array(code.utf8) + [0]) else { throw JailError(.setup, "the context has ended: \(end(killing: false))") }

        var deadline = began + UInt64(max(1, timeoutMs)) * 1_000_000
        var timedOut = false
        var answer: [UInt8]?
        while answer == nil {
            switch awaitAnswer(&output, until: deadline) {
            case .answer(let bytes):
                answer = bytes
            case .timedOut where !timedOut:
                timedOut = true
                jail.signal(launched.commandID, SIGINT)
                deadline = DispatchTime.now().uptimeNanoseconds + UInt64(Self.interruptGraceMs) * 1_000_000
            case .timedOut:
                let reason = end(killing: true, because: "its chunk ran past its timeout of \(DurationText.format(milliseconds: timeoutMs)) and did not stop on SIGINT within \(DurationText.format(milliseconds: Self.interruptGraceMs))")
                throw JailError(.setup, "the context has ended: \(reason)")
            case .gone:
                throw JailError(.setup, "the context has ended: \(end(killing: false))")
            }
        }
        // Everything the chunk printed was written before its answer: it is in the pipes now.
        output.drain(out: launched.out, err: launched.err)
        guard let answer, var result = Self.decode(answer) else {
            throw JailError(.setup, "the context has ended: \(end(killing: true, because: "its interpreter answered with something that is not a chunk's result"))")
        }
        (result.stdout, result.stdoutTruncated) = output.stdout.text
        (result.stderr, result.stderrTruncated) = output.stderr.text
        result.durationMs = Double((DispatchTime.now().uptimeNanoseconds - began) / 1000) / 1000
        result.timedOut = timedOut
        return result
    }

    /// Ends the context (its interpreter and what it started are killed). Idempotent.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        if ended == nil { _ = end(killing: true, because: "closed") }
    }

    // MARK: internals

    /// Ends it (killing the interpreter when asked), waits for its status, frees its place.
    /// Returns the reason kept. Called with `lock` held.
    private func end(killing: Bool, because given: String? = nil) -> String {
        if let ended { return ended }
        if killing { jail.signal(launched.commandID, SIGKILL) }
        var entry = pollfd(fd: launched.exit, events: Int16(POLLIN), revents: 0)
        var status = sbx_exit()
        var reason = given ?? "its interpreter ended"
        if poll(&entry, 1, 2000) > 0, sbx_read_command_exit(launched.exit, &status) == 0, given == nil {
            reason = status.exited != 0 ? "its interpreter exited with code \(status.code)" : "its interpreter was killed by signal \(status.code)"
            // Its last words (a driver's crash), when it said any.
            var last = ChunkOutput(limit: 64 << 10)
            last.drain(out: -1, err: launched.err)
            let said = last.stderr.text.0.trimmingCharacters(in: .whitespacesAndNewlines)
            if !said.isEmpty { reason += ": " + Printable.text(said, limit: 400) }
        }
        ended = reason
        Glibc.close(channel)
        jail.finished(launched)
        launched.closeReadEnds()
        return reason
    }

    enum Wait {
        case answer([UInt8])
        case timedOut
        case gone
    }

    /// Reads the interpreter's output as it comes until its answer (one line on the channel)
    /// is whole or `deadline` passes; `gone` when the interpreter exited or closed the channel.
    private func awaitAnswer(_ output: inout ChunkOutput, until deadline: UInt64) -> Wait {
        var answer: [UInt8] = []
        var outFD = launched.out, errFD = launched.err
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return .timedOut }
            // A negative descriptor is skipped by poll: a stream that reached its end.
            var fds = [pollfd(fd: channel, events: Int16(POLLIN), revents: 0), pollfd(fd: outFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: errFD, events: Int16(POLLIN), revents: 0), pollfd(fd: launched.exit, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 4, Int32(clamping: (deadline - now + 999_999) / 1_000_000))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            if fds[1].revents != 0, !output.read(outFD, into: .stdout) { outFD = -1 }
            if fds[2].revents != 0, !output.read(errFD, into: .stderr) { errFD = -1 }
            if fds[0].revents != 0 {
                let n = output.buffer.withUnsafeMutableBytes { recv(channel, $0.baseAddress, $0.count, 0) }
                if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
                if n <= 0 { return .gone }
                answer += output.buffer[0..<n]
                if let newline = answer.firstIndex(of: UInt8(ascii: "\n")) {
                    // One chunk at a time, so nothing follows its answer.
                    return .answer(Array(answer[..<newline]))
                }
                if answer.count > Self.maximumAnswer { return .gone }
            } else if fds[3].revents != 0 && fds[1].revents == 0 && fds[2].revents == 0 {
                return .gone  // only the exit pipe: the interpreter ended
            }
        }
    }

    static func decode(_ bytes: [UInt8]) -> ContextChunkResult? {
        struct Wire: Decodable {
            struct Failure: Decodable { var name: String; var value: String; var traceback: String }
            struct Display: Decodable { var mime: String; var data: String }
            var value: String?
            var error: Failure?
            var display: [Display]
            var exit_code: Int?
        }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(bytes)) else { return nil }
        return ContextChunkResult(
            value: wire.value, stdout: "", stderr: "", stdoutTruncated: false, stderrTruncated: false,
            error: wire.error.map { .init(name: $0.name, value: $0.value, traceback: $0.traceback) },
            display: wire.display.map { .init(mime: $0.mime, data: $0.data) }, exitCode: wire.exit_code, durationMs: 0, timedOut: false)
    }

    /// Writes all of `bytes` to the (non-blocking) channel, waiting while it is full.
    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == EAGAIN {
                var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&entry, 1, 1000)
                continue
            }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}

/// What one chunk printed on its two streams: at most `limit` bytes of each kept, the rest
/// read and counted as truncation, so an interpreter that prints much never blocks. One
/// read buffer serves the chunk's every read.
struct ChunkOutput {
    struct Stream {
        var bytes: [UInt8] = []
        var truncated = false
        let limit: Int

        /// Reads what is there now from `fd` (non-blocking; at most 16 buffers, so a stream
        /// that never runs dry cannot hold the caller). False at its end or on an error.
        mutating func read(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
            for _ in 0..<16 {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 && errno == EAGAIN { return true }
                if n <= 0 { return false }
                let room = max(0, limit - bytes.count)
                bytes += buffer[0..<min(n, room)]
                if n > room { truncated = true }
            }
            return true
        }

        var text: (String, Bool) { (String(decoding: bytes, as: UTF8.self), truncated) }
    }

    var stdout: Stream
    var stderr: Stream
    var buffer = [UInt8](repeating: 0, count: 64 << 10)

    init(limit: Int) {
        stdout = Stream(limit: limit)
        stderr = Stream(limit: limit)
    }

    /// `Stream.read` of `fd` into the output of `stream`, with the shared buffer.
    mutating func read(_ fd: Int32, into stream: OutputChunk.Stream) -> Bool {
        switch stream {
        case .stdout: stdout.read(fd, &buffer)
        case .stderr: stderr.read(fd, &buffer)
        }
    }

    /// Takes what is in the pipes now (a negative descriptor is skipped).
    mutating func drain(out: Int32, err: Int32) {
        if out >= 0 { _ = read(out, into: .stdout) }
        if err >= 0 { _ = read(err, into: .stderr) }
    }
}
