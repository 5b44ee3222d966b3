import GGUF

/// How RoPE positions are scaled.
public enum RopeScaling: Sendable, Codable, Equatable {
    /// Plain RoPE.
    case none
    /// Positions divided by `factor` (`rope.scaling.type = linear`, or the older `rope.scale_linear`).
    case linear(factor: Float)
}

/// Which dimensions RoPE rotates together (llama.cpp's rope types).
public enum RopeStyle: String, Sendable, Codable, Equatable {
    /// Adjacent pairs (x[2i], x[2i+1]): llama.cpp's LLAMA_ROPE_TYPE_NORM (llama, mistral).
    case normal
    /// Halves (x[i], x[i + n/2]): LLAMA_ROPE_TYPE_NEOX (qwen2, qwen3, gemma, phi3).
    case neox
}

/// The feed-forward gate's activation.
public enum Activation: String, Sendable, Codable, Equatable {
    /// silu(gate) * up (SwiGLU).
    case silu
    /// gelu_tanh(gate) * up (GeGLU, as ggml computes it: through an f16 table).
    case gelu
}

/// Hyper-parameters of a decoder-only transformer, read from `<arch>.*` GGUF metadata by the
/// architecture's file (see `Architectures/`). Everything the shared forward pass needs to know
/// about a model is here or in its weights; nothing else depends on the architecture's name.
public struct ModelConfig: Sendable, Codable, Equatable {
    /// `general.architecture`.
    public var architecture: String
    /// Transformer layers (`block_count`).
    public var blockCount: Int
    /// Model width d (`embedding_length`).
    public var embeddingLength: Int
    /// Gated feed-forward hidden width (`feed_forward_length`).
    public var feedForwardLength: Int
    /// Query heads (`attention.head_count`).
    public var headCount: Int
    /// Key/value heads (`attention.head_count_kv`, default headCount); grouped-query attention when smaller.
    public var headCountKV: Int
    /// Width of a query/key head (`attention.key_length`, default embeddingLength / headCount).
    public var headDimension: Int
    /// Width of a value head (`attention.value_length`, default embeddingLength / headCount).
    public var valueHeadDimension: Int
    /// Rotated dimensions of each head (`rope.dimension_count`, default headDimension).
    public var ropeDimensionCount: Int
    /// RoPE base of global-attention layers (`rope.freq_base`, default 10000).
    public var ropeFreqBase: Float
    /// RoPE base of sliding-window layers (`rope.freq_base_swa`, else the architecture's default).
    public var ropeFreqBaseSWA: Float
    public var ropeScaling: RopeScaling
    public var ropeStyle: RopeStyle
    /// RMSNorm epsilon (`attention.layer_norm_rms_epsilon`).
    public var rmsEpsilon: Float
    /// Training context window (`context_length`).
    public var contextLength: Int
    /// Vocabulary size (`vocab_size`, else the row count of `token_embd.weight`).
    public var vocabSize: Int
    /// Sliding-window width in tokens for the layers marked in `slidingLayers` (nil: none).
    /// A token at position p attends to positions p - window + 1 ... p there.
    public var slidingWindow: Int?
    /// Per layer: true where attention is limited to `slidingWindow`.
    public var slidingLayers: [Bool]
    /// Scores are capped as c·tanh(s/c) before softmax (gemma2's attention softcapping).
    public var attentionSoftcap: Float?
    /// Logits are capped as c·tanh(l/c) (gemma2's final softcapping).
    public var finalLogitSoftcap: Float?
    /// Factor applied to the scores q·k (default 1/√headDimension).
    public var attentionScale: Float
    /// Factor applied to the token embeddings (gemma: √d), nil for none.
    public var embeddingScale: Float?
    public var activation: Activation

    /// Width of the K rows of one token: headCountKV * headDimension.
    public var kvDimension: Int { headCountKV * headDimension }
    /// Width of the V rows of one token: headCountKV * valueHeadDimension.
    public var valueDimension: Int { headCountKV * valueHeadDimension }
    /// Width of the Q rows: headCount * headDimension.
    public var queryDimension: Int { headCount * headDimension }
    /// Width of the attention output (input of attn_output): headCount * valueHeadDimension.
    public var attentionOutputDimension: Int { headCount * valueHeadDimension }

