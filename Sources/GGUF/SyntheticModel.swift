/// Deterministic random-weight GGUF models, one small model per supported architecture, written
/// with exactly the metadata keys and tensors llama.cpp (0.3.36) loads for it. Used to compare
/// our forward pass against llama.cpp's logits (Tests/Fixtures/random).
///
/// Weights are F32, drawn from our own generator (SplitMix64 streams seeded per tensor from the
/// seed and the tensor name; approximately normal values as a sum of four uniforms, all in
/// Double with a fixed operation order, no libm), so the same bytes come out on every platform
/// and run. The tokenizer metadata is copied from a real model and truncated to the first
/// `vocabularySize` tokens (merges that reference a cut token are dropped, the chat template too).
public enum SyntheticModel {
    public static let architectures = ["llama", "qwen2", "qwen3", "gemma2", "gemma3", "phi3"]
    public static let vocabularySize = 2048

    /// Shape and weight-scale choices for one architecture.
    public struct Spec: Sendable {
        public var architecture: String
        public var layers: Int
        public var width = 256
        public var feedForward: Int
        public var heads = 4
        public var kvHeads = 2
        public var headDim = 64
        /// Write `attention.key_length`/`value_length` (= headDim).
        public var explicitHeadDim = false
        public var ropeBase: Float
        public var ropeDimensionCount: Int? = nil
        public var contextLength = 2048
        public var rmsEpsilon: Float = 1e-6
        public var slidingWindow: Int? = nil
        public var attnSoftcap: Float? = nil
        public var finalSoftcap: Float? = nil
        /// Tokenizer family the model expects: "bpe" (SmolLM2's gpt2) or "spm" (Gemma 3's llama).
        public var tokenizer: String
        public var tiedOutput: Bool
        public var qkvBias = false
        public var qkNorm = false
        public var postNorms = false
        public var fusedQKV = false
        public var fusedGateUp = false
        public var writeVocabSize = false

        // Weight scales: matrices get N(0, (scale^2 / columns)), embeddings N(0, embedding^2),
        // norms N(normMean, normSpread^2).
        public var embedding: Double
        public var qk: Double = 1
        public var v: Double = 1
        public var o: Double = 1.5
        public var gateUp: Double = 1
        public var down: Double = 1.5
        public var output: Double = 5
        public var bias: Double = 0.5
        public var normMean: Double = 1
        public var normSpread: Double = 0.1
        public var postNormMean: Double = 1
        public var outputNormMean: Double = 1

        /// `is sliding` per layer as llama.cpp derives it (pattern 2 for gemma2, 6 for gemma3:
        /// layer il slides unless il % pattern == pattern - 1).
        public var slidingLayers: [Bool] {
            guard slidingWindow != nil else { return Array(repeating: false, count: layers) }
            let pattern = architecture == "gemma2" ? 2 : 6
            return (0..<layers).map { $0 % pattern < pattern - 1 }
        }
    }

