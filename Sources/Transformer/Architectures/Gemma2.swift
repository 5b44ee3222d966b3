/// Gemma 2 (llama.cpp `gemma2`): embeddings scaled by √d, RMSNorm after attention and after the
/// FFN as well as before, GeGLU (tanh GELU), attention-score and final-logit softcapping,
/// sliding-window attention on every other layer (window 4096 unless the file says otherwise).
enum Gemma2: Architecture {
    static let name = "gemma2"

    static func config(_ r: MetadataReader) throws -> ModelConfig {
        var c = try ModelConfig(common: r, ropeStyle: .neox, activation: .gelu)
        c.ropeFreqBaseSWA = try r.float("rope.freq_base_swa") ?? c.ropeFreqBase
        try c.readSlidingWindow(r, defaultPeriod: 2, defaultWindow: 4096)
        c.attentionSoftcap = try r.float("attn_logit_softcapping") ?? 50
        c.finalLogitSoftcap = try r.float("final_logit_softcapping") ?? 30
        c.embeddingScale = Float(c.embeddingLength).squareRoot()
        return c
    }

    static func loadLayer(_ i: Int, _ load: TensorLoader, _ c: ModelConfig) throws -> LayerWeights {
        var w = try load.standardLayer(i, c)
        let b = "blk.\(i)."
        w.postAttnNorm = try load.vector(b + "post_attention_norm.weight", c.embeddingLength)
        w.postFfnNorm = try load.vector(b + "post_ffw_norm.weight", c.embeddingLength)
        return w
    }

    static func block(_ f: Forward, _ l: Int, _ w: LayerWeights, _ c: ModelConfig) {
        f.rmsNorm(.x, w.attnNorm, into: .xb)
        f.projectQKV(w)
        f.rope(layer: l)
        f.scaleQueries(c.attentionScale)                       // q /= √hd before the scores
        f.attention(layer: l, scale: 1)                        // softcapped scores, window on sliding layers
        f.project(w.o, from: .att, into: .tmp)
        f.rmsNorm(.tmp, w.postAttnNorm, into: .tmp)            // post-attention norm
        f.add(.tmp, into: .x)
        f.rmsNorm(.x, w.ffnNorm, into: .xb)
        f.feedForward(w, activation: .gelu, into: .tmp)        // GeGLU
        f.rmsNorm(.tmp, w.postFfnNorm, into: .tmp)             // post-FFN norm
        f.add(.tmp, into: .x)
    }
}
