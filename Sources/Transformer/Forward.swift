import CKernels
import COpenBLAS
import Foundation

/// The activation buffers a block reads and writes (rows of the current batch).
enum Buffer {
    /// Residual stream [n, d].
    case x
    /// Normalized input of the next projection [n, d].
    case xb
    /// A sub-layer's output before its residual add [n, d].
    case tmp
    /// Attention output [n, heads·dv].
    case att
}

/// One forward step over a batch of n tokens at positions pos0..<pos0+n: the operations the
/// architectures compose (`Architecture.block`), over the session's scratch and KV cache.
///
/// Each product with a weight matrix goes through `matmul`, the one place that chooses how:
/// - int8 (the default, every batch size): activations quantized to the format the matrix's
///   type takes (Q8_0, Q8_1, Q8_K, F16 … as ggml does) and multiplied with the stored weights
///   (Q8_0 on AVX-512 VNNI: `Matrix.repacked`, regrouped by 16 rows at load) on the worker
///   pool (`ek_mm_task_run`: tiled AVX-512 VNNI and AVX2 kernels for batches of every
///   quantized type, tiled AVX-512 float kernels for F16, F32 and BF16, vec_dot otherwise). Every (row, token) result has the bits of the type's vec_dot whatever the
///   batch, and attention runs row by row with one arithmetic, so a token's logits do not
///   depend on how the tokens were batched;
/// - BLAS (opt-in, `Options.minBatchForBLAS`): matrices without a batched int8 kernel
///   dequantized to Float and multiplied with OpenBLAS sgemm (activations first rounded through
///   their format), and attention as sgemm over Float copies of the cache.
final class Forward {
    unowned let session: TransformerSession
    let model: TransformerModel
    let c: ModelConfig
    /// Query rows per attention block in the BLAS path (bounds the work above the causal diagonal).
    static let attentionBlock = 64

    /// The rows of one session in a step: rows start..<start+count at positions pos0..<pos0+count.
    struct Segment {
        unowned let session: TransformerSession
        let start: Int
        let count: Int
        let pos0: Int
    }

    private(set) var n = 0
    /// Position of the first row (steps of one session; the BLAS path runs only then).
    private(set) var pos0 = 0
    /// The sessions whose tokens this step evaluates (one, or several: continuous batching).
    private(set) var segments: [Segment] = []
    private(set) var blas = false
    private var s: Scratch!

    // Dimensions.
    private let d: Int, dq: Int, dkv: Int, dv: Int, ff: Int, hd: Int, nh: Int, nkv: Int, ropeDim: Int, qkvWidth: Int
    private let freqScale: Float

    init(session: TransformerSession) {
        self.session = session
        model = session.model
        c = model.config
        d = c.embeddingLength; dq = c.queryDimension; dkv = c.kvDimension; dv = c.valueDimension
        ff = c.feedForwardLength; hd = c.headDimension; nh = c.headCount; nkv = c.headCountKV
        ropeDim = c.ropeDimensionCount; qkvWidth = model.plan.qkvWidth
        switch c.ropeScaling {
        case .none: freqScale = 1
        case .linear(let f): freqScale = 1 / f
        }
    }

    private var pool: ThreadPool { model.pool }

    private func ptr(_ b: Buffer) -> UnsafeMutablePointer<Float> {
        switch b {
        case .x: return s.x
        case .xb: return s.xb
        case .tmp: return s.tmp
        case .att: return s.att
        }
    }

    private func width(_ b: Buffer) -> Int { b == .att ? c.attentionOutputDimension : d }

    // MARK: - Step