    /// The fixed specification of each architecture's model (nil for an unknown name).
    public static func spec(for architecture: String) -> Spec? {
        switch architecture {
        case "llama":
            var s = Spec(architecture: "llama", layers: 4, feedForward: 768, ropeBase: 10000, tokenizer: "bpe",
                         tiedOutput: false, embedding: 1)
            s.ropeDimensionCount = 64
            s.writeVocabSize = true
            return s
        case "qwen2":
            var s = Spec(architecture: "qwen2", layers: 3, feedForward: 768, ropeBase: 1_000_000, tokenizer: "bpe",
                         tiedOutput: true, embedding: 0.15)
            s.qkvBias = true
            s.outputNormMean = 2
            return s
        case "qwen3":
            var s = Spec(architecture: "qwen3", layers: 4, feedForward: 512, ropeBase: 1_000_000, tokenizer: "bpe",
                         tiedOutput: true, embedding: 0.15)
            s.outputNormMean = 2
            s.headDim = 128
            s.explicitHeadDim = true
            s.qkNorm = true
            return s
        case "gemma2":
            var s = Spec(architecture: "gemma2", layers: 4, feedForward: 512, ropeBase: 10000, tokenizer: "spm",
                         tiedOutput: true, embedding: 0.02)
            s.explicitHeadDim = true
            s.slidingWindow = 8
            s.attnSoftcap = 50
            s.finalSoftcap = 30
            s.postNorms = true
            s.qk = 1.5
            s.postNormMean = 2
            s.outputNormMean = 15
            return s
        case "gemma3":
            var s = Spec(architecture: "gemma3", layers: 6, feedForward: 512, ropeBase: 1_000_000, tokenizer: "spm",
                         tiedOutput: true, embedding: 0.02)
            s.explicitHeadDim = true
            s.slidingWindow = 8
            s.qkNorm = true
            s.postNorms = true
            s.postNormMean = 2
            s.outputNormMean = 15
            return s
        case "phi3":
            var s = Spec(architecture: "phi3", layers: 4, feedForward: 512, ropeBase: 10000, tokenizer: "spm",
                         tiedOutput: false, embedding: 1)
            s.ropeDimensionCount = 64
            s.fusedQKV = true
            s.fusedGateUp = true
            return s
        default:
            return nil
        }
    }

    /// Writes the model for `architecture` to `path`, tokenizer metadata copied from the GGUF
    /// file at `tokenizerFrom` (SmolLM2 for llama/qwen2/qwen3, Gemma 3 for gemma2/gemma3/phi3).
    public static func write(architecture: String, to path: String, tokenizerFrom: String, seed: UInt64 = 0) throws {
        guard spec(for: architecture) != nil else { throw unknown(architecture) }
        let source = try GGUFFile(path: tokenizerFrom)
        let data = try bytes(architecture: architecture, tokenizerFrom: source, seed: seed)
        try writeFileAtomically(path: path, data)
    }

    static func unknown(_ architecture: String) -> GGUFError {
        GGUFError(.invalidArgument, "unknown architecture '\(architecture)'; supported: \(architectures.joined(separator: ", "))")
    }

