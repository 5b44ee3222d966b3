import XCTest
@testable import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// Our conversions of SmolLM2 to llama.cpp's file types equal llama-quantize's
/// (recorded by Tests/Fixtures/gguf/make_reference_digests.sh): every tensor's
/// type and bytes, and the whole file.
final class LlamaQuantizeTests: XCTestCase {
    /// The F16 conversion of the cached Q4_1 model, made once by `f16Input()`.
    nonisolated(unsafe) private static var f16Path: String?

    override class func tearDown() {
        if let p = f16Path { unlink(p) }
        f16Path = nil
        super.tearDown()
    }

    /// Q4_1 -> F16 with our quantizer, checked against llama-quantize's F16 file.
    private func f16Input() throws -> String {
        if let p = Self.f16Path { return p }
        let output = temporaryPath("smollm2-f16.gguf")
        try convert(input: try cachedModel(sourceModelName), output: output, fileType: .f16, reference: "f16")
        Self.f16Path = output
        return output
    }

    /// Converts and compares with `smollm2-llama-<reference>.json`.
    private func convert(input: String, output: String, fileType: LlamaFileType, reference: String,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let t0 = monotonicSeconds()
        try quantizeModel(input: input, output: output, fileType: fileType, threads: 2)
        let seconds = monotonicSeconds() - t0
        let expected = try LlamaReference(name: reference)
        let f = try GGUFFile(path: output)
        XCTAssertEqual(try f.int("general.file_type"), Int(fileType.rawValue), file: file, line: line)
        XCTAssertEqual(f.tensors.count, expected.tensors.count, file: file, line: line)
        // The whole file first (header, every tensor, padding): when it is
        // identical, so is every tensor, so the per-tensor digests are only
        // computed for Q4_K_M (always) and to name the differing tensors.
        XCTAssertEqual(f.fileSize, expected.fileSize, "\(reference): file size", file: file, line: line)
        let wholeFileEqual = SHA256.hex(f.fileBytes) == expected.fileSHA256
        XCTAssertTrue(wholeFileEqual, "\(reference): whole file differs from llama-quantize's", file: file, line: line)
        var matching = 0
        var counts = [String: Int]()
        for t in f.tensors {
            counts[t.type.name, default: 0] += 1
            guard let e = expected.tensors[t.name] else {
                XCTFail("unexpected tensor \(t.name)", file: file, line: line)
                continue
            }
            XCTAssertEqual(t.type.rawValue, e.type, "\(reference): type of \(t.name)", file: file, line: line)
            if wholeFileEqual && reference != "q4_k_m" {
                if t.type.rawValue == e.type { matching += 1 }
                continue
            }
            let digest = SHA256.hex(f.bytes(of: t))
            XCTAssertEqual(digest, e.sha256, "\(reference): data of \(t.name)", file: file, line: line)
            if digest == e.sha256 && t.type.rawValue == e.type { matching += 1 }
        }
        let mix = counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("quantize SmolLM2 -> \(fileType.name) (\(reference)): \(String(format: "%.3f", seconds)) s with 2 threads; tensors equal to llama-quantize: \(matching)/\(f.tensors.count) [\(mix)]")
    }

    /// Requantizing Gemma 3 270M (Q8_0, Q5_0, Q4_K, Q6_K tensors: the dequantizers of the
    /// kernels' table) to Q8_0 gives llama-quantize's file (llama_model_quantize with
    /// allow_requantize, 2 threads: sha256 d3d21138…290a, 291,543,744 bytes).
    func testGemma3KQuantsRequantizedToQ8_0() throws {
        let output = temporaryPath("gemma3-q8_0.gguf")
        defer { unlink(output) }
        try quantizeModel(input: try cachedModel("gemma-3-270m-q4_k_m.gguf"), output: output, fileType: .q8_0, threads: 2)
        let f = try GGUFFile(path: output)
        XCTAssertEqual(f.fileSize, 291_543_744)
        XCTAssertEqual(SHA256.hex(f.fileBytes), "d3d21138dcca83884e329b4cd6939b905c15e06022a930ce13d6db4d9e67290a")
    }

