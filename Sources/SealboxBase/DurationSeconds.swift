extension Duration {
    /// The duration in seconds, fractions included: one conversion instead of each caller
    /// adding `components.seconds` and `components.attoseconds` by hand.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
