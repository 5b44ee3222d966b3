import GGUF

/// How RoPE positions are scaled.
public enum RopeScaling: Sendable, Codable, Equatable {
    /// Plain RoPE.
    case none
    /// Positions divided by `factor` (`rope.scaling.type = linear`, or the older `rope.scale_linear`).
    case linear(factor: Float)
}

/// Hyper-parameters of a llama-architecture model, read from GGUF metadata (`llama.*` keys).
public struct LlamaConfig: Sendable, Codable, Equatable {
    public var architecture: String
    /// Transformer layers (`llama.block_count`).
    public var blockCount: Int
    /// Model width d (`llama.embedding_length`).
    public var embeddingLength: Int
    /// SwiGLU hidden width (`llama.feed_forward_length`).
    public var feedForwardLength: Int
    /// Query heads (`llama.attention.head_count`).
    public var headCount: Int
    /// Key/value heads (`llama.attention.head_count_kv`, default headCount); grouped-query attention when smaller.
    public var headCountKV: Int
    /// Per-head width: embeddingLength / headCount (`llama.attention.key_length` must agree when present).
    public var headDimension: Int
    /// Rotated dimensions of each head (`llama.rope.dimension_count`, default headDimension).
    public var ropeDimensionCount: Int
    /// RoPE base (`llama.rope.freq_base`, default 10000).
    public var ropeFreqBase: Float
    public var ropeScaling: RopeScaling
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    public var rmsEpsilon: Float
    /// Training context window (`llama.context_length`).
    public var contextLength: Int
    /// Vocabulary size (`llama.vocab_size`, else the row count of `token_embd.weight`).
    public var vocabSize: Int

    /// Width of the K (and V) rows: headCountKV * headDimension.
    public var kvDimension: Int { headCountKV * headDimension }
    /// Width of the Q rows and attention output: headCount * headDimension.
    public var queryDimension: Int { headCount * headDimension }

    public init(blockCount: Int, embeddingLength: Int, feedForwardLength: Int, headCount: Int,
                headCountKV: Int, ropeDimensionCount: Int? = nil, ropeFreqBase: Float = 10000,
                ropeScaling: RopeScaling = .none, rmsEpsilon: Float = 1e-5, contextLength: Int,
                vocabSize: Int) throws {
        self.architecture = "llama"
        self.blockCount = blockCount
        self.embeddingLength = embeddingLength
        self.feedForwardLength = feedForwardLength
        self.headCount = headCount
        self.headCountKV = headCountKV
        self.headDimension = headCount > 0 ? embeddingLength / headCount : 0
        self.ropeDimensionCount = ropeDimensionCount ?? self.headDimension
        self.ropeFreqBase = ropeFreqBase
        self.ropeScaling = ropeScaling
        self.rmsEpsilon = rmsEpsilon
        self.contextLength = contextLength
        self.vocabSize = vocabSize
        try validate(prefix: "llama")
    }

