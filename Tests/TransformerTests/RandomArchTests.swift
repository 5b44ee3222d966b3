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
}
