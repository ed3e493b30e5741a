import Glibc

/// The one EINTR rule: a signal that arrives during a slow system call (read, write, waitpid,
/// open on a FIFO) interrupts it with EINTR, which is not a failure of the call, so it is made
/// again (swift-system's `retryOnInterrupt`). Sites that must recompute something before
/// retrying (poll's remaining timeout) keep their own loop.
public enum Interrupted {
    /// `call()`, made again while it returns -1 with errno EINTR. Returns the first other
    /// result, with errno as that call left it.
    @inline(__always)
    public static func retry<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let result = call()
            if result != -1 || errno != EINTR { return result }
        }
    }
}
