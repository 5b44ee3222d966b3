import CKernels
import Foundation
import GGUF

/// One conversation: a KV cache for `contextLength` positions plus the scratch memory of the
/// forward pass. Layers with sliding-window attention keep only the positions they can still
/// see (the window, plus two batches: one being evaluated and one of history that `truncate`
/// can return to), unless `Options.fullSlidingWindowCache` asks for the full length. Not thread-safe: use a session from one thread at a time (sessions of the
/// same model may live on different threads; their evaluations take turns).
public final class TransformerSession {
    public let model: TransformerModel
    /// Capacity of the KV cache in tokens.
    public let contextLength: Int
    /// Tokens currently in the KV cache (the position the next token is evaluated at).
    public internal(set) var position: Int = 0

    /// KV cache as IEEE halves, like llama.cpp's default: per layer, K as [kv head][position][hd]
    /// and V transposed, [kv head][hd][position] (llama.cpp's layout without flash attention).
    let kCache: UnsafeMutablePointer<UInt16>
    let vCache: UnsafeMutablePointer<UInt16>
    /// Per layer: positions its cache holds (contextLength, or `slidingCapacity` for sliding layers).
    let kvCapacity: [Int]
    /// Per layer: offset in halves of its K in kCache and of its V in vCache (nkv · capacity · hd each).
    let kvOffset: [Int]
    /// Positions a sliding layer's cache holds (= contextLength when it keeps everything).
    public let slidingCapacity: Int
    /// Position held by slot 0 of the sliding layers' caches: they hold positions
    /// slidingBase..<position (the oldest dropped in steps as the conversation grows).
    public private(set) var slidingBase = 0
    /// Bytes of the K and V caches.
    public let kvCacheBytes: Int
    private let cacheBuffers: [AlignedBuffer]
    /// Per-thread attention scratch (scores and probabilities of one row).
    let attnScratch: AlignedBuffer
    let attnScratchStride: Int

    /// Scratch for one token (decode) and, allocated on first use, for a batch.
    private let one: Scratch
    private var many: Scratch?
    fileprivate let decodeLogits: AlignedBuffer   // [vocab]
    fileprivate var batchLogits: AlignedBuffer?   // [rows × vocab], grown on demand
    /// Float weights of the matrices one BLAS product uses (allocated on first BLAS batch).
    var floatWeights: AlignedBuffer?
    private lazy var forwardPass = Forward(session: self)

    init(model: TransformerModel, contextLength: Int) throws {
        self.model = model
        self.contextLength = contextLength
        let c = model.config
        let sliding = Self.slidingCapacity(c, model.options, contextLength: contextLength)
        slidingCapacity = sliding
        let caps = c.slidingLayers.map { $0 ? sliding : contextLength }
        kvCapacity = caps
        var offsets: [Int] = [], total = 0
        for cap in caps {
            offsets.append(total)
            total += c.headCountKV * cap * c.headDimension
        }
        kvOffset = offsets
        kvCacheBytes = 2 * 2 * total
        let kb = try AlignedBuffer(byteCount: max(2, total * 2), what: "K cache")
        let vb = try AlignedBuffer(byteCount: max(2, total * 2), what: "V cache")
        cacheBuffers = [kb, vb]
        kCache = kb.raw.bindMemory(to: UInt16.self, capacity: total)
        vCache = vb.raw.bindMemory(to: UInt16.self, capacity: total)
        one = try Scratch(rows: 1, model: model, contextLength: contextLength, blas: false)
        decodeLogits = try AlignedBuffer(floats: c.vocabSize, what: "logits")
        attnScratchStride = max(1, model.config.headCount / max(1, model.config.headCountKV)) * (3 * contextLength + 256)   // per head of a KV group
        attnScratch = try AlignedBuffer(floats: model.threads * attnScratchStride, what: "attention scratch")
    }

    /// Positions a sliding layer keeps: the window (the next token sees window - 1 earlier keys),
    /// a batch being appended, and a batch of history to truncate back into.
    static func slidingCapacity(_ c: ModelConfig, _ o: TransformerModel.Options, contextLength: Int) -> Int {
        guard let w = c.slidingWindow, c.slidingLayers.contains(true), !o.fullSlidingWindowCache else { return contextLength }
        let batch = min(max(1, o.maxBatch), contextLength)
        return min(contextLength, w + 2 * batch)
    }

    /// Bytes of the K and V caches of a session of `contextLength` positions.
    static func kvCacheBytes(_ c: ModelConfig, _ o: TransformerModel.Options, contextLength: Int) -> Int {
        let sliding = slidingCapacity(c, o, contextLength: contextLength)
        let positions = c.slidingLayers.reduce(0) { $0 + ($1 ? sliding : contextLength) }
        return 2 * 2 * c.headCountKV * c.headDimension * positions
    }

