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

    /// write(2) until all of `bytes` is written, retrying EINTR and short writes; false with
    /// errno set on failure (EIO for a write that wrote nothing). The one write loop of
    /// workspaces, uploads, state files and the CLI's output.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var written = 0
        while written < bytes.count {
            let n = retry { write(fd, bytes.baseAddress! + written, bytes.count - written) }
            if n < 0 { return false }
            if n == 0 {
                errno = EIO
                return false
            }
            written += n
        }
        return true
    }
}
