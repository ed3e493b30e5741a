import ArgumentParser

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks.",
        subcommands: [BenchSpawnCommand.self, BenchEffectsCommand.self, BenchLoadCommand.self]
    )
}
