import XCTest
@testable import GGUF

/// Facts of the shipped SmolLM2-135M-Instruct Q4_1 file and its Q8_0 conversion.
final class RealModelTests: XCTestCase {
    func testSourceModelFacts() throws {
        let path = try cachedModel(sourceModelName)
        var best = Double.infinity
        var file: GGUFFile? = nil
        for _ in 0..<3 {
            let t0 = monotonicSeconds()
            let f = try GGUFFile(path: path)
            best = min(best, monotonicSeconds() - t0)
            file = f
        }
        let f = try XCTUnwrap(file)
        print("GGUF open \(sourceModelName) (\(f.fileSize) bytes): \(String(format: "%.1f", best * 1000)) ms")
        XCTAssertLessThan(best, 1.0, "opening must not read the file")

        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.fileSize, 98_362_432)
        XCTAssertEqual(f.architecture, "llama")
        XCTAssertEqual(try f.int("llama.block_count"), 30)
        XCTAssertEqual(try f.int("llama.embedding_length"), 576)
        XCTAssertEqual(try f.int("llama.feed_forward_length"), 1536)
        XCTAssertEqual(try f.uint32("llama.attention.head_count"), 9)
        XCTAssertEqual(try f.int("llama.attention.head_count_kv"), 3)
        XCTAssertEqual(try f.int("llama.context_length"), 8192)
        XCTAssertEqual(try f.float("llama.rope.freq_base"), 100_000)
        XCTAssertEqual(try f.float("llama.attention.layer_norm_rms_epsilon"), 1e-5)
        XCTAssertEqual(f.tensors.count, 272)
        XCTAssertEqual(f.metadataKeys.count, 33)
        XCTAssertEqual(f.metadataKeys.first, "general.architecture")
        XCTAssertEqual(f.metadataKeys.last, "general.quantization_version")

        let tokens = try XCTUnwrap(try f.strings("tokenizer.ggml.tokens"))
        XCTAssertEqual(tokens.count, 49152)
        XCTAssertEqual(Array(tokens.prefix(3)), ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
        let merges = try XCTUnwrap(try f.strings("tokenizer.ggml.merges"))
        XCTAssertEqual(merges.count, 48900)
        XCTAssertEqual(merges.first, "Ġ t")
        let types = try XCTUnwrap(try f.ints("tokenizer.ggml.token_type"))
        XCTAssertEqual(types.count, 49152)
        XCTAssertEqual(types.first, 3)
        XCTAssertEqual(try f.int("tokenizer.ggml.bos_token_id"), 1)
        XCTAssertEqual(try f.int("tokenizer.ggml.eos_token_id"), 2)
        XCTAssertEqual(try f.bool("tokenizer.ggml.add_bos_token"), false)
        XCTAssertEqual(try f.string("tokenizer.ggml.model"), "gpt2")
        XCTAssertEqual(try f.string("tokenizer.ggml.pre"), "smollm")
        XCTAssertTrue(try XCTUnwrap(try f.string("tokenizer.chat_template")).contains("<|im_start|>assistant"))
        XCTAssertNil(try f.string("no.such.key"))
        XCTAssertNil(try f.floats("tokenizer.ggml.scores"))

        // Typed accessors refuse incompatible types.
        assertGGUFError(.typeMismatch, "string as int") { try f.int("general.architecture") }
        assertGGUFError(.typeMismatch, "int as string") { try f.string("llama.block_count") }
        assertGGUFError(.typeMismatch, "scalar as array") { try f.strings("llama.block_count") }
        assertGGUFError(.typeMismatch, "ints as strings") { try f.strings("tokenizer.ggml.token_type") }
        assertGGUFError(.missingKey, "require absent") { try f.require("no.such.key", f.int) }
        XCTAssertEqual(try f.require("llama.vocab_size", f.int), 49152)

        // Tensor table.
        let embd = try XCTUnwrap(f.tensor(named: "token_embd.weight"))
        XCTAssertEqual(embd.type, .q8_0)
        XCTAssertEqual(embd.shape, [576, 49152])
        XCTAssertEqual(embd.rowLength, 576)
        XCTAssertEqual(embd.rowCount, 49152)
        XCTAssertEqual(embd.byteCount, 49152 * 18 * 34)
        XCTAssertNil(f.tensor(named: "output.weight"))     // tied embeddings
        var counts = [String: Int]()
        for t in f.tensors { counts[t.type.name, default: 0] += 1 }
        XCTAssertEqual(counts, ["Q4_1": 210, "Q8_0": 1, "F32": 61])
        XCTAssertEqual(f.tensors.reduce(0) { $0 + $1.elementCount }, 134_515_008)
        for t in f.tensors {
            XCTAssertEqual(t.offset % f.alignment, 0, t.name)
            XCTAssertEqual(f.bytes(of: t).count, t.byteCount, t.name)
        }
    }

