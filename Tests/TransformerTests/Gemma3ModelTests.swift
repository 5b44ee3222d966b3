import Foundation
import GGUF
import Tokenizer
import XCTest
@testable import Transformer

/// Fidelity on Gemma 3 270M (Q4_K_M: Q8_0, Q5_0, Q4_K and Q6_K tensors; 262,144-token SPM
/// vocabulary; 5 sliding-window layers to 1 global) against llama.cpp's numbers.
///
/// Fixtures: Tests/Fixtures/model/gemma3-270m-q4_k_m.llama-cpp.json (llama.cpp via
/// llama-cpp-python 0.3.36: tokenizations, 32-token greedy continuations) and
/// gemma3-long-context.llama-cpp.json (a prompt longer than the 512-token window and llama.cpp's
/// greedy continuation of it; made by Tests/Fixtures/model/make-gemma3-long-context.py).
/// Perplexity: llama-perplexity on /usr/share/common-licenses/GPL-3 at ctx 512 gives 13.9062.
final class Gemma3ModelTests: XCTestCase {
    static let modelName = "gemma-3-270m-q4_k_m.gguf"

    func model(threads: Int = 2) throws -> (GGUFFile, TransformerModel) {
        let p = SmolLM2ModelTests.cache + "/models/" + Self.modelName
        guard FileManager.default.fileExists(atPath: p) else {
            XCTFail("model \(p) is missing: run `bash Models/fetch.sh @cf/google/gemma-3-270m` first")
            throw ModelError.invalidArgument("missing model file \(p)")
        }
        let file = try GGUFFile(path: p)
        return (file, try TransformerModel(file: file, threads: threads))
    }

    struct Reference: Decodable {
        struct Tokenized: Decodable { let text: String; let ids: [Int32] }
        struct Greedy: Decodable { let prompt: String; let prompt_ids: [Int32]; let greedy_ids: [Int32]; let text: String }
        let tokenize: [Tokenized]
        let greedy: [Greedy]
    }

    static func fixture<T: Decodable>(_ name: String, as: T.Type) throws -> T {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/model/\(name)").standardized
        return try JSONDecoder().decode(T.self, from: Data(contentsOf: url))
    }

    func argmax(_ x: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0
        for i in 1..<x.count where x[i] > x[best] { best = i }
        return Int32(best)
    }

    /// Greedy continuation: the prompt in one batch, then one token per decode.
    func greedy(_ m: TransformerModel, _ prompt: [Int32], count: Int, context: Int) throws -> [Int32] {
        let s = try m.makeSession(contextLength: context)
        var gen: [Int32] = []
        try s.evaluate(prompt, logitsFrom: prompt.count - 1) { gen.append(argmax($0)) }
        while gen.count < count { gen.append(argmax(try s.decode(gen.last!))) }
        return gen
    }

    func testConfigAndWeights() throws {
        let (_, m) = try model()
        let c = m.config
        XCTAssertEqual(c.architecture, "gemma3")
        XCTAssertEqual(c.blockCount, 18)
        XCTAssertEqual(c.headDimension, 256)
        XCTAssertEqual(c.headCountKV, 1)
        XCTAssertEqual(c.slidingWindow, 512)
        XCTAssertEqual(c.slidingLayers.filter { !$0 }.count, 3)          // layers 5, 11, 17 are global
        XCTAssertEqual(c.slidingLayers[5], false)
        XCTAssertEqual(c.ropeFreqBase, 1_000_000)
        XCTAssertEqual(c.ropeFreqBaseSWA, 10_000)
        XCTAssertEqual(c.ropeStyle, .neox)
        XCTAssertEqual(c.activation, .gelu)
        // Every type of the file used as stored: nothing converted.
        XCTAssertEqual(Set(m.matrixTypes.keys), ["Q8_0", "Q5_0", "Q4_K", "Q6_K"])
        XCTAssertLessThan(m.ownedWeightBytes, 1 << 20)
    }

    func testTokenizationMatchesLlamaCpp() throws {
        let (file, _) = try model()
        let tok = try Tokenizer(gguf: file)
        let ref = try Self.fixture("gemma3-270m-q4_k_m.llama-cpp.json", as: Reference.self)
        for t in ref.tokenize {
            XCTAssertEqual(tok.encode(t.text, addSpecial: false, parseSpecial: false), t.ids, t.text)
        }
        for g in ref.greedy {   // BOS added as the GGUF says
            XCTAssertEqual(tok.encode(g.prompt, addSpecial: true, parseSpecial: false), g.prompt_ids, g.prompt)
        }
    }

