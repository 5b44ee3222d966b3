import CKernels
import Foundation

/// Converts a Hugging Face BERT model directory (as sentence-transformers ships it) to a GGUF file
/// with llama.cpp's `bert` architecture keys and tensor names, as llama.cpp's
/// `convert_hf_to_gguf.py` (`BertModel`) writes them, so llama.cpp loads the result.
///
/// Reads: `config.json` (BertModel hyper-parameters), `model.safetensors`, `tokenizer.json`
/// (WordPiece vocabulary, BertNormalizer flags, added special tokens), `tokenizer_config.json`
/// and `special_tokens_map.json` (special token names), and sentence-transformers'
/// `modules.json` with the pooling module's `config.json` (pooling type) and whether a
/// `Normalize` module follows (recorded as `edgeai.embedding.normalize`, a key llama.cpp ignores).
///
/// Tensor types follow the converter: vectors, norms, `position_embd` and `token_types` in F32;
/// the other matrices (token embeddings included) in the requested type (F32, F16 or Q8_0).
public enum BertConverter {
    public struct Summary: Sendable {
        public var tensors: Int
        public var bytes: Int
        public var layers: Int
        public var embeddingLength: Int
        public var vocabularySize: Int
        public var pooling: String
        public var normalize: Bool
    }

    /// The output types supported (`general.file_type`: 0, 1, 7).
    public static let types: [GGMLType] = [.f32, .f16, .q8_0]

    /// llama.cpp's pooling type numbers (`LLAMA_POOLING_TYPE_*`).
    public static let poolingNumbers: [String: UInt32] = ["none": 0, "mean": 1, "cls": 2, "last": 3]

    static func fail(_ kind: GGUFError.Kind, _ message: String) -> GGUFError { GGUFError(kind, message) }

