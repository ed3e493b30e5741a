import Glibc

/// Reads a whole small file: pseudo files (procfs, cgroupfs report size 0, so read to EOF),
/// /etc files copied into jails. One loop for every such read in SealboxJail.
enum SmallFile {
    enum Failure: Error {
        case errno(Int32)
        case tooLarge(limit: Int)
    }

    static func read(_ path: String, limit: Int = 1 << 20, flags: Int32 = O_RDONLY | O_CLOEXEC) -> Result<[UInt8], Failure> {
        let fd = open(path, flags)
        guard fd >= 0 else { return .failure(.errno(errno)) }
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                return .failure(.errno(errno))
            }
            if count == 0 { return .success(data) }
            data.append(contentsOf: buffer[0..<count])
            if data.count > limit { return .failure(.tooLarge(limit: limit)) }
        }
    }
}
