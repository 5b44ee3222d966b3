import ArgumentParser
import GGUF

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a Hugging Face BERT directory (config.json, model.safetensors, tokenizer.json, sentence-transformers modules.json) to a GGUF file with llama.cpp's `bert` keys and tensor names.")

    @Argument(help: "Hugging Face model directory.")
    var directory: String

    @Argument(help: "Output GGUF file (written atomically).")
    var output: String

    @Option(name: .long, help: "Matrix type: f32, f16 or q8_0 (vectors, norms and position/type embeddings stay F32).")
    var type = "f32"

    func run() throws {
        try reportingErrors {
            let t: GGMLType
            switch type.lowercased() {
            case "f32": t = .f32
            case "f16": t = .f16
            case "q8_0": t = .q8_0
            default: throw GGUFError(.invalidArgument, "unknown type '\(type)'; supported: f32, f16, q8_0")
            }
            let s = try BertConverter.convert(directory: directory, output: output, type: t)
            print("wrote \(output): bert, \(s.layers) layers, width \(s.embeddingLength), \(s.vocabularySize) tokens, \(s.tensors) tensors, \(s.bytes) bytes, \(t.name), pooling \(s.pooling)\(s.normalize ? ", normalized" : "")")
        }
    }
}
