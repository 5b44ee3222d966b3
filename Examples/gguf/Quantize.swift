import ArgumentParser

// Placeholder until this subcommand is written.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "quantize")
    func run() throws { throw ValidationError("quantize: not written yet") }
}
