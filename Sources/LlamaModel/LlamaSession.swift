import CKernels
import COpenBLAS
import Foundation
import GGUF

/// One conversation: a KV cache sized to `contextLength` plus the scratch memory of the
/// forward pass. Not thread-safe: use a session from one thread at a time (sessions of the
/// same model may live on different threads; their evaluations take turns).
public final class LlamaSession {
    public let model: LlamaModel
    /// Capacity of the KV cache in tokens.
    public let contextLength: Int
    /// Tokens currently in the KV cache (the position the next token is evaluated at).
    public private(set) var position: Int = 0

    // Dimensions.
    private let d: Int, dq: Int, dkv: Int, ff: Int, hd: Int, nh: Int, nkv: Int, vocab: Int, ropeDim: Int
    /// Width of a fused Q|K|V row.
    private let qkvWidth: Int
    private let freqScale: Float
    private let attnScale: Float

    // KV cache as IEEE halves, like llama.cpp's default: per layer, K as [kv head][position][hd]
    // and V transposed, [kv head][hd][position] (llama.cpp's layout without flash attention).
    private let kCache: UnsafeMutablePointer<UInt16>
    private let vCache: UnsafeMutablePointer<UInt16>
    /// Per-thread attention scratch (scores and probabilities of one row).
    private let attnScratch: AlignedBuffer
    private let attnScratchStride: Int
    private let cacheBuffers: [AlignedBuffer]
    /// Halves per layer in each of K and V: nkv * contextLength * hd.
    private let layerKV: Int

    // Scratch for one token (decode) and, allocated on first use, for a batch.
    private let one: Scratch
    private var many: Scratch?
    private let decodeLogits: AlignedBuffer   // [vocab]
    private var batchLogits: AlignedBuffer?   // [rows × vocab], grown on demand
    private var layerFloats: AlignedBuffer?   // one layer's Float weights (dequantizePerLayer)
    private var outputChunk: AlignedBuffer?   // [outputChunkRows × d] Float rows of the output matrix
    private let outputChunkRows = 4096
    /// Query rows per attention block in the BLAS path (bounds the work above the causal diagonal).
    private let attentionBlock = 64
    private let q8Row: (d: Int, dq: Int, ff: Int)

    init(model: LlamaModel, contextLength: Int) throws {
        self.model = model
        self.contextLength = contextLength
        let c = model.config
        d = c.embeddingLength; dq = c.queryDimension; dkv = c.kvDimension; ff = c.feedForwardLength
        hd = c.headDimension; nh = c.headCount; nkv = c.headCountKV; vocab = c.vocabSize
        ropeDim = c.ropeDimensionCount
        qkvWidth = dq + 2 * dkv
        switch c.ropeScaling {
        case .none: freqScale = 1
        case .linear(let f): freqScale = 1 / f
        }
        attnScale = 1 / Float(hd).squareRoot()
        layerKV = nkv * contextLength * hd
        let kb = try AlignedBuffer(byteCount: c.blockCount * layerKV * 2, what: "K cache")
        let vb = try AlignedBuffer(byteCount: c.blockCount * layerKV * 2, what: "V cache")
        cacheBuffers = [kb, vb]
        kCache = kb.raw.bindMemory(to: UInt16.self, capacity: c.blockCount * layerKV)
        vCache = vb.raw.bindMemory(to: UInt16.self, capacity: c.blockCount * layerKV)
        q8Row = (d / 32 * 34, dq / 32 * 34, ff / 32 * 34)
        one = try Scratch(rows: 1, d: d, dq: dq, qkvWidth: qkvWidth, ff: ff, ropeDim: ropeDim, blas: nil)
        decodeLogits = try AlignedBuffer(floats: vocab, what: "logits")
        attnScratchStride = 2 * contextLength + 128
        attnScratch = try AlignedBuffer(floats: model.threads * attnScratchStride, what: "attention scratch")
    }

