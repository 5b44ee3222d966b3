import Foundation
import GGUF
import XCTest
@testable import Transformer

/// Our forward pass against llama.cpp on the synthetic random-weight model of each architecture
/// (Tests/Fixtures/random): the F32 model is regenerated in-process (its sha256 must equal the
/// manifest's), converted to Q8_0 and Q4_K_M with our quantizer (the file must be byte-identical
/// to llama-quantize's), evaluated in one batch of 32 tokens, in chunks of 7 and one token at a
/// time, and compared with llama.cpp's logits on the same file decoded one token at a time.
/// Every product and the attention use llama.cpp's decode arithmetic whatever the batch, so all
/// three must give the same bits, and those bits must be llama.cpp's (measured: identical for
/// all 12 files).
final class RandomArchTests: XCTestCase {
    func check(_ arch: String, _ variant: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try RandomModelFixtures.temporaryDirectory()
        defer { RandomModelFixtures.removeDirectory(dir) }
        let a = try RandomModelFixtures.architecture(arch)
        guard let v = a.variant(variant) else { return XCTFail("no variant \(variant)", file: file, line: line) }
        let path = variant == "q8_0"
            ? try RandomModelFixtures.generateQuantized(arch, type: .q8_0, in: dir)
            : try RandomModelFixtures.generateQuantized(arch, fileType: .q4_K_M, in: dir)
        let gguf = try GGUFFile(path: path)
        XCTAssertEqual(SHA256.hex(gguf.fileBytes), v.sha256,
                       "\(arch): our \(variant) file differs from llama-quantize's", file: file, line: line)
        var options = TransformerModel.Options()
        options.threads = 2
        let model = try TransformerModel(file: gguf, options: options)
        let session = try model.makeSession(contextLength: 64)
        let ours = try session.evaluateAll(a.tokens)
        // batch invariance: chunks of 7 and single decodes give the same bits as the one batch
        for chunk in [7, 1] {
            let other = try model.makeSession(contextLength: 64)
            var rows: [[Float]] = []
            var i = 0
            while i < a.tokens.count {
                let j = min(a.tokens.count, i + chunk)
                rows += chunk == 1 ? [Array(try other.decode(a.tokens[i]))] : try other.evaluateAll(Array(a.tokens[i..<j]))
                i = j
            }
            XCTAssertEqual(rows.map { $0.map(\.bitPattern) }, ours.map { $0.map(\.bitPattern) },
                           "\(arch) \(variant): chunks of \(chunk) differ from one batch", file: file, line: line)
        }
        let reference = try RandomModelFixtures.referenceLogits(arch, variant)
        let c = RandomModelFixtures.compare(ours, reference)
        let identical = ours.flatMap { $0 }.map(\.bitPattern) == reference.flatMap { $0 }.map(\.bitPattern)
        print("RandomArchTests \(arch) \(variant): \(c) bit-identical: \(identical)")
        // for scale: the same logits against llama.cpp's on the F32 file (the quantization effect)
        print("RandomArchTests \(arch) \(variant) vs llama.cpp f32: \(RandomModelFixtures.compare(ours, try RandomModelFixtures.referenceLogits(arch, "f32")))")
        XCTAssertTrue(identical, "\(arch) \(variant): not bit-identical to llama.cpp: \(c)", file: file, line: line)
    }

    func testLlamaQ8_0() throws { try check("llama", "q8_0") }
    func testQwen2Q8_0() throws { try check("qwen2", "q8_0") }
    func testQwen3Q8_0() throws { try check("qwen3", "q8_0") }
    func testGemma2Q8_0() throws { try check("gemma2", "q8_0") }
    func testGemma3Q8_0() throws { try check("gemma3", "q8_0") }
    func testPhi3Q8_0() throws { try check("phi3", "q8_0") }
    func testLlamaQ4_K_M() throws { try check("llama", "q4_k_m") }
    func testQwen2Q4_K_M() throws { try check("qwen2", "q4_k_m") }
    func testQwen3Q4_K_M() throws { try check("qwen3", "q4_k_m") }
    func testGemma2Q4_K_M() throws { try check("gemma2", "q4_k_m") }
    func testGemma3Q4_K_M() throws { try check("gemma3", "q4_k_m") }
    func testPhi3Q4_K_M() throws { try check("phi3", "q4_k_m") }

