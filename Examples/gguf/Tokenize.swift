import ArgumentParser
import Foundation
import GGUF
import Tokenizer

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Print the token ids of a text, on one line separated by spaces.",
        discussion: "Tokenizes as llama.cpp does: without --special, control tokens written in the text are ordinary text; without --bos no BOS is added.")

    @Option(name: .long, help: "GGUF file whose vocabulary to use.")
    var model: String?

    @Option(name: .long, help: "Read the text from this file (raw bytes) instead of the TEXT argument.")
    var file: String?

    @Flag(name: .long, help: "Recognise control tokens (e.g. <|im_start|>) written in the text.")
    var special = false

    @Flag(name: .long, help: "Put the vocabulary's BOS token first.")
    var bos = false

    @Argument(help: "The text to tokenize.")
    var text: String?

    func run() throws {
        try reportingErrors {
            guard let model else { throw TokenizeUsageError("--model GGUF is required") }
            if file != nil && text != nil { throw TokenizeUsageError("give either TEXT or --file, not both") }
            let tokenizer = try Tokenizer(gguf: GGUFFile(path: model))
            var ids: [Int32]
            if let file {
                guard let data = FileManager.default.contents(atPath: file) else {
                    throw TokenizeUsageError("cannot read '\(file)'")
                }
                ids = [UInt8](data).withUnsafeBufferPointer {
                    tokenizer.encode(bytes: $0, addSpecial: false, parseSpecial: special)
                }
            } else if let text {
                ids = tokenizer.encode(text, addSpecial: false, parseSpecial: special)
            } else {
                throw TokenizeUsageError("give the TEXT to tokenize or --file FILE")
            }
            if bos {
                guard let b = tokenizer.bosID else { throw TokenizeUsageError("the vocabulary of '\(model)' has no BOS token") }
                ids.insert(b, at: 0)
            }
            print(ids.map(String.init).joined(separator: " "))
        }
    }
}

/// A command-line usage error (reported as one `error: …` line).
struct TokenizeUsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}