    /// Drops the cache entries at positions >= `position` (no effect if it is >= the current one).
    public func truncate(to position: Int) {
        self.position = max(0, min(position, self.position))
    }

    /// Empties the cache.
    public func reset() { position = 0 }

    /// Appends `tokens` to the cache and returns the logits after the last one (vocabSize floats).
    public func evaluate(_ tokens: [Int32]) throws -> [Float] {
        try evaluate(tokens, logitsFrom: max(0, tokens.count - 1)) { Array($0) }
    }

    /// Appends `tokens` and returns the logits after every one of them.
    public func evaluateAll(_ tokens: [Int32]) throws -> [[Float]] {
        let v = vocab
        return try evaluate(tokens, logitsFrom: 0) { all in
            (0..<tokens.count).map { i in Array(all[(i * v)..<((i + 1) * v)]) }
        }
    }

    /// Appends `tokens` and hands `body` the logits after tokens[first...], row-major
    /// ((tokens.count - first) × vocabSize floats, valid only during the call).
    public func evaluate<R>(_ tokens: [Int32], logitsFrom first: Int,
                            _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard !tokens.isEmpty else { throw ModelError.invalidArgument("no tokens to evaluate") }
        guard first >= 0, first < tokens.count else {
            throw ModelError.invalidArgument("logitsFrom \(first) is outside 0..<\(tokens.count)")
        }
        try check(tokens)
        let rows = tokens.count - first
        let maxBatch = min(model.options.maxBatch, contextLength)
        try prepare(chunk: min(maxBatch, tokens.count), logitRows: rows)
        let out = rows == 1 ? decodeLogits.floats : batchLogits!.floats
        model.lock.lock()
        tokens.withUnsafeBufferPointer { tok in
            guard let base = tok.baseAddress else { return }
            var i = 0
            while i < tokens.count {
                let n = min(maxBatch, tokens.count - i)
                // Rows of this chunk whose logits are wanted, relative to the chunk.
                let lo = max(first, i) - i
                forward(base + i, n, outRows: lo < n ? lo..<n : 0..<0, logits: out + (max(first, i) - first) * vocab)
                i += n
            }
        }
        model.lock.unlock()
        // (outside the model lock: body may use other sessions of the same model)
        return try body(UnsafeBufferPointer(start: out, count: rows * vocab))
    }

    /// Evaluates one token on the int8 path; the logits stay valid until the next call.
    public func decode(_ token: Int32) throws -> UnsafeBufferPointer<Float> {
        try check(CollectionOfOne(token))
        model.lock.lock()
        defer { model.lock.unlock() }
        withUnsafePointer(to: token) { forward($0, 1, outRows: 0..<1, logits: decodeLogits.floats) }
        return UnsafeBufferPointer(start: decodeLogits.floats, count: vocab)
    }

    /// Rejects bad token ids and overflow before anything is written.
    private func check<C: Collection>(_ tokens: C) throws where C.Element == Int32 {
        guard position + tokens.count <= contextLength else {
            throw ModelError.contextOverflow(position: position, count: tokens.count, limit: contextLength)
        }
        for t in tokens where t < 0 || Int(t) >= vocab {
            throw ModelError.invalidToken(t, vocabularySize: vocab)
        }
    }

    // MARK: - The forward pass

