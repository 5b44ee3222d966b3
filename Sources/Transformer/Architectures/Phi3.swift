/// Phi-3 / Phi-3.5 mini (llama.cpp `phi3`): fused `attn_qkv` and fused gate|up (`ffn_up` of 2·ff
/// rows), queries scaled by 1/√hd before the scores, NEOX RoPE. The 128k variants' long/short
/// RoPE factors are not supported (a clear error names the tensor).
enum Phi3: Architecture {
    static let name = "phi3"

    static func config(_ r: MetadataReader) throws -> ModelConfig {
        var c = try ModelConfig(common: r, ropeStyle: .neox, activation: .silu)
        // llama.cpp disables Phi's sliding window (attention.sliding_window is read and ignored).
        c.slidingWindow = nil
        for name in ["rope_factors_long.weight", "rope_factors_short.weight"] where r.file.tensor(named: name) != nil {
            throw ModelError.unsupportedTensor(name)
        }
        return c
    }

    static func loadLayer(_ i: Int, _ load: TensorLoader, _ c: ModelConfig) throws -> LayerWeights {
        try load.standardLayer(i, c)
    }

    static func block(_ f: Forward, _ l: Int, _ w: LayerWeights, _ c: ModelConfig) {
        f.rmsNorm(.x, w.attnNorm, into: .xb)
        f.projectQKV(w)                                        // fused or separate
        f.rope(layer: l)
        f.scaleQueries(c.attentionScale)
        f.attention(layer: l, scale: 1)
        f.project(w.o, from: .att, addTo: .x)
        f.rmsNorm(.x, w.ffnNorm, into: .xb)
        f.feedForward(w, activation: .silu, addTo: .x)         // silu(gate half) * up half
    }
}
