/// Bytes to hash, made unambiguous: every variable-length field goes after its length, so no
/// two different lists of fields give the same bytes (`"ab","c"` and `"a","bc"` differ). The
/// one encoder behind the effect-record hash, the checkpoint hash, a step's code digest and
/// the world key; each names its length width, which is part of its pinned format.
public struct LengthPrefixed: Sendable {
    public enum Width: Sendable {
        /// 4 bytes, big-endian.
        case u32
        /// 8 bytes, big-endian.
        case u64
    }

    public private(set) var bytes: [UInt8] = []
    public let width: Width

    public init(width: Width, reservingCapacity capacity: Int = 256) {
        self.width = width
        bytes.reserveCapacity(capacity)
    }

    /// The length of `field` in `width` bytes, then the field.
    public mutating func append(_ field: some Collection<UInt8>) {
        switch width {
        case .u32:
            precondition(field.count <= Int(UInt32.max), "field longer than 4 GiB")
            appendBigEndian(UInt32(field.count))
        case .u64:
            appendBigEndian(UInt64(field.count))
        }
        bytes.append(contentsOf: field)
    }

    /// The UTF-8 bytes of `text`, length first.
    public mutating func append(text: String) {
        append(Array(text.utf8))
    }

    /// One byte as it is (a type or presence tag).
    public mutating func appendTag(_ byte: UInt8) {
        bytes.append(byte)
    }

    /// A fixed-width integer, big-endian, with no length before it.
    public mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        let bigEndian = value.bigEndian
        withUnsafeBytes(of: bigEndian) { bytes.append(contentsOf: $0) }
    }
}