    /// Runs n tokens at positions position..<position+n through the transformer, appends their
    /// K/V to the cache and writes the logits of batch rows `outRows` to `logits` (row-major).
    ///
    /// Two ways to multiply by the weights, chosen by batch size:
    /// - int8 (n < minBatchForBLAS, including decode): activations quantized to Q8_0 and
    ///   multiplied with the Q8_0 weights on the worker pool, attention with llama.cpp's f16
    ///   arithmetic — the same numbers llama.cpp computes;
    /// - BLAS (larger batches): OpenBLAS sgemm on Float weights, attention with sgemm and a
    ///   row softmax over the f16 cache.
    /// Nothing is allocated here once the session's scratch exists.
    private func forward(_ tokens: UnsafePointer<Int32>, _ n: Int, outRows: Range<Int>, logits: UnsafeMutablePointer<Float>) {
        let c = model.config, W = model.weights, pool = model.pool
        let blas = n >= model.options.minBatchForBLAS
        let s = n == 1 ? one : batchScratch()
        let pos0 = position
        let eps = c.rmsEpsilon
        if blas {
            // OpenBLAS brings its own threads: our idle workers must not spin while it runs.
            pool.setSpin(microseconds: 0)
        }
        defer { if blas { pool.setSpin(microseconds: LlamaModel.decodeSpinMicroseconds) } }

        // Token embeddings.                                              x: [n, d]
        let emb = W.tokenEmbedding
        let embRow = emb.cols / emb.type.blockSize * emb.type.bytesPerBlock
        for i in 0..<n {
            Weights.dequantize(type: emb.type, from: emb.data + Int(tokens[i]) * embRow, count: d, into: s.x + i * d)
        }
        // Rotation table for each position.                             cs: [n, 2 ropeDim]
        for i in 0..<n {
            ek_rope_cache(s.cs + i * 2 * ropeDim, Int64(pos0 + i), Int64(ropeDim), c.ropeFreqBase, freqScale, W.ropeFreqs)
        }

        for l in 0..<c.blockCount {
            let L = W.layers[l]
            // BLAS: this layer's weights as Float, fused [Wq;Wk;Wv] | Wo | [Wg;Wu] | Wd.
            let F: UnsafePointer<Float>? = blas ? floatWeights(layer: l) : nil
            let kc = kCache + l * layerKV, vc = vCache + l * layerKV

            // ---- self-attention ----
            // xb = rmsnorm(x) * attn_norm                                 xb: [n, d]
            forEachRow(n, parallel: blas) { i in
                ek_rmsnorm_f32(s.xb + i * d, s.x + i * d, L.attnNorm, Int64(d), eps)
                if blas { roundToQ8(s.xb + i * d, width: d, scratch: s.xq + i * q8Row.d) }
            }
            // q | k | v = xb · [Wq; Wk; Wv]^T                             qkv: [n, dq + 2 dkv]
            if let F {
                gemm(n, qkvWidth, d, s.xb, d, F + model.floatLayout.q, d, s.qkv, qkvWidth)
            } else {
                quantizeRows(s.xb, n, into: s.xq)
                var t = matvecTask(s.xq, q8Row.d, cols: d, n, yStride: qkvWidth)
                t.nparts = 3
                t.w = (L.q.q8, L.k.q8, L.v.q8)
                t.y = (s.qkv, s.qkv + dq, s.qkv + dq + dkv)
                t.rows = (Int64(dq), Int64(dkv), Int64(dkv))
                pool.run(ek_matvec_task_run, context: &t)
            }
            // RoPE on q and k (adjacent pairs); k, v rows → f16 cache at position pos0 + i.
            forEachRow(n, parallel: blas) { i in
                let row = s.qkv + i * qkvWidth, cs = s.cs + i * 2 * ropeDim
                ek_rope_normal(row, Int64(nh), Int64(hd), Int64(ropeDim), cs)
                ek_rope_normal(row + dq, Int64(nkv), Int64(hd), Int64(ropeDim), cs)
                for g in 0..<nkv {
                    ek_f32_to_f16_row(row + dq + g * hd, kc + g * contextLength * hd + (pos0 + i) * hd, Int64(hd))
                    ek_f32_to_f16_strided(row + dq + dkv + g * hd, vc + g * hd * contextLength + pos0 + i,
                                          Int64(hd), Int64(contextLength))
                }
            }
            // att = softmax(q·K^T / sqrt(hd), causal) · V per head       att: [n, dq]
            if blas {
                blasAttention(s, n: n, pos0: pos0, kc: kc, vc: vc)
            } else {
                let mode = model.options.attention == .llamaCppFlashAttention ? EK_ATTN_GGML_FLASH
                    : n == 1 ? EK_ATTN_GGML_VEC : EK_ATTN_GGML_TINYBLAS
                var a = ek_attn_task(q: s.qkv, q_stride: Int64(qkvWidth), k: kc, vt: vc, kv_len: Int64(contextLength),
                                     out: s.att, out_stride: Int64(dq), out_q8: s.attq, out_q8_stride: Int64(q8Row.dq),
                                     scratch: attnScratch.floats, scratch_stride: Int64(attnScratchStride),
                                     n_tok: Int64(n), pos0: Int64(pos0), n_head: Int64(nh), n_head_kv: Int64(nkv),
                                     head_dim: Int64(hd), scale: attnScale, mode: Int32(mode.rawValue))
                pool.run(ek_attn_task_run, context: &a)
            }
            // x += att · Wo^T                                             x: [n, d]
            if let F {
                forEachRow(n, parallel: true) { i in roundToQ8(s.att + i * dq, width: dq, scratch: s.attq + i * q8Row.dq) }
                gemm(n, d, dq, s.att, dq, F + model.floatLayout.o, dq, s.x, d, beta: 1)
            } else {
                var t = matvecTask(s.attq, q8Row.dq, cols: dq, n, yStride: d)
                t.w.0 = L.o.q8; t.y.0 = s.xb; t.acc.0 = s.x; t.rows.0 = Int64(d)
                pool.run(ek_matvec_task_run, context: &t)
            }

            // ---- feed-forward (SwiGLU) ----
            // xb = rmsnorm(x) * ffn_norm                                   xb: [n, d]
            forEachRow(n, parallel: blas) { i in
                ek_rmsnorm_f32(s.xb + i * d, s.x + i * d, L.ffnNorm, Int64(d), eps)
                if blas { roundToQ8(s.xb + i * d, width: d, scratch: s.xq + i * q8Row.d) }
            }
            // h = silu(xb · Wg^T) * (xb · Wu^T)                           h: [n, ff] over the gate half of gu
            if let F {
                gemm(n, 2 * ff, d, s.xb, d, F + model.floatLayout.gate, d, s.gu, 2 * ff)
                forEachRow(n, parallel: true) { i in
                    let row = s.gu + i * 2 * ff
                    ek_silu_mul_f32(row, row, row + ff, Int64(ff))
                    roundToQ8(row, width: ff, scratch: s.hq + i * q8Row.ff)
                }
            } else {
                quantizeRows(s.xb, n, into: s.xq)
                var t = ek_ffn_task(xq: s.xq, xq_stride: Int64(q8Row.d), ncols: Int64(d), n_tok: Int64(n),
                                    wg: L.gate.q8, wu: L.up.q8, rows: Int64(ff),
                                    g: s.gu, u: s.gu + ff, h: s.gu, stride: Int64(2 * ff),
                                    hq: s.hq, hq_stride: Int64(q8Row.ff))
                pool.run(ek_ffn_task_run, context: &t)
            }
            // x += h · Wd^T                                               x: [n, d]
            if let F {
                gemm(n, d, ff, s.gu, 2 * ff, F + model.floatLayout.down, ff, s.x, d, beta: 1)
            } else {
                var t = matvecTask(s.hq, q8Row.ff, cols: ff, n, yStride: d)
                t.w.0 = L.down.q8; t.y.0 = s.xb; t.acc.0 = s.x; t.rows.0 = Int64(d)
                pool.run(ek_matvec_task_run, context: &t)
            }
        }
        position = pos0 + n

        // ---- output ----
        // logits[r] = (rmsnorm(x[r]) * output_norm) · Wout^T for the wanted rows   [rows, vocab]
        guard !outRows.isEmpty else { return }
        let r0 = outRows.lowerBound, rows = outRows.count
        let wide = blas && rows > 1
        forEachRow(rows, parallel: wide) { j in
            let r = r0 + j
            ek_rmsnorm_f32(s.xb + r * d, s.x + r * d, W.outputNorm, Int64(d), eps)
            if wide { roundToQ8(s.xb + r * d, width: d, scratch: s.xq + r * q8Row.d) }
        }
        if wide {
            blasOutput(s.xb + r0 * d, rows: rows, logits: logits)
        } else {
            quantizeRows(s.xb + r0 * d, rows, into: s.xq)
            var t = matvecTask(s.xq, q8Row.d, cols: d, rows, yStride: vocab)
            t.w.0 = W.output.q8; t.y.0 = logits; t.rows.0 = Int64(vocab)
            pool.run(ek_matvec_task_run, context: &t)
        }
    }

