import CKernels
import COpenBLAS
import Foundation
import GGUF

/// A BERT encoder (llama.cpp's `bert` architecture) loaded from a GGUF file: token + absolute
/// position + token-type embeddings, LayerNorm, post-norm blocks of bidirectional multi-head
/// attention and a GELU feed-forward network, all with biases; then mean or CLS pooling and
/// optional L2 normalization. Produces sentence embeddings (no logits, no KV cache).
///
/// A batch of sequences is evaluated as one packed batch: every product with a weight matrix
/// runs once over the rows of all sequences (no padding); attention is per sequence.
/// Products: F32 matrices with OpenBLAS sgemm on the mapping; F16/BF16 matrices are expanded to
/// Float once at load (small models: the memory is the F32 size) and use sgemm too; quantized
/// matrices (Q8_0, Q4_K, …) use the int8 kernels (`ek_mm_task_run`) on the stored blocks.
/// GELU is the exact erf form (Hugging Face's `gelu`; llama.cpp uses the tanh approximation).
///
/// Evaluations of one model are serialized (they share scratch-free state only, but the worker
/// pool is shared); the object is `Sendable`.
public final class EncoderModel: @unchecked Sendable {
    public enum Pooling: String, Sendable, CaseIterable {
        case mean, cls
    }

    public struct Config: Sendable {
        public let embeddingLength: Int
        public let blockCount: Int
        public let headCount: Int
        public let feedForwardLength: Int
        /// Positions the model has embeddings for (`bert.context_length`).
        public let contextLength: Int
        public let vocabSize: Int
        public let tokenTypeCount: Int
        public let layerNormEpsilon: Float
        /// The model's own pooling (`bert.pooling_type`), nil when the file does not say.
        public let pooling: Pooling?
        /// Whether the model's vectors are L2-normalized (`edgeai.embedding.normalize`; true when absent).
        public let normalize: Bool
        public var headDimension: Int { embeddingLength / headCount }
    }

    /// Architectures this class runs.
    public static let architectures = ["bert"]

    public let config: Config
    public let file: GGUFFile
    public let threads: Int

    struct Linear {
        let m: Matrix
        /// Float rows for sgemm (the mapping for F32; an owned copy for F16/BF16); nil: int8 kernels.
        let floats: UnsafePointer<Float>?
        let bias: UnsafePointer<Float>
    }

    struct Layer {
        let q: Linear, k: Linear, v: Linear, o: Linear
        let attnNormW: UnsafePointer<Float>, attnNormB: UnsafePointer<Float>
        let up: Linear, down: Linear
        let outNormW: UnsafePointer<Float>, outNormB: UnsafePointer<Float>
    }

    private let tokenEmbedding: Matrix
    private let positionEmbedding: Matrix
    private let typeEmbedding: Matrix?
    private let embNormW: UnsafePointer<Float>, embNormB: UnsafePointer<Float>
    private let layers: [Layer]
    private let owned: [AlignedBuffer]
    private let pool: ThreadPool
    private let lock = NSLock()

    /// Whether the file is an encoder this class runs (reads only `general.architecture`).
    public static func isEncoder(_ file: GGUFFile) -> Bool {
        guard let a = try? file.string("general.architecture") else { return false }
        return architectures.contains(a)
    }