    /// Reads and validates the config. Throws `ModelError` naming the key at fault.
    public init(gguf file: GGUFFile) throws {
        let arch: String
        do {
            guard let a = try file.string("general.architecture") else { throw ModelError.missingKey("general.architecture") }
            arch = a
        } catch let e as ModelError { throw e } catch {
            throw ModelError.badMetadata(key: "general.architecture", message: "\(error)")
        }
        guard arch == "llama" else { throw ModelError.unsupportedArchitecture(arch) }
        architecture = arch
        let p = arch

        func int(_ key: String) throws -> Int? {
            do { return try file.int("\(p).\(key)") } catch {
                throw ModelError.badMetadata(key: "\(p).\(key)", message: "\(error)")
            }
        }
        func float(_ key: String) throws -> Float? {
            do { return try file.float("\(p).\(key)") } catch {
                throw ModelError.badMetadata(key: "\(p).\(key)", message: "\(error)")
            }
        }
        func string(_ key: String) throws -> String? {
            do { return try file.string("\(p).\(key)") } catch {
                throw ModelError.badMetadata(key: "\(p).\(key)", message: "\(error)")
            }
        }
        func required(_ key: String) throws -> Int {
            guard let v = try int(key) else { throw ModelError.missingKey("\(p).\(key)") }
            return v
        }

        blockCount = try required("block_count")
        embeddingLength = try required("embedding_length")
        feedForwardLength = try required("feed_forward_length")
        headCount = try required("attention.head_count")
        headCountKV = try int("attention.head_count_kv") ?? headCount
        contextLength = try required("context_length")
        guard let eps = try float("attention.layer_norm_rms_epsilon") else {
            throw ModelError.missingKey("\(p).attention.layer_norm_rms_epsilon")
        }
        rmsEpsilon = eps
        ropeFreqBase = try float("rope.freq_base") ?? 10000
        headDimension = headCount > 0 ? embeddingLength / headCount : 0
        if let kl = try int("attention.key_length"), kl != headDimension {
            throw ModelError.badMetadata(key: "\(p).attention.key_length", message: "\(kl) differs from embedding_length / head_count = \(headDimension); separate head widths are not supported")
        }
        if let vl = try int("attention.value_length"), vl != headDimension {
            throw ModelError.badMetadata(key: "\(p).attention.value_length", message: "\(vl) differs from embedding_length / head_count = \(headDimension); separate head widths are not supported")
        }
        ropeDimensionCount = try int("rope.dimension_count") ?? headDimension

        // RoPE scaling: rope.scaling.type (none | linear | yarn | longrope ...), rope.scaling.factor,
        // or the older rope.scale_linear.
        let scalingType = try string("rope.scaling.type")
        let factor = try float("rope.scaling.factor") ?? float("rope.scale_linear")
        switch scalingType {
        case nil, "none":
            if scalingType == nil, let f = factor, f != 0, f != 1 {
                guard f.isFinite, f > 0 else { throw ModelError.unsupportedRopeScaling("linear factor \(f)") }
                ropeScaling = .linear(factor: f)
            } else {
                ropeScaling = .none
            }
        case "linear":
            let f = factor ?? 1
            guard f.isFinite, f > 0 else { throw ModelError.unsupportedRopeScaling("linear factor \(f)") }
            ropeScaling = f == 1 ? .none : .linear(factor: f)
        case let other?:
            throw ModelError.unsupportedRopeScaling("'\(other)' (\(p).rope.scaling.type)")
        }

        if let v = try int("vocab_size") {
            vocabSize = v
        } else if let t = file.tensor(named: "token_embd.weight"), t.shape.count == 2 {
            vocabSize = t.shape[1]
        } else {
            throw ModelError.missingKey("\(p).vocab_size")
        }
        try validate(prefix: p)
    }

    private func validate(prefix p: String) throws {
        func bad(_ key: String, _ m: String) -> ModelError { .badMetadata(key: "\(p).\(key)", message: m) }
        let limit = 1 << 24
        guard (1...4096).contains(blockCount) else { throw bad("block_count", "\(blockCount) is out of range 1...4096") }
        guard (1...limit).contains(embeddingLength) else { throw bad("embedding_length", "\(embeddingLength) is out of range") }
        guard (1...limit).contains(feedForwardLength) else { throw bad("feed_forward_length", "\(feedForwardLength) is out of range") }
        guard (1...4096).contains(headCount) else { throw bad("attention.head_count", "\(headCount) is out of range") }
        guard (1...headCount).contains(headCountKV), headCount % headCountKV == 0 else {
            throw bad("attention.head_count_kv", "\(headCountKV) must divide head_count \(headCount)")
        }
        guard embeddingLength % headCount == 0 else {
            throw bad("embedding_length", "\(embeddingLength) is not a multiple of head_count \(headCount)")
        }
        guard headDimension % 2 == 0 else { throw bad("embedding_length", "head width \(headDimension) must be even") }
        guard ropeDimensionCount > 0, ropeDimensionCount % 2 == 0, ropeDimensionCount <= headDimension else {
            throw bad("rope.dimension_count", "\(ropeDimensionCount) must be even and at most the head width \(headDimension)")
        }
        guard ropeFreqBase.isFinite, ropeFreqBase > 0 else { throw bad("rope.freq_base", "\(ropeFreqBase) must be positive") }
        guard rmsEpsilon.isFinite, rmsEpsilon >= 0 else { throw bad("attention.layer_norm_rms_epsilon", "\(rmsEpsilon) must be >= 0") }
        guard (1...(1 << 22)).contains(contextLength) else { throw bad("context_length", "\(contextLength) is out of range") }
        guard (1...(1 << 24)).contains(vocabSize) else { throw bad("vocab_size", "\(vocabSize) is out of range") }
        // The int8 decode path works on blocks of 32 along every reduced dimension and per head.
        for (key, v) in [("embedding_length", embeddingLength), ("feed_forward_length", feedForwardLength)] where v % 32 != 0 {
            throw bad(key, "\(v) is not a multiple of 32 (Q8_0 block size), which this implementation requires")
        }
        guard headDimension % 32 == 0, headDimension <= 512 else {
            throw bad("attention.head_count", "head width \(headDimension) is not a multiple of 32 up to 512, which this implementation requires")
        }
    }
}