    /// A plain llama configuration (tests build tiny models with it).
    public init(blockCount: Int, embeddingLength: Int, feedForwardLength: Int, headCount: Int,
                headCountKV: Int, ropeDimensionCount: Int? = nil, ropeFreqBase: Float = 10000,
                ropeScaling: RopeScaling = .none, rmsEpsilon: Float = 1e-5, contextLength: Int,
                vocabSize: Int) throws {
        architecture = "llama"
        self.blockCount = blockCount
        self.embeddingLength = embeddingLength
        self.feedForwardLength = feedForwardLength
        self.headCount = headCount
        self.headCountKV = headCountKV
        headDimension = headCount > 0 ? embeddingLength / headCount : 0
        valueHeadDimension = headDimension
        self.ropeDimensionCount = ropeDimensionCount ?? headDimension
        self.ropeFreqBase = ropeFreqBase
        ropeFreqBaseSWA = ropeFreqBase
        self.ropeScaling = ropeScaling
        ropeStyle = .normal
        self.rmsEpsilon = rmsEpsilon
        self.contextLength = contextLength
        self.vocabSize = vocabSize
        slidingWindow = nil
        slidingLayers = Array(repeating: false, count: max(0, blockCount))
        attentionSoftcap = nil
        finalLogitSoftcap = nil
        attentionScale = headDimension > 0 ? 1 / Float(headDimension).squareRoot() : 1
        embeddingScale = nil
        activation = .silu
        try validate()
    }

    /// Reads and validates the config of any supported architecture. Throws `ModelError`
    /// naming the key at fault; an unknown architecture lists the supported ones.
    public init(gguf file: GGUFFile) throws {
        let arch = try Architectures.definition(for: file)
        self = try arch.config(MetadataReader(file: file, architecture: arch.name))
        try validate()
    }

    /// The architecture-independent part of reading a config: the keys every decoder shares.
    /// Architectures start from this and adjust (see `Architectures/`).
    init(common r: MetadataReader, ropeStyle: RopeStyle, activation: Activation) throws {
        architecture = r.architecture
        blockCount = try r.required("block_count")
        embeddingLength = try r.required("embedding_length")
        feedForwardLength = try r.required("feed_forward_length")
        headCount = try r.required("attention.head_count")
        headCountKV = try r.int("attention.head_count_kv") ?? headCount
        contextLength = try r.required("context_length")
        rmsEpsilon = try r.requiredFloat("attention.layer_norm_rms_epsilon")
        ropeFreqBase = try r.float("rope.freq_base") ?? 10000
        ropeFreqBaseSWA = try r.float("rope.freq_base_swa") ?? 10000
        guard headCount > 0 else { throw r.bad("attention.head_count", "\(headCount) must be positive") }
        let keyLength = try r.int("attention.key_length"), valueLength = try r.int("attention.value_length")
        if keyLength == nil || valueLength == nil, embeddingLength % headCount != 0 {
            throw r.bad("embedding_length", "\(embeddingLength) is not a multiple of head_count \(headCount) (and attention.key_length/value_length do not give the head width)")
        }
        headDimension = keyLength ?? embeddingLength / headCount
        valueHeadDimension = valueLength ?? embeddingLength / headCount
        ropeDimensionCount = try r.int("rope.dimension_count") ?? headDimension
        self.ropeStyle = ropeStyle
        self.activation = activation
        ropeScaling = try r.ropeScaling()
        vocabSize = try r.vocabSize()
        slidingWindow = nil
        slidingLayers = Array(repeating: false, count: max(0, min(blockCount, 4096)))
        attentionSoftcap = nil
        finalLogitSoftcap = nil
        attentionScale = headDimension > 0 ? 1 / Float(headDimension).squareRoot() : 1
        embeddingScale = nil
    }

