import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

@main
struct GGUFTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Inspect, quantize, tokenize and render chat templates for GGUF files.",
        subcommands: [Inspect.self, Quantize.self, Convert.self, Tokenize.self, Detokenize.self, Template.self, Synth.self]
    )

    /// Parses and runs; help and `--version` print as usual, every other failure is one line
    /// `error: …` on standard error and exit status 1.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                exit(withError: error)  // --help and friends: ArgumentParser prints them
            }
            if let exit = error as? ExitCode { Glibc.exit(exit.rawValue) }
            let message = fullMessage(for: error)
                .split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init)
                ?? "\(error)"
            let line = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            printError(line)
            Glibc.exit(1)
        }
    }
}
