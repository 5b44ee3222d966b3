import XCTest
@testable import GGUF
#if canImport(Glibc)
import Glibc
#endif

final class QuantizerTests: XCTestCase {
    /// Our Q8_0 conversion of the shipped Q4_1 model equals llama-quantize's, tensor by tensor.
    func testQuantizeMatchesLlamaQuantize() throws {
        let input = try cachedModel(sourceModelName)
        let output = temporaryPath("smollm2-q8_0.gguf")
        defer { unlink(output) }
        var calls = 0
        var lastDone = 0
        let t0 = monotonicSeconds()
        try quantizeModel(input: input, output: output, type: .q8_0) { done, total, name in
            XCTAssertEqual(total, 272)
            XCTAssertEqual(done, lastDone + 1)
            XCTAssertFalse(name.isEmpty)
            lastDone = done
            calls += 1
        }
        let seconds = monotonicSeconds() - t0
        print("quantizeModel SmolLM2 Q4_1 -> Q8_0: \(String(format: "%.3f", seconds)) s")
        XCTAssertEqual(calls, 272)

        let f = try GGUFFile(path: output)
        let src = try GGUFFile(path: input)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.tensors.count, 272)
        XCTAssertEqual(try f.int("general.file_type"), 7)
        XCTAssertEqual(try f.int("general.quantization_version"), 2)
        // Metadata copied: same keys (file type and quantization version moved to the end).
        XCTAssertEqual(Set(f.metadataKeys), Set(src.metadataKeys))
        XCTAssertEqual(f.metadataKeys.suffix(2), ["general.quantization_version", "general.file_type"])
        for key in src.metadataKeys where key != "general.file_type" {
            XCTAssertEqual(f[key], src[key], key)
        }
        let expected = try referenceDigests()
        var matching = 0
        for t in f.tensors {
            let s = try XCTUnwrap(src.tensor(named: t.name))
            XCTAssertEqual(t.shape, s.shape)
            XCTAssertEqual(t.type, s.shape.count >= 2 ? .q8_0 : .f32, t.name)
            let digest = SHA256.hex(f.bytes(of: t))
            XCTAssertEqual(digest, expected[t.name], t.name)
            if digest == expected[t.name] { matching += 1 }
        }
        XCTAssertEqual(matching, 272)
        print("quantizer tensors equal to llama-quantize: \(matching)/272")
    }

    func testSHA256() {
        XCTAssertEqual(SHA256.hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Small synthetic model: every conversion rule on a file made with the writer.
    func testQuantizeRules() throws {
        var rng = SplitMix64(seed: 3)
        let x = (0..<(64 * 4)).map { _ in Float.random(in: -3...3, using: &rng) }
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("general.file_type", .uint32(0))
        w.set("split.count", .uint16(1))
        w.set("zz.after", .string("kept"))
        let bytes = x.withUnsafeBytes { Array($0) }
        w.addTensor(name: "blk.10.attn_q.weight", type: .f32, shape: [64, 4], data: bytes)
        w.addTensor(name: "blk.2.attn_q.weight", type: .f32, shape: [64, 4], data: bytes)
        w.addTensor(name: "blk.2.attn_norm.weight", type: .f32, shape: [64], data: Array(bytes.prefix(256)))
        w.addTensor(name: "output_norm.weight", type: .f32, shape: [64, 1], data: Array(bytes.prefix(256)))
        w.addTensor(name: "odd.weight", type: .f32, shape: [8, 2], data: Array(bytes.prefix(64)))
        w.addTensor(name: "not_a_weight.bias", type: .f32, shape: [64, 4], data: bytes)
        let input = temporaryPath("rules-in.gguf"), output = temporaryPath("rules-out.gguf")
        defer { unlink(input); unlink(output) }
        try w.write(to: input)
        try quantizeModel(input: input, output: output, type: .q8_0, threads: 3)
        let f = try GGUFFile(path: output)
        // llama.cpp's order: tensors outside blocks first, then by layer number, then by name.
        XCTAssertEqual(f.tensors.map(\.name), ["not_a_weight.bias", "odd.weight", "output_norm.weight",
                                               "blk.2.attn_norm.weight", "blk.2.attn_q.weight", "blk.10.attn_q.weight"])
        let types = Dictionary(uniqueKeysWithValues: f.tensors.map { ($0.name, $0.type) })
        XCTAssertEqual(types["blk.2.attn_q.weight"], .q8_0)
        XCTAssertEqual(types["blk.2.attn_norm.weight"], .f32)
        XCTAssertEqual(types["output_norm.weight"], .f32)       // [64, 1] counts as 1-D
        XCTAssertEqual(types["odd.weight"], .f16)                // 8 columns: falls back to F16
        XCTAssertEqual(types["not_a_weight.bias"], .f32)
        XCTAssertEqual(f.metadataKeys, ["general.architecture", "zz.after", "general.quantization_version", "general.file_type"])
        let q = f.bytes(of: try XCTUnwrap(f.tensor(named: "blk.10.attn_q.weight")))
        XCTAssertEqual(Array(q), Q8_0Tests.reference(x))
        let h = try f.dequantize(try XCTUnwrap(f.tensor(named: "odd.weight")))
        for i in 0..<16 { XCTAssertEqual(h[i], Float(Float16(x[i]))) }

        try quantizeModel(input: input, output: output, type: .f16)
        let f16 = try GGUFFile(path: output)
        XCTAssertEqual(try f16.int("general.file_type"), 1)
        XCTAssertEqual(f16.tensor(named: "blk.2.attn_q.weight")?.type, .f16)

        assertGGUFError(.invalidArgument, "Q4_K target") { try quantizeModel(input: input, output: output, type: .q4_K) }
        assertGGUFError(.io, "missing input") { try quantizeModel(input: input + ".missing", output: output) }
        assertGGUFError(.io, "unwritable output") { try quantizeModel(input: input, output: "/nonexistent-dir/x.gguf") }
    }

    func testUnsupportedSourceTypeIsNamed() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.addTensor(name: "blk.0.ffn_up.weight", type: .iq2_xxs, shape: [256, 2], data: [UInt8](repeating: 0, count: 132))
        let input = temporaryPath("iq2.gguf"), output = temporaryPath("iq2-out.gguf")
        defer { unlink(input); unlink(output) }
        try w.write(to: input)
        let e = assertGGUFError(.unsupportedTensorType, "IQ2_XXS source") { try quantizeModel(input: input, output: output) }
        XCTAssertTrue(e?.message.contains("IQ2_XXS") ?? false)
        XCTAssertTrue(e?.message.contains("blk.0.ffn_up.weight") ?? false)
        XCTAssertNotEqual(access(output, F_OK), 0, "no output is left behind on failure")
    }
}
