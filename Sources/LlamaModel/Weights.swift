import CKernels
import GGUF

/// One weight matrix of `rows` output rows × `cols` inputs (GGUF shape [cols, rows]).
struct Matrix: @unchecked Sendable {
    let name: String
    let rows: Int
    let cols: Int
    /// Type and bytes as stored in the file (zero-copy view of the mapping).
    let type: GGMLType
    let data: UnsafeRawPointer
    /// Q8_0 rows for the int8 decode path: `data` itself when stored as Q8_0, else a copy
    /// converted at load.
    let q8: UnsafeRawPointer

    var q8RowBytes: Int { cols / 32 * 34 }
    /// ggml type number handed to the C dequantizers (F32 F16 BF16 Q4_0 Q4_1 Q8_0 all qualify).
    var typeCode: Int32 { Int32(type.rawValue) }
}

/// One transformer block.
struct LayerWeights: @unchecked Sendable {
    let attnNorm: UnsafePointer<Float>   // [d]
    let ffnNorm: UnsafePointer<Float>    // [d]
    let q: Matrix      // [dq rows × d]
    let k: Matrix      // [dkv × d]
    let v: Matrix      // [dkv × d]
    let o: Matrix      // [d × dq]
    let gate: Matrix   // [ff × d]
    let up: Matrix     // [ff × d]
    let down: Matrix   // [d × ff]
}

/// All weights of a llama model, bound to the GGUF mapping (which must outlive them).
final class Weights: @unchecked Sendable {
    let tokenEmbedding: Matrix            // [vocab × d]
    let output: Matrix                    // [vocab × d] (== tokenEmbedding when tied)
    let outputIsTied: Bool
    let outputNorm: UnsafePointer<Float>  // [d]
    let layers: [LayerWeights]
    /// Per-dimension RoPE frequency divisors (`rope_freqs.weight`, Llama 3.1 style), ropeDim/2 floats.
    let ropeFreqs: UnsafePointer<Float>?
    /// Memory owned here: converted Q8_0 copies and float norm vectors.
    private var owned: [AlignedBuffer] = []
    /// Bytes of Q8_0 copies made at load for weights not stored as Q8_0.
    private(set) var convertedBytes = 0

