import ArgumentParser

@main
struct GGUFTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Inspect, quantize, tokenize and render chat templates for GGUF files.",
        subcommands: [Inspect.self, Quantize.self, Tokenize.self, Detokenize.self, Template.self]
    )
}
