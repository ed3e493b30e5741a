import Glibc

/// Finds the directory holding profiles/ and rootfs/etc: `SEALBOX_DATA_DIR`, then the
/// directories above the running binary (a checkout: .build/debug/sealbox), then the
/// installed locations.
public enum DataDirectory {
    public static func locate(executablePath: String? = nil) throws(JailError) -> String {
        var candidates: [String] = []
        if let env = getenv("SEALBOX_DATA_DIR") { candidates.append(String(cString: env)) }
        if let exe = executablePath ?? currentExecutable() {
            var dir = exe
            for _ in 0..<6 {
                guard let slash = dir.lastIndex(of: "/"), slash != dir.startIndex else { break }
                dir = String(dir[..<slash])
                candidates.append(dir)
                candidates.append(dir + "/share/sealbox")
            }
        }
        candidates += ["/usr/local/share/sealbox", "/usr/share/sealbox"]
        for dir in candidates where isDataDirectory(dir) { return dir }
        throw JailError(.rootfs, "cannot find sealbox's data directory (profiles/default.json and rootfs/etc/passwd); set SEALBOX_DATA_DIR to the sealbox checkout")
    }

    public static func isDataDirectory(_ dir: String) -> Bool {
        access(dir + "/profiles/default.json", R_OK) == 0 && access(dir + "/rootfs/etc/passwd", R_OK) == 0
    }

    static func currentExecutable() -> String? {
        try? FilesystemPlan.readLink("/proc/self/exe")
    }
}
