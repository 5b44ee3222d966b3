import CKernels
import Foundation
import GGUF

/// One weight matrix of `rows` output rows × `cols` inputs (GGUF shape [cols, rows]), kept in the
/// type it is stored in: a view of the file mapping, or of the model's copy on huge pages
/// (`WeightArena`).
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
    /// Q8_0 rows regrouped by `ek_repack_q8_0_x16` (in the weight arena), which the AVX-512 level
    /// multiplies instead of `data` (same bits).
    var repacked: UnsafeRawPointer? = nil

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

/// One anonymous allocation on 2 MiB transparent huge pages (`ek_alloc_huge`, advisory) with a
/// 64-byte aligned place reserved for every tensor of a file; a matrix is copied into its place
/// when it is first bound. Decode streams every weight once per token, and from these pages it
/// ran 1.27× faster than from the file mapping's 4 KiB pages (SmolLM2 Q8_0 tg, AMD EPYC VM,
/// 10 alternating runs): fewer TLB misses. Places of tensors never copied stay untouched
/// (no memory behind them).
final class WeightArena: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    let byteCount: Int
    private let offsets: [String: Int]

    /// nil if the allocation fails (the caller then keeps the mapping).
    init?(file: GGUFFile) {
        var offsets: [String: Int] = [:], total = 0
        for t in file.tensors where t.byteCount > 0 && t.shape.count >= 2 {
            offsets[t.name] = total
            let (next, overflow) = total.addingReportingOverflow((t.byteCount + 63) / 64 * 64)
            guard !overflow else { return nil }   // tensors overlapping many times over: keep the mapping
            total = next
        }
        guard total > 0, let p = ek_alloc_huge(total) else { return nil }
        base = p
        byteCount = total
        self.offsets = offsets
    }

    /// The tensor copied into its place from the file (nil if it has none). The file's pages
    /// are released as the copy goes, 16 MiB at a time, so that the two are never both resident.
    func copy(_ t: GGUFTensorInfo, of file: GGUFFile) -> UnsafeRawPointer? {
        guard let off = offsets[t.name], let src = file.bytes(of: t).baseAddress else { return nil }
        let chunk = 16 << 20
        for start in stride(from: 0, to: t.byteCount, by: chunk) {
            let part = start..<min(t.byteCount, start + chunk)
            (base + off + start).copyMemory(from: src + start, byteCount: part.count)
            file.releasePages(of: t, range: part)
        }
        return UnsafeRawPointer(base + off)
    }

    /// A Q8_0 matrix (rows % 16 == 0) regrouped into its place by `ek_repack_q8_0_x16` (the same
    /// number of bytes), releasing the file's pages as it goes, as `copy`.
    func repackQ8_0(_ t: GGUFTensorInfo, rows: Int, cols: Int, of file: GGUFFile) -> UnsafeRawPointer? {
        guard let off = offsets[t.name], let src = file.bytes(of: t).baseAddress, rows % 16 == 0, rows > 0 else { return nil }
        let groupBytes = 16 * (t.byteCount / rows)
        let step = max(1, (16 << 20) / groupBytes) * groupBytes
        for start in stride(from: 0, to: t.byteCount, by: step) {
            let part = start..<min(t.byteCount, start + step)
            ek_repack_q8_0_x16(src + start, Int64(part.count / groupBytes * 16), Int64(cols), base + off + start)
            file.releasePages(of: t, range: part)
        }
        return UnsafeRawPointer(base + off)
    }

    /// Bytes of this allocation the kernel backs with huge pages now (Linux: AnonHugePages of
    /// its mapping in /proc/self/smaps; 0 where that cannot be read).
    var hugePageBytes: Int {
        guard let data = FileHandle(forReadingAtPath: "/proc/self/smaps")?.readDataToEndOfFile() else { return 0 }
        let text = String(decoding: data, as: UTF8.self)
        let lo = UInt(bitPattern: Int(bitPattern: base)), hi = lo + UInt(byteCount)
        var inside = false, total = 0
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), !range.hasSuffix(":") {
                let ends = range.split(separator: "-").compactMap { UInt($0, radix: 16) }
                inside = ends.count == 2 && ends[0] < hi && ends[1] > lo
            } else if inside, fields.count >= 2, fields[0] == "AnonHugePages:", let kb = Int(fields[1]) {
                total += kb * 1024
            }
        }
        return total
    }

    deinit { ek_free_huge(base, byteCount) }
}

/// Binds tensors of a GGUF file by name, checking presence, shape and type; every failure is a
/// `ModelError` naming the tensor. Float vectors (norms, biases) are converted to owned F32
/// memory; matrices stay in the mapping in their stored type, or are copied into the arena
/// when there is one.
final class TensorLoader {
    let file: GGUFFile
    let arena: WeightArena?
    private(set) var owned: [AlignedBuffer] = []
    /// Names of the tensors bound so far.
    private(set) var used: Set<String> = []
    /// Matrices copied into the arena so far.
    private(set) var copies: [String: UnsafeRawPointer] = [:]
    /// Those of them regrouped for the AVX-512 Q8_0 kernels (`Matrix.repacked`).
    private var repackedNames: Set<String> = []

    init(file: GGUFFile, arena: WeightArena? = nil) {
        self.file = file
        self.arena = arena
    }

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
        var bytes = try data(t)
        var repacked: UnsafeRawPointer? = nil
        if let copy = copies[name] {
            if repackedNames.contains(name) { repacked = copy } else { bytes = copy }
        } else if let arena {
            // Q8_0 on AVX-512 VNNI: the arena holds the rows regrouped by 16 for every product
            // (`data` stays the file's layout in the mapping, for the other kernel levels and
            // row splits that are not on 16 rows; embedding rows come from the repacked copy);
            // other matrices are copied as they are.
            if t.type == .q8_0, rows % 16 == 0, ek_mm_uses_q8_0_x16() != 0,
               let r = arena.repackQ8_0(t, rows: rows, cols: cols, of: file) {
                copies[name] = r
                repackedNames.insert(name)
                repacked = r
            } else if let copy = arena.copy(t, of: file) {
                copies[name] = copy
                bytes = copy
            }
        }
        return Matrix(name: name, rows: rows, cols: cols, type: t.type, data: bytes,
                      rowBytes: rowBytes, traits: traits, repacked: repacked)
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

/// All weights of a model: matrices in the GGUF mapping (which must outlive them) or in the
/// model's huge-page copy, norm vectors and biases as owned F32.
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
    /// The huge-page copy of the matrices, if they were copied.
    let arena: WeightArena?
    /// Bytes of the file's tensors the model uses from the mapping (not copied).
    let mappedBytes: Int
    /// Bytes of matrices copied into the arena.
    let copiedBytes: Int
    /// Bytes owned here (F32 vectors).
    var ownedBytes: Int { owned.reduce(0) { $0 + $1.byteCount } }

    init(file: GGUFFile, config c: ModelConfig, architecture: any Architecture.Type, copyMatrices: Bool) throws {
        let load = TensorLoader(file: file, arena: copyMatrices ? WeightArena(file: file) : nil)
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
        arena = load.arena
        let copied = load.copies.keys.compactMap { file.tensor(named: $0) }
        copiedBytes = copied.reduce(0) { $0 + $1.byteCount }
        mappedBytes = load.used.reduce(0) { $0 + (file.tensor(named: $1)?.byteCount ?? 0) } - copiedBytes
    }
}
