import Foundation
import GGUF
@testable import Transformer

/// A tiny random-weight llama model written with our GGUF writer: exercises shapes and every
/// code path in milliseconds. Also a plain double-precision reference forward pass over the
/// dequantized weights (no SIMD, no quantized activations) to check the math.
struct TinyModel {
    var layers = 2
    var width = 64            // d
    var heads = 2             // head width 32
    var kvHeads = 1           // grouped-query attention (2 query heads per KV head)
    var ff = 128
    var vocab = 96
    var contextLength = 256
    var ropeBase: Float = 10000
    var eps: Float = 1e-5
    var architecture = "llama"
    var seed: UInt64 = 42
    /// Storage type per tensor-name suffix (default Q8_0 for matrices, F32 for vectors).
    var types: [String: GGMLType] = [:]
    var omit: Set<String> = []
    var shapeOverride: [String: [Int]] = [:]
    var extraMetadata: [(String, GGUFValue)] = []
    var tiedOutput = true

    var headDim: Int { width / heads }

    /// Tensor name → (shape in ggml order, float values before encoding).
    func tensorValues() -> [(name: String, shape: [Int], values: [Float])] {
        var rng = SplitMix(seed)
        var out: [(String, [Int], [Float])] = []
        func matrix(_ name: String, rows: Int, cols: Int, scale: Float) {
            let v = (0..<(rows * cols)).map { _ in rng.normal() * scale / Float(cols).squareRoot() }
            out.append((name, [cols, rows], v))
        }
        func vector(_ name: String, _ n: Int) {
            out.append((name, [n], (0..<n).map { _ in 1 + 0.1 * rng.normal() }))
        }
        out.append(("token_embd.weight", [width, vocab], (0..<(width * vocab)).map { _ in rng.normal() }))
        for l in 0..<layers {
            let b = "blk.\(l)."
            vector(b + "attn_norm.weight", width)
            matrix(b + "attn_q.weight", rows: width, cols: width, scale: 1.5)
            matrix(b + "attn_k.weight", rows: kvHeads * headDim, cols: width, scale: 1.5)
            matrix(b + "attn_v.weight", rows: kvHeads * headDim, cols: width, scale: 1)
            matrix(b + "attn_output.weight", rows: width, cols: width, scale: 1)
            vector(b + "ffn_norm.weight", width)
            matrix(b + "ffn_gate.weight", rows: ff, cols: width, scale: 1)
            matrix(b + "ffn_up.weight", rows: ff, cols: width, scale: 1)
            matrix(b + "ffn_down.weight", rows: width, cols: ff, scale: 1)
        }
        vector("output_norm.weight", width)
        if !tiedOutput { matrix("output.weight", rows: vocab, cols: width, scale: 2) }
        return out
    }

    func type(of name: String, shape: [Int]) -> GGMLType {
        for (suffix, t) in types where name.hasSuffix(suffix) { return t }
        return shape.count == 1 ? .f32 : .q8_0
    }

    func ggufBytes() throws -> [UInt8] {
        var w = GGUFWriter()
        let a = architecture
        w.set("general.architecture", .string(a))
        w.set("general.name", .string("tiny random llama"))
        w.set("\(a).block_count", .uint32(UInt32(layers)))
        w.set("\(a).context_length", .uint32(UInt32(contextLength)))
        w.set("\(a).embedding_length", .uint32(UInt32(width)))
        w.set("\(a).feed_forward_length", .uint32(UInt32(ff)))
        w.set("\(a).attention.head_count", .uint32(UInt32(heads)))
        w.set("\(a).attention.head_count_kv", .uint32(UInt32(kvHeads)))
        w.set("\(a).rope.freq_base", .float32(ropeBase))
        w.set("\(a).attention.layer_norm_rms_epsilon", .float32(eps))
        w.set("\(a).rope.dimension_count", .uint32(UInt32(headDim)))
        w.set("\(a).vocab_size", .uint32(UInt32(vocab)))
        for (k, v) in extraMetadata { w.set(k, v) }
        for (name, shape, values) in tensorValues() where !omit.contains(name) {
            let t = type(of: name, shape: shape)
            let actual = shapeOverride[name] ?? shape
            let n = actual.reduce(1, *)
            let v = (0..<n).map { values[$0 % values.count] }   // data sized for the (possibly wrong) shape
            w.addTensor(name: name, type: t, shape: actual, data: Self.encode(v, as: t))
        }
        return try w.bytes()
    }

