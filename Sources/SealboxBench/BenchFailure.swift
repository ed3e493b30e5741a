/// Why a bench could not measure what it was asked to (`sealbox bench` prints it and exits 125).
public struct BenchFailure: Error, CustomStringConvertible {
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
