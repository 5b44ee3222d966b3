import ArgumentParser
import GGUF
#if canImport(Glibc)
import Glibc
#endif

struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Convert a llama-family GGUF model's weights to Q8_0 (as llama-quantize --allow-requantize does).")

    @Argument(help: "Input GGUF model.")
    var input: String

    @Argument(help: "Output GGUF file (written atomically).")
    var output: String

    @Option(name: .long, help: "Target type: q8_0, f16, bf16 or f32.")
    var type = "q8_0"

    @Option(name: .long, help: "Worker threads (0 = all CPUs).")
    var threads = 0

    func run() throws {
        try reportingErrors {
            guard let target = GGMLType(name: type) else {
                throw GGUFError(.invalidArgument, "unknown type '\(type)'; supported: q8_0, f16, bf16, f32")
            }
            let showProgress = isatty(STDERR_FILENO) != 0
            var clock = timespec()
            clock_gettime(CLOCK_MONOTONIC, &clock)
            let start = Double(clock.tv_sec) + Double(clock.tv_nsec) * 1e-9
            try quantizeModel(input: input, output: output, type: target, threads: threads) { done, total, name in
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
        }
    }
}