    private func check(_ fileType: LlamaFileType, _ reference: String) throws {
        let output = temporaryPath("smollm2-\(reference).gguf")
        defer { unlink(output) }
        try convert(input: try f16Input(), output: output, fileType: fileType, reference: reference)
    }

    func testF16ToQ4_K_M() throws { try check(.q4_K_M, "q4_k_m") }
    func testF16ToQ4_K_S() throws { try check(.q4_K_S, "q4_k_s") }
    func testF16ToQ5_K_M() throws { try check(.q5_K_M, "q5_k_m") }
    func testF16ToQ6_K() throws { try check(.q6_K, "q6_k") }
    func testF16ToQ4_0() throws { try check(.q4_0, "q4_0") }
    func testF16ToQ5_0() throws { try check(.q5_0, "q5_0") }

    /// Requantization: the Q4_1 file straight to Q4_K_M (dequantized rows re-quantized).
    func testQ4_1ToQ4_K_M() throws {
        let output = temporaryPath("smollm2-q4_k_m-requant.gguf")
        defer { unlink(output) }
        try convert(input: try cachedModel(sourceModelName), output: output, fileType: .q4_K_M, reference: "q4_k_m-requant")
    }

    /// llama_tensor_get_type's choices on a synthetic tensor list.
    func testTypeChoices() {
        func info(_ name: String, _ shape: [Int], _ type: GGMLType = .f16) -> GGUFTensorInfo {
            GGUFTensorInfo(name: name, type: type, shape: shape, offset: 0, byteCount: 0)
        }
        let layers = 8
        var tensors = [info("token_embd.weight", [512, 1000]), info("output_norm.weight", [512], .f32)]
        for i in 0..<layers {
            tensors.append(info("blk.\(i).attn_v.weight", [512, 128]))
            tensors.append(info("blk.\(i).ffn_down.weight", [1536, 512]))
            tensors.append(info("blk.\(i).ffn_up.weight", [576, 1536]))      // 576: not a multiple of 256
            tensors.append(info("blk.\(i).attn_q.weight", [40, 40]))         // 40: not a multiple of 32
        }
        let metadata: [String: GGUFValue] = ["general.architecture": .string("llama"), "llama.block_count": .uint32(UInt32(layers))]
        let q4km = llamaTensorTypes(tensors, ftype: .q4_K_M, metadata: metadata)
        let byName = Dictionary(uniqueKeysWithValues: zip(tensors.map(\.name), q4km))
        XCTAssertEqual(byName["token_embd.weight"], .q6_K)                   // tied output
        XCTAssertEqual(byName["output_norm.weight"], .f32)
        // use_more_bits(i, 8): i < 1, i >= 7, (i - 1) % 3 == 2 -> layers 0, 3, 6, 7
        for i in 0..<layers {
            let more = [0, 3, 6, 7].contains(i)
            XCTAssertEqual(byName["blk.\(i).attn_v.weight"], more ? .q6_K : .q4_K, "attn_v \(i)")
            XCTAssertEqual(byName["blk.\(i).ffn_down.weight"], more ? .q6_K : .q4_K, "ffn_down \(i)")
            XCTAssertEqual(byName["blk.\(i).ffn_up.weight"], .q5_0, "Q4_K falls back to Q5_0")
            XCTAssertEqual(byName["blk.\(i).attn_q.weight"], .f16, "no 32-block fits: F16")
        }
        let q5km = Dictionary(uniqueKeysWithValues: zip(tensors.map(\.name), llamaTensorTypes(tensors, ftype: .q5_K_M, metadata: metadata)))
        XCTAssertEqual(q5km["blk.1.ffn_up.weight"], .q5_1)
        XCTAssertEqual(q5km["blk.1.ffn_down.weight"], .q5_K)
        XCTAssertEqual(q5km["blk.0.ffn_down.weight"], .q6_K)
        let q6k = Dictionary(uniqueKeysWithValues: zip(tensors.map(\.name), llamaTensorTypes(tensors, ftype: .q6_K, metadata: metadata)))
        XCTAssertEqual(q6k["blk.1.ffn_up.weight"], .q8_0)
        XCTAssertEqual(q6k["blk.1.ffn_down.weight"], .q6_K)
        // An untied output gets Q6_K; the token embedding then keeps the default type.
        let untied = tensors + [info("output.weight", [512, 1000])]
        let q40 = Dictionary(uniqueKeysWithValues: zip(untied.map(\.name), llamaTensorTypes(untied, ftype: .q4_0, metadata: metadata)))
        XCTAssertEqual(q40["output.weight"], .q6_K)
        XCTAssertEqual(q40["token_embd.weight"], .q4_0)
        XCTAssertEqual(q40["blk.2.ffn_up.weight"], .q4_0)
        // Output rows that fit no 256-block: Q8_0.
        let narrow = [info("token_embd.weight", [576, 1000])]
        XCTAssertEqual(llamaTensorTypes(narrow, ftype: .q4_K_M, metadata: metadata), [.q8_0])
        XCTAssertEqual(llamaTensorTypes(narrow, ftype: .f16, metadata: metadata), [.f16])
    }

