import ArgumentParser

// Placeholder until this subcommand is written.
struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "detokenize")
    func run() throws { throw ValidationError("detokenize: not written yet") }
}
