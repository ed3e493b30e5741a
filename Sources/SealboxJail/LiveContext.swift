import CSealboxSpawn
import Foundation
import Glibc
import SealboxBase

/// What one chunk of code did in a context.
public struct ContextChunkResult: Sendable, Encodable {
    public struct Failure: Sendable, Encodable {
        /// The exception's type (`ZeroDivisionError`, `KeyboardInterrupt` after a timeout).
        public var name: String
        public var value: String
        public var traceback: String
    }

    public struct Display: Sendable, Encodable {
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
    public var durationMs: Double
    /// It ran past its timeout and was interrupted (SIGINT); `error` says how it stopped.
    public var timedOut: Bool

    enum CodingKeys: String, CodingKey {
        case value, stdout, stderr, error, display
        case stdoutTruncated = "stdout_truncated"
        case stderrTruncated = "stderr_truncated"
        case durationMs = "duration_ms"
        case timedOut = "timed_out"
    }
}

/// A long-lived interpreter in a live jail that runs chunks of code one after another, with
/// its variables, imports and working directory kept (`ContextDrivers`). Started as a command
/// of the jail, so it is filtered, limited and owned like any: its process group is its own.
///
/// A chunk past its timeout gets SIGINT (Python raises KeyboardInterrupt in it, and the
/// context lives on); one that does not stop within `interruptGrace` is killed, and with it
/// the context, which says so (`endReason`). A context whose interpreter died answers every
/// later chunk with that reason; make a new one.
public final class LiveContext: @unchecked Sendable {  // `lock` guards `endReason` and the pipes' use
    public let id: String
    public let language: String
    private let jail: LiveJail
    private let launched: LiveJail.Launched
    private let requests: Int32
    private let lock = NSLock()
    private var ended: String?

    public static let languages = ["python"]
    /// Per stream and for a value, what one chunk answers at most.
    public static let outputLimit = 1 << 20
    /// A frame larger than this is not an answer of the driver: the context is ended.
    static let maximumFrame = 64 << 20
    static let interruptGraceMs = 2000

    private init(id: String, language: String, jail: LiveJail, launched: LiveJail.Launched, requests: Int32) {
        self.id = id
        self.language = language
        self.jail = jail
        self.launched = launched
        self.requests = requests
    }

    deinit { close() }

    /// Starts a context of `language` in `jail`, in `workingDirectory`, with `environment`
    /// over the jail's.
    public static func start(in jail: LiveJail, language: String, id: String, environment: [(name: String, value: String)] = [],
                             workingDirectory: String = "/work") throws(JailError) -> LiveContext {
        guard language == "python" else {
            throw JailError(.invalidSpec, "a context's language is one of \(languages.joined(separator: ", ")), not \(Printable.text(language, limit: 32))")
        }
        let command = LiveCommand(command: ["python3", "-c", ContextDrivers.python, String(outputLimit)], environment: environment,
                                  workingDirectory: workingDirectory, timeoutMs: Int(Int32.max))
        try LiveJail.validate(command)
        // A socket rather than a pipe: sealbox writes to it with MSG_NOSIGNAL, so an interpreter
        // that died makes the write fail with EPIPE instead of sending sealbox SIGPIPE.
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            throw JailError.syscall(.setup, "socketpair for a context's requests", errno)
        }
        let stdin = (read: pair[0], write: pair[1])
        let launched: LiveJail.Launched
        do throws(JailError) {
            launched = try jail.launch(command, stdinFD: stdin.read)
        } catch {
            Glibc.close(stdin.read)
            Glibc.close(stdin.write)
            throw error
        }
        Glibc.close(stdin.read)
        if let failure = launched.failure {
            launched.closeReadEnds()
            Glibc.close(stdin.write)
            throw JailError(.setup, "the \(language) context could not start: \(failure.message)")
        }
        // Its own stderr carries only what the driver itself says (a crash): never let it fill.
        _ = fcntl(launched.err, F_SETFL, fcntl(launched.err, F_GETFL) | O_NONBLOCK)
        return LiveContext(id: id, language: language, jail: jail, launched: launched, requests: stdin.write)
    }