    /// Q8_0 rows (ggml's activation quantizer) of n float rows of width d.
    @inline(__always)
    private func quantizeRows(_ x: UnsafePointer<Float>, _ n: Int, into q: UnsafeMutableRawPointer) {
        for i in 0..<n { ek_quantize_row_q8_0(x + i * d, q + i * q8Row.d, Int64(d)) }
    }

    /// Rounds a row of activations to the values its Q8_0 quantization represents, in place, so
    /// the float products of the BLAS path see what llama.cpp's int8 products see (it quantizes
    /// every activation row to Q8_0 before multiplying); only the order of the sums differs.
    @inline(__always)
    private func roundToQ8(_ x: UnsafeMutablePointer<Float>, width: Int, scratch: UnsafeMutableRawPointer) {
        ek_quantize_row_q8_0(x, scratch, Int64(width))
        ek_dequantize_row_q8_0(scratch, x, Int64(width))
    }

    /// body(i) for i in 0..<n: split across the worker pool for batches, inline otherwise.
    @inline(__always)
    private func forEachRow(_ n: Int, parallel: Bool, _ body: (Int) -> Void) {
        if parallel && n > 1 {
            model.pool.run { ith, nth in
                for i in (n * ith / nth)..<(n * (ith + 1) / nth) { body(i) }
            }
        } else {
            for i in 0..<n { body(i) }
        }
    }

