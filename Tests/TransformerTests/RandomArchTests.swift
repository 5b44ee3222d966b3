import Foundation
import GGUF
import XCTest
@testable import Transformer

/// Our forward pass against llama.cpp on the synthetic random-weight model of each architecture
/// (Tests/Fixtures/random): the F32 model is regenerated in-process (its sha256 must equal the
/// manifest's), converted to Q8_0 with our quantizer (byte-identical to llama-quantize's Q8_0),
/// evaluated in one batch of 32 tokens, and compared with llama.cpp's logits on the Q8_0 file:
/// relative RMS error ||ours - ref|| / ||ref|| below 1% at every position, argmax equal at
/// >= 97% of positions.
///
/// Architectures the model code does not load yet fail; that is expected until they are added.
final class RandomArchTests: XCTestCase {
    func check(_ arch: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = try RandomModelFixtures.temporaryDirectory()
        defer { RandomModelFixtures.removeDirectory(dir) }
        let a = try RandomModelFixtures.architecture(arch)
        let path = try RandomModelFixtures.generateQuantized(arch, type: .q8_0, in: dir)
        let gguf = try GGUFFile(path: path)
        XCTAssertEqual(FixtureSHA256.hex(gguf.fileBytes), a.q8_0.sha256,
                       "\(arch): our Q8_0 file differs from llama-quantize's", file: file, line: line)
        var options = TransformerModel.Options()
        options.threads = 2
        let model = try TransformerModel(file: gguf, options: options)
        let session = try model.makeSession(contextLength: 64)
        let ours = try session.evaluateAll(a.tokens)
        let reference = try RandomModelFixtures.referenceLogits(arch, "q8_0")
        let c = RandomModelFixtures.compare(ours, reference)
        print("RandomArchTests \(arch) q8_0: \(c)")
        // for scale: the same logits against llama.cpp's on the F32 file (the Q8_0 effect)
        print("RandomArchTests \(arch) q8_0 vs llama.cpp f32: \(RandomModelFixtures.compare(ours, try RandomModelFixtures.referenceLogits(arch, "f32")))")
        XCTAssertLessThan(c.maxRelativeRMS, 0.01, "\(arch): \(c)", file: file, line: line)
        XCTAssertGreaterThanOrEqual(c.argmaxAgreement, 0.97, "\(arch): \(c)", file: file, line: line)
    }

    func testLlama() throws { try check("llama") }
    func testQwen2() throws { try check("qwen2") }
    func testQwen3() throws { try check("qwen3") }
    func testGemma2() throws { try check("gemma2") }
    func testGemma3() throws { try check("gemma3") }
    func testPhi3() throws { try check("phi3") }
}
