// The fuzz tool: seeded mutation loops over the fuzz targets (Tests/fuzz.sh runs it):
//
//   fuzz gguf|request|template|tokenizer|tokenizer-<vocab>|all [iterations] [seed]
//   fuzz seeds                  # (re)writes the generated GGUF seeds into Tests/Fuzz/corpus/gguf
//
// Built with `-Xswiftc -sanitize=fuzzer -Xswiftc -DLIBFUZZER` it is a libFuzzer binary instead
// (coverage-guided; libFuzzer provides main): FUZZ_TARGET=gguf .build/.../fuzz [libFuzzer options] CORPUS_DIR
import EdgeAIFuzz
import Foundation

func fuzzTargets(_ which: String) -> [FuzzTarget] {
    var out: [FuzzTarget] = []
    if which == "gguf" || which == "all" { out.append(GGUFTarget()) }
    if which == "request" || which == "all" { out.append(RequestTarget()) }
    if which == "template" || which == "all" { out.append(TemplateTarget()) }
    if which.hasPrefix("tokenizer") || which == "all" {
        let only = which.hasPrefix("tokenizer-") ? String(which.dropFirst("tokenizer-".count)) : nil
        for path in FuzzVocabularies.paths() where only == nil || path.hasSuffix("ggml-vocab-\(only!).gguf") {
            do { out.append(try TokenizerTarget(vocab: path)) } catch { FileHandle.standardError.write(Data("skip \(path): \(error)\n".utf8)) }
        }
    }
    return out
}

#if LIBFUZZER
nonisolated(unsafe) private var libFuzzerTarget: FuzzTarget? = nil

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    if libFuzzerTarget == nil {
        let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? "gguf"
        guard let t = fuzzTargets(name).first else { fatalError("unknown FUZZ_TARGET \(name)") }
        libFuzzerTarget = t
    }
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if case .failure(let m) = libFuzzerTarget!.run(bytes) { fatalError("property violated: \(m)") }
    return 0
}
#else
@main
struct FuzzTool {
    static func main() throws {
        let args = Array(CommandLine.arguments.dropFirst())
        let which = args.first ?? "all"
        if which == "seeds" {
            let dir = FuzzRunner.corpusRoot + "/gguf"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let seeds = GGUFSeeds.all()
            for (i, s) in seeds.enumerated() {
                FileManager.default.createFile(atPath: dir + "/seed-\(i).bin", contents: Data(s))
            }
            print("wrote \(seeds.count) seeds to \(dir)")
            return
        }
        let iterations = args.count > 1 ? Int(args[1]) ?? 10_000 : 10_000
        let seed = args.count > 2 ? UInt64(args[2]) ?? 1 : 1
        // Each input is saved before it runs, so a crash leaves the input that caused it.
        let crashDir = ProcessInfo.processInfo.environment["FUZZ_CRASH_DIR"]
        var failed = false
        let targets = fuzzTargets(which)
        if targets.isEmpty {
            print("no fuzz target '\(which)' (gguf, request, template, tokenizer, tokenizer-<vocab>, all)")
            exit(2)
        }
        for t in targets {
            var saver: (([UInt8]) -> Void)? = nil
            var fd: Int32 = -1
            if let crashDir {
                // one open file rewritten in place: a few microseconds per input
                fd = open(crashDir + "/current-\(t.name)", O_WRONLY | O_CREAT | O_TRUNC, 0o644)
                if fd >= 0 {
                    let f = fd
                    saver = { input in
                        _ = ftruncate(f, 0)
                        _ = input.withUnsafeBytes { pwrite(f, $0.baseAddress, $0.count, 0) }
                    }
                }
            }
            let report = FuzzRunner.run(t, iterations: iterations, seed: seed, hangSeconds: 1.0, before: saver)
            print(report)
            for f in report.failures.prefix(5) {
                print("  FAILURE: \(f.message.prefix(300))\n    input (\(f.input.count) bytes): \(String(decoding: f.input.prefix(200), as: UTF8.self).debugDescription)")
            }
            for h in report.hangs.prefix(5) {
                print("  HANG \(String(format: "%.2f", h.seconds)) s: \(String(decoding: h.input.prefix(200), as: UTF8.self).debugDescription)")
            }
            if !report.failures.isEmpty || !report.hangs.isEmpty { failed = true }
            if fd >= 0 { close(fd) }
            if let crashDir { try? FileManager.default.removeItem(atPath: crashDir + "/current-\(t.name)") }
        }
        exit(failed ? 1 : 0)
    }
}
#endif