    /// Starts a step: token embeddings into x (scaled where the architecture says), RoPE tables.
    /// Rows are independent everywhere but in attention, which reads each segment's own cache.
    func begin(scratch: Scratch, tokens: UnsafePointer<Int32>, n: Int, segments: [Segment]) {
        s = scratch
        self.n = n
        self.segments = segments
        pos0 = segments[0].pos0
        blas = n >= model.options.minBatchForBLAS && segments.count == 1
        // OpenBLAS brings its own threads: our idle workers must not spin while it runs.
        if blas { pool.setSpin(microseconds: 0) }
        // x[i] = token_embd[tokens[i]] (· embeddingScale)                 x: [n, d]
        let emb = model.weights.tokenEmbedding
        let toFloat = emb.traits.pointee.to_float!
        for i in 0..<n {
            // (a repacked Q8_0 table: its rows from the copy, leaving the file's pages alone)
            if let rp = emb.repacked { ek_row_q8_0_x16(rp, Int64(tokens[i]), Int64(d), s.x + i * d) }
            else { toFloat(emb.data + Int(tokens[i]) * emb.rowBytes, s.x + i * d, Int64(d)) }
            if let scale = c.embeddingScale { ek_scale_f32(s.x + i * d, scale, Int64(d)) }
        }
        // Rotation tables per position, for global and (if any) sliding layers.  cs: [n, 2 ropeDim]
        let hasSliding = c.slidingLayers.contains(true)
        for seg in segments {
            for j in 0..<seg.count {
                let i = seg.start + j, pos = Int64(seg.pos0 + j)
                ek_rope_cache(s.csGlobal + i * 2 * ropeDim, pos, Int64(ropeDim), c.ropeFreqBase, freqScale, model.weights.ropeFreqs)
                if hasSliding {
                    ek_rope_cache(s.csSliding + i * 2 * ropeDim, pos, Int64(ropeDim), c.ropeFreqBaseSWA, freqScale, model.weights.ropeFreqs)
                }
            }
        }
    }

    func end() {
        if blas { pool.setSpin(microseconds: TransformerModel.decodeSpinMicroseconds) }
        s = nil
        segments = []
    }

    // MARK: - Operations for the blocks

    /// dst = rmsnorm(src) · w, row by row (dst may be src).
    func rmsNorm(_ src: Buffer, _ w: UnsafePointer<Float>?, into dst: Buffer) {
        guard let w else { preconditionFailure("norm weight not loaded") }
        let a = ptr(src), b = ptr(dst), d = d, eps = c.rmsEpsilon
        forEachRow { i in ek_rmsnorm_f32(b + i * d, a + i * d, w, Int64(d), eps) }
    }

    /// dst += src.
    func add(_ src: Buffer, into dst: Buffer) {
        ek_add_f32(ptr(dst), ptr(src), Int64(n * width(dst)))
    }

    /// q | k | v = xb · [Wq; Wk; Wv]ᵀ (+ biases)                           qkv: [n, dq + dkv + dv]
    func projectQKV(_ w: LayerWeights) {
        let outs = w.qkv.count == 1 ? [s.qkv] : [s.qkv, s.qkv + dq, s.qkv + dq + dkv]
        matmul(w.qkv, from: s.xb, cols: d, into: outs, stride: qkvWidth, accumulate: false)
        let biases: [(UnsafePointer<Float>?, Int, Int)] = [(w.qBias, 0, dq), (w.kBias, dq, dkv), (w.vBias, dq + dkv, dv)]
        for (b, off, width) in biases {
            guard let b else { continue }
            for i in 0..<n { ek_add_f32(s.qkv + i * qkvWidth + off, b, Int64(width)) }
        }
    }

    /// RMSNorm over every query head and every key head (weights [hd] shared by the heads).
    func headNorm(q: UnsafePointer<Float>?, k: UnsafePointer<Float>?) {
        guard let q, let k else { preconditionFailure("head norm weights not loaded") }
        let qkv = s.qkv, w = qkvWidth, hd = hd, nh = nh, nkv = nkv, dq = dq, eps = c.rmsEpsilon
        forEachRow { i in
            let row = qkv + i * w
            for h in 0..<nh { ek_rmsnorm_f32(row + h * hd, row + h * hd, q, Int64(hd), eps) }
            for h in 0..<nkv { ek_rmsnorm_f32(row + dq + h * hd, row + dq + h * hd, k, Int64(hd), eps) }
        }
    }

