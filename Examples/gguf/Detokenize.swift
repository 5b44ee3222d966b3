import ArgumentParser
import GGUF
import Tokenizer

struct Detokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "detokenize",
        abstract: "Print the text of token ids (exactly, nothing added).")

    @Option(name: .long, help: "GGUF file whose vocabulary to use.")
    var model: String?

    @Flag(name: .long, help: "Leave out control tokens (BOS, EOS, <|im_end|>, ...).")
    var skipSpecial = false

    @Argument(help: "Token ids (separate arguments, or one argument with ids separated by spaces or commas).")
    var ids: [String] = []

    func run() throws {
        try reportingErrors {
            guard let model else { throw TokenizeUsageError("--model GGUF is required") }
            var tokens = [Int32]()
            for arg in ids {
                for part in arg.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\n" || $0 == "\t" }) {
                    guard let v = Int32(part) else { throw TokenizeUsageError("'\(part)' is not a token id") }
                    tokens.append(v)
                }
            }
            let tokenizer = try Tokenizer(gguf: GGUFFile(path: model))
            for t in tokens where t < 0 || Int(t) >= tokenizer.vocabularySize {
                throw TokenizeUsageError("token id \(t) is outside the vocabulary (0..<\(tokenizer.vocabularySize))")
            }
            print(tokenizer.decode(tokens, skipSpecial: skipSpecial), terminator: "")
        }
    }
}