    func file() throws -> GGUFFile { try GGUFFile(bytes: try ggufBytes()) }

    static func encode(_ v: [Float], as type: GGMLType) -> [UInt8] {
        switch type {
        case .f32:
            return v.withUnsafeBytes { Array($0) }
        case .f16:
            return v.map { Half.fromFloat($0) }.withUnsafeBytes { Array($0) }
        case .bf16:
            return v.map { Half.bf16FromFloat($0) }.withUnsafeBytes { Array($0) }
        case .q8_0:
            var out = [UInt8](repeating: 0, count: v.count / 32 * 34)
            v.withUnsafeBufferPointer { x in
                out.withUnsafeMutableBytes { Q8_0.quantize(x.baseAddress!, count: v.count, into: $0.baseAddress!) }
            }
            return out
        case .q4_0:
            // d = max-magnitude / -8, q = clamp(round(x/d) + 8, 0, 15); low nibbles = elements 0-15
            var out: [UInt8] = []
            for b in stride(from: 0, to: v.count, by: 32) {
                let blk = Array(v[b..<(b + 32)])
                let m = blk.max { abs($0) < abs($1) } ?? 0
                let d = m / -8
                let id: Float = d != 0 ? 1 / d : 0
                withUnsafeBytes(of: Half.fromFloat(d).littleEndian) { out.append(contentsOf: $0) }
                let q = blk.map { UInt8(max(0, min(15, Int(($0 * id + 8.5).rounded(.down))))) }
                for j in 0..<16 { out.append(q[j] | (q[j + 16] << 4)) }
            }
            return out
        case .q4_1:
            var out: [UInt8] = []
            for b in stride(from: 0, to: v.count, by: 32) {
                let blk = Array(v[b..<(b + 32)])
                let lo = blk.min() ?? 0, hi = blk.max() ?? 0
                let d = (hi - lo) / 15
                let id: Float = d != 0 ? 1 / d : 0
                withUnsafeBytes(of: Half.fromFloat(d).littleEndian) { out.append(contentsOf: $0) }
                withUnsafeBytes(of: Half.fromFloat(lo).littleEndian) { out.append(contentsOf: $0) }
                let q = blk.map { UInt8(max(0, min(15, Int((($0 - lo) * id + 0.5).rounded(.down))))) }
                for j in 0..<16 { out.append(q[j] | (q[j + 16] << 4)) }
            }
            return out
        default:
            fatalError("test encoder: unsupported type \(type)")
        }
    }
}

/// Deterministic test random numbers.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-7), u2 = uniform()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
    mutating func token(_ vocab: Int) -> Int32 { Int32(next() % UInt64(vocab)) }
}

/// Textbook llama forward pass in Double over the file's dequantized weights.
final class ReferenceLlama {
    let c: ModelConfig
    let emb: [Float], out: [Float], outNorm: [Float]
    struct Layer { let an: [Float], fn: [Float], q: [Float], k: [Float], v: [Float], o: [Float], g: [Float], u: [Float], d: [Float] }
    let layers: [Layer]
    var kCache: [[[Double]]]   // [layer][pos][dkv]
    var vCache: [[[Double]]]

