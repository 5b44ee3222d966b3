/// Qwen2 / Qwen2.5 (llama.cpp `qwen2`): llama's block with biases on Q, K and V, NEOX RoPE.
enum Qwen2: Architecture {
    static let name = "qwen2"

    static func config(_ r: MetadataReader) throws -> ModelConfig {
        try ModelConfig(common: r, ropeStyle: .neox, activation: .silu)
    }

    static func loadLayer(_ i: Int, _ load: TensorLoader, _ c: ModelConfig) throws -> LayerWeights {
        var w = try load.standardLayer(i, c)
        let b = "blk.\(i)."
        w.qBias = try load.vector(b + "attn_q.bias", c.queryDimension)
        w.kBias = try load.vector(b + "attn_k.bias", c.kvDimension)
        w.vBias = try load.vector(b + "attn_v.bias", c.valueDimension)
        return w
    }

    static func block(_ f: Forward, _ l: Int, _ w: LayerWeights, _ c: ModelConfig) {
        f.rmsNorm(.x, w.attnNorm, into: .xb)                   // xb = rmsnorm(x)·attn_norm
        f.projectQKV(w)                                        // q|k|v = xb·Wᵀ + b
        f.rope(layer: l)
        f.attention(layer: l, scale: c.attentionScale)
        f.project(w.o, from: .att, addTo: .x)                  // x += att·Woᵀ
        f.rmsNorm(.x, w.ffnNorm, into: .xb)
        f.feedForward(w, activation: .silu, addTo: .x)         // x += SwiGLU(xb)
    }
}
