/// Gemma 3 text (llama.cpp `gemma3`): Gemma 2's block without softcapping, with an RMSNorm over
/// each Q and K head; five sliding-window layers to one global (`attention.sliding_window`),
/// RoPE base `rope.freq_base` on global layers and 10000 on sliding ones.
enum Gemma3: Architecture {
    static let name = "gemma3"

    static func config(_ r: MetadataReader) throws -> ModelConfig {
        var c = try ModelConfig(common: r, ropeStyle: .neox, activation: .gelu)
        try c.readSlidingWindow(r, defaultPeriod: 6)
        c.finalLogitSoftcap = try r.float("final_logit_softcapping")
        c.embeddingScale = Float(c.embeddingLength).squareRoot()
        return c
    }

    static func loadLayer(_ i: Int, _ load: TensorLoader, _ c: ModelConfig) throws -> LayerWeights {
        var w = try load.standardLayer(i, c)
        let b = "blk.\(i)."
        w.qNorm = try load.vector(b + "attn_q_norm.weight", c.headDimension)
        w.kNorm = try load.vector(b + "attn_k_norm.weight", c.headDimension)
        w.postAttnNorm = try load.vector(b + "post_attention_norm.weight", c.embeddingLength)
        w.postFfnNorm = try load.vector(b + "post_ffw_norm.weight", c.embeddingLength)
        return w
    }

    static func block(_ f: Forward, _ l: Int, _ w: LayerWeights, _ c: ModelConfig) {
        f.rmsNorm(.x, w.attnNorm, into: .xb)
        f.projectQKV(w)
        f.headNorm(q: w.qNorm, k: w.kNorm)                     // per-head rmsnorm of q and k
        f.rope(layer: l)                                       // base by layer kind
        f.scaleQueries(c.attentionScale)
        f.attention(layer: l, scale: 1)                        // window on sliding layers
        f.project(w.o, from: .att, into: .tmp)
        f.rmsNorm(.tmp, w.postAttnNorm, into: .tmp)
        f.add(.tmp, into: .x)
        f.rmsNorm(.x, w.ffnNorm, into: .xb)
        f.feedForward(w, activation: .gelu, into: .tmp)
        f.rmsNorm(.tmp, w.postFfnNorm, into: .tmp)
        f.add(.tmp, into: .x)
    }
}
