import Foundation

/// What one input did: an outcome label (counted in the report), or a property violation.
public enum FuzzResult: Sendable {
    case ok(String)
    case failure(String)
}

/// An in-process fuzz target: seeds, a mutator that knows the format, and one input's run.
/// A crash is a crash of the process (the runner script reports it with the input that caused it).
public protocol FuzzTarget {
    var name: String { get }
    var seeds: [[UInt8]] { get }
    var mutator: Mutator { get }
    func run(_ input: [UInt8]) -> FuzzResult
}

public struct FuzzReport: Sendable, CustomStringConvertible {
    public var target: String
    public var inputs = 0
    public var outcomes: [String: Int] = [:]
    public var failures: [(message: String, input: [UInt8])] = []
    /// Inputs slower than the hang threshold.
    public var hangs: [(seconds: Double, input: [UInt8])] = []
    public var slowestSeconds = 0.0
    public var seconds = 0.0

    public var description: String {
        let top = outcomes.sorted { $0.value > $1.value }.prefix(8).map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return "\(target): \(inputs) inputs in \(String(format: "%.1f", seconds)) s, \(failures.count) failures, \(hangs.count) hangs, slowest \(String(format: "%.3f", slowestSeconds)) s; outcomes: \(top)"
    }
}

public enum FuzzRunner {
    /// Mutates seeds (and inputs that got far: those with an `ok` outcome) `iterations` times.
    /// `before` sees each input before it runs (the fuzz tool saves it, to name a crashing input).
    public static func run(_ target: FuzzTarget, iterations: Int, seed: UInt64, hangSeconds: Double = 1.0,
                           before: (([UInt8]) -> Void)? = nil) -> FuzzReport {
        var report = FuzzReport(target: target.name)
        var rng = FuzzRNG(seed: seed)
        let seeds = target.seeds
        guard !seeds.isEmpty else { return report }
        var pool: [[UInt8]] = []
        let start = Date()
        // the seeds themselves first
        for (i, s) in seeds.enumerated() where i < iterations {
            one(s)
        }
        var i = seeds.count
        while i < iterations {
            let base: [UInt8]
            if !pool.isEmpty && Int.random(in: 0..<3, using: &rng) == 0 {
                base = pool.randomElement(using: &rng)!
            } else {
                base = seeds.randomElement(using: &rng)!
            }
            let other = seeds.randomElement(using: &rng)!
            let input = target.mutator.mutate(base, other: other, rounds: Int.random(in: 1...5, using: &rng), &rng)
            if one(input) {
                if pool.count < 512 { pool.append(input) } else { pool[Int.random(in: 0..<pool.count, using: &rng)] = input }
            }
            i += 1
        }
        report.seconds = Date().timeIntervalSince(start)
        return report

        @discardableResult
        func one(_ input: [UInt8]) -> Bool {
            before?(input)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = target.run(input)
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            report.inputs += 1
            report.slowestSeconds = max(report.slowestSeconds, dt)
            if dt > hangSeconds && report.hangs.count < 20 { report.hangs.append((dt, input)) }
            switch r {
            case .ok(let label):
                report.outcomes[label, default: 0] += 1
                return label.hasPrefix("ok")
            case .failure(let m):
                report.outcomes["FAILURE", default: 0] += 1
                if report.failures.count < 20 { report.failures.append((m, input)) }
                return false
            }
        }
    }

    /// Files of a corpus directory (sorted by name), or none.
    public static func corpus(_ directory: String) -> [[UInt8]] {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory) else { return [] }
        return names.sorted().compactMap { fm.contents(atPath: directory + "/" + $0).map { Array($0) } }
    }

    /// Tests/Fuzz/corpus in this checkout.
    public static var corpusRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("corpus").path
    }

    /// ${EDGEAI_CACHE:-~/.cache/edgeai}.
    public static var cache: String {
        if let c = ProcessInfo.processInfo.environment["EDGEAI_CACHE"], !c.isEmpty { return c }
        return NSHomeDirectory() + "/.cache/edgeai"
    }
}

/// The vocabularies the tokenizer targets use: llama.cpp's vocabulary files (Tests/fetch-fixtures.sh),
/// one per tokenizer kind and pre-tokenizer family, and the default model.
public enum FuzzVocabularies {
    public static let names = ["llama-spm", "gpt-2", "llama-bpe", "qwen2", "phi-3", "bert-bge", "command-r", "deepseek-llm", "falcon", "mpt", "starcoder", "gemma-4"]

    public static func paths() -> [String] {
        let dir = FuzzRunner.cache + "/fixtures/llama.cpp/models"
        return names.map { dir + "/ggml-vocab-\($0).gguf" }.filter { FileManager.default.fileExists(atPath: $0) }
    }
}
