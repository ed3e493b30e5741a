/// Bytes a running program wrote, handed to an output observer as they arrive.
///
/// The observer sees exactly the bytes the captured result keeps: each stream's first
/// `limits.outputBytes`, in order; what is drained past the cap is counted in
/// `stdout_bytes`/`stderr_bytes` but never observed, so a stream never carries more than
/// the output limit.
public struct OutputChunk: Sendable, Equatable {
    public enum Stream: String, Sendable {
        case stdout, stderr
    }

    public var stream: Stream
    public var bytes: [UInt8]

    public init(stream: Stream, bytes: [UInt8]) {
        self.stream = stream
        self.bytes = bytes
    }
}

/// Called on the supervisor thread for every chunk, while the program runs. It must not
/// block: the supervisor also enforces the timeout and drains the pipes, so a slow
/// observer stalls the jail's output (the program then blocks on a full pipe, and the
/// timeout still ends it).
public typealias OutputObserver = @Sendable (OutputChunk) -> Void
