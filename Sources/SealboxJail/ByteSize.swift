import SealboxBase

extension ByteSize {
    /// A size given to `flag`, or an error that names the flag and the value.
    public static func parse(_ text: String, flag: String) throws(JailError) -> UInt64 {
        switch read(text) {
        case .success(let bytes):
            return bytes
        case .failure(.invalid):
            throw JailError(.invalidSpec, "invalid size \"\(text)\" for \(flag) (a number with an optional K, M, G or T suffix, e.g. 256M)")
        case .failure(.tooLarge):
            throw JailError(.invalidSpec, "size \"\(text)\" for \(flag) is too large")
        }
    }
}
