import Foundation
import Glibc
import SealboxBase

/// Reads newline-delimited messages from a file descriptor (the MCP stdio transport) with a
/// bound on each line: a longer line is skipped up to its newline and reported as `.tooLong`,
/// so a client cannot make the server hold more than `maxLineBytes` for one message.
/// Blocking reads: call it from a dedicated thread, never from the cooperative pool.
final class MCPLineReader {
    enum Item {
        case line(Data)
        case tooLong(bytes: Int)
        case endOfInput
    }

    private let fd: Int32
    private let maxLineBytes: Int
    private var buffer: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 64 << 10)
    private var chunkStart = 0
    private var chunkEnd = 0
    private var atEOF = false

    init(fd: Int32, maxLineBytes: Int) {
        self.fd = fd
        self.maxLineBytes = maxLineBytes
    }

    /// The next non-empty line without its "\n" (and a trailing "\r"), or end of input.
    func next() -> Item {
        var skipped: Int?  // bytes dropped of a line that is over the bound
        while true {
            if chunkStart == chunkEnd {
                if atEOF || !fill() {
                    atEOF = true
                    if let skipped { return .tooLong(bytes: skipped) }
                    // A last line without a newline still counts: the client closed after it.
                    if !buffer.isEmpty { return .line(take()) }
                    return .endOfInput
                }
            }
            let slice = chunk[chunkStart..<chunkEnd]
            let newline = slice.firstIndex(of: UInt8(ascii: "\n"))
            let end = newline ?? chunkEnd
            let count = end - chunkStart
            if let dropped = skipped {
                skipped = dropped + count
            } else if buffer.count + count > maxLineBytes {
                skipped = buffer.count + count
                buffer.removeAll(keepingCapacity: false)
            } else {
                buffer.append(contentsOf: chunk[chunkStart..<end])
            }
            chunkStart = newline.map { $0 + 1 } ?? chunkEnd
            guard newline != nil else { continue }
            if let skipped { return .tooLong(bytes: skipped) }
            let line = take()
            if !line.isEmpty { return .line(line) }
        }
    }

    private func take() -> Data {
        if buffer.last == UInt8(ascii: "\r") { buffer.removeLast() }
        let line = Data(buffer)
        buffer.removeAll(keepingCapacity: buffer.count <= 1 << 20)
        return line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) ? Data() : line
    }

    /// False at end of input or on a read error (both end the session).
    private func fill() -> Bool {
        let n = chunk.withUnsafeMutableBytes { buffer in Interrupted.retry { read(fd, buffer.baseAddress!, buffer.count) } }
        guard n > 0 else { return false }
        chunkStart = 0
        chunkEnd = n
        return true
    }
}