    func testFileTypeNames() {
        XCTAssertEqual(LlamaFileType(name: "q4_k_m"), .q4_K_M)
        XCTAssertEqual(LlamaFileType(name: "Q6_K"), .q6_K)
        XCTAssertEqual(LlamaFileType(name: "bf16")?.rawValue, 32)
        XCTAssertNil(LlamaFileType(name: "q4_k"))
        XCTAssertEqual(LlamaFileType(type: .q5_0), .q5_0)
        XCTAssertNil(LlamaFileType(type: .q4_K))
        XCTAssertEqual(LlamaFileType.q4_K_M.rawValue, 15)
        XCTAssertEqual(LlamaFileType.q5_K_M.rawValue, 17)
        XCTAssertEqual(LlamaFileType.q6_K.rawValue, 18)
    }

    /// A source type we cannot dequantize is a typed error naming tensor and type.
    func testUnsupportedSourceForMixedType() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("llama.block_count", .uint32(1))
        w.addTensor(name: "blk.0.ffn_up.weight", type: .iq2_xxs, shape: [256, 2], data: [UInt8](repeating: 0, count: 132))
        let input = temporaryPath("iq2-mixed.gguf"), output = temporaryPath("iq2-mixed-out.gguf")
        defer { unlink(input); unlink(output) }
        try w.write(to: input)
        let e = assertGGUFError(.unsupportedTensorType, "IQ2_XXS source") {
            try quantizeModel(input: input, output: output, fileType: .q4_K_M)
        }
        XCTAssertTrue(e?.message.contains("IQ2_XXS") ?? false)
        XCTAssertTrue(e?.message.contains("blk.0.ffn_up.weight") ?? false)
        // Already the target type: copied, no conversion needed.
        var w2 = GGUFWriter()
        w2.set("general.architecture", .string("llama"))
        w2.set("llama.block_count", .uint32(1))
        w2.addTensor(name: "blk.0.ffn_up.weight", type: .q6_K, shape: [256, 2], data: [UInt8](repeating: 0, count: 420))
        try w2.write(to: input)
        try quantizeModel(input: input, output: output, fileType: .q6_K)
        XCTAssertEqual(try GGUFFile(path: output).tensors.first?.type, .q6_K)
    }
}

/// One `smollm2-llama-<name>.json` fixture.
struct LlamaReference {
    let fileSHA256: String
    let fileSize: Int
    let tensors: [String: (type: UInt32, sha256: String)]

    init(name: String) throws {
        let path = fixturesDirectory + "/smollm2-llama-\(name).json"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let file = try XCTUnwrap(json["file"] as? [String: Any])
        fileSHA256 = try XCTUnwrap(file["sha256"] as? String)
        fileSize = try XCTUnwrap(file["size"] as? Int)
        let entries = try XCTUnwrap(json["tensors"] as? [String: [String: Any]])
        var t = [String: (type: UInt32, sha256: String)]()
        for (k, v) in entries {
            t[k] = (UInt32(try XCTUnwrap(v["type"] as? Int)), try XCTUnwrap(v["sha256"] as? String))
        }
        tensors = t
    }
}
