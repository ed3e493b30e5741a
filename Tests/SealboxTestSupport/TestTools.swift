import Foundation

/// The broker config end-to-end tests grant tools from: `stamp` answers at once ("stamped
/// TEXT"), `nap` sleeps SECONDS (a call that is still running when the test needs one).
public enum TestTools {
    public static let yaml = """
        tools:
          nap:
            kind: command
            argv: [/bin/sleep, "{seconds}"]
            args: { seconds: { type: string, pattern: "^[0-9]$" } }
            effect: idempotent
          stamp:
            kind: command
            argv: [/bin/echo, "stamped {text}"]
            args: { text: { type: string, pattern: "^[a-z]{1,20}$" } }
            effect: idempotent
        """

    /// Writes `DIR/tools.yaml`; its path.
    public static func write(in dir: String) throws -> String {
        let path = dir + "/tools.yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
