/// Llama 1/2/3, Mistral, SmolLM2, TinyLlama (llama.cpp `llama`): pre-norm blocks, SwiGLU, RoPE on
/// adjacent pairs, optional per-dimension RoPE factors (`rope_freqs.weight`, Llama 3.1).
enum Llama: Architecture {
    static let name = "llama"

    static func config(_ r: MetadataReader) throws -> ModelConfig {
        try ModelConfig(common: r, ropeStyle: .normal, activation: .silu)
    }

    static func loadLayer(_ i: Int, _ load: TensorLoader, _ c: ModelConfig) throws -> LayerWeights {
        try load.standardLayer(i, c)
    }

    static func block(_ f: Forward, _ l: Int, _ w: LayerWeights, _ c: ModelConfig) {
        f.rmsNorm(.x, w.attnNorm, into: .xb)                   // xb = rmsnorm(x)·attn_norm        [n, d]
        f.projectQKV(w)                                        // q|k|v = xb·[Wq;Wk;Wv]ᵀ           [n, dq+2dkv]
        f.rope(layer: l)                                       // rotate q, k by position
        f.attention(layer: l, scale: c.attentionScale)         // att = softmax(q·Kᵀ/√hd)·V        [n, dq]
        f.project(w.o, from: .att, addTo: .x)                  // x += att·Woᵀ
        f.rmsNorm(.x, w.ffnNorm, into: .xb)                    // xb = rmsnorm(x)·ffn_norm
        f.feedForward(w, activation: .silu, addTo: .x)         // x += (silu(xb·Wgᵀ) * xb·Wuᵀ)·Wdᵀ
    }
}