    /// Sliding-window layers keep only window + 2 batches of positions (here 8 + 2·4 = 16 of a
    /// 64-token context): the logits stay llama.cpp's bits as the oldest positions are dropped,
    /// `truncate` returns to any position whose window is still held, and answers 0 (evaluate
    /// again from the start) for one that is not.
    func checkSlidingCache(_ arch: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try RandomModelFixtures.temporaryDirectory()
        defer { RandomModelFixtures.removeDirectory(dir) }
        let a = try RandomModelFixtures.architecture(arch)
        let path = try RandomModelFixtures.generateQuantized(arch, type: .q8_0, in: dir)
        var options = TransformerModel.Options()
        options.threads = 2
        options.maxBatch = 4
        let model = try TransformerModel(file: try GGUFFile(path: path), options: options)
        let w = try XCTUnwrap(model.config.slidingWindow, file: file, line: line)
        XCTAssertEqual(w, 8, file: file, line: line)
        let reference = try RandomModelFixtures.referenceLogits(arch, "q8_0").map { $0.map(\.bitPattern) }
        let n = a.tokens.count   // 32
        for chunk in [4, 1] {
            let s = try model.makeSession(contextLength: 64)
            XCTAssertEqual(s.slidingCapacity, w + 2 * 4, file: file, line: line)
            var rows: [[Float]] = []
            var i = 0
            while i < n {
                let j = min(n, i + chunk)
                rows += chunk == 1 ? [Array(try s.decode(a.tokens[i]))] : try s.evaluateAll(Array(a.tokens[i..<j]))
                i = j
            }
            XCTAssertGreaterThan(s.slidingBase, 0, "the sliding layers dropped nothing", file: file, line: line)
            XCTAssertEqual(rows.map { $0.map(\.bitPattern) }, reference,
                           "\(arch): chunks of \(chunk) over the sliding cache differ from llama.cpp", file: file, line: line)
            // back into the held history: the same bits again
            let keep = n - 4
            XCTAssertLessThanOrEqual(s.slidingBase, keep - w + 1, file: file, line: line)
            XCTAssertEqual(s.truncate(to: keep), keep, file: file, line: line)
            let again = try s.evaluateAll(Array(a.tokens[keep...]))
            XCTAssertEqual(again.map { $0.map(\.bitPattern) }, Array(reference[keep...]),
                           "\(arch): after truncate(to: \(keep))", file: file, line: line)
            // too far back: the window of that position is gone
            let far = s.slidingBase + w - 3
            XCTAssertEqual(s.truncate(to: far), 0, file: file, line: line)
            XCTAssertEqual(s.position, 0, file: file, line: line)
            XCTAssertEqual(try s.evaluateAll(Array(a.tokens[0..<6])).map { $0.map(\.bitPattern) }, Array(reference[0..<6]),
                           "\(arch): after the reset", file: file, line: line)
        }
        // the memory it saves, and the full cache when asked for
        var full = options
        full.fullSlidingWindowCache = true
        let fullModel = try TransformerModel(file: try GGUFFile(path: path), options: full)
        let big = try fullModel.makeSession(contextLength: 64)
        XCTAssertEqual(big.slidingCapacity, 64, file: file, line: line)
        XCTAssertLessThan(try model.makeSession(contextLength: 64).kvCacheBytes, big.kvCacheBytes, file: file, line: line)
    }

    func testGemma2SlidingCache() throws { try checkSlidingCache("gemma2") }
    func testGemma3SlidingCache() throws { try checkSlidingCache("gemma3") }
}
