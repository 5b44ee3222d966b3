import CKernels
import GGUF

/// One weight matrix of `rows` output rows × `cols` inputs (GGUF shape [cols, rows]), kept in the
/// type it is stored in (a zero-copy view of the file mapping).
struct Matrix: @unchecked Sendable {
    let name: String
    let rows: Int
    let cols: Int
    let type: GGMLType
    let data: UnsafeRawPointer
    /// Bytes of one row as stored.
    let rowBytes: Int
    /// The kernels' description of the stored type (dequantizer, dot product, activation format).
    let traits: UnsafePointer<ek_type_traits>

    /// ggml type number handed to the C kernels.
    var typeCode: Int32 { Int32(type.rawValue) }
    /// ggml type number of the activation format this matrix's dot product takes.
    var activationType: Int32 { traits.pointee.vec_dot_type }
}

/// The tensors of one transformer block. Optional pieces are present only in the architectures
/// that have them; the architecture's file decides which it loads and how its block uses them.
struct LayerWeights: @unchecked Sendable {
    /// Pre-attention RMSNorm weight [d].
    var attnNorm: UnsafePointer<Float>
    /// Q, K and V projections: three matrices, or one fused [q; k; v] matrix (phi3).
    var qkv: [Matrix]
    /// Q/K/V biases (qwen2), each as wide as its projection.
    var qBias: UnsafePointer<Float>? = nil
    var kBias: UnsafePointer<Float>? = nil
    var vBias: UnsafePointer<Float>? = nil
    /// Per-head RMSNorm weights of Q and K [headDimension] (qwen3, gemma3).
    var qNorm: UnsafePointer<Float>? = nil
    var kNorm: UnsafePointer<Float>? = nil
    /// Attention output projection [d × headCount·valueHead].
    var o: Matrix
    /// RMSNorm of the attention output before the residual add (gemma2/3).
    var postAttnNorm: UnsafePointer<Float>? = nil
    /// Pre-FFN RMSNorm weight [d].
    var ffnNorm: UnsafePointer<Float>
    /// Gate and up projections: two matrices, or one fused [gate; up] matrix (phi3).
    var gateUp: [Matrix]
    /// Down projection [d × ff].
    var down: Matrix
    /// RMSNorm of the FFN output before the residual add (gemma2/3).
    var postFfnNorm: UnsafePointer<Float>? = nil
}

/// Binds tensors of a GGUF file by name, checking presence, shape and type; every failure is a
/// `ModelError` naming the tensor. Float vectors (norms, biases) are converted to owned F32
/// memory; matrices stay in the mapping in their stored type.
final class TensorLoader {
    let file: GGUFFile
    private(set) var owned: [AlignedBuffer] = []
    /// Names of the tensors bound so far.
    private(set) var used: Set<String> = []

    init(file: GGUFFile) { self.file = file }

    func has(_ name: String) -> Bool { file.tensor(named: name) != nil }

    private func info(_ name: String, _ expected: [Int]) throws -> GGUFTensorInfo {
        guard let t = file.tensor(named: name) else { throw ModelError.missingTensor(name) }
        // ggml ignores trailing 1s (e.g. a [576, 1] norm is a vector).
        var shape = t.shape
        while shape.count > expected.count, shape.last == 1 { shape.removeLast() }
        guard shape == expected else { throw ModelError.badShape(tensor: name, expected: expected, actual: t.shape) }
        guard ek_type_traits_of(Int32(t.type.rawValue)) != nil else {
            throw ModelError.unsupportedTensorType(tensor: name, type: t.type.name)
        }
        guard let expectedBytes = t.type.byteCount(elements: t.elementCount), t.byteCount == expectedBytes,
              file.bytes(of: t).count == expectedBytes else {
            throw ModelError.badShape(tensor: name, expected: expected, actual: t.shape)
        }
        used.insert(name)
        return t
    }

    private func data(_ t: GGUFTensorInfo) throws -> UnsafeRawPointer {
        guard let p = file.bytes(of: t).baseAddress else { throw ModelError.missingTensor(t.name) }
        return p
    }

    /// A vector of n floats (norm weights, biases), converted to F32.
    func vector(_ name: String, _ n: Int) throws -> UnsafePointer<Float> {
        let t = try info(name, [n])
        guard let traits = ek_type_traits_of(Int32(t.type.rawValue)), let toFloat = traits.pointee.to_float,
              n % Int(traits.pointee.block_size) == 0 else {
            throw ModelError.unsupportedTensorType(tensor: name, type: t.type.name)
        }
        let buf = try AlignedBuffer(floats: n, what: name)
        toFloat(try data(t), buf.floats, Int64(n))
        owned.append(buf)
        return UnsafePointer(buf.floats)
    }

    func optionalVector(_ name: String, _ n: Int) throws -> UnsafePointer<Float>? {
        has(name) ? try vector(name, n) : nil
    }