    /// Reads `attention.sliding_window` (required when `required`) and marks the sliding layers:
    /// `attention.sliding_window_pattern` as a per-layer bool array, or as a period n (every n-th
    /// layer global, the others sliding), else `defaultPeriod` — as llama.cpp's set_swa_pattern.
    mutating func readSlidingWindow(_ r: MetadataReader, defaultPeriod: Int, defaultWindow: Int? = nil) throws {
        // The per-layer flags are built from block_count: bound it first (validate() runs later).
        guard ModelConfig.blockCountRange.contains(blockCount) else {
            throw r.bad("block_count", "\(blockCount) is out of range \(ModelConfig.blockCountRange)")
        }
        let key = "attention.sliding_window"
        guard let w = try r.int(key) ?? defaultWindow else { return }
        guard w > 0 else {
            throw r.bad(key, "\(w): a sliding window must hold at least one token")
        }
        slidingWindow = w
        if let flags = try r.boolArray("attention.sliding_window_pattern") {
            guard flags.count == blockCount else {
                throw r.bad("attention.sliding_window_pattern", "has \(flags.count) entries for \(blockCount) layers")
            }
            slidingLayers = flags
            return
        }
        let period = try r.int("attention.sliding_window_pattern") ?? defaultPeriod
        guard period >= 0 else { throw r.bad("attention.sliding_window_pattern", "\(period) is negative") }
        slidingLayers = (0..<blockCount).map { period == 0 || $0 % period < period - 1 }
    }

    /// Layers a model may have.
    static let blockCountRange = 1...4096

    /// Bounds and consistency checks shared by all architectures (run after the architecture's
    /// own reading): everything later code relies on for memory safety is checked here.
    func validate() throws {
        let p = architecture
        func bad(_ key: String, _ m: String) -> ModelError { .badMetadata(key: "\(p).\(key)", message: m) }
        let limit = 1 << 20
        guard ModelConfig.blockCountRange.contains(blockCount) else { throw bad("block_count", "\(blockCount) is out of range \(ModelConfig.blockCountRange)") }
        guard (1...limit).contains(embeddingLength) else { throw bad("embedding_length", "\(embeddingLength) is out of range 1...\(limit)") }
        guard (1...(1 << 22)).contains(feedForwardLength) else { throw bad("feed_forward_length", "\(feedForwardLength) is out of range 1...\(1 << 22)") }
        guard (1...4096).contains(headCount) else { throw bad("attention.head_count", "\(headCount) is out of range 1...4096") }
        guard (1...headCount).contains(headCountKV), headCount % headCountKV == 0 else {
            throw bad("attention.head_count_kv", "\(headCountKV) must divide head_count \(headCount)")
        }
        // The int8 decode path works on blocks of 32 along every reduced dimension and per head.
        for (key, v) in [("embedding_length", embeddingLength), ("feed_forward_length", feedForwardLength)] where v % 32 != 0 {
            throw bad(key, "\(v) is not a multiple of 32 (the quantization block size), which this implementation requires")
        }
        guard headDimension % 32 == 0, (32...512).contains(headDimension) else {
            throw bad("attention.key_length", "head width \(headDimension) is not a multiple of 32 in 32...512, which this implementation requires")
        }
        guard valueHeadDimension == headDimension else {
            throw bad("attention.value_length", "\(valueHeadDimension) differs from the key width \(headDimension); different K and V head widths are not supported")
        }
        guard ropeDimensionCount > 0, ropeDimensionCount % 2 == 0, ropeDimensionCount <= headDimension else {
            throw bad("rope.dimension_count", "\(ropeDimensionCount) must be even and at most the head width \(headDimension)")
        }
        guard ropeFreqBase.isFinite, ropeFreqBase > 0 else { throw bad("rope.freq_base", "\(ropeFreqBase) must be positive") }
        guard ropeFreqBaseSWA.isFinite, ropeFreqBaseSWA > 0 else { throw bad("rope.freq_base_swa", "\(ropeFreqBaseSWA) must be positive") }
        guard rmsEpsilon.isFinite, rmsEpsilon >= 0 else { throw bad("attention.layer_norm_rms_epsilon", "\(rmsEpsilon) must be >= 0") }
        guard (1...(1 << 24)).contains(contextLength) else { throw bad("context_length", "\(contextLength) is out of range 1...\(1 << 24)") }
        guard (1...(1 << 24)).contains(vocabSize) else { throw bad("vocab_size", "\(vocabSize) is out of range 1...\(1 << 24)") }
        guard slidingLayers.count == blockCount else { throw bad("attention.sliding_window_pattern", "does not cover \(blockCount) layers") }
        if let w = slidingWindow, w < 1 { throw bad("attention.sliding_window", "\(w) must be at least 1") }
        for (key, c) in [("attn_logit_softcapping", attentionSoftcap), ("final_logit_softcapping", finalLogitSoftcap)] {
            if let c, !(c.isFinite && c > 0) { throw bad(key, "\(c) must be positive") }
        }
        guard attentionScale.isFinite, attentionScale > 0 else { throw bad("attention.scale", "\(attentionScale) must be positive") }
    }
}