    public init(file: GGUFFile, threads: Int = 0) throws {
        guard threads >= 0 else { throw ModelError.invalidArgument("threads must be >= 0 (0 = number of cores), got \(threads)") }
        let arch: String?
        do { arch = try file.string("general.architecture") } catch {
            throw ModelError.badMetadata(key: "general.architecture", message: "\(error)")
        }
        guard let arch else { throw ModelError.missingKey("general.architecture") }
        guard Self.architectures.contains(arch) else { throw ModelError.unsupportedArchitecture(arch) }
        self.file = file
        func int(_ k: String) throws -> Int {
            let v: Int?
            do { v = try file.int(k) } catch { throw ModelError.badMetadata(key: k, message: "\(error)") }
            guard let v else { throw ModelError.missingKey(k) }
            guard v >= 1, v <= 1 << 24 else { throw ModelError.badMetadata(key: k, message: "\(v) is out of range") }
            return v
        }
        let d = try int("bert.embedding_length"), nl = try int("bert.block_count"), nh = try int("bert.attention.head_count")
        let ff = try int("bert.feed_forward_length"), ctx = try int("bert.context_length")
        guard d % nh == 0 else { throw ModelError.badMetadata(key: "bert.attention.head_count", message: "\(nh) does not divide the width \(d)") }
        let eps: Float
        do { eps = try file.float("bert.attention.layer_norm_epsilon") ?? 1e-12 } catch {
            throw ModelError.badMetadata(key: "bert.attention.layer_norm_epsilon", message: "\(error)")
        }
        if let causal = try? file.bool("bert.attention.causal"), causal {
            throw ModelError.badMetadata(key: "bert.attention.causal", message: "a causal bert is not supported")
        }
        var pooling: Pooling? = nil
        if let p = try? file.int("bert.pooling_type") {
            switch p {
            case 1: pooling = .mean
            case 2: pooling = .cls
            case 0: pooling = nil
            default: throw ModelError.badMetadata(key: "bert.pooling_type", message: "pooling type \(p) is not supported (mean = 1, cls = 2)")
            }
        }
        let normalize = (try? file.bool("edgeai.embedding.normalize")) ?? true
        guard let tokT = file.tensor(named: "token_embd.weight"), tokT.shape.count == 2 else { throw ModelError.missingTensor("token_embd.weight") }
        let vocab = tokT.shape[1]
        let typeCount = (try? file.int("tokenizer.ggml.token_type_count")) ?? file.tensor(named: "token_types.weight").map { $0.shape.count == 2 ? $0.shape[1] : 1 } ?? 0

        let load = TensorLoader(file: file)
        tokenEmbedding = try load.matrix("token_embd.weight", rows: vocab, cols: d)
        positionEmbedding = try load.matrix("position_embd.weight", rows: ctx, cols: d)
        typeEmbedding = load.has("token_types.weight") ? try load.matrix("token_types.weight", rows: max(1, typeCount), cols: d) : nil
        embNormW = try load.vector("token_embd_norm.weight", d)
        embNormB = try load.vector("token_embd_norm.bias", d)
        var extra: [AlignedBuffer] = []
        func linear(_ name: String, rows: Int, cols: Int) throws -> Linear {
            let m = try load.matrix(name + ".weight", rows: rows, cols: cols)
            let bias = try load.vector(name + ".bias", rows)
            switch m.type {
            case .f32:
                return Linear(m: m, floats: m.data.assumingMemoryBound(to: Float.self), bias: bias)
            case .f16, .bf16:
                let buf = try AlignedBuffer(floats: rows * cols, what: name)
                m.traits.pointee.to_float(m.data, buf.floats, Int64(rows * cols))
                extra.append(buf)
                return Linear(m: m, floats: UnsafePointer(buf.floats), bias: bias)
            default:
                return Linear(m: m, floats: nil, bias: bias)
            }
        }
        var ls: [Layer] = []
        for i in 0..<nl {
            let b = "blk.\(i)."
            ls.append(Layer(
                q: try linear(b + "attn_q", rows: d, cols: d), k: try linear(b + "attn_k", rows: d, cols: d),
                v: try linear(b + "attn_v", rows: d, cols: d), o: try linear(b + "attn_output", rows: d, cols: d),
                attnNormW: try load.vector(b + "attn_output_norm.weight", d), attnNormB: try load.vector(b + "attn_output_norm.bias", d),
                up: try linear(b + "ffn_up", rows: ff, cols: d), down: try linear(b + "ffn_down", rows: d, cols: ff),
                outNormW: try load.vector(b + "layer_output_norm.weight", d), outNormB: try load.vector(b + "layer_output_norm.bias", d)))
        }
        for t in file.tensors where t.name.hasPrefix("blk.") && !load.used.contains(t.name) {
            throw ModelError.unsupportedTensor(t.name)
        }
        layers = ls
        owned = load.owned + extra
        config = Config(embeddingLength: d, blockCount: nl, headCount: nh, feedForwardLength: ff, contextLength: ctx,
                        vocabSize: vocab, tokenTypeCount: typeCount, layerNormEpsilon: eps, pooling: pooling, normalize: normalize)
        let n = threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : threads
        self.threads = max(1, min(n, 256))
        pool = ThreadPool(threads: self.threads)
        pool.setSpin(microseconds: 0)
        _ = ek_openblas_prefer_native_core()
        openblas_set_num_threads(Int32(self.threads))
    }

