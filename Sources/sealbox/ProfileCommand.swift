import ArgumentParser

/// `sealbox profile`: tools for seccomp profiles.
struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Learn, test and inspect seccomp profiles (OCI / Docker JSON).",
        discussion: "Profiles are described in profiles/README.md.",
        subcommands: [ProfileLearnCommand.self, ProfileTestCommand.self]
    )
}
