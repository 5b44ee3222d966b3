import ArgumentParser

// Placeholder until this subcommand is written.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect")
    func run() throws { throw ValidationError("inspect: not written yet") }
}
