import SealboxBase
import ArgumentParser
import SealboxTracing
import Foundation
import SealboxJail
import SealboxMCP
import SealboxServer

struct McpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mcp",
        abstract: "Serve the Model Context Protocol on stdio, so an agent host can run code in sealbox.",
        discussion: """
            Speaks MCP (JSON-RPC 2.0, one message per line) on stdin and stdout; logs go to
            stderr. Protocol versions 2025-11-25, 2025-06-18, 2025-03-26 and 2024-11-05.
            Tools:
              run_code        run python, node, bash or sh in a fresh jail; with session + step,
                              a resumable step (a sealed step is replayed, /work carries over);
                              tools grants broker tools (needs --tools or --broker)
              create_session  start a resumable session
              session_facts   what a session has done, what authority remains, what is unsafe
              list_effects    tool calls recorded in the effect log

            Sessions and the effect log live in --state-dir (checkpoints.db, effects.db), the
            same files `sealbox serve` and `sealbox session ... --checkpoints DIR/checkpoints.db`
            use. With --tools FILE each run_code that grants tools starts a broker for that run,
            writing to DIR/effects.db. A broker given with --broker should be started with
            `sealbox broker --config FILE --ledger DIR/effects.db`, so list_effects and
            session_facts see its calls. The server exits when stdin closes, after answering
            every request it has read.

            An MCP host starts it as a subprocess. Claude Desktop (claude_desktop_config.json)
            and most hosts take this form; sealbox needs root for cgroup limits:
              {
                "mcpServers": {
                  "sealbox": {
                    "command": "/usr/local/bin/sealbox",
                    "args": ["mcp", "--state-dir", "/var/lib/sealbox", "--max-timeout", "60"],
                    "env": {"SEALBOX_DATA_DIR": "/path/to/sealbox/checkout"}
                  }
                }
              }
            A remote agent reaches the same tools over Streamable HTTP at /mcp on
            `sealbox serve`, with an API key (Authorization: Bearer sbx_...).
            Try it by hand:
              echo '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' | sealbox mcp --state-dir /tmp/sbx
            """)

    @Option(name: .customLong("state-dir"), help: ArgumentHelp("Directory for checkpoints and the effect log (the one sealbox serve uses).", valueName: "DIR"))
    var stateDir: String = StateLayout.defaultStateDirectory

    @Option(name: .long, help: "Broker config (YAML): each run_code that grants tools starts a broker with it.")
    var tools: String?

    @Option(name: .long, help: "A running broker's control socket, used by run_code calls that grant tools.")
    var broker: String?

    @Option(name: .customLong("max-concurrent"), help: "Runs executing at once (default: the number of CPUs); more wait.")
    var maxConcurrent: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .customLong("max-message"), help: "Largest message line accepted, e.g. 16M; a longer one gets an error.")
    var maxMessage: String = "16M"

    @OptionGroup var limits: OperatorLimitOptions
    @OptionGroup var profilePolicy: ProfilePolicyOptions

    func run() async throws {
        guard tools == nil || broker == nil else { throw CLIFailure(message: "give either --tools or --broker, not both") }
        if let tools, !FileManager.default.isReadableFile(atPath: tools) {
            throw CLIFailure(message: "--tools \(tools): no such readable file")
        }
        guard (1...1024).contains(maxConcurrent) else { throw CLIFailure(message: "--max-concurrent must be between 1 and 1024") }
        var configuration = MCPConfiguration(
            layout: StateLayout(stateDirectory: stateDir), brokerConfigPath: tools.map(absolutePath),
            brokerControlSocket: broker.map(absolutePath), maxConcurrentRuns: maxConcurrent)
        configuration.maxLimits = try limits.limits()
        configuration.profiles = try profilePolicy.grant()
        do {
            let bytes = try ByteSize.parse(maxMessage, flag: "--max-message")
            guard bytes >= 4096, bytes <= 1 << 30 else { throw CLIFailure(message: "--max-message must be between 4K and 1G") }
            configuration.maxLineBytes = Int(bytes)
        } catch let error as JailError {
            throw CLIFailure(message: error.description)
        }
        do {
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CLIFailure(message: "cannot create the state directory \(stateDir): \(error.localizedDescription)")
        }
        let dataDirectory: String
        do {
            dataDirectory = try DataDirectory.locate()
        } catch {
            throw CLIFailure(message: error.description)
        }
        configuration.profilesDirectory = dataDirectory + "/profiles"
        let server = MCPServer(configuration: configuration, dataDirectory: dataDirectory) { () throws(JailError) in
            let executor = try Executor(configuration: .init(dataDirectory: dataDirectory))
            if executor.cgroupDriver.version == .none {
                writeStderr("sealbox mcp: warning: no usable cgroups on this host; memory and pids limits are not enforced\n")
            }
            return executor
        }
        writeStderr("sealbox mcp: serving MCP on stdio (state \(stateDir); \(tools.map { "tools \($0)" } ?? broker.map { "broker \($0)" } ?? "no broker"); \(maxConcurrent) runs at once)\n")
        // Traced (and exported before exit) when the OTEL_* variables ask for it.
        try await TracingExport.whileRunning(serviceName: "sealbox") { await server.run() }
    }

    /// Brokers are started from other working directories: keep the paths absolute.
    private func absolutePath(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