    /// One vector per sequence of token ids (each already with its [CLS] … [SEP]), pooled as asked
    /// and L2-normalized when `normalize`. All sequences run as one batch.
    /// Throws `ModelError.invalidArgument` for an empty sequence or one longer than `contextLength`,
    /// `.invalidToken` for an id outside the vocabulary.
    public func embed(_ sequences: [[Int32]], pooling: Pooling, normalize: Bool) throws -> [[Float]] {
        guard !sequences.isEmpty else { return [] }
        let c = config, d = c.embeddingLength
        var starts: [Int] = []
        var total = 0
        for (i, s) in sequences.enumerated() {
            guard !s.isEmpty else { throw ModelError.invalidArgument("sequence \(i) has no tokens") }
            guard s.count <= c.contextLength else {
                throw ModelError.invalidArgument("sequence \(i) has \(s.count) tokens, more than the model's \(c.contextLength) positions")
            }
            for t in s where t < 0 || Int(t) >= c.vocabSize { throw ModelError.invalidToken(t, vocabularySize: c.vocabSize) }
            starts.append(total)
            total += s.count
        }
        lock.lock()
        defer { lock.unlock() }
        let n = total, ff = c.feedForwardLength
        let x = try AlignedBuffer(floats: n * d, what: "encoder activations")
        let q = try AlignedBuffer(floats: n * d, what: "encoder q"), k = try AlignedBuffer(floats: n * d, what: "encoder k")
        let v = try AlignedBuffer(floats: n * d, what: "encoder v"), att = try AlignedBuffer(floats: n * d, what: "encoder attention")
        let h = try AlignedBuffer(floats: n * ff, what: "encoder ffn")
        let maxLen = sequences.map(\.count).max()!
        let scores = try AlignedBuffer(floats: threads * maxLen, what: "encoder scores")
        let act = try AlignedBuffer(byteCount: n * 4 * max(d, ff) + 4096, what: "encoder activations (quantized)")

        // Embeddings: token + token type 0 + position, then LayerNorm.
        let X = x.floats
        let row = try AlignedBuffer(floats: d, what: "row")
        for (si, s) in sequences.enumerated() {
            for (j, t) in s.enumerated() {
                let dst = X + (starts[si] + j) * d
                tokenEmbedding.traits.pointee.to_float(tokenEmbedding.data + Int(t) * tokenEmbedding.rowBytes, dst, Int64(d))
                if let te = typeEmbedding {
                    te.traits.pointee.to_float(te.data, row.floats, Int64(d))
                    ek_add_f32(dst, row.floats, Int64(d))
                }
                positionEmbedding.traits.pointee.to_float(positionEmbedding.data + j * positionEmbedding.rowBytes, row.floats, Int64(d))
                ek_add_f32(dst, row.floats, Int64(d))
            }
        }
        layerNorm(X, n: n, w: embNormW, b: embNormB)

        let hd = c.headDimension, nh = c.headCount, scale = 1 / Float(hd).squareRoot()
        for L in layers {
            linear(L.q, X, n: n, cols: d, into: q.floats, act: act.raw)
            linear(L.k, X, n: n, cols: d, into: k.floats, act: act.raw)
            linear(L.v, X, n: n, cols: d, into: v.floats, act: act.raw)
            // Attention within each sequence, every (sequence, head, query) item on the pool.
            var items: [(Int, Int)] = []   // (sequence, head)
            for si in sequences.indices { for hh in 0..<nh { items.append((si, hh)) } }
            nonisolated(unsafe) let Q = q.floats, K = k.floats, V = v.floats, A = att.floats, S = scores.floats
            let lens = sequences.map(\.count)
            items.withUnsafeBufferPointer { itemsP in
                starts.withUnsafeBufferPointer { startsP in
                    lens.withUnsafeBufferPointer { lensP in
                        nonisolated(unsafe) let it = itemsP, st = startsP, ln = lensP
                        pool.run { ith, nth in
                            let sc = S + ith * maxLen
                            for w in (it.count * ith / nth)..<(it.count * (ith + 1) / nth) {
                                let (si, hh) = it[w]
                                let base = st[si], len = ln[si], off = hh * hd
                                for i in 0..<len {
                                    let qi = Q + (base + i) * d + off
                                    for j in 0..<len { sc[j] = ek_dot_f32(qi, K + (base + j) * d + off, Int64(hd)) }
                                    ek_softmax_f32(sc, Int64(len), scale)
                                    let out = A + (base + i) * d + off
                                    out.update(repeating: 0, count: hd)
                                    for j in 0..<len { ek_axpy_f32(out, sc[j], V + (base + j) * d + off, Int64(hd)) }
                                }
                            }
                        }
                    }
                }
            }
            // x = LN(x + att·Woᵀ + bo)
            linear(L.o, att.floats, n: n, cols: d, into: q.floats, act: act.raw)
            ek_add_f32(X, q.floats, Int64(n * d))
            layerNorm(X, n: n, w: L.attnNormW, b: L.attnNormB)
            // x = LN(x + gelu(x·Wupᵀ + b)·Wdownᵀ + b)
            linear(L.up, X, n: n, cols: d, into: h.floats, act: act.raw)
            gelu(h.floats, count: n * ff)
            linear(L.down, h.floats, n: n, cols: ff, into: q.floats, act: act.raw)
            ek_add_f32(X, q.floats, Int64(n * d))
            layerNorm(X, n: n, w: L.outNormW, b: L.outNormB)
        }

        // Pooling.
        var out: [[Float]] = []
        out.reserveCapacity(sequences.count)
        for (si, s) in sequences.enumerated() {
            var e = [Float](repeating: 0, count: d)
            e.withUnsafeMutableBufferPointer { ep in
                let p = ep.baseAddress!
                switch pooling {
                case .cls:
                    p.update(from: X + starts[si] * d, count: d)
                case .mean:
                    var acc = [Double](repeating: 0, count: d)
                    for j in 0..<s.count {
                        let r = X + (starts[si] + j) * d
                        for i in 0..<d { acc[i] += Double(r[i]) }
                    }
                    for i in 0..<d { p[i] = Float(acc[i] / Double(s.count)) }
                }
                if normalize {
                    var ss = 0.0
                    for i in 0..<d { ss += Double(p[i]) * Double(p[i]) }
                    let norm = ss.squareRoot()
                    if norm > 0 { for i in 0..<d { p[i] = Float(Double(p[i]) / norm) } }
                }
            }
            out.append(e)
        }
        return out
    }

