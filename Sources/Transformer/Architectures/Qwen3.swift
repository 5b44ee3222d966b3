/// Qwen3 (llama.cpp `qwen3`): llama's block with an RMSNorm over each Q and K head before RoPE,
/// NEOX RoPE, head width from `attention.key_length` (128, wider than d / heads).
enum Qwen3: Architecture {
    static let name = "qwen3"

    static func config(_ r: MetadataReader) throws -> ModelConfig {
        try ModelConfig(common: r, ropeStyle: .neox, activation: .silu)
    }

    static func loadLayer(_ i: Int, _ load: TensorLoader, _ c: ModelConfig) throws -> LayerWeights {
        var w = try load.standardLayer(i, c)
        let b = "blk.\(i)."
        w.qNorm = try load.vector(b + "attn_q_norm.weight", c.headDimension)
        w.kNorm = try load.vector(b + "attn_k_norm.weight", c.headDimension)
        return w
    }

    static func block(_ f: Forward, _ l: Int, _ w: LayerWeights, _ c: ModelConfig) {
        f.rmsNorm(.x, w.attnNorm, into: .xb)
        f.projectQKV(w)
        f.headNorm(q: w.qNorm, k: w.kNorm)                     // per-head rmsnorm of q and k
        f.rope(layer: l)
        f.attention(layer: l, scale: c.attentionScale)
        f.project(w.o, from: .att, addTo: .x)
        f.rmsNorm(.x, w.ffnNorm, into: .xb)
        f.feedForward(w, activation: .silu, addTo: .x)
    }
}