    /// Drops the cache entries at positions >= `position` (no effect if it is >= the current one)
    /// and returns the position the cache now ends at: `position`, or 0 when sliding-window
    /// layers no longer hold the keys a token there would see (they keep only recent positions;
    /// the caller then evaluates everything again, as llama.cpp does with its SWA cache).
    @discardableResult
    public func truncate(to position: Int) -> Int {
        var p = max(0, min(position, self.position))
        if slidingBase > 0, let w = model.config.slidingWindow, slidingBase > max(0, p - w + 1) { p = 0 }
        self.position = p
        if p == 0 { slidingBase = 0 }
        return p
    }

    /// Replaces this cache's contents with the first `count` positions of `source` (another
    /// session of the same model), so a prompt sharing that prefix need not evaluate it again.
    /// Returns false, changing nothing, when that is not possible: another model, `count` beyond
    /// what either cache holds, or sliding-window layers of `source` that no longer hold
    /// position 0.
    @discardableResult
    public func copyPrefix(from source: TransformerSession, count: Int) -> Bool {
        guard source !== self, source.model === model, count >= 0, count <= source.position,
              count <= contextLength, source.slidingBase == 0 else { return false }
        let c = model.config, hd = c.headDimension
        for l in 0..<c.blockCount where count > kvCapacity[l] || count > source.kvCapacity[l] { return false }
        for l in 0..<c.blockCount where count > 0 {
            let capD = kvCapacity[l], capS = source.kvCapacity[l]
            let kd = kCache + kvOffset[l], ks = source.kCache + source.kvOffset[l]
            let vd = vCache + kvOffset[l], vs = source.vCache + source.kvOffset[l]
            for g in 0..<c.headCountKV {
                // K: [kv head][position][hd]; V: [kv head][hd][position]
                memcpy(kd + g * capD * hd, ks + g * capS * hd, count * hd * 2)
                for e in 0..<hd {
                    memcpy(vd + (g * hd + e) * capD, vs + (g * hd + e) * capS, count * 2)
                }
            }
        }
        position = count
        slidingBase = 0
        return true
    }

    /// Empties the cache.
    public func reset() {
        position = 0
        slidingBase = 0
    }

    /// Appends `tokens` to the cache and returns the logits after the last one (vocabSize floats).
    public func evaluate(_ tokens: [Int32]) throws -> [Float] {
        try evaluate(tokens, logitsFrom: max(0, tokens.count - 1)) { Array($0) }
    }

    /// Appends `tokens` and returns the logits after every one of them.
    public func evaluateAll(_ tokens: [Int32]) throws -> [[Float]] {
        let v = model.config.vocabSize
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
        let vocab = model.config.vocabSize
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
                run(base + i, n, outRows: lo < n ? lo..<n : 0..<0, logits: out + (max(first, i) - first) * vocab)
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
        withUnsafePointer(to: token) { run($0, 1, outRows: 0..<1, logits: decodeLogits.floats) }
        return UnsafeBufferPointer(start: decodeLogits.floats, count: model.config.vocabSize)
    }

    /// Rejects bad token ids and overflow before anything is written.
    fileprivate func check<C: Collection>(_ tokens: C) throws where C.Element == Int32 {
        guard position + tokens.count <= contextLength else {
            throw ModelError.contextOverflow(position: position, count: tokens.count, limit: contextLength)
        }
        let vocab = model.config.vocabSize
        for t in tokens where t < 0 || Int(t) >= vocab {
            throw ModelError.invalidToken(t, vocabularySize: vocab)
        }
    }

    private func run(_ tokens: UnsafePointer<Int32>, _ n: Int, outRows: Range<Int>, logits: UnsafeMutablePointer<Float>) {
        let f = begin(tokens, [(self, n)])
        f.output(rows: outRows, logits: logits)
        f.end()
    }

    /// Runs the blocks over the sessions' rows (in order, `counts` rows each) with this session's
    /// scratch, and advances each session's position; the caller then takes the logits it wants
    /// from the returned pass and ends it. Call with the model lock held.
    fileprivate func begin(_ tokens: UnsafePointer<Int32>, _ parts: [(TransformerSession, Int)]) -> Forward {
        var segments: [Forward.Segment] = [], start = 0
        for (session, count) in parts {
            if session.position + count - session.slidingBase > session.slidingCapacity { session.dropOldSlidingPositions() }
            segments.append(Forward.Segment(session: session, start: start, count: count, pos0: session.position))
            start += count
        }
        let f = forwardPass
        f.begin(scratch: start == 1 ? one : (many ?? one), tokens: tokens, n: start, segments: segments)
        for l in 0..<model.config.blockCount {
            model.architecture.block(f, l, model.weights.layers[l], model.config)
        }
        for (session, count) in parts { session.position += count }
        return f
    }