    // MARK: - Operations

    /// y[n × rows] = x[n × cols] · Wᵀ + b.
    private func linear(_ l: Linear, _ x: UnsafePointer<Float>, n: Int, cols: Int, into y: UnsafeMutablePointer<Float>, act: UnsafeMutableRawPointer) {
        let rows = l.m.rows
        if let w = l.floats {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(rows), Int32(cols), 1,
                        x, Int32(cols), w, Int32(cols), 0, y, Int32(rows))
        } else {
            let fmt = l.m.activationType
            let rowBytes = Int(ek_row_bytes(fmt, Int64(cols)))
            let fromFloat = ek_type_traits_of(fmt).pointee.from_float!
            nonisolated(unsafe) let a = act, src = x
            pool.run { ith, nth in
                for t in (n * ith / nth)..<(n * (ith + 1) / nth) { fromFloat(src + t * cols, a + t * rowBytes, Int64(cols)) }
            }
            var t = ek_mm_task()
            t.ncols = Int64(cols); t.n_tok = Int64(n); t.y_stride = Int64(rows); t.nparts = 1
            t.type.0 = l.m.typeCode
            t.w.0 = l.m.data
            t.a.0 = UnsafeRawPointer(act)
            t.a_stride.0 = Int64(rowBytes)
            t.y.0 = y
            t.rows.0 = Int64(rows)
            pool.run(ek_mm_task_run, context: &t)
        }
        let b = l.bias
        nonisolated(unsafe) let yy = y
        pool.run { ith, nth in
            for t in (n * ith / nth)..<(n * (ith + 1) / nth) { ek_add_f32(yy + t * rows, b, Int64(rows)) }
        }
    }

    /// x = (x - mean) / sqrt(var + eps) · w + b, row by row (sums in Double).
    private func layerNorm(_ x: UnsafeMutablePointer<Float>, n: Int, w: UnsafePointer<Float>, b: UnsafePointer<Float>) {
        let d = config.embeddingLength, eps = Double(config.layerNormEpsilon)
        nonisolated(unsafe) let xx = x
        pool.run { ith, nth in
            for t in (n * ith / nth)..<(n * (ith + 1) / nth) {
                let r = xx + t * d
                var sum = 0.0
                for i in 0..<d { sum += Double(r[i]) }
                let mean = sum / Double(d)
                var sq = 0.0
                for i in 0..<d { let c = Double(r[i]) - mean; sq += c * c }
                let inv = 1 / (sq / Double(d) + eps).squareRoot()
                for i in 0..<d { r[i] = Float((Double(r[i]) - mean) * inv) * w[i] + b[i] }
            }
        }
    }

    /// x = x · Φ(x) = 0.5 · x · (1 + erf(x / √2)) in place.
    private func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        nonisolated(unsafe) let xx = x
        pool.run { ith, nth in
            for i in (count * ith / nth)..<(count * (ith + 1) / nth) {
                let v = xx[i]
                xx[i] = 0.5 * v * (1 + erff(v * 0.70710678118654752))
            }
        }
    }
}