    /// Q4_1 blocks dequantize to q * d + m computed here from the raw bytes.
    func testQ4_1BlocksFromRawBytes() throws {
        let f = try GGUFFile(path: try cachedModel(sourceModelName))
        for name in ["blk.0.attn_q.weight", "blk.17.ffn_down.weight", "blk.29.attn_v.weight"] {
            let t = try XCTUnwrap(f.tensor(named: name))
            XCTAssertEqual(t.type, .q4_1)
            let raw = f.bytes(of: t)
            let all = try f.dequantize(t)
            XCTAssertEqual(all.count, t.elementCount)
            let blocksPerRow = t.rowLength / 32
            for row in [0, 1, t.rowCount / 2, t.rowCount - 1] {
                var out = [Float](repeating: .nan, count: t.rowLength)
                try out.withUnsafeMutableBufferPointer { try f.dequantizeRow(t, row: row, into: $0) }
                for block in [0, blocksPerRow / 2, blocksPerRow - 1] {
                    let base = (row * blocksPerRow + block) * 20
                    let d = Float(Float16(bitPattern: UInt16(raw[base]) | UInt16(raw[base + 1]) << 8))
                    let m = Float(Float16(bitPattern: UInt16(raw[base + 2]) | UInt16(raw[base + 3]) << 8))
                    XCTAssertTrue(d.isFinite && m.isFinite)
                    for j in 0..<32 {
                        let byte = raw[base + 4 + (j % 16)]
                        let q = j < 16 ? byte & 0x0F : byte >> 4
                        let scaled = Float(q) * d          // two roundings: product, then sum
                        let expected = scaled + m
                        let got = out[block * 32 + j]
                        XCTAssertEqual(got.bitPattern, expected.bitPattern, "\(name) row \(row) block \(block) element \(j)")
                        XCTAssertEqual(all[row * t.rowLength + block * 32 + j].bitPattern, expected.bitPattern)
                    }
                }
            }
        }
        // F32 and Q8_0 tensors from raw bytes too.
        let norm = try XCTUnwrap(f.tensor(named: "blk.3.ffn_norm.weight"))
        let normValues = try f.dequantize(norm)
        let normRaw = f.bytes(of: norm)
        for i in [0, 1, 300, 575] {
            XCTAssertEqual(normValues[i], normRaw.loadUnaligned(fromByteOffset: 4 * i, as: Float.self))
        }
        let embd = try XCTUnwrap(f.tensor(named: "token_embd.weight"))
        var row = [Float](repeating: 0, count: 576)
        try row.withUnsafeMutableBufferPointer { try f.dequantizeRow(embd, row: 1234, into: $0) }
        let eraw = f.bytes(of: embd)
        for j in [0, 31, 32, 575] {
            let base = (1234 * 18 + j / 32) * 34
            let d = Float(Float16(bitPattern: UInt16(eraw[base]) | UInt16(eraw[base + 1]) << 8))
            XCTAssertEqual(row[j], Float(Int8(bitPattern: eraw[base + 2 + j % 32])) * d)
        }
        // Bad arguments are errors, not traps.
        var small = [Float](repeating: 0, count: 10)
        assertGGUFError(.invalidArgument, "small buffer") { try small.withUnsafeMutableBufferPointer { try f.dequantizeRow(embd, row: 0, into: $0) } }
        assertGGUFError(.invalidArgument, "row out of range") { try row.withUnsafeMutableBufferPointer { try f.dequantizeRow(embd, row: 49152, into: $0) } }
        assertGGUFError(.invalidArgument, "negative row") { try row.withUnsafeMutableBufferPointer { try f.dequantizeRow(embd, row: -1, into: $0) } }
        // Tensor descriptions not from this file are checked, never trusted.
        let wrapped = GGUFTensorInfo(name: "x", type: .f32, shape: [1 << 62, 4], offset: 0, byteCount: 0)
        assertGGUFError(.invalidArgument, "overflowing shape") { try row.withUnsafeMutableBufferPointer { try f.dequantizeRow(wrapped, row: 0, into: $0) } }
        let short = GGUFTensorInfo(name: "y", type: .f32, shape: [1000], offset: 0, byteCount: 4)
        assertGGUFError(.invalidArgument, "bytes do not match shape") { try f.dequantize(short) }
        let outside = GGUFTensorInfo(name: "z", type: .f32, shape: [8], offset: f.fileSize, byteCount: 32)
        assertGGUFError(.outOfBounds, "beyond the file") { try f.dequantize(outside) }
        XCTAssertEqual(f.bytes(of: outside).count, 0)
    }

    /// The model made by Models/fetch.sh (our quantizer) is the Q8_0 model llama.cpp makes.
    func testFetchedQ8_0Model() throws {
        let f = try GGUFFile(path: try cachedModel(q8ModelName))
        XCTAssertEqual(f.architecture, "llama")
        XCTAssertEqual(f.tensors.count, 272)
        XCTAssertEqual(try f.int("general.file_type"), 7)
        XCTAssertEqual(try f.int("general.quantization_version"), 2)
        XCTAssertEqual(try f.strings("tokenizer.ggml.tokens")?.count, 49152)
        let expected = try referenceDigests()
        var matching = 0
        for t in f.tensors {
            XCTAssertEqual(t.type, t.shape.count >= 2 ? .q8_0 : .f32, t.name)
            if SHA256.hex(f.bytes(of: t)) == expected[t.name] { matching += 1 }
        }
        XCTAssertEqual(matching, 272, "tensors of \(q8ModelName) equal to llama-quantize's")
    }
}

/// llama-quantize's per-tensor digests (Tests/Fixtures/gguf/smollm2-q8_0-tensor-sha256.json).
func referenceDigests() throws -> [String: String] {
    let path = fixturesDirectory + "/smollm2-q8_0-tensor-sha256.json"
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: String])
    XCTAssertEqual(json.count, 272)
    return json
}