    /// The complete file.
    public static func bytes(architecture: String, tokenizerFrom source: GGUFFile, seed: UInt64 = 0) throws -> [UInt8] {
        guard let s = spec(for: architecture) else { throw unknown(architecture) }
        var w = GGUFWriter()
        let a = s.architecture
        w.set("general.architecture", .string(a))
        // no architecture name in general.name: llama.cpp applies vocabulary quirks by model name
        w.set("general.name", .string("EdgeAI synthetic random model, seed \(seed)"))
        w.set("general.file_type", .uint32(0))
        w.set("\(a).context_length", .uint32(UInt32(s.contextLength)))
        w.set("\(a).embedding_length", .uint32(UInt32(s.width)))
        w.set("\(a).block_count", .uint32(UInt32(s.layers)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(s.feedForward)))
        w.set("\(a).attention.head_count", .uint32(UInt32(s.heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(s.kvHeads)))
        if s.explicitHeadDim {
            w.set("\(a).attention.key_length", .uint32(UInt32(s.headDim)))
            w.set("\(a).attention.value_length", .uint32(UInt32(s.headDim)))
        }
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(s.rmsEpsilon))
        w.set("\(a).rope.freq_base", .float32(s.ropeBase))
        if let r = s.ropeDimensionCount { w.set("\(a).rope.dimension_count", .uint32(UInt32(r))) }
        if let sw = s.slidingWindow { w.set("\(a).attention.sliding_window", .uint32(UInt32(sw))) }
        if let c = s.attnSoftcap { w.set("\(a).attn_logit_softcapping", .float32(c)) }
        if let c = s.finalSoftcap { w.set("\(a).final_logit_softcapping", .float32(c)) }
        if s.writeVocabSize { w.set("\(a).vocab_size", .uint32(UInt32(vocabularySize))) }
        try copyTokenizer(from: source, into: &w, expected: s.tokenizer)

        // The layout GGUFWriter.bytes() produces (metadata, tensor table, aligned F32 data),
        // assembled with bulk copies so that unoptimised (test) builds stay fast.
        let ts = tensors(s, seed: seed)
        let plan = ts.map { TensorPlanEntry(name: $0.name, type: .f32, shape: $0.shape, byteCount: $0.values.count * 4) }
        let align = try validatePlan(metadata: w.metadata, tensors: plan, defaultAlignment: w.alignment)
        let (header, offsets, dataSize) = ggufHeaderLayout(metadata: w.metadata, tensors: plan, alignment: align)
        let total = header.count + dataSize
        return [UInt8](unsafeUninitializedCapacity: total) { buf, n in
            let raw = UnsafeMutableRawBufferPointer(buf)
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            header.withUnsafeBytes { raw.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            for (i, t) in ts.enumerated() {
                let dst = raw.baseAddress! + header.count + offsets[i]
                #if _endian(little)
                t.values.withUnsafeBytes { dst.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                #else
                for (j, x) in t.values.enumerated() { dst.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 4 * j, as: UInt32.self) }
                #endif
            }
            n = total
        }
    }

    /// Tensor name, shape in ggml order (row length first) and values, in file order.
    public static func tensors(_ s: Spec, seed: UInt64) -> [(name: String, shape: [Int], values: [Float])] {
        var out: [(String, [Int], [Float])] = []
        let d = s.width, q = s.heads * s.headDim, kv = s.kvHeads * s.headDim, ff = s.feedForward
        let nv = vocabularySize
        func gen(_ name: String, _ count: Int, mean: Double, std: Double) -> [Float] {
            var r = SyntheticRandom(seed: seed ^ fnv1a(name))
            return [Float](unsafeUninitializedCapacity: count) { buf, n in
                for i in 0..<count { buf[i] = Float(mean + std * r.normal()) }
                n = count
            }
        }
        func matrix(_ name: String, rows: Int, cols: Int, scale: Double) {
            out.append((name, [cols, rows], gen(name, rows * cols, mean: 0, std: scale / Double(cols).squareRoot())))
        }
        func norm(_ name: String, _ n: Int, mean: Double) {
            out.append((name, [n], gen(name, n, mean: mean, std: s.normSpread * mean)))
        }
        func bias(_ name: String, _ n: Int, std: Double) {
            out.append((name, [n], gen(name, n, mean: 0, std: std)))
        }
        out.append(("token_embd.weight", [d, nv], gen("token_embd.weight", d * nv, mean: 0, std: s.embedding)))
        for l in 0..<s.layers {
            let b = "blk.\(l)."
            norm(b + "attn_norm.weight", d, mean: s.normMean)
            if s.fusedQKV {
                // rows: Q (q), then K (kv), then V (kv); K/V-part scales as for separate tensors
                let name = b + "attn_qkv.weight"
                var r = SyntheticRandom(seed: seed ^ fnv1a(name))
                let std = 1 / Double(d).squareRoot()
                var v = [Float](); v.reserveCapacity((q + 2 * kv) * d)
                for row in 0..<(q + 2 * kv) {
                    let scale = row < q + kv ? s.qk : s.v
                    for _ in 0..<d { v.append(Float(scale * std * r.normal())) }
                }
                out.append((name, [d, q + 2 * kv], v))
            } else {
                matrix(b + "attn_q.weight", rows: q, cols: d, scale: s.qk)
                matrix(b + "attn_k.weight", rows: kv, cols: d, scale: s.qk)
                matrix(b + "attn_v.weight", rows: kv, cols: d, scale: s.v)
            }
            if s.qkvBias {
                bias(b + "attn_q.bias", q, std: s.bias)
                bias(b + "attn_k.bias", kv, std: s.bias)
                bias(b + "attn_v.bias", kv, std: s.bias * 0.2)   // a V bias is the same for every position
            }
            if s.qkNorm {
                norm(b + "attn_q_norm.weight", s.headDim, mean: s.normMean)
                norm(b + "attn_k_norm.weight", s.headDim, mean: s.normMean)
            }
            matrix(b + "attn_output.weight", rows: d, cols: q, scale: s.o)
            if s.postNorms { norm(b + "post_attention_norm.weight", d, mean: s.postNormMean) }
            norm(b + "ffn_norm.weight", d, mean: s.normMean)
            if s.fusedGateUp {
                matrix(b + "ffn_up.weight", rows: 2 * ff, cols: d, scale: s.gateUp)   // gate rows, then up rows
            } else {
                matrix(b + "ffn_gate.weight", rows: ff, cols: d, scale: s.gateUp)
                matrix(b + "ffn_up.weight", rows: ff, cols: d, scale: s.gateUp)
            }
            matrix(b + "ffn_down.weight", rows: d, cols: ff, scale: s.down)
            if s.postNorms { norm(b + "post_ffw_norm.weight", d, mean: s.postNormMean) }
        }
        norm("output_norm.weight", d, mean: s.outputNormMean)
        if !s.tiedOutput { matrix("output.weight", rows: nv, cols: d, scale: s.output) }
        return out
    }

    /// Copies `tokenizer.*` (without the chat template), truncated to `vocabularySize` tokens.
    static func copyTokenizer(from f: GGUFFile, into w: inout GGUFWriter, expected: String) throws {
        let model = try f.string("tokenizer.ggml.model")
        let family = model == "gpt2" ? "bpe" : model == "llama" ? "spm" : model ?? "none"
        guard family == expected else {
            throw GGUFError(.invalidArgument, "tokenizer source has tokenizer.ggml.model '\(model ?? "none")'; this architecture needs \(expected == "bpe" ? "'gpt2' (e.g. SmolLM2)" : "'llama' (e.g. Gemma 3)")")
        }
        guard let tokens = try f.strings("tokenizer.ggml.tokens"), tokens.count >= vocabularySize else {
            throw GGUFError(.invalidArgument, "tokenizer source needs at least \(vocabularySize) tokens")
        }
        let kept = Set(tokens[0..<vocabularySize])
        for key in f.metadataKeys where key.hasPrefix("tokenizer.") && !key.hasPrefix("tokenizer.chat_template") {
            guard var value = f.metadata[key] else { continue }
            switch (key, value) {
            case ("tokenizer.ggml.tokens", _):
                value = .array(.string(Array(tokens[0..<vocabularySize])))
            case ("tokenizer.ggml.scores", .array(.float32(let xs))):
                value = .array(.float32(Array(xs.prefix(vocabularySize))))
            case ("tokenizer.ggml.token_type", .array(.int32(let xs))):
                value = .array(.int32(Array(xs.prefix(vocabularySize))))
            case ("tokenizer.ggml.merges", .array(.string(let ms))):
                value = .array(.string(ms.filter { m in
                    let parts = m.split(separator: " ", omittingEmptySubsequences: false)
                    guard parts.count == 2 else { return false }
                    return kept.contains(String(parts[0])) && kept.contains(String(parts[1]))
                        && kept.contains(String(parts[0]) + String(parts[1]))
                }))
            default:
                if key.hasSuffix("_token_id"), let id = value.intValue, id >= vocabularySize {
                    throw GGUFError(.invalidArgument, "\(key) = \(id) is past the first \(vocabularySize) tokens")
                }
                if case .array(let arr) = value, arr.count > vocabularySize {
                    throw GGUFError(.invalidArgument, "cannot truncate tokenizer array \(key)")
                }
            }
            w.set(key, value)
        }
    }
}

fileprivate func fnv1a(_ s: String) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return h
}

/// SplitMix64; `normal()` is an Irwin–Hall approximation (sum of four uniforms, scaled to unit
/// variance): exact Double arithmetic, identical on every platform.
fileprivate struct SyntheticRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) * 0x1p-53 }
    mutating func normal() -> Double {
        let a = uniform(), b = uniform(), c = uniform(), d = uniform()
        return ((a + b) + (c + d) - 2) * 1.7320508075688772
    }
}