    /// A one-part int8 matrix-vector task over n tokens (fill in w/y/acc/rows).
    @inline(__always)
    private func matvecTask(_ xq: UnsafeMutableRawPointer, _ xqStride: Int, cols: Int, _ n: Int, yStride: Int) -> ek_matvec_task {
        var t = ek_matvec_task()
        t.xq = UnsafeRawPointer(xq); t.xq_stride = Int64(xqStride); t.ncols = Int64(cols)
        t.n_tok = Int64(n); t.y_stride = Int64(yStride); t.nparts = 1
        return t
    }

    // MARK: - BLAS pieces

    /// C = alpha · A · B^T + beta · C (row-major; B given as rows of length k), or A · B when !transB.
    @inline(__always)
    private func gemm(_ m: Int, _ n: Int, _ k: Int, _ a: UnsafePointer<Float>, _ lda: Int,
                      _ b: UnsafePointer<Float>, _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int,
                      alpha: Float = 1, beta: Float = 0, transB: Bool = true) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Causal attention of the n batch rows (positions pos0..<pos0+n) over the cache, one KV
    /// head at a time with its query heads stacked: for each block of query tokens,
    /// S = Q·K^T/sqrt(hd) (one sgemm for all heads of the group), masked softmax per row
    /// (rows split across the pool), O = P·V (sgemm). K and V are read back from the f16 cache;
    /// q and P are rounded to halves as llama.cpp's f16 products round them.
    private func blasAttention(_ s: Scratch, n: Int, pos0: Int, kc: UnsafeMutablePointer<UInt16>, vc: UnsafeMutablePointer<UInt16>) {
        guard let b = s.blas else { return }
        let group = nh / nkv, keysTotal = pos0 + n
        let ctx = contextLength, hd = hd, qkvWidth = qkvWidth, dq = dq
        nonisolated(unsafe) let qkv = s.qkv, att = s.att, K = b.k, Vt = b.v, Qp = b.q, Op = b.o, S = b.scores
        for g in 0..<nkv {
            // K[keysTotal, hd] and V^T[hd, keysTotal] of this KV head as Floats
            nonisolated(unsafe) let kg = kc + g * ctx * hd, vg = vc + g * hd * ctx
            model.pool.run { ith, nth in
                if ith == 0 || nth == 1 { ek_f16_to_f32_row(kg, K, Int64(keysTotal * hd)) }
                if ith == nth - 1 {
                    for e in 0..<hd { ek_f16_to_f32_row(vg + e * ctx, Vt + e * keysTotal, Int64(keysTotal)) }
                }
            }
            var i0 = 0
            while i0 < n {
                let i1 = min(n, i0 + attentionBlock), tokens = i1 - i0, rows = tokens * group, keys = pos0 + i1
                // Qp[(i - i0) * group + j] = half-rounded q of token i, head g*group + j
                for i in i0..<i1 {
                    let dst = Qp + (i - i0) * group * hd
                    dst.update(from: qkv + i * qkvWidth + g * group * hd, count: group * hd)
                    ek_round_f16_f32(dst, Int64(group * hd))
                }
                // S[rows, keys] = scale · Qp · K[0..<keys]^T
                gemm(rows, keys, hd, Qp, hd, K, hd, S, keys, alpha: attnScale)
                let base = pos0 + i0
                model.pool.run { ith, nth in
                    for r in (rows * ith / nth)..<(rows * (ith + 1) / nth) {
                        let valid = base + r / group + 1
                        let row = S + r * keys
                        ek_softmax_f32(row, Int64(valid), 1)
                        ek_round_f16_f32(row, Int64(valid))
                        if valid < keys { (row + valid).update(repeating: 0, count: keys - valid) }
                    }
                }
                // Op[rows, hd] = P · V[0..<keys] = P · (V^T[:, 0..<keys])^T, then into att
                gemm(rows, hd, keys, S, keys, Vt, keysTotal, Op, hd)
                for i in i0..<i1 {
                    (att + i * dq + g * group * hd).update(from: Op + (i - i0) * group * hd, count: group * hd)
                }
                i0 = i1
            }
        }
    }