    /// Rotates q and k by position with the table of this layer's kind (global or sliding).
    func rope(layer l: Int) {
        let cs = c.slidingLayers[l] ? s.csSliding : s.csGlobal
        let qkv = s.qkv, w = qkvWidth, hd = hd, nh = nh, nkv = nkv, dq = dq, rd = ropeDim
        let neox = c.ropeStyle == .neox
        forEachRow { i in
            let row = qkv + i * w, t = cs + i * 2 * rd
            if neox {
                ek_rope_neox(row, Int64(nh), Int64(hd), Int64(rd), t)
                ek_rope_neox(row + dq, Int64(nkv), Int64(hd), Int64(rd), t)
            } else {
                ek_rope_normal(row, Int64(nh), Int64(hd), Int64(rd), t)
                ek_rope_normal(row + dq, Int64(nkv), Int64(hd), Int64(rd), t)
            }
        }
    }

    /// q *= f (architectures that scale the queries instead of the scores).
    func scaleQueries(_ f: Float) {
        for i in 0..<n { ek_scale_f32(s.qkv + i * qkvWidth, f, Int64(dq)) }
    }

    /// Appends this batch's k, v to layer l's cache, then
    /// att = softmax(scale · q·Kᵀ [softcapped] [within the sliding window], causal) · V.
    func attention(layer l: Int, scale: Float) {
        if blas || segments.count == 1 {
            for seg in segments { attention(layer: l, scale: scale, seg) }
            return
        }
        // Several sequences (a continuous-batching step): one parallel pass stores every
        // segment's K/V rows and one pool task splits the attention items of all segments
        // between the threads (per sequence, a step of 1 token had 3 KV-head items for 2
        // threads and a pool round trip each). Every item computes as alone: same bits.
        let segs = segments, total = segs.reduce(0) { $0 + $1.count }
        pool.run { ith, nth in
            let lo = total * ith / nth, hi = total * (ith + 1) / nth
            var first = 0   // this thread's rows lo..<hi of the segments laid end to end
            for seg in segs {
                let a = max(lo - first, 0), b = min(hi - first, seg.count)
                if a < b { for i in a..<b { self.storeKV(layer: l, seg, row: i) } }
                first += seg.count
            }
        }
        withUnsafeTemporaryAllocation(of: ek_attn_task.self, capacity: segs.count) { buf in
            for (k, seg) in segs.enumerated() { (buf.baseAddress! + k).initialize(to: attentionTask(layer: l, scale: scale, seg)) }
            var m = ek_attn_multi_task(tasks: UnsafePointer(buf.baseAddress), n_tasks: Int64(segs.count))
            pool.run(ek_attn_multi_task_run, context: &m)
        }
    }

    /// Layer l's cache holds positions base..<base+cap in slots 0..<cap (sliding layers keep only
    /// recent positions); the kernels index it by slot, positions relative to base.
    private func cacheView(layer l: Int, _ seg: Segment) -> (k: UnsafeMutablePointer<UInt16>, v: UnsafeMutablePointer<UInt16>, cap: Int, slot0: Int) {
        let cache = seg.session
        let cap = cache.kvCapacity[l], base = c.slidingLayers[l] ? cache.slidingBase : 0
        return (cache.kCache + cache.kvOffset[l], cache.vCache + cache.kvOffset[l], cap, seg.pos0 - base)
    }

    /// Row i of a segment: its K (as F16) into the cache, its V into the transposed V cache.
    private func storeKV(layer l: Int, _ seg: Segment, row i: Int) {
        let (kc, vc, cap, slot0) = cacheView(layer: l, seg)
        let row = s.qkv + (seg.start + i) * qkvWidth
        for g in 0..<nkv {
            ek_f32_to_f16_row(row + dq + g * hd, kc + g * cap * hd + (slot0 + i) * hd, Int64(hd))
            ek_f32_to_f16_strided(row + dq + dkv + g * hd, vc + g * hd * cap + slot0 + i, Int64(hd), Int64(cap))
        }
    }

