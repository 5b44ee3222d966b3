import ArgumentParser
import GGUF

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a small deterministic random-weight F32 model of one architecture (for comparisons with llama.cpp).",
        discussion: "Architectures: \(SyntheticModel.architectures.joined(separator: ", ")). The tokenizer metadata is copied from --tokenizer-from, truncated to \(SyntheticModel.vocabularySize) tokens: a gpt2 (BPE) model such as SmolLM2 for llama/qwen2/qwen3, a llama (SPM) model such as Gemma 3 for gemma2/gemma3/phi3. The same arguments always give the same bytes.")

    @Option(name: .long, help: "Architecture: \(SyntheticModel.architectures.joined(separator: ", ")).")
    var arch: String?

    @Option(name: .customLong("tokenizer-from"), help: "GGUF file whose tokenizer metadata to copy.")
    var tokenizerFrom: String?

    @Option(name: .long, help: "Output GGUF file (written atomically).")
    var out: String?

    @Option(name: .long, help: "Random seed.")
    var seed: UInt64 = 0

    func run() throws {
        try reportingErrors {
            guard let arch else { throw TokenizeUsageError("--arch ARCH is required") }
            guard let tokenizerFrom else { throw TokenizeUsageError("--tokenizer-from GGUF is required") }
            guard let out else { throw TokenizeUsageError("--out GGUF is required") }
            try SyntheticModel.write(architecture: arch, to: out, tokenizerFrom: tokenizerFrom, seed: seed)
            let f = try GGUFFile(path: out)
            print("wrote \(out): \(arch), \(f.tensors.count) tensors, \(f.fileSize) bytes, seed \(seed)")
        }
    }
}