    /// Logits for several rows of normalized activations: the output matrix is dequantized in
    /// chunks of rows and multiplied with sgemm.
    private func blasOutput(_ xb: UnsafePointer<Float>, rows: Int, logits: UnsafeMutablePointer<Float>) {
        let out = model.weights.output
        guard let chunk = outputChunk?.floats else { return }   // allocated by prepare
        let rowBytes = out.cols / out.type.blockSize * out.type.bytesPerBlock
        var r0 = 0
        while r0 < vocab {
            let r1 = min(vocab, r0 + outputChunkRows)
            var t = ek_dequant_task()
            t.nparts = 1
            t.type.0 = out.typeCode
            t.src.0 = out.data + r0 * rowBytes
            t.dst.0 = chunk
            t.count.0 = Int64((r1 - r0) * d)
            model.pool.run(ek_dequant_task_run, context: &t)
            gemm(rows, r1 - r0, d, xb, d, chunk, d, logits + r0, vocab)
            r0 = r1
        }
    }

    /// This layer's Float weights: the resident copy, or dequantized into the session's buffer.
    private func floatWeights(layer l: Int) -> UnsafePointer<Float> {
        if !model.residentLayers.isEmpty { return UnsafePointer(model.residentLayers[l].floats) }
        let buf = layerFloats!.floats   // allocated by prepare
        LlamaModel.dequantizeLayer(model.weights.layers[l], layout: model.floatLayout, into: buf, pool: model.pool)
        return UnsafePointer(buf)
    }

    private func batchScratch() -> Scratch { many ?? one }   // allocated by prepare

