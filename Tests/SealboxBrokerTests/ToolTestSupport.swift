import Foundation
import SealboxBroker
import SealboxBase
import SealboxLedger
import SealboxTestSupport

/// Builds configs and tools from YAML text for tests.
enum ToolTestSupport {
    static func config(_ yaml: String, environment: [String: String] = [:], baseDirectory: String = "/tmp") throws -> BrokerConfig {
        try BrokerConfigLoader.parse(yaml: yaml, source: "test.yaml", environment: environment, baseDirectory: baseDirectory)
    }

    /// The config's error message, or nil when it parses.
    static func configError(_ yaml: String, environment: [String: String] = [:], baseDirectory: String = "/tmp") -> String? {
        do {
            _ = try BrokerConfigLoader.parse(yaml: yaml, source: "test.yaml", environment: environment, baseDirectory: baseDirectory)
            return nil
        } catch {
            return error.message
        }
    }

    /// A runner plus one named tool from the YAML.
    static func tool(_ name: String, _ yaml: String, environment: [String: String] = [:]) throws -> (ToolRunner, ToolDefinition) {
        let config = try config(yaml, environment: environment)
        guard let tool = config.tools[name] else { throw ConfigError("no tool \(name)") }
        return (ToolRunner(config: config), tool)
    }

    /// The error thrown by `body`, if any.
    static func toolError(_ body: () async throws(ToolError) -> ToolOutcome) async -> ToolError? {
        do {
            _ = try await body()
            return nil
        } catch {
            return error
        }
    }

    /// `value[keys[0]][keys[1]]…` for JSON objects.
    static func field(_ value: JSONValue, _ keys: String...) -> JSONValue? {
        var current: JSONValue? = value
        for key in keys { current = current?.objectValue?[key] }
        return current
    }
}

extension WorldServer.Request {
    /// The body read as JSON, nil when it is not.
    var bodyJSON: JSONValue? { try? JSONReader.parse([UInt8](body)) }
}