    /// The decode-arithmetic attention of a segment's rows: llama.cpp's decode one (vec_dot over
    /// the f16 cache) for every batch size, or its flash-attention kernel when asked for.
    private func attentionTask(layer l: Int, scale: Float, _ seg: Segment) -> ek_attn_task {
        let (kc, vc, cap, slot0) = cacheView(layer: l, seg)
        let window = c.slidingLayers[l] ? (c.slidingWindow ?? 0) : 0
        let mode = model.options.attention == .llamaCppFlashAttention ? EK_ATTN_GGML_FLASH : EK_ATTN_GGML_VEC
        let outWidth = c.attentionOutputDimension
        return ek_attn_task(q: s.qkv + seg.start * qkvWidth, q_stride: Int64(qkvWidth), k: kc, vt: vc, kv_len: Int64(cap),
                            out: s.att + seg.start * outWidth, out_stride: Int64(outWidth), out_q8: nil, out_q8_stride: 0,
                            scratch: session.attnScratch.floats, scratch_stride: Int64(session.attnScratchStride),
                            n_tok: Int64(seg.count), pos0: Int64(slot0), n_head: Int64(nh), n_head_kv: Int64(nkv),
                            head_dim: Int64(hd), scale: scale, mode: Int32(mode.rawValue),
                            window: Int64(window), softcap: c.attentionSoftcap ?? 0)
    }

    private func attention(layer l: Int, scale: Float, _ seg: Segment) {
        forEachRow(seg.count) { i in storeKV(layer: l, seg, row: i) }
        if blas {
            let (kc, vc, cap, slot0) = cacheView(layer: l, seg)
            let window = c.slidingLayers[l] ? (c.slidingWindow ?? 0) : 0
            blasAttention(n: n, pos0: slot0, cap: cap, kc: kc, vc: vc, scale: scale, window: window, softcap: c.attentionSoftcap ?? 0)
        } else {
            var a = attentionTask(layer: l, scale: scale, seg)
            pool.run(ek_attn_task_run, context: &a)
        }
    }

    /// dst = src · Wᵀ.
    func project(_ m: Matrix, from src: Buffer, into dst: Buffer) {
        matmul([m], from: ptr(src), cols: width(src), into: [ptr(dst)], stride: width(dst), accumulate: false)
    }

    /// dst += src · Wᵀ.
    func project(_ m: Matrix, from src: Buffer, addTo dst: Buffer) {
        matmul([m], from: ptr(src), cols: width(src), into: [ptr(dst)], stride: width(dst), accumulate: true)
    }

    /// Gated FFN on xb: h = act(xb·Wgᵀ) * (xb·Wuᵀ), out = h·Wdᵀ.
    func feedForward(_ w: LayerWeights, activation: Activation, into dst: Buffer) {
        gatedHidden(w, activation)
        matmul([w.down], from: s.gu, srcStride: 2 * ff, cols: ff, into: [ptr(dst)], stride: d, accumulate: false)
    }

    /// Gated FFN on xb, added to dst.
    func feedForward(_ w: LayerWeights, activation: Activation, addTo dst: Buffer) {
        gatedHidden(w, activation)
        matmul([w.down], from: s.gu, srcStride: 2 * ff, cols: ff, into: [ptr(dst)], stride: d, accumulate: true)
    }

    /// gu[:, 0..<ff] = act(gate) * up, with gate | up = xb · [Wg; Wu]ᵀ in gu.
    private func gatedHidden(_ w: LayerWeights, _ activation: Activation) {
        let outs = w.gateUp.count == 1 ? [s.gu] : [s.gu, s.gu + ff]
        matmul(w.gateUp, from: s.xb, cols: d, into: outs, stride: 2 * ff, accumulate: false)
        let gu = s.gu, ff = ff
        forEachRow { i in
            let row = gu + i * 2 * ff
            switch activation {
            case .silu: ek_silu_mul_f32(row, row, row + ff, Int64(ff))
            case .gelu: ek_gelu_mul_f32(row, row, row + ff, Int64(ff))
            }
        }
    }

    // MARK: - Output

