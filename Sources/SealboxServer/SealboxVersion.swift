/// The version sealbox reports about itself (MCP's serverInfo).
public enum SealboxVersion {
    public static let current = "0.1.0"
}