    /// Greedy continuations against llama.cpp's. Gemma 3 270M's logits are sensitive to the order
    /// of float sums (llama.cpp's own decode and batch paths differ by 2–6% relative RMS on these
    /// prompts); our products follow llama.cpp's except its "tiled" K-quant kernel for batches of
    /// 8+ tokens (the prompt), so a near-tie can still flip. Measured: 3 of 4 continuations equal,
    /// 127/128 teacher-forced. Asserted: the first generated token of every prompt, at least 3
    /// whole 32-token continuations equal (ids and text), and, with llama.cpp's tokens forced, our
    /// argmax equal to llama.cpp's next token at >= 97% of all positions.
    func testGreedyMatchesLlamaCpp() throws {
        let (file, m) = try model()
        let tok = try Tokenizer(gguf: file)
        let ref = try Self.fixture("gemma3-270m-q4_k_m.llama-cpp.json", as: Reference.self)
        var whole = 0, agree = 0, total = 0
        var report: [String] = []
        for g in ref.greedy {
            let gen = try greedy(m, g.prompt_ids, count: g.greedy_ids.count, context: 128)
            XCTAssertEqual(gen.first, g.greedy_ids.first, "prompt \(g.prompt): first token")
            if gen == g.greedy_ids {
                whole += 1
                XCTAssertEqual(tok.decode(gen), g.text)
            } else if let d = gen.indices.first(where: { gen[$0] != g.greedy_ids[$0] }) {
                report.append("'\(g.prompt)' diverges at \(d)")
            }
            // teacher-forced: prompt + llama.cpp's tokens, one decode per token as llama.cpp ran them
            let s = try m.makeSession(contextLength: 128)
            var next: Int32 = 0
            try s.evaluate(g.prompt_ids, logitsFrom: g.prompt_ids.count - 1) { next = argmax($0) }
            for (i, t) in g.greedy_ids.enumerated() {
                total += 1
                if next == t { agree += 1 }
                if i + 1 < g.greedy_ids.count { next = argmax(try s.decode(t)) }
            }
        }
        print("gemma3 greedy: \(whole)/\(ref.greedy.count) continuations equal llama.cpp's; teacher-forced argmax agreement \(agree)/\(total)" + (report.isEmpty ? "" : "; " + report.joined(separator: "; ")))
        XCTAssertGreaterThanOrEqual(whole, 3, report.joined(separator: "; "))
        XCTAssertGreaterThanOrEqual(Double(agree), 0.97 * Double(total), "teacher-forced agreement \(agree)/\(total)")
    }

    struct LongContext: Decodable { let prompt_ids: [Int32]; let greedy_ids: [Int32] }

    /// A prompt longer than the 512-token sliding window (700 tokens): the first generated token
    /// equals llama.cpp's whether the prompt is evaluated in one batch (BLAS path) or in chunks
    /// of 48 (int8 path), and with llama.cpp's tokens forced our argmax agrees at >= 15 of 16.
    func testLongerThanSlidingWindowMatchesLlamaCpp() throws {
        let (_, m) = try model()
        let ref = try Self.fixture("gemma3-long-context.llama-cpp.json", as: LongContext.self)
        XCTAssertGreaterThan(ref.prompt_ids.count, 512)
        let s = try m.makeSession(contextLength: 1024)
        var next: Int32 = 0
        try s.evaluate(ref.prompt_ids, logitsFrom: ref.prompt_ids.count - 1) { next = argmax($0) }
        XCTAssertEqual(next, ref.greedy_ids[0])
        var agree = 0
        for (i, t) in ref.greedy_ids.enumerated() {
            if next == t { agree += 1 }
            if i + 1 < ref.greedy_ids.count { next = argmax(try s.decode(t)) }
        }
        print("gemma3 long context: teacher-forced argmax agreement \(agree)/\(ref.greedy_ids.count)")
        XCTAssertGreaterThanOrEqual(agree, 15)
        let c = try m.makeSession(contextLength: 1024)
        var i = 0
        var first: Int32 = 0
        while i < ref.prompt_ids.count {
            let part = Array(ref.prompt_ids[i..<min(ref.prompt_ids.count, i + 48)])
            try c.evaluate(part, logitsFrom: part.count - 1) { first = argmax($0) }
            i += part.count
        }
        XCTAssertEqual(first, ref.greedy_ids[0])

        // Batches of 48: the sliding layers keep 512 + 2·48 = 608 positions, fewer than the
        // prompt, so they drop the oldest as it goes; every logit stays the full cache's bits.
        var o = TransformerModel.Options()
        o.threads = 2
        o.maxBatch = 48
        let small = try TransformerModel(file: try GGUFFile(path: SmolLM2ModelTests.cache + "/models/" + Self.modelName), options: o)
        let r = try small.makeSession(contextLength: 1024)
        XCTAssertEqual(r.slidingCapacity, 608)
        XCTAssertLessThan(r.kvCacheBytes, s.kvCacheBytes)
        let full = try m.makeSession(contextLength: 1024)
        var a: [UInt32] = [], b: [UInt32] = []
        try r.evaluate(ref.prompt_ids, logitsFrom: ref.prompt_ids.count - 1) { a = $0.map(\.bitPattern) }
        try full.evaluate(ref.prompt_ids, logitsFrom: ref.prompt_ids.count - 1) { b = $0.map(\.bitPattern) }
        XCTAssertGreaterThan(r.slidingBase, 0)
        XCTAssertEqual(a, b, "the last prompt token's logits differ with the window-sized cache")
        for t in ref.greedy_ids.prefix(8) {
            XCTAssertEqual(try r.decode(t).map(\.bitPattern), try full.decode(t).map(\.bitPattern))
        }
    }

    /// llama-perplexity's protocol on GPL-3 at ctx 512: within 0.5% of llama.cpp's 13.9062.
    /// Q4_K, Q5_0, Q6_K and Q8_0 matrices, sliding-window layers: one batch of 150 tokens, chunks
    /// of 7 and single decodes give the same bits.
    func testBatchInvariance() throws {
        let (file, m) = try model()
        let text = try String(contentsOfFile: "/usr/share/common-licenses/GPL-3", encoding: .utf8)
        try assertBatchInvariant(m, Array(try Tokenizer(gguf: file).encode(text, addSpecial: true).prefix(150)))
    }

    func testPerplexityMatchesLlamaCpp() throws {
        let (file, m) = try model()
        let ppl = try SmolLM2ModelTests.perplexity(file: file, model: m, text: "/usr/share/common-licenses/GPL-3", ctx: 512)
        print("gemma3 perplexity: \(String(format: "%.4f", ppl)) (llama.cpp 13.9062)")
        XCTAssertEqual(ppl, 13.9062, accuracy: 13.9062 * 0.005, "PPL \(ppl)")
    }
}