    init(file: GGUFFile) throws {
        c = try ModelConfig(gguf: file)
        func t(_ n: String) throws -> [Float] {
            guard let i = file.tensor(named: n) else { throw ModelError.missingTensor(n) }
            return try file.dequantize(i)
        }
        emb = try t("token_embd.weight")
        out = file.tensor(named: "output.weight") != nil ? try t("output.weight") : emb
        outNorm = try t("output_norm.weight")
        layers = try (0..<c.blockCount).map { l in
            let b = "blk.\(l)."
            return Layer(an: try t(b + "attn_norm.weight"), fn: try t(b + "ffn_norm.weight"),
                         q: try t(b + "attn_q.weight"), k: try t(b + "attn_k.weight"), v: try t(b + "attn_v.weight"),
                         o: try t(b + "attn_output.weight"), g: try t(b + "ffn_gate.weight"),
                         u: try t(b + "ffn_up.weight"), d: try t(b + "ffn_down.weight"))
        }
        kCache = Array(repeating: [], count: c.blockCount)
        vCache = Array(repeating: [], count: c.blockCount)
    }

    private func matvec(_ w: [Float], rows: Int, cols: Int, _ x: [Double]) -> [Double] {
        (0..<rows).map { r in
            var s = 0.0
            for j in 0..<cols { s += Double(w[r * cols + j]) * x[j] }
            return s
        }
    }

    private func rmsnorm(_ x: [Double], _ w: [Float]) -> [Double] {
        let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
        let s = 1 / (ms + Double(c.rmsEpsilon)).squareRoot()
        return x.indices.map { x[$0] * s * Double(w[$0]) }
    }

    private func rope(_ v: inout [Double], heads: Int, pos: Int) {
        let hd = c.headDimension, nd = c.ropeDimensionCount
        for h in 0..<heads {
            for i in 0..<(nd / 2) {
                let theta = Double(pos) * pow(Double(c.ropeFreqBase), -2 * Double(i) / Double(nd))
                let a = v[h * hd + 2 * i], b = v[h * hd + 2 * i + 1]
                v[h * hd + 2 * i] = a * cos(theta) - b * sin(theta)
                v[h * hd + 2 * i + 1] = a * sin(theta) + b * cos(theta)
            }
        }
    }

    /// Logits after `token` at the next position.
    func step(_ token: Int32) -> [Double] {
        let d = c.embeddingLength, hd = c.headDimension, dq = c.queryDimension, dkv = c.kvDimension, ff = c.feedForwardLength
        let pos = kCache[0].count
        var x = (0..<d).map { Double(emb[Int(token) * d + $0]) }
        for (l, L) in layers.enumerated() {
            let xb = rmsnorm(x, L.an)
            var q = matvec(L.q, rows: dq, cols: d, xb), k = matvec(L.k, rows: dkv, cols: d, xb)
            let v = matvec(L.v, rows: dkv, cols: d, xb)
            rope(&q, heads: c.headCount, pos: pos)
            rope(&k, heads: c.headCountKV, pos: pos)
            kCache[l].append(k)
            vCache[l].append(v)
            var att = [Double](repeating: 0, count: dq)
            let group = c.headCount / c.headCountKV
            for h in 0..<c.headCount {
                let g = h / group
                var s = (0...pos).map { p -> Double in
                    var acc = 0.0
                    for e in 0..<hd { acc += q[h * hd + e] * kCache[l][p][g * hd + e] }
                    return acc / Double(hd).squareRoot()
                }
                let m = s.max()!
                s = s.map { exp($0 - m) }
                let sum = s.reduce(0, +)
                for p in 0...pos { for e in 0..<hd { att[h * hd + e] += s[p] / sum * vCache[l][p][g * hd + e] } }
            }
            let o = matvec(L.o, rows: d, cols: dq, att)
            for i in 0..<d { x[i] += o[i] }
            let xf = rmsnorm(x, L.fn)
            let g = matvec(L.g, rows: ff, cols: d, xf), u = matvec(L.u, rows: ff, cols: d, xf)
            let hbuf = (0..<ff).map { g[$0] / (1 + exp(-g[$0])) * u[$0] }
            let dn = matvec(L.d, rows: d, cols: ff, hbuf)
            for i in 0..<d { x[i] += dn[i] }
        }
        return matvec(out, rows: c.vocabSize, cols: d, rmsnorm(x, outNorm))
    }
}
