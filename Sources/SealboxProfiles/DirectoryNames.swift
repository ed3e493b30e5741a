import Glibc

/// The names in a directory stream, `.` and `..` left out. A name is read where it lies, up to
/// its NUL, never by copying `dirent.d_name`: a record is only as long as its name
/// (`d_reclen`), so copying the whole 256-byte field reads past the last record in glibc's
/// buffer, which can be the end of a mapped page (the crash swift-corelibs-foundation#5472
/// fixed in Foundation's own listing).
public enum DirectoryNames {
    private static let nameOffset = MemoryLayout<dirent>.offset(of: \dirent.d_name)!

    /// Every name of `dir` (an `opendir`/`fdopendir` stream) as raw bytes.
    public static func read(_ dir: OpaquePointer) -> [[UInt8]] {
        var names: [[UInt8]] = []
        while let entry = readdir(dir) {
            let name = UnsafeRawPointer(entry).advanced(by: nameOffset).assumingMemoryBound(to: CChar.self)
            let bytes = Array(UnsafeRawBufferPointer(start: name, count: strlen(name)))
            if bytes != [0x2E] && bytes != [0x2E, 0x2E] { names.append(bytes) }
        }
        return names
    }
}