    /// Why it ended (its interpreter exited, was killed, or `close` was called), or nil.
    public var endReason: String? { lock.withLock { ended } }

    /// Runs `code`; blocks until the chunk answered. Throws when the context has ended (or ends
    /// now: the reason says why).
    public func run(_ code: String, timeoutMs: Int) throws(JailError) -> ContextChunkResult {
        lock.lock()
        defer { lock.unlock() }
        if let ended { throw JailError(.setup, "the context has ended: \(ended)") }
        let began = DispatchTime.now().uptimeNanoseconds
        let body = (try? JSONEncoder().encode(["code": code])).map { [UInt8]($0) } ?? []
        var frame = withUnsafeBytes(of: UInt64(body.count).bigEndian) { Array($0) }
        frame += body
        guard Self.writeAll(requests, frame) else { throw JailError(.setup, "the context has ended: \(end(killing: false))") }

        var deadline = began + UInt64(max(1, timeoutMs)) * 1_000_000
        var timedOut = false
        var answer: [UInt8]?
        while answer == nil {
            switch Self.readFrame(launched.out, exit: launched.exit, until: deadline) {
            case .frame(let bytes):
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
        guard let answer, var result = Self.decode(answer) else {
            throw JailError(.setup, "the context has ended: \(end(killing: true, because: "its interpreter answered with something that is not a chunk's result"))")
        }
        result.durationMs = Double((DispatchTime.now().uptimeNanoseconds - began) / 1000) / 1000
        result.timedOut = timedOut
        drainOwnStderr()
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
            let said = drainOwnStderr()
            if !said.isEmpty { reason += ": " + Printable.text(said, limit: 400) }
        }
        ended = reason
        Glibc.close(requests)
        jail.finished(launched)
        launched.closeReadEnds()
        return reason
    }

    /// What the driver wrote to its own stderr since the last look (at most 64 KiB kept).
    @discardableResult
    private func drainOwnStderr() -> String {
        var kept: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(launched.err, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if kept.count < 64 << 10 { kept += chunk[0..<n] }
        }
        return String(decoding: kept, as: UTF8.self)
    }

    enum Read {
        case frame([UInt8])
        case timedOut
        case gone
    }

    /// One frame from `fd` (length, then body) before `deadline`; `gone` when the interpreter
    /// exited (its exit pipe readable) or the pipe closed.
    static func readFrame(_ fd: Int32, exit: Int32, until deadline: UInt64) -> Read {
        var header: [UInt8] = []
        var body: [UInt8] = []
        var want = 8
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return .timedOut }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: exit, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&fds, 2, Int32(clamping: (deadline - now + 999_999) / 1_000_000))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            if fds[0].revents == 0 { return .gone }  // only the exit pipe: the interpreter ended
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, want)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .gone }
            if header.count < 8 {
                header += buffer[0..<n]
                want -= n
                if header.count == 8 {
                    let length = header.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    guard length <= UInt64(maximumFrame) else { return .gone }
                    want = Int(length)
                    if want == 0 { return .frame([]) }
                }
            } else {
                body += buffer[0..<n]
                want -= n
                if want == 0 { return .frame(body) }
            }
        }
    }

    static func decode(_ bytes: [UInt8]) -> ContextChunkResult? {
        struct Wire: Decodable {
            struct Failure: Decodable { var name: String; var value: String; var traceback: String }
            struct Display: Decodable { var mime: String; var data: String }
            var value: String?
            var stdout: String
            var stderr: String
            var stdout_truncated: Bool
            var stderr_truncated: Bool
            var error: Failure?
            var display: [Display]
        }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: Data(bytes)) else { return nil }
        return ContextChunkResult(
            value: wire.value, stdout: wire.stdout, stderr: wire.stderr, stdoutTruncated: wire.stdout_truncated,
            stderrTruncated: wire.stderr_truncated,
            error: wire.error.map { .init(name: $0.name, value: $0.value, traceback: $0.traceback) },
            display: wire.display.map { .init(mime: $0.mime, data: $0.data) }, durationMs: 0, timedOut: false)
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            offset += n
        }
        return true
    }
}
