import ArgumentParser
import GGUF
#if canImport(Glibc)
import Glibc
#endif

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Convert a GGUF model's weights to a llama.cpp file type (byte-identical to llama-quantize --allow-requantize).")

    @Argument(help: "Input GGUF model.")
    var input: String

    @Argument(help: "Output GGUF file (written atomically).")
    var output: String

    @Option(name: .long, help: "Target file type: q4_k_m, q4_k_s, q5_k_m, q5_k_s, q6_k, q8_0, q4_0, q4_1, q5_0, q5_1, f16, bf16 or f32.")
    var type = "q8_0"

    @Option(name: .long, help: "Worker threads (0 = all CPUs).")
    var threads = 0

    func run() throws {
        try reportingErrors {
            guard let target = LlamaFileType(name: type) else {
                let names = LlamaFileType.allCases.map { $0.name.lowercased() }.joined(separator: ", ")
                throw GGUFError(.invalidArgument, "unknown type '\(type)'; supported: \(names)")
            }
            let showProgress = isatty(STDERR_FILENO) != 0
            var clock = timespec()
            clock_gettime(CLOCK_MONOTONIC, &clock)
            let start = Double(clock.tv_sec) + Double(clock.tv_nsec) * 1e-9
            try quantizeModel(input: input, output: output, fileType: target, threads: threads) { done, total, name in
                guard showProgress else { return }
                let percent = done * 100 / max(total, 1)
                let label = name.count > 40 ? String(name.prefix(40)) : name
                writeStderr("\r\u{1B}[K[\(done)/\(total)] \(percent)% \(label)")
                if done == total { writeStderr("\n") }
            }
            clock_gettime(CLOCK_MONOTONIC, &clock)
            let seconds = Double(clock.tv_sec) + Double(clock.tv_nsec) * 1e-9 - start
            let f = try GGUFFile(path: output)
            let ms = Int((seconds * 1000).rounded())
            print("wrote \(output): \(f.tensors.count) tensors, \(f.fileSize) bytes, \(target.name), in \(ms) ms")
            print("tensor types: " + tensorTypeCounts(f))
        }
    }
}

/// "Q4_K 80, Q5_0 120, F32 61" — tensor counts per type, in ggml type order.
func tensorTypeCounts(_ f: GGUFFile) -> String {
    var counts = [GGMLType: Int]()
    for t in f.tensors { counts[t.type, default: 0] += 1 }
    return counts.keys.sorted { $0.rawValue < $1.rawValue }.map { "\($0.name) \(counts[$0]!)" }.joined(separator: ", ")
}