/// Typed access to `<arch>.*` metadata: every failure names the key.
struct MetadataReader {
    let file: GGUFFile
    let architecture: String

    func bad(_ key: String, _ message: String) -> ModelError {
        .badMetadata(key: "\(architecture).\(key)", message: message)
    }

    private func read<T>(_ key: String, _ get: (String) throws -> T?) throws -> T? {
        do { return try get("\(architecture).\(key)") } catch {
            throw bad(key, "\(error)")
        }
    }

    func int(_ key: String) throws -> Int? { try read(key) { try file.int($0) } }
    func float(_ key: String) throws -> Float? { try read(key) { try file.float($0) } }
    func string(_ key: String) throws -> String? { try read(key) { try file.string($0) } }
    func bool(_ key: String) throws -> Bool? { try read(key) { try file.bool($0) } }
    /// A bool array, nil when absent or not an array (then it may be a scalar of another meaning).
    func boolArray(_ key: String) throws -> [Bool]? {
        guard let items = file["\(architecture).\(key)"]?.arrayValue else { return nil }
        return try items.values.map { v in
            guard let b = v.boolValue else { throw bad(key, "expected an array of bools") }
            return b
        }
    }

    func required(_ key: String) throws -> Int {
        guard let v = try int(key) else { throw ModelError.missingKey("\(architecture).\(key)") }
        return v
    }
    func requiredFloat(_ key: String) throws -> Float {
        guard let v = try float(key) else { throw ModelError.missingKey("\(architecture).\(key)") }
        return v
    }

    /// rope.scaling.type (none | linear), rope.scaling.factor, or the older rope.scale_linear.
    func ropeScaling() throws -> RopeScaling {
        let type = try string("rope.scaling.type")
        let factor = try float("rope.scaling.factor") ?? float("rope.scale_linear")
        switch type {
        case nil, "none":
            if type == nil, let f = factor, f != 0, f != 1 {
                guard f.isFinite, f > 0 else { throw ModelError.unsupportedRopeScaling("linear factor \(f)") }
                return .linear(factor: f)
            }
            return .none
        case "linear":
            let f = factor ?? 1
            guard f.isFinite, f > 0 else { throw ModelError.unsupportedRopeScaling("linear factor \(f)") }
            return f == 1 ? .none : .linear(factor: f)
        case let other?:
            throw ModelError.unsupportedRopeScaling("'\(other)' (\(architecture).rope.scaling.type)")
        }
    }

    /// `vocab_size`, else the row count of `token_embd.weight`.
    func vocabSize() throws -> Int {
        if let v = try int("vocab_size") { return v }
        if let t = file.tensor(named: "token_embd.weight"), t.shape.count == 2 { return t.shape[1] }
        throw ModelError.missingKey("\(architecture).vocab_size")
    }
}