    /// A [rows × cols] matrix in its stored type.
    func matrix(_ name: String, rows: Int, cols: Int) throws -> Matrix {
        let t = try info(name, [cols, rows])
        guard let traits = ek_type_traits_of(Int32(t.type.rawValue)), traits.pointee.vec_dot != nil,
              traits.pointee.to_float != nil else {
            throw ModelError.unsupportedTensorType(tensor: name, type: t.type.name)
        }
        let rowBytes = Int(ek_row_bytes(Int32(t.type.rawValue), Int64(cols)))
        guard rowBytes > 0, cols % 32 == 0 else {
            throw ModelError.badShape(tensor: name, expected: [cols, rows], actual: t.shape)
        }
        return Matrix(name: name, rows: rows, cols: cols, type: t.type, data: try data(t),
                      rowBytes: rowBytes, traits: traits)
    }

    /// Q, K, V: separate `attn_q/k/v.weight`, or the fused `attn_qkv.weight`.
    func qkv(_ b: String, _ c: ModelConfig) throws -> [Matrix] {
        let d = c.embeddingLength
        if has(b + "attn_qkv.weight") {
            return [try matrix(b + "attn_qkv.weight", rows: c.queryDimension + c.kvDimension + c.valueDimension, cols: d)]
        }
        return [try matrix(b + "attn_q.weight", rows: c.queryDimension, cols: d),
                try matrix(b + "attn_k.weight", rows: c.kvDimension, cols: d),
                try matrix(b + "attn_v.weight", rows: c.valueDimension, cols: d)]
    }

    /// Gate and up: separate `ffn_gate/ffn_up.weight`, or a fused `ffn_up.weight` of 2·ff rows
    /// (gate first) when there is no `ffn_gate.weight`.
    func gateUp(_ b: String, _ c: ModelConfig) throws -> [Matrix] {
        let d = c.embeddingLength, ff = c.feedForwardLength
        if !has(b + "ffn_gate.weight") {
            return [try matrix(b + "ffn_up.weight", rows: 2 * ff, cols: d)]
        }
        return [try matrix(b + "ffn_gate.weight", rows: ff, cols: d),
                try matrix(b + "ffn_up.weight", rows: ff, cols: d)]
    }

    /// The parts every block has: norms, attention and FFN projections (architectures add the rest).
    func standardLayer(_ i: Int, _ c: ModelConfig) throws -> LayerWeights {
        let b = "blk.\(i)."
        return LayerWeights(
            attnNorm: try vector(b + "attn_norm.weight", c.embeddingLength),
            qkv: try qkv(b, c),
            o: try matrix(b + "attn_output.weight", rows: c.embeddingLength, cols: c.attentionOutputDimension),
            ffnNorm: try vector(b + "ffn_norm.weight", c.embeddingLength),
            gateUp: try gateUp(b, c),
            down: try matrix(b + "ffn_down.weight", rows: c.embeddingLength, cols: c.feedForwardLength))
    }
}

/// All weights of a model, bound to the GGUF mapping (which must outlive them).
final class Weights: @unchecked Sendable {
    let tokenEmbedding: Matrix            // [vocab × d]
    let output: Matrix                    // [vocab × d] (== tokenEmbedding when tied)
    let outputIsTied: Bool
    let outputNorm: UnsafePointer<Float>  // [d]
    let layers: [LayerWeights]
    /// Per-dimension RoPE frequency divisors (`rope_freqs.weight`, Llama 3.1 style), ropeDim/2 floats.
    let ropeFreqs: UnsafePointer<Float>?
    /// Norm vectors and biases converted to F32.
    private let owned: [AlignedBuffer]
    /// Bytes of the file's tensors the model uses (weights stay in the mapping).
    let mappedBytes: Int
    /// Bytes owned here (F32 vectors).
    var ownedBytes: Int { owned.reduce(0) { $0 + $1.byteCount } }

    init(file: GGUFFile, config c: ModelConfig, architecture: any Architecture.Type) throws {
        let load = TensorLoader(file: file)
        let d = c.embeddingLength
        tokenEmbedding = try load.matrix("token_embd.weight", rows: c.vocabSize, cols: d)
        if load.has("output.weight") {
            output = try load.matrix("output.weight", rows: c.vocabSize, cols: d)
            outputIsTied = false
        } else {
            output = tokenEmbedding
            outputIsTied = true
        }
        outputNorm = try load.vector("output_norm.weight", d)
        ropeFreqs = try load.optionalVector("rope_freqs.weight", c.ropeDimensionCount / 2)
        var layers: [LayerWeights] = []
        layers.reserveCapacity(c.blockCount)
        for i in 0..<c.blockCount { layers.append(try architecture.loadLayer(i, load, c)) }
        // A tensor of a block that this architecture does not use would be silently ignored:
        // refuse it, so that an unsupported variant never gives wrong output.
        for t in file.tensors where t.name.hasPrefix("blk.") && !load.used.contains(t.name) {
            throw ModelError.unsupportedTensor(t.name)
        }
        self.layers = layers
        owned = load.owned
        mappedBytes = load.used.reduce(0) { $0 + (file.tensor(named: $1)?.byteCount ?? 0) }
    }
}
