import ArgumentParser

// Placeholder until this subcommand is written.
struct Template: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "template")
    func run() throws { throw ValidationError("template: not written yet") }
}