    /// Allocates (once, or larger) what a call with chunks of `chunk` tokens and `logitRows`
    /// logit rows needs, before anything runs: failure is a typed error and changes nothing.
    private func prepare(chunk: Int, logitRows: Int) throws {
        if logitRows > 1, (batchLogits?.byteCount ?? 0) < logitRows * vocab * 4 {
            batchLogits = nil
            batchLogits = try AlignedBuffer(floats: logitRows * vocab, what: "logits of \(logitRows) tokens")
        }
        guard chunk > 1 else { return }
        let rows = min(model.options.maxBatch, contextLength)
        let blas = chunk >= model.options.minBatchForBLAS
        if many == nil || (blas && many?.blas == nil) {
            let b = blas ? try BLASScratch(keys: contextLength, hd: hd, queryRows: attentionBlock * (nh / nkv)) : nil
            many = try Scratch(rows: rows, d: d, dq: dq, qkvWidth: qkvWidth, ff: ff, ropeDim: ropeDim, blas: b)
        }
        if blas {
            if model.residentLayers.isEmpty, layerFloats == nil {
                layerFloats = try AlignedBuffer(floats: model.floatLayout.total, what: "layer weights as Float")
            }
            if logitRows > 1, outputChunk == nil {
                outputChunk = try AlignedBuffer(floats: outputChunkRows * d, what: "output matrix chunk as Float")
            }
        }
    }
}

/// Activations of up to `rows` tokens.
final class Scratch {
    let x: UnsafeMutablePointer<Float>      // [rows, d] residual stream
    let xb: UnsafeMutablePointer<Float>     // [rows, d] normalized / temporary
    let qkv: UnsafeMutablePointer<Float>    // [rows, dq + 2 dkv]
    let att: UnsafeMutablePointer<Float>    // [rows, dq]
    let gu: UnsafeMutablePointer<Float>     // [rows, 2 ff] gate | up, then h over the gate half
    let cs: UnsafeMutablePointer<Float>     // [rows, 2 ropeDim]
    let xq: UnsafeMutableRawPointer         // [rows] Q8_0 rows of d
    let attq: UnsafeMutableRawPointer       // [rows] Q8_0 rows of dq
    let hq: UnsafeMutableRawPointer         // [rows] Q8_0 rows of ff
    let blas: BLASScratch?
    private let buffers: [AlignedBuffer]

    init(rows: Int, d: Int, dq: Int, qkvWidth: Int, ff: Int, ropeDim: Int, blas: BLASScratch?) throws {
        let f = try [d, d, qkvWidth, dq, 2 * ff, 2 * ropeDim].map { try AlignedBuffer(floats: rows * $0, what: "activations") }
        let q = try [d, dq, ff].map { try AlignedBuffer(byteCount: rows * ($0 / 32 * 34), what: "Q8_0 activations") }
        buffers = f + q
        x = f[0].floats; xb = f[1].floats; qkv = f[2].floats; att = f[3].floats
        gu = f[4].floats; cs = f[5].floats
        xq = q[0].raw; attq = q[1].raw; hq = q[2].raw
        self.blas = blas
    }
}

/// Float K/V of one KV head, and the stacked queries, scores and outputs of one block of
/// query rows (BLAS attention).
final class BLASScratch {
    let k: UnsafeMutablePointer<Float>        // [keys, hd]
    let v: UnsafeMutablePointer<Float>        // [hd, keys]
    let q: UnsafeMutablePointer<Float>        // [queryRows, hd]
    let o: UnsafeMutablePointer<Float>        // [queryRows, hd]
    let scores: UnsafeMutablePointer<Float>   // [queryRows, keys]
    private let buffers: [AlignedBuffer]

    init(keys: Int, hd: Int, queryRows: Int) throws {
        let b = try [keys * hd, keys * hd, queryRows * hd, queryRows * hd, queryRows * keys].map {
            try AlignedBuffer(floats: $0, what: "attention scratch")
        }
        buffers = b
        k = b[0].floats; v = b[1].floats; q = b[2].floats; o = b[3].floats; scores = b[4].floats
    }
}
