import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks.",
        subcommands: [BenchSpawnCommand.self, BenchSandboxCommand.self, BenchEffectsCommand.self, BenchLoadCommand.self]
    )
}