    /// logits[k] = (rmsnorm(x[rows[k]]) · output_norm) · Woutᵀ for the wanted rows [, softcapped].
    func output(rows wanted: [Int], logits: UnsafeMutablePointer<Float>) {
        guard let r0 = wanted.first else { return }
        if wanted.last! - r0 + 1 == wanted.count { return output(rows: r0..<(r0 + wanted.count), logits: logits) }
        // Rows apart (the last token of each sequence): normalized into xb[0..<count], then one product.
        let W = model.weights, d = d, eps = c.rmsEpsilon, x = s.x, xb = s.xb
        forEachRow(wanted.count) { k in ek_rmsnorm_f32(xb + k * d, x + wanted[k] * d, W.outputNorm, Int64(d), eps) }
        matmul([W.output], from: xb, cols: d, into: [logits], stride: c.vocabSize, accumulate: false, rows: wanted.count, int8: true)
        softcapLogits(logits, rows: wanted.count)
    }

    /// logits[r] = (rmsnorm(x[r]) · output_norm) · Woutᵀ for the wanted rows [, softcapped].
    func output(rows outRows: Range<Int>, logits: UnsafeMutablePointer<Float>) {
        guard !outRows.isEmpty else { return }
        let W = model.weights, vocab = c.vocabSize, d = d, eps = c.rmsEpsilon
        let r0 = outRows.lowerBound, rows = outRows.count
        let x = s.x, xb = s.xb
        forEachRow { i in
            if i >= r0 && i < r0 + rows { ek_rmsnorm_f32(xb + i * d, x + i * d, W.outputNorm, Int64(d), eps) }
        }
        if blas && rows > 1 {
            blasOutput(xb + r0 * d, rows: rows, logits: logits)
        } else {
            matmul([W.output], from: xb + r0 * d, cols: d, into: [logits], stride: vocab, accumulate: false, rows: rows, int8: true)
        }
        softcapLogits(logits, rows: rows)
    }

    private func softcapLogits(_ logits: UnsafeMutablePointer<Float>, rows: Int) {
        if let cap = c.finalLogitSoftcap {
            // ggml: scale(1/c), tanh, scale(c)
            let inv = 1 / cap
            for i in 0..<(rows * c.vocabSize) { logits[i] = tanhf(logits[i] * inv) * cap }
        }
    }

    // MARK: - Products with weights

    /// out_p[t·stride + r] = (or +=) Σ_j src[t·srcStride + j] · m_p[r, j] for the batch rows.
    private func matmul(_ ms: [Matrix], from src: UnsafePointer<Float>, srcStride: Int? = nil, cols: Int,
                        into outs: [UnsafeMutablePointer<Float>], stride: Int, accumulate: Bool,
                        rows: Int? = nil, int8: Bool = false) {
        let n = rows ?? self.n
        let srcStride = srcStride ?? cols
        if blas && !int8 && !ms.allSatisfy({ ek_mm_has_batched_kernel($0.typeCode) != 0 }) {
            blasMatmul(ms, from: src, srcStride: srcStride, cols: cols, n: n, into: outs, stride: stride, accumulate: accumulate)
            return
        }
        // A few rows (a continuous-batching step) in one format: every thread quantizes them all
        // into its own buffer and goes on to its share of the weight rows in the same pool run,
        // instead of a parallel quantizing pass and a second run (one barrier less per product).
        let fmt = ms[0].activationType
        if n > 1, n <= Self.fusedQuantizeRows, pool.threads > 1, let perThread = s.actThreads,
           ms.allSatisfy({ $0.activationType == fmt }) {
            let rowBytes = Int(ek_row_bytes(fmt, Int64(cols)))
            let fromFloat = ek_type_traits_of(fmt).pointee.from_float!
            let t = mmTask(ms, cols: cols, n: n, act: [UnsafeRawPointer](repeating: UnsafeRawPointer(perThread), count: ms.count),
                           actStride: [Int](repeating: rowBytes, count: ms.count), into: outs, stride: stride, accumulate: accumulate)
            let region = Self.fusedQuantizeRows * s.actRowBytes, parts = ms.count
            pool.run { ith, nth in
                let mine = perThread + ith * region
                for r in 0..<n { fromFloat(src + r * srcStride, mine + r * rowBytes, Int64(cols)) }
                var own = t
                let a = UnsafeRawPointer(mine)
                own.a = (a, parts > 1 ? a : nil, parts > 2 ? a : nil)
                ek_mm_task_run(&own, Int32(ith), Int32(nth))
            }
            return
        }
        // Quantize the activations once per format the matrices take.
        var formats: [Int32] = []
        var act: [UnsafeRawPointer] = [], actStride: [Int] = []
        for m in ms {
            let fmt = m.activationType
            if let k = formats.firstIndex(of: fmt) {
                act.append(act[k]); actStride.append(actStride[k]); continue
            }
            let slot = s.act + formats.count * s.rows * s.actRowBytes
            let rowBytes = Int(ek_row_bytes(fmt, Int64(cols)))
            let fromFloat = ek_type_traits_of(fmt).pointee.from_float!
            forEachRow(n) { t in fromFloat(src + t * srcStride, slot + t * rowBytes, Int64(cols)) }
            formats.append(fmt)
            act.append(UnsafeRawPointer(slot)); actStride.append(rowBytes)
        }
        var t = mmTask(ms, cols: cols, n: n, act: act, actStride: actStride, into: outs, stride: stride, accumulate: accumulate)
        pool.run(ek_mm_task_run, context: &t)
    }

