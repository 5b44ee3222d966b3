import ArgumentParser

// Placeholder until this subcommand is written.
struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize")
    func run() throws { throw ValidationError("tokenize: not written yet") }
}
