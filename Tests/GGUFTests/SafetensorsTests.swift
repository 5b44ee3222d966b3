import Foundation
import XCTest
@testable import GGUF

/// The safetensors reader: valid files read back exactly; truncated or corrupt ones are typed
/// `SafetensorsError`s naming the problem. The BERT converter: a tiny random BERT directory
/// converts to a GGUF with llama.cpp's keys, names, shapes and types; broken directories are
/// typed errors.
final class SafetensorsTests: XCTestCase {
    /// A safetensors file from (name, dtype, shape, raw bytes) in order.
    static func file(_ entries: [(String, String, [Int], [UInt8])], header override: String? = nil) -> [UInt8] {
        var parts: [String] = []
        var offset = 0
        for (name, dtype, shape, data) in entries {
            parts.append("\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":[\(offset),\(offset + data.count)]}")
            offset += data.count
        }
        let header = Array((override ?? "{\"__metadata__\":{\"format\":\"pt\"}," + parts.joined(separator: ",") + "}").utf8)
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out += $0 }
        out += header
        for e in entries { out += e.3 }
        return out
    }

    static func f32(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }

    func testReadsF32F16BF16() throws {
        let f16: [UInt16] = [0x3C00, 0xC000, 0x3800]          // 1, -2, 0.5
        let bf16: [UInt16] = [0x3F80, 0x4040]                 // 1, 3
        let bytes = Self.file([
            ("a", "F32", [2, 3], Self.f32([1, 2, 3, 4, 5, 6])),
            ("b", "F16", [3], f16.withUnsafeBytes { Array($0) }),
            ("c", "BF16", [2], bf16.withUnsafeBytes { Array($0) }),
            ("ids", "I64", [1], [7, 0, 0, 0, 0, 0, 0, 0]),
        ])
        let st = try SafetensorsFile(bytes: bytes)
        XCTAssertEqual(st.tensors.map(\.name), ["a", "b", "c", "ids"])
        XCTAssertEqual(st.metadata["format"], "pt")
        XCTAssertEqual(st.tensor(named: "a")?.shape, [2, 3])
        XCTAssertEqual(try st.floats("a"), [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(try st.floats("b"), [1, -2, 0.5])
        XCTAssertEqual(try st.floats("c"), [1, 3])
        XCTAssertThrowsError(try st.floats("ids")) { XCTAssertEqual(($0 as? SafetensorsError)?.kind, .unsupportedDType) }
        XCTAssertThrowsError(try st.floats("nope")) { XCTAssertEqual(($0 as? SafetensorsError)?.kind, .missingTensor) }
    }

    func kind(_ bytes: [UInt8]) -> SafetensorsError.Kind? {
        do {
            _ = try SafetensorsFile(bytes: bytes)
            return nil
        } catch let e as SafetensorsError {
            XCTAssertFalse(e.message.isEmpty)
            return e.kind
        } catch {
            XCTFail("not a SafetensorsError: \(error)")
            return nil
        }
    }

    func testTruncatedAndCorruptFilesAreTypedErrors() {
        let good = Self.file([("a", "F32", [4], Self.f32([1, 2, 3, 4])), ("b", "F32", [2], Self.f32([5, 6]))])
        XCTAssertNil(kind(good))
        // Every truncation: a typed error, never a crash (the full file is the only valid length).
        for n in 0..<good.count {
            let k = kind(Array(good.prefix(n)))
            XCTAssertNotNil(k, "prefix \(n)")
            if n < 8 { XCTAssertEqual(k, .truncated) }
        }
        XCTAssertEqual(kind(Array(good.prefix(good.count - 1))), .truncated)
        // Header length beyond the file, absurd header length.
        var long = good; long[0] = 0xFF; long[1] = 0xFF
        XCTAssertEqual(kind(long), .truncated)
        var absurd = good; for i in 0..<8 { absurd[i] = 0xFF }
        XCTAssertEqual(kind(absurd), .badHeader)
        // Not JSON, not an object, bad fields.
        XCTAssertEqual(kind(Self.file([], header: "{\"a\": ")), .badHeader)
        XCTAssertEqual(kind(Self.file([], header: "[1, 2]")), .badHeader)
        XCTAssertEqual(kind(Self.file([], header: "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}")), .badHeader)
        XCTAssertEqual(kind(Self.file([], header: "{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}")), .badHeader)
        XCTAssertEqual(kind(Self.file([], header: "{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}")), .badHeader)
        // Unknown dtype.
        XCTAssertEqual(kind(Self.file([("a", "F12", [1], [0, 0])])), .unsupportedDType)
        // Offsets that disagree with dtype × shape, overlapping tensors.
        XCTAssertEqual(kind(Self.file([("a", "F32", [3], Self.f32([1, 2, 3, 4]))])), .badTensor)
        let overlap = "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}"
        var ov = Self.file([], header: overlap); ov += [UInt8](repeating: 0, count: 12)
        XCTAssertEqual(kind(ov), .badTensor)
    }

    func testMissingFileIsIOError() {
        XCTAssertThrowsError(try SafetensorsFile(path: "/nonexistent/model.safetensors")) {
            XCTAssertEqual(($0 as? SafetensorsError)?.kind, .io)
        }
    }

    // MARK: - Converter

    /// A random BERT (width 32, 2 heads, 2 layers, ff 64, 40 positions, 8 + 5 special tokens).
    static func tinyBert(in dir: String, pooling: String = "pooling_mode_mean_tokens", dropTensor: String? = nil) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/1_Pooling", withIntermediateDirectories: true)
        let d = 32, ff = 64, ctx = 40, layers = 2
        let words = ["hello", "world", "##s", "the", "cat", ",", ".", "a"]
        let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        let vocab = special + words
        let config = "{\"architectures\":[\"BertModel\"],\"model_type\":\"bert\",\"hidden_act\":\"gelu\",\"hidden_size\":\(d),\"num_hidden_layers\":\(layers),\"num_attention_heads\":2,\"intermediate_size\":\(ff),\"max_position_embeddings\":\(ctx),\"vocab_size\":\(vocab.count),\"type_vocab_size\":2,\"layer_norm_eps\":1e-12,\"position_embedding_type\":\"absolute\"}"
        try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        let vmap = vocab.enumerated().map { "\"\($0.element)\":\($0.offset)" }.joined(separator: ",")
        let added = special.enumerated().map { "{\"id\":\($0.offset),\"content\":\"\($0.element)\",\"special\":true}" }.joined(separator: ",")
        try "{\"added_tokens\":[\(added)],\"normalizer\":{\"type\":\"BertNormalizer\",\"lowercase\":true,\"strip_accents\":null},\"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"vocab\":{\(vmap)}}}"
            .write(toFile: dir + "/tokenizer.json", atomically: true, encoding: .utf8)
        try "{\"unk_token\":\"[UNK]\",\"sep_token\":\"[SEP]\",\"pad_token\":\"[PAD]\",\"cls_token\":\"[CLS]\",\"mask_token\":\"[MASK]\"}"
            .write(toFile: dir + "/special_tokens_map.json", atomically: true, encoding: .utf8)
        try "[{\"idx\":0,\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},{\"idx\":1,\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},{\"idx\":2,\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]"
            .write(toFile: dir + "/modules.json", atomically: true, encoding: .utf8)
        try "{\"\(pooling)\":true}".write(toFile: dir + "/1_Pooling/config.json", atomically: true, encoding: .utf8)
        var rng = SplitMix64(seed: 11)
        func rand(_ n: Int) -> [UInt8] { f32((0..<n).map { _ in Float.random(in: -0.2...0.2, using: &rng) }) }
        var entries: [(String, String, [Int], [UInt8])] = [
            ("embeddings.position_ids", "I64", [1, ctx], [UInt8](repeating: 0, count: 8 * ctx)),
            ("embeddings.word_embeddings.weight", "F32", [vocab.count, d], rand(vocab.count * d)),
            ("embeddings.position_embeddings.weight", "F32", [ctx, d], rand(ctx * d)),
            ("embeddings.token_type_embeddings.weight", "F32", [2, d], rand(2 * d)),
            ("embeddings.LayerNorm.weight", "F32", [d], rand(d)),
            ("embeddings.LayerNorm.bias", "F32", [d], rand(d)),
        ]
        for i in 0..<layers {
            let p = "encoder.layer.\(i)."
            for n in ["attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"] {
                entries.append((p + n + ".weight", "F32", [d, d], rand(d * d)))
                entries.append((p + n + ".bias", "F32", [d], rand(d)))
            }
            entries.append((p + "intermediate.dense.weight", "F32", [ff, d], rand(ff * d)))
            entries.append((p + "intermediate.dense.bias", "F32", [ff], rand(ff)))
            entries.append((p + "output.dense.weight", "F32", [d, ff], rand(ff * d)))
            entries.append((p + "output.dense.bias", "F32", [d], rand(d)))
            for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
                entries.append((p + n + ".weight", "F32", [d], rand(d)))
                entries.append((p + n + ".bias", "F32", [d], rand(d)))
            }
        }
        entries.removeAll { $0.0 == dropTensor }
        try Data(file(entries)).write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
    }

    func tempDir() throws -> String {
        let dir = NSTemporaryDirectory() + "edgeai-bert-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testConvertsTinyBertWithLlamaCppKeysAndNames() throws {
        let dir = try tempDir()
        try Self.tinyBert(in: dir + "/hf")
        for (type, matrixType) in [(GGMLType.f32, GGMLType.f32), (.f16, .f16), (.q8_0, .q8_0)] {
            let out = dir + "/out-\(type.name).gguf"
            let s = try BertConverter.convert(directory: dir + "/hf", output: out, type: type)
            XCTAssertEqual(s.pooling, "mean")
            XCTAssertTrue(s.normalize)
            let f = try GGUFFile(path: out)
            XCTAssertEqual(try f.string("general.architecture"), "bert")
            XCTAssertEqual(try f.int("bert.block_count"), 2)
            XCTAssertEqual(try f.int("bert.embedding_length"), 32)
            XCTAssertEqual(try f.int("bert.context_length"), 40)
            XCTAssertEqual(try f.int("bert.pooling_type"), 1)
            XCTAssertEqual(try f.bool("bert.attention.causal"), false)
            XCTAssertEqual(try f.string("tokenizer.ggml.model"), "bert")
            XCTAssertEqual(try f.int("tokenizer.ggml.token_type_count"), 2)
            XCTAssertEqual(try f.int("tokenizer.ggml.bos_token_id"), 2)
            XCTAssertEqual(try f.int("tokenizer.ggml.seperator_token_id"), 3)
            // Phantom-space vocabulary: specials kept, "##s" -> "s", words get U+2581.
            let toks = try XCTUnwrap(try f.strings("tokenizer.ggml.tokens"))
            XCTAssertEqual(Array(toks.prefix(8)), ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\u{2581}hello", "\u{2581}world", "s"])
            XCTAssertEqual(f.tensors.count, 5 + 2 * 16)
            XCTAssertEqual(f.tensor(named: "token_embd.weight")?.shape, [32, 13])
            XCTAssertEqual(f.tensor(named: "token_embd.weight")?.type, matrixType)
            XCTAssertEqual(f.tensor(named: "blk.1.ffn_up.weight")?.shape, [32, 64])
            XCTAssertEqual(f.tensor(named: "blk.1.ffn_up.weight")?.type, matrixType)
            XCTAssertEqual(f.tensor(named: "blk.0.ffn_down.weight")?.shape, [64, 32])
            XCTAssertEqual(f.tensor(named: "position_embd.weight")?.type, .f32)
            XCTAssertEqual(f.tensor(named: "token_types.weight")?.type, .f32)
            XCTAssertEqual(f.tensor(named: "blk.0.attn_output_norm.bias")?.type, .f32)
            XCTAssertNotNil(f.tensor(named: "blk.1.layer_output_norm.weight"))
        }
        // F32 output holds the safetensors values exactly.
        let st = try SafetensorsFile(path: dir + "/hf/model.safetensors")
        let f = try GGUFFile(path: dir + "/out-F32.gguf")
        XCTAssertEqual(try f.dequantize(try XCTUnwrap(f.tensor(named: "blk.1.attn_k.weight"))),
                       try st.floats("encoder.layer.1.attention.self.key.weight"))
    }

    func testConverterErrorsAreTyped() throws {
        let dir = try tempDir()
        // Missing directory.
        XCTAssertThrowsError(try BertConverter.convert(directory: dir + "/none", output: dir + "/x.gguf")) {
            XCTAssertEqual(($0 as? GGUFError)?.kind, .io)
        }
        // A missing tensor.
        try Self.tinyBert(in: dir + "/a", dropTensor: "encoder.layer.1.output.dense.bias")
        XCTAssertThrowsError(try BertConverter.convert(directory: dir + "/a", output: dir + "/a.gguf")) {
            XCTAssertEqual(($0 as? SafetensorsError)?.kind, .missingTensor)
            XCTAssertTrue("\($0)".contains("encoder.layer.1.output.dense.bias"), "\($0)")
        }
        // A truncated safetensors file.
        try Self.tinyBert(in: dir + "/b")
        let path = dir + "/b/model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try BertConverter.convert(directory: dir + "/b", output: dir + "/b.gguf")) {
            XCTAssertEqual(($0 as? SafetensorsError)?.kind, .truncated)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/b.gguf"))
        // Unsupported pooling, unsupported output type.
        try Self.tinyBert(in: dir + "/c", pooling: "pooling_mode_max_tokens")
        XCTAssertThrowsError(try BertConverter.convert(directory: dir + "/c", output: dir + "/c.gguf")) {
            XCTAssertEqual(($0 as? GGUFError)?.kind, .invalidArgument)
        }
        try Self.tinyBert(in: dir + "/d")
        XCTAssertThrowsError(try BertConverter.convert(directory: dir + "/d", output: dir + "/d.gguf", type: .q4_0)) {
            XCTAssertEqual(($0 as? GGUFError)?.kind, .invalidArgument)
        }
    }
}