    /// Batches of up to this many rows quantize their activations inside the product's pool run.
    static let fusedQuantizeRows = 16

    /// The C task of one product: up to 3 matrices over the same activations.
    private func mmTask(_ ms: [Matrix], cols: Int, n: Int, act: [UnsafeRawPointer], actStride: [Int],
                        into outs: [UnsafeMutablePointer<Float>], stride: Int, accumulate: Bool) -> ek_mm_task {
        var t = ek_mm_task()
        t.ncols = Int64(cols); t.n_tok = Int64(n); t.y_stride = Int64(stride); t.nparts = Int32(ms.count)
        func pick<T>(_ a: [T], _ i: Int, _ zero: T) -> T { i < a.count ? a[i] : zero }
        let wts = ms.map { $0.data }, types = ms.map { $0.typeCode }, rws = ms.map { Int64($0.rows) }
        t.type = (pick(types, 0, 0), pick(types, 1, 0), pick(types, 2, 0))
        t.w = (pick(wts, 0, nil), pick(wts, 1, nil), pick(wts, 2, nil))
        let a: [UnsafeRawPointer?] = act
        t.a = (pick(a, 0, nil), pick(a, 1, nil), pick(a, 2, nil))
        let st = actStride.map { Int64($0) }
        t.a_stride = (pick(st, 0, 0), pick(st, 1, 0), pick(st, 2, 0))
        let o: [UnsafeMutablePointer<Float>?] = outs
        if accumulate {
            t.acc = (pick(o, 0, nil), pick(o, 1, nil), pick(o, 2, nil))
        } else {
            t.y = (pick(o, 0, nil), pick(o, 1, nil), pick(o, 2, nil))
        }
        t.rows = (pick(rws, 0, 0), pick(rws, 1, 0), pick(rws, 2, 0))
        let rps = ms.map { $0.repacked }
        t.rp = (pick(rps, 0, nil), pick(rps, 1, nil), pick(rps, 2, nil))
        return t
    }