    static func readJSON(_ dir: String, _ name: String, required: Bool = true) throws -> [String: Any]? {
        let path = dir + "/" + name
        guard let data = FileManager.default.contents(atPath: path) else {
            if required { throw fail(.io, "cannot read '\(path)' (a Hugging Face BERT directory has config.json, model.safetensors and tokenizer.json)") }
            return nil
        }
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail(.invalidArgument, "'\(path)' is not a JSON object")
        }
        return obj
    }

    static func int(_ o: [String: Any], _ key: String, _ file: String) throws -> Int {
        guard let n = o[key] as? NSNumber, n.doubleValue == n.doubleValue.rounded(), n.doubleValue >= 1, n.doubleValue < 1e9 else {
            throw fail(.missingKey, "\(file): '\(key)' is missing or not a positive integer")
        }
        return n.intValue
    }

    /// Converts `directory` into the GGUF file `output` (written atomically).
    @discardableResult
    public static func convert(directory dir: String, output: String, type: GGMLType = .f32) throws -> Summary {
        guard types.contains(type) else {
            throw fail(.invalidArgument, "output type \(type.name) is not supported; use f32, f16 or q8_0")
        }
        let config = try readJSON(dir, "config.json")!
        let archs = (config["architectures"] as? [String]) ?? []
        let modelType = config["model_type"] as? String
        guard modelType == "bert" || archs.contains(where: { ["BertModel", "BertForMaskedLM"].contains($0) }) else {
            throw fail(.invalidArgument, "config.json: model_type '\(modelType ?? "?")' / architectures \(archs) is not a BERT model")
        }
        if let pe = config["position_embedding_type"] as? String, pe != "absolute" {
            throw fail(.invalidArgument, "config.json: position_embedding_type '\(pe)' is not supported (only 'absolute')")
        }
        if let act = config["hidden_act"] as? String, !["gelu", "gelu_new", "gelu_pytorch_tanh"].contains(act) {
            throw fail(.invalidArgument, "config.json: hidden_act '\(act)' is not supported (llama.cpp's bert runs GELU)")
        }
        let d = try int(config, "hidden_size", "config.json")
        let layers = try int(config, "num_hidden_layers", "config.json")
        let heads = try int(config, "num_attention_heads", "config.json")
        let ff = try int(config, "intermediate_size", "config.json")
        let ctx = try int(config, "max_position_embeddings", "config.json")
        let vocab = try int(config, "vocab_size", "config.json")
        let typeVocab = (config["type_vocab_size"] as? NSNumber)?.intValue ?? 1
        let eps = (config["layer_norm_eps"] as? NSNumber)?.floatValue ?? 1e-12
        guard d % heads == 0 else { throw fail(.invalidArgument, "config.json: hidden_size \(d) is not a multiple of num_attention_heads \(heads)") }

        // Pooling (sentence-transformers modules.json → the Pooling module's config.json).
        var pooling: String? = nil
        var normalize = false
        if let modulesData = FileManager.default.contents(atPath: dir + "/modules.json") {
            guard let modules = try? JSONSerialization.jsonObject(with: modulesData) as? [[String: Any]] else {
                throw fail(.invalidArgument, "'\(dir)/modules.json' is not a JSON list of modules")
            }
            for m in modules {
                let t = m["type"] as? String ?? ""
                if t.hasSuffix("Pooling"), pooling == nil {
                    let sub = (m["path"] as? String) ?? ""
                    let pc = try readJSON(dir, (sub.isEmpty ? "" : sub + "/") + "config.json")!
                    if pc["pooling_mode_mean_tokens"] as? Bool == true { pooling = "mean" }
                    else if pc["pooling_mode_cls_token"] as? Bool == true { pooling = "cls" }
                    else if pc["pooling_mode_lasttoken"] as? Bool == true { pooling = "last" }
                    else if let mode = pc["pooling_mode"] as? String, ["mean", "cls", "lasttoken"].contains(mode) {
                        pooling = mode == "lasttoken" ? "last" : mode
                    } else {
                        throw fail(.invalidArgument, "\(sub)/config.json: only mean, CLS and last-token pooling are supported")
                    }
                }
                if t.hasSuffix("Normalize") { normalize = true }
            }
        }

        // Vocabulary (tokenizer.json: WordPiece).
        let tok = try readJSON(dir, "tokenizer.json")!
        guard let model = tok["model"] as? [String: Any], (model["type"] as? String) == "WordPiece",
              let vocabMap = model["vocab"] as? [String: Any] else {
            throw fail(.invalidArgument, "tokenizer.json: model is not a WordPiece vocabulary")
        }
        var reverse = [String?](repeating: nil, count: vocab)
        for (text, idAny) in vocabMap {
            guard let id = (idAny as? NSNumber)?.intValue, id >= 0 else {
                throw fail(.invalidArgument, "tokenizer.json: token '\(text)' has no integer id")
            }
            guard id < vocab else { throw fail(.invalidArgument, "tokenizer.json: token id \(id) is not below vocab_size \(vocab)") }
            reverse[id] = text
        }
        var special = Set<Int>()
        var addedByText: [String: Int] = [:]
        for a in (tok["added_tokens"] as? [[String: Any]]) ?? [] {
            guard let id = (a["id"] as? NSNumber)?.intValue, let content = a["content"] as? String, id >= 0, id < vocab else { continue }
            reverse[id] = content
            addedByText[content] = id
            if a["special"] as? Bool == true { special.insert(id) }
        }
        var tokens: [String] = []
        var tokenTypes: [Int32] = []
        var idOf: [String: Int] = [:]
        for i in 0..<vocab {
            guard let t = reverse[i] else {
                tokens.append("[PAD\(i)]"); tokenTypes.append(5)   // UNUSED
                continue
            }
            idOf[t] = i
            if special.contains(i) {
                tokens.append(t); tokenTypes.append(3)              // CONTROL: kept as is
            } else {
                // llama.cpp's "phantom space" form: word starts get U+2581, "##" continuations lose it.
                tokens.append(t.hasPrefix("##") ? String(t.dropFirst(2)) : "\u{2581}" + t)
                tokenTypes.append(addedByText[t] != nil ? 4 : 1)    // USER_DEFINED : NORMAL
            }
        }
        // Special tokens: tokenizer_config.json / special_tokens_map.json names, looked up in the vocabulary.
        var names: [String: String] = [:]
        for file in ["special_tokens_map.json", "tokenizer_config.json"] {
            guard let o = try readJSON(dir, file, required: false) else { continue }
            for k in ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] {
                if let s = o[k + "_token"] as? String { names[k] = s }
                else if let s = (o[k + "_token"] as? [String: Any])?["content"] as? String { names[k] = s }
            }
        }
        if names["bos"] == nil { names["bos"] = names["cls"] }   // gguf-py: BOS falls back to CLS, EOS to SEP
        if names["eos"] == nil { names["eos"] = names["sep"] }
        let normalizer = tok["normalizer"] as? [String: Any]
        let lowercase = normalizer?["lowercase"] as? Bool
        let stripAccents = normalizer?["strip_accents"] as? Bool

        // Tensors.
        let st = try SafetensorsFile(path: dir + "/model.safetensors")
        var w = GGUFWriter()
        let fileType: UInt32 = type == .f32 ? 0 : type == .f16 ? 1 : 7
        let name = (config["_name_or_path"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            ?? URL(fileURLWithPath: dir).lastPathComponent
        w.set("general.architecture", .string("bert"))
        w.set("general.type", .string("model"))
        w.set("general.name", .string(name))
        w.set("bert.block_count", .uint32(UInt32(layers)))
        w.set("bert.context_length", .uint32(UInt32(ctx)))
        w.set("bert.embedding_length", .uint32(UInt32(d)))
        w.set("bert.feed_forward_length", .uint32(UInt32(ff)))
        w.set("bert.attention.head_count", .uint32(UInt32(heads)))
        w.set("bert.attention.layer_norm_epsilon", .float32(eps))
        w.set("general.file_type", .uint32(fileType))
        w.set("bert.attention.causal", .bool(false))
        if let pooling { w.set("bert.pooling_type", .uint32(poolingNumbers[pooling]!)) }
        w.set("edgeai.embedding.normalize", .bool(normalize))
        w.set("tokenizer.ggml.token_type_count", .uint32(UInt32(typeVocab)))
        w.set("tokenizer.ggml.model", .string("bert"))
        w.set("tokenizer.ggml.pre", .string("default"))
        w.set("tokenizer.ggml.tokens", .array(.string(tokens)))
        w.set("tokenizer.ggml.token_type", .array(.int32(tokenTypes)))
        let idKeys = [("bos", "bos_token_id"), ("eos", "eos_token_id"), ("unk", "unknown_token_id"), ("sep", "seperator_token_id"),
                      ("pad", "padding_token_id"), ("cls", "cls_token_id"), ("mask", "mask_token_id")]
        for (k, key) in idKeys {
            if let t = names[k], let id = idOf[t] { w.set("tokenizer.ggml." + key, .uint32(UInt32(id))) }
        }
        w.set("tokenizer.ggml.add_bos_token", .bool(true))
        w.set("tokenizer.ggml.add_sep_token", .bool(true))
        if let lowercase { w.set("tokenizer.ggml.normalizer.lowercase", .bool(lowercase)) }
        if let stripAccents { w.set("tokenizer.ggml.normalizer.strip_accents", .bool(stripAccents)) }

        // HF name → (GGUF name, expected HF shape, keep F32)
        var plan: [(String, String, [Int], Bool)] = [
            ("embeddings.word_embeddings.weight", "token_embd.weight", [vocab, d], false),
            ("embeddings.token_type_embeddings.weight", "token_types.weight", [typeVocab, d], true),
            ("embeddings.position_embeddings.weight", "position_embd.weight", [ctx, d], true),
            ("embeddings.LayerNorm.weight", "token_embd_norm.weight", [d], true),
            ("embeddings.LayerNorm.bias", "token_embd_norm.bias", [d], true),
        ]
        for i in 0..<layers {
            let h = "encoder.layer.\(i).", g = "blk.\(i)."
            for (hf, gg) in [("attention.self.query", "attn_q"), ("attention.self.key", "attn_k"), ("attention.self.value", "attn_v"),
                             ("attention.output.dense", "attn_output")] {
                plan.append((h + hf + ".weight", g + gg + ".weight", [d, d], false))
                plan.append((h + hf + ".bias", g + gg + ".bias", [d], true))
            }
            plan.append((h + "attention.output.LayerNorm.weight", g + "attn_output_norm.weight", [d], true))
            plan.append((h + "attention.output.LayerNorm.bias", g + "attn_output_norm.bias", [d], true))
            plan.append((h + "intermediate.dense.weight", g + "ffn_up.weight", [ff, d], false))
            plan.append((h + "intermediate.dense.bias", g + "ffn_up.bias", [ff], true))
            plan.append((h + "output.dense.weight", g + "ffn_down.weight", [d, ff], false))
            plan.append((h + "output.dense.bias", g + "ffn_down.bias", [d], true))
            plan.append((h + "output.LayerNorm.weight", g + "layer_output_norm.weight", [d], true))
            plan.append((h + "output.LayerNorm.bias", g + "layer_output_norm.bias", [d], true))
        }
        // Older checkpoints prefix "bert." and call LayerNorm parameters gamma/beta.
        func find(_ n: String) -> SafetensorsTensor? {
            for cand in [n, "bert." + n] {
                if let t = st.tensor(named: cand) { return t }
                if cand.hasSuffix(".weight"), let t = st.tensor(named: String(cand.dropLast(7)) + ".gamma") { return t }
                if cand.hasSuffix(".bias"), let t = st.tensor(named: String(cand.dropLast(5)) + ".beta") { return t }
            }
            return nil
        }
        for (hf, gg, shape, keepF32) in plan {
            guard let t = find(hf) else {
                throw SafetensorsError(.missingTensor, "model.safetensors has no tensor '\(hf)' (needed for \(gg))")
            }
            guard t.shape == shape else {
                throw SafetensorsError(.badTensor, "model.safetensors: '\(t.name)' has shape \(t.shape), expected \(shape) from config.json")
            }
            let values = try st.floats(t)
            let rows = shape.count == 2 ? shape[0] : 1, cols = shape.last!
            let out: GGMLType = keepF32 || shape.count < 2 ? .f32 : type
            let data = try encode(values, rows: rows, cols: cols, as: out, name: gg)
            w.addTensor(name: gg, type: out, shape: shape.count == 2 ? [cols, rows] : [cols], data: data)
        }
        try w.write(to: output)
        let size = (try? FileManager.default.attributesOfItem(atPath: output)[.size] as? Int) ?? 0
        return Summary(tensors: plan.count, bytes: size ?? 0, layers: layers, embeddingLength: d,
                       vocabularySize: vocab, pooling: pooling ?? "none", normalize: normalize)
    }

    /// Rows of floats in the output type (F16 rounded to nearest even; Q8_0 by ggml's reference quantizer).
    static func encode(_ v: [Float], rows: Int, cols: Int, as type: GGMLType, name: String) throws -> [UInt8] {
        switch type {
        case .f32:
            return v.withUnsafeBytes { Array($0) }
        case .f16:
            var out = [UInt8](repeating: 0, count: v.count * 2)
            out.withUnsafeMutableBytes { o in
                for i in 0..<v.count { o.storeBytes(of: Half.fromFloat(v[i]), toByteOffset: 2 * i, as: UInt16.self) }
            }
            return out
        default:
            guard let rowBytes = type.byteCount(elements: cols), cols % 32 == 0 else {
                throw GGUFError(.invalidArgument, "tensor '\(name)': rows of \(cols) cannot be stored as \(type.name) (need a multiple of 32)")
            }
            var out = [UInt8](repeating: 0, count: rows * rowBytes)
            let written = out.withUnsafeMutableBytes { o in
                v.withUnsafeBufferPointer { x in
                    ekw_quantize_rows(Int32(type.rawValue), x.baseAddress!, o.baseAddress!, Int64(rows), Int64(cols))
                }
            }
            guard written == rows * rowBytes else { throw GGUFError(.invalidArgument, "cannot quantize '\(name)' to \(type.name)") }
            return out
        }
    }
}