    /// Makes room in the sliding layers' caches for a batch: keeps the window - 1 keys the next
    /// token sees plus one batch of history, and moves them to the front (one memmove per K
    /// and V row, once every batch of positions at most).
    fileprivate func dropOldSlidingPositions() {
        let c = model.config
        guard let w = c.slidingWindow else { return }
        let batch = min(max(1, model.options.maxBatch), contextLength)
        let newBase = max(slidingBase, position - (w - 1) - batch)
        let delta = newBase - slidingBase, keep = position - newBase
        guard delta > 0 else { return }
        let hd = c.headDimension, cap = slidingCapacity
        for l in 0..<c.blockCount where c.slidingLayers[l] {
            let k = kCache + kvOffset[l], v = vCache + kvOffset[l]
            for g in 0..<c.headCountKV {
                let kg = k + g * cap * hd
                memmove(kg, kg + delta * hd, keep * hd * 2)
                for e in 0..<hd {
                    let row = v + (g * hd + e) * cap
                    memmove(row, row + delta, keep * 2)
                }
            }
        }
        slidingBase = newBase
    }

    /// Allocates (once, or larger) what a call with chunks of `chunk` tokens and `logitRows`
    /// logit rows needs, before anything runs: failure is a typed error and changes nothing.
    fileprivate func prepare(chunk: Int, logitRows: Int) throws {
        let vocab = model.config.vocabSize
        if logitRows > 1, (batchLogits?.byteCount ?? 0) < logitRows * vocab * 4 {
            batchLogits = nil
            batchLogits = try AlignedBuffer(floats: logitRows * vocab, what: "logits of \(logitRows) tokens")
        }
        guard chunk > 1 else { return }
        let rows = min(model.options.maxBatch, contextLength)
        let blas = chunk >= model.options.minBatchForBLAS
        if many == nil || (blas && many?.blas == nil) {
            many = nil
            many = try Scratch(rows: rows, model: model, contextLength: contextLength, blas: blas)
        }
        if blas, floatWeights == nil {
            floatWeights = try AlignedBuffer(floats: model.plan.floatWeightElements, what: "weights as Float (BLAS prefill)")
        }
    }
}

/// The tokens one session contributes to a step of several sessions.
public struct SequenceTokens {
    public let session: TransformerSession
    public let tokens: [Int32]
    public init(_ session: TransformerSession, _ tokens: [Int32]) {
        self.session = session
        self.tokens = tokens
    }
}

extension TransformerModel {
    /// Batches of up to this many tokens multiply with the single-token kernels row block by row
    /// block rather than the tiled batch kernels (the same results; for benchmarks). Default 4.
    public static var smallBatchTokens: Int {
        get { Int(ek_small_batch()) }
        set { ek_set_small_batch(Int32(clamping: newValue)) }
    }

    /// Chooses the kernel level ("scalar", "avx2", "avx512vnni") instead of the best one this CPU
    /// runs, for the products and the other ops of every model in the process (benchmarks and
    /// tests of the other levels; not while a forward pass runs). Returns false, changing
    /// nothing, when the CPU cannot run it or the name is unknown.
    @discardableResult
    public static func forceKernels(_ name: String) -> Bool {
        guard let level = ["scalar", "avx2", "avx512vnni"].firstIndex(of: name), ek_force_kernel(name) == 0 else { return false }
        _ = ek_ops_force_impl(Int32(level))
        _ = ek_matvec_ggml_force(Int32(level))
        return true
    }

    /// Back to the best kernels this CPU runs (after `forceKernels`).
    public static func resetKernels() {
        // (each force fails, changing nothing, above what the CPU runs: the first that works is the best)
        _ = ["avx512vnni", "avx2", "scalar"].first { (name: String) in ek_force_kernel(name) == 0 }
        _ = ([2, 1, 0] as [Int32]).first { ek_ops_force_impl($0) == 0 }
        _ = ([2, 1, 0] as [Int32]).first { ek_matvec_ggml_force($0) == 0 }
    }

    /// Largest number of tokens one `evaluate(_:_:)` step takes.
    public var maxStepTokens: Int { max(1, options.maxBatch) }