    /// The BLAS product: per activation format among the matrices, the source rows rounded through
    /// that format, the matrices dequantized into the session's Float weights, one sgemm each.
    private func blasMatmul(_ ms: [Matrix], from src: UnsafePointer<Float>, srcStride: Int, cols: Int, n: Int,
                            into outs: [UnsafeMutablePointer<Float>], stride: Int, accumulate: Bool) {
        guard let wf = session.floatWeights?.floats, let rounded = s.rounded else { return }   // allocated by prepare
        var done = [Bool](repeating: false, count: ms.count)
        for i in ms.indices where !done[i] {
            let fmt = ms[i].activationType
            // Activations rounded to what the format represents.            rounded: [n, cols]
            let traits = ek_type_traits_of(fmt).pointee
            let rowBytes = Int(ek_row_bytes(fmt, Int64(cols)))
            nonisolated(unsafe) let q = s.act
            forEachRow(n) { t in
                traits.from_float(src + t * srcStride, q + t * rowBytes, Int64(cols))
                traits.to_float(q + t * rowBytes, rounded + t * cols, Int64(cols))
            }
            // All matrices of this format as Float, in one parallel pass.
            var task = ek_dequant_task()
            var offsets: [Int] = [], total = 0, parts: [Int] = []
            for j in i..<ms.count where ms[j].activationType == fmt {
                done[j] = true
                parts.append(j)
                offsets.append(total)
                total += ms[j].rows * ms[j].cols
            }
            task.nparts = Int32(parts.count)
            withUnsafeMutableBytes(of: &task.type) { tb in
                withUnsafeMutableBytes(of: &task.src) { sb in
                    withUnsafeMutableBytes(of: &task.dst) { db in
                        withUnsafeMutableBytes(of: &task.count) { cb in
                            for (k, j) in parts.enumerated() {
                                tb.storeBytes(of: ms[j].typeCode, toByteOffset: k * 4, as: Int32.self)
                                sb.storeBytes(of: ms[j].data, toByteOffset: k * 8, as: UnsafeRawPointer.self)
                                db.storeBytes(of: wf + offsets[k], toByteOffset: k * 8, as: UnsafeMutablePointer<Float>.self)
                                cb.storeBytes(of: Int64(ms[j].rows * ms[j].cols), toByteOffset: k * 8, as: Int64.self)
                            }
                        }
                    }
                }
            }
            pool.run(ek_dequant_task_run, context: &task)
            for (k, j) in parts.enumerated() {
                gemm(n, ms[j].rows, cols, rounded, cols, wf + offsets[k], cols, outs[j], stride, beta: accumulate ? 1 : 0)
            }
        }
    }

    /// Logits for several rows of normalized activations: the output matrix is dequantized in
    /// chunks of rows and multiplied with sgemm.
    private func blasOutput(_ xb: UnsafeMutablePointer<Float>, rows: Int, logits: UnsafeMutablePointer<Float>) {
        let out = model.weights.output, vocab = c.vocabSize, d = d
        guard let chunk = session.floatWeights?.floats, let rounded = s.rounded else { return }
        let traits = ek_type_traits_of(out.activationType).pointee
        let rowBytes = Int(ek_row_bytes(out.activationType, Int64(d)))
        nonisolated(unsafe) let q = s.act
        forEachRow(rows) { t in
            traits.from_float(xb + t * d, q + t * rowBytes, Int64(d))
            traits.to_float(q + t * rowBytes, rounded + t * d, Int64(d))
        }
        let chunkRows = max(1, min(vocab, model.plan.floatWeightElements / d))
        var r0 = 0
        while r0 < vocab {
            let r1 = min(vocab, r0 + chunkRows)
            var t = ek_dequant_task()
            t.nparts = 1
            t.type.0 = out.typeCode
            t.src.0 = out.data + r0 * out.rowBytes
            t.dst.0 = chunk
            t.count.0 = Int64((r1 - r0) * d)
            pool.run(ek_dequant_task_run, context: &t)
            gemm(rows, r1 - r0, d, rounded, d, chunk, d, logits + r0, vocab)
            r0 = r1
        }
    }