    init(file: GGUFFile, config c: LlamaConfig, pool: ThreadPool) throws {
        let d = c.embeddingLength, dq = c.queryDimension, dkv = c.kvDimension, ff = c.feedForwardLength
        var owned: [AlignedBuffer] = []
        var converted = 0

        func info(_ name: String, _ expected: [Int]) throws -> GGUFTensorInfo {
            guard let t = file.tensor(named: name) else { throw ModelError.missingTensor(name) }
            // ggml ignores trailing 1s (e.g. a [576, 1] norm is a vector).
            var shape = t.shape
            while shape.count > expected.count, shape.last == 1 { shape.removeLast() }
            guard shape == expected else { throw ModelError.badShape(tensor: name, expected: expected, actual: t.shape) }
            guard t.type.canDequantize else {
                throw ModelError.unsupportedTensorType(tensor: name, type: t.type.name)
            }
            guard let expectedBytes = t.type.byteCount(elements: t.elementCount), t.byteCount == expectedBytes,
                  file.bytes(of: t).count == expectedBytes else {
                throw ModelError.badShape(tensor: name, expected: expected, actual: t.shape)
            }
            return t
        }

        func data(_ t: GGUFTensorInfo) throws -> UnsafeRawPointer {
            guard let p = file.bytes(of: t).baseAddress else { throw ModelError.missingTensor(t.name) }
            return p
        }

        func vector(_ name: String, _ n: Int) throws -> UnsafePointer<Float> {
            let t = try info(name, [n])
            let buf = try AlignedBuffer(floats: n, what: name)
            do {
                try Dequantize.rows(type: t.type, from: try data(t), count: n, into: buf.floats)
            } catch {
                throw ModelError.unsupportedTensorType(tensor: name, type: t.type.name)
            }
            owned.append(buf)
            return UnsafePointer(buf.floats)
        }

        func matrix(_ name: String, rows: Int, cols: Int) throws -> Matrix {
            let t = try info(name, [cols, rows])
            guard cols % 32 == 0, t.type.blockSize == 1 || cols % t.type.blockSize == 0 else {
                throw ModelError.badShape(tensor: name, expected: [cols, rows], actual: t.shape)
            }
            let src = try data(t)
            if t.type == .q8_0 {
                return Matrix(name: name, rows: rows, cols: cols, type: t.type, data: src, q8: src)
            }
            // Convert to Q8_0 once (ggml's reference quantizer), rows split across the pool.
            let rowBytes = cols / 32 * 34
            let buf = try AlignedBuffer(byteCount: rows * rowBytes, what: "Q8_0 copy of \(name)")
            let srcRowBytes = t.rowByteCount
            let type = t.type
            nonisolated(unsafe) let dst = buf.raw
            nonisolated(unsafe) let source = src
            let scratch = try AlignedBuffer(floats: cols * pool.threads, what: "conversion scratch")
            nonisolated(unsafe) let tmp = scratch.floats
            pool.run { ith, nth in
                let r0 = rows * ith / nth, r1 = rows * (ith + 1) / nth
                let row = tmp + ith * cols
                for r in r0..<r1 {
                    Weights.dequantize(type: type, from: source + r * srcRowBytes, count: cols, into: row)
                    ek_quantize_row_q8_0_ref(row, dst + r * rowBytes, Int64(cols))
                }
            }
            owned.append(buf)
            converted += rows * rowBytes
            return Matrix(name: name, rows: rows, cols: cols, type: t.type, data: src, q8: UnsafeRawPointer(buf.raw))
        }

        for t in file.tensors where t.name.hasSuffix(".bias") && t.name.hasPrefix("blk.") {
            throw ModelError.unsupportedTensor(t.name)
        }

        tokenEmbedding = try matrix("token_embd.weight", rows: c.vocabSize, cols: d)
        if file.tensor(named: "output.weight") != nil {
            output = try matrix("output.weight", rows: c.vocabSize, cols: d)
            outputIsTied = false
        } else {
            output = tokenEmbedding
            outputIsTied = true
        }
        outputNorm = try vector("output_norm.weight", d)
        if file.tensor(named: "rope_freqs.weight") != nil {
            ropeFreqs = try vector("rope_freqs.weight", c.ropeDimensionCount / 2)
        } else {
            ropeFreqs = nil
        }
        var layers: [LayerWeights] = []
        layers.reserveCapacity(c.blockCount)
        for i in 0..<c.blockCount {
            let b = "blk.\(i)."
            layers.append(LayerWeights(
                attnNorm: try vector(b + "attn_norm.weight", d),
                ffnNorm: try vector(b + "ffn_norm.weight", d),
                q: try matrix(b + "attn_q.weight", rows: dq, cols: d),
                k: try matrix(b + "attn_k.weight", rows: dkv, cols: d),
                v: try matrix(b + "attn_v.weight", rows: dkv, cols: d),
                o: try matrix(b + "attn_output.weight", rows: d, cols: dq),
                gate: try matrix(b + "ffn_gate.weight", rows: ff, cols: d),
                up: try matrix(b + "ffn_up.weight", rows: ff, cols: d),
                down: try matrix(b + "ffn_down.weight", rows: d, cols: ff)))
        }
        self.layers = layers
        self.owned = owned
        self.convertedBytes = converted
    }

    /// Converts `count` elements (multiple of 32) of a supported type to floats (C kernels).
    static func dequantize(type: GGMLType, from src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        let n = Int64(count)
        switch type {
        case .q8_0: ek_dequantize_row_q8_0(src, dst, n)
        case .q4_0: ek_dequantize_row_q4_0(src, dst, n)
        case .q4_1: ek_dequantize_row_q4_1(src, dst, n)
        case .f16: ek_dequantize_row_f16(src, dst, n)
        case .bf16: ek_dequantize_row_bf16(src, dst, n)
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
        default: dst.initialize(repeating: 0, count: count)   // unreachable: types are validated at load
        }
    }
}