    /// Continuous batching: appends each part's tokens to its own session in one forward pass
    /// (the weights are read once for all of them) and hands `body` the logits after the last
    /// token of each part, row k for parts[k] (parts.count × vocabSize floats, valid only during
    /// the call). Every token gets the arithmetic it gets alone, so a session's logits do not
    /// depend on what it was batched with. The sessions must be distinct sessions of this model;
    /// the parts hold 1...`maxStepTokens` tokens in all. On error nothing is written.
    public func evaluate<R>(_ parts: [SequenceTokens], _ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        guard let host = parts.max(by: { $0.session.contextLength < $1.session.contextLength })?.session else {
            throw ModelError.invalidArgument("no sequences to evaluate")
        }
        var seen = Set<ObjectIdentifier>(), total = 0
        for p in parts {
            guard p.session.model === self else { throw ModelError.invalidArgument("a session of another model was passed to evaluate") }
            guard seen.insert(ObjectIdentifier(p.session)).inserted else {
                throw ModelError.invalidArgument("a session appears twice in one step")
            }
            guard !p.tokens.isEmpty else { throw ModelError.invalidArgument("no tokens to evaluate for a sequence") }
            try p.session.check(p.tokens)
            total += p.tokens.count
        }
        let limit = min(maxStepTokens, host.contextLength)
        guard total <= limit else {
            throw ModelError.invalidArgument("a step takes at most \(limit) tokens, got \(total)")
        }
        try host.prepare(chunk: total, logitRows: parts.count)
        let out = parts.count == 1 ? host.decodeLogits.floats : host.batchLogits!.floats
        let tokens = parts.flatMap(\.tokens)
        var last: [Int] = [], end = 0
        for p in parts {
            end += p.tokens.count
            last.append(end - 1)
        }
        lock.lock()
        tokens.withUnsafeBufferPointer { tok in
            let f = host.begin(tok.baseAddress!, parts.map { ($0.session, $0.tokens.count) })
            f.output(rows: last, logits: out)
            f.end()
        }
        lock.unlock()
        return try body(UnsafeBufferPointer(start: out, count: parts.count * config.vocabSize))
    }
}

/// Activations of up to `rows` tokens.
final class Scratch {
    let rows: Int
    let x: UnsafeMutablePointer<Float>      // [rows, d] residual stream
    let xb: UnsafeMutablePointer<Float>     // [rows, d] normalized input of a projection
    let tmp: UnsafeMutablePointer<Float>    // [rows, d] a sub-layer's output before the residual add
    let qkv: UnsafeMutablePointer<Float>    // [rows, dq + dkv + dv]
    let att: UnsafeMutablePointer<Float>    // [rows, heads·dv]
    let gu: UnsafeMutablePointer<Float>     // [rows, 2 ff] gate | up, then h over the gate half
    let csGlobal: UnsafeMutablePointer<Float>   // [rows, 2 ropeDim] RoPE table of global layers
    let csSliding: UnsafeMutablePointer<Float>  // [rows, 2 ropeDim] RoPE table of sliding layers
    /// Activations quantized for the dot products: 3 slots (one per activation format in use
    /// by one product) of `rows` rows of at most `actRowBytes` bytes.
    let act: UnsafeMutableRawPointer
    let actRowBytes: Int
    /// Per pool thread, `Forward.fusedQuantizeRows` rows of `actRowBytes` (batches of a few rows,
    /// quantized by every thread for itself); nil for a one-row scratch.
    let actThreads: UnsafeMutableRawPointer?
    /// [rows, max width] activations rounded through a format (BLAS path).
    let rounded: UnsafeMutablePointer<Float>?
    let blas: BLASScratch?
    private let buffers: [AlignedBuffer]

    init(rows: Int, model: TransformerModel, contextLength: Int, blas useBLAS: Bool) throws {
        let c = model.config
        let d = c.embeddingLength, ff = c.feedForwardLength, rd = c.ropeDimensionCount
        let widths = [d, d, d, model.plan.qkvWidth, c.attentionOutputDimension, 2 * ff, 2 * rd, 2 * rd]
        var f = try widths.map { try AlignedBuffer(floats: rows * $0, what: "activations") }
        self.rows = rows
        x = f[0].floats; xb = f[1].floats; tmp = f[2].floats; qkv = f[3].floats; att = f[4].floats
        gu = f[5].floats; csGlobal = f[6].floats; csSliding = f[7].floats
        // 4 bytes per element bounds every activation format (F32 is the widest), plus a block's slack.
        actRowBytes = 4 * model.plan.maxColumns + 64
        let a = try AlignedBuffer(byteCount: 3 * rows * actRowBytes, what: "quantized activations")
        act = a.raw
        f.append(a)
        if rows > 1 {
            let t = try AlignedBuffer(byteCount: model.threads * Forward.fusedQuantizeRows * actRowBytes, what: "quantized activations per thread")
            actThreads = t.raw
            f.append(t)
        } else {
            actThreads = nil
        }
        if useBLAS {
            let r = try AlignedBuffer(floats: rows * model.plan.maxColumns, what: "rounded activations")
            rounded = r.floats
            f.append(r)
            blas = try BLASScratch(keys: contextLength, hd: c.headDimension,
                                   queryRows: Forward.attentionBlock * (c.headCount / c.headCountKV))
        } else {
            rounded = nil
            blas = nil
        }
        buffers = f
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