    /// C = alpha · A · B^T + beta · C (row-major; B given as rows of length k).
    @inline(__always)
    private func gemm(_ m: Int, _ n: Int, _ k: Int, _ a: UnsafePointer<Float>, _ lda: Int,
                      _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                      alpha: Float = 1, beta: Float = 0, transB: Bool = true) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Causal attention of the n batch rows (positions pos0..<pos0+n) over the cache, one KV
    /// head at a time with its query heads stacked: for each block of query tokens,
    /// S = scale·Q·Kᵀ over the keys the block can see (one sgemm for all heads of the group),
    /// [softcap,] masked softmax per row (rows split across the pool), O = P·V (sgemm). K and V
    /// are read back from the f16 cache; q and P are rounded to halves as llama.cpp's f16
    /// products round them.
    /// (pos0: the slot of the first row's position in this layer's cache of `cap` slots.)
    private func blasAttention(n: Int, pos0: Int, cap: Int, kc: UnsafeMutablePointer<UInt16>, vc: UnsafeMutablePointer<UInt16>,
                               scale: Float, window: Int, softcap: Float) {
        guard let b = s.blas else { return }
        let group = nh / nkv, keysTotal = pos0 + n
        let ctx = cap, hd = hd, qkvWidth = qkvWidth, outWidth = c.attentionOutputDimension
        nonisolated(unsafe) let qkv = s.qkv, att = s.att, K = b.k, Vt = b.v, Qp = b.q, Op = b.o, S = b.scores
        for g in 0..<nkv {
            // K[keysTotal, hd] and V^T[hd, keysTotal] of this KV head as Floats
            nonisolated(unsafe) let kg = kc + g * ctx * hd, vg = vc + g * hd * ctx
            pool.run { ith, nth in
                if ith == 0 || nth == 1 { ek_f16_to_f32_row(kg, K, Int64(keysTotal * hd)) }
                if ith == nth - 1 {
                    for e in 0..<hd { ek_f16_to_f32_row(vg + e * ctx, Vt + e * keysTotal, Int64(keysTotal)) }
                }
            }
            var i0 = 0
            while i0 < n {
                let i1 = min(n, i0 + Self.attentionBlock), tokens = i1 - i0, rows = tokens * group
                // Keys this block can see: [k0, keys)
                let keys = pos0 + i1
                let k0 = window > 0 ? max(0, pos0 + i0 - window + 1) : 0
                let span = keys - k0
                // Qp[(i - i0) * group + j] = half-rounded q of token i, head g*group + j
                for i in i0..<i1 {
                    let dst = Qp + (i - i0) * group * hd
                    dst.update(from: qkv + i * qkvWidth + g * group * hd, count: group * hd)
                    ek_round_f16_f32(dst, Int64(group * hd))
                }
                // S[rows, span] = scale · Qp · K[k0..<keys]ᵀ
                gemm(rows, span, hd, Qp, hd, K + k0 * hd, hd, S, span, alpha: scale)
                let base = pos0 + i0
                pool.run { ith, nth in
                    for r in (rows * ith / nth)..<(rows * (ith + 1) / nth) {
                        let pos = base + r / group
                        let lo = (window > 0 ? max(0, pos - window + 1) : 0) - k0, hi = pos + 1 - k0
                        let row = S + r * span
                        if softcap > 0 {
                            let inv = 1 / softcap
                            for j in lo..<hi { row[j] = tanhf(row[j] * inv) * softcap }
                        }
                        ek_softmax_f32(row + lo, Int64(hi - lo), 1)
                        ek_round_f16_f32(row + lo, Int64(hi - lo))
                        if lo > 0 { row.update(repeating: 0, count: lo) }
                        if hi < span { (row + hi).update(repeating: 0, count: span - hi) }
                    }
                }
                // Op[rows, hd] = P · V[k0..<keys] = P · (V^T[:, k0..<keys])ᵀ, then into att
                gemm(rows, hd, span, S, span, Vt + k0, keysTotal, Op, hd)
                for i in i0..<i1 {
                    (att + i * outWidth + g * group * hd).update(from: Op + (i - i0) * group * hd, count: group * hd)
                }
                i0 = i1
            }
        }
    }

    // MARK: - Helpers

    /// body(i) for the n rows of the step: split across the pool for batches, inline for one row.
    /// (Rows are independent: the split does not change any row's arithmetic.)
    @inline(__always)
    private func forEachRow(_ count: Int? = nil, _ body: (Int) -> Void) {
        let n = count ?? self.n
        if n > 1 {
            pool.run { ith, nth in
                for i in (n * ith / nth)..<(n * (ith + 1) / nth) { body(i) }
            }
        } else {
            for i in 0..<n { body(i) }
        }
    }
}
