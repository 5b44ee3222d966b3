import CKernels
import COpenBLAS
import Foundation
import GGUF

/// A llama-architecture model (Llama 2/3, Mistral, SmolLM2, TinyLlama) loaded from a GGUF file.
///
/// Weights stay in the file mapping (Q8_0 used as stored; other supported types are converted
/// to a Q8_0 copy for the int8 decode path). One model can serve several sessions; their
/// evaluations are serialized (they share the worker pool).
public final class LlamaModel: @unchecked Sendable {
    /// Where prefill (batched) matrix products find Float weights.
    public enum PrefillWeights: String, Sendable, Codable, CaseIterable {
        /// Dequantize each layer into a reused per-session buffer as the batch reaches it
        /// (SmolLM2-135M: 14 MB per session; costs the dequantization per batch).
        case dequantizePerLayer
        /// Keep Float copies of all layer weights (about 4x the Q8_0 size resident).
        case resident
    }

    /// Which of llama.cpp's CPU attention computations to reproduce (bit for bit on the int8 path).
    public enum AttentionArithmetic: String, Sendable, Codable, CaseIterable {
        /// mul_mat + soft_max over the f16 cache (llama.cpp with flash attention off; the default
        /// of llama-cpp-python's `Llama` class).
        case llamaCpp
        /// ggml's flash-attention kernel (llama.cpp with flash attention on, e.g. `-fa on`).
        case llamaCppFlashAttention
    }

    public struct Options: Sendable {
        /// Worker threads including the caller; 0 = number of cores.
        public var threads: Int = 0
        /// Context length of sessions made without an explicit length: min(model's window, this).
        public var defaultContextCap: Int = 4096
        /// Largest batch evaluated at once (longer inputs run in chunks of this many tokens).
        public var maxBatch: Int = 512
        /// Batches of at least this many tokens use OpenBLAS sgemm on Float weights; shorter ones
        /// (and decode) the int8 path. 64 is where llama.cpp also switches attention kernels.
        public var minBatchForBLAS: Int = 64
        public var prefillWeights: PrefillWeights = .dequantizePerLayer
        public var attention: AttentionArithmetic = .llamaCpp
        public init() {}
    }

    public let config: LlamaConfig
    public let options: Options
    /// Threads used for decode (pool) and prefill (OpenBLAS).
    public let threads: Int
    public let file: GGUFFile
    /// Bytes of Q8_0 copies made at load (0 for a Q8_0 file).
    public var convertedWeightBytes: Int { weights.convertedBytes }
    /// Bytes of resident Float weights (0 unless options.prefillWeights == .resident).
    public let residentFloatBytes: Int

    let weights: Weights
    let pool: ThreadPool
    /// Idle spin of the pool's workers between the many short runs of a decode step.
    static let decodeSpinMicroseconds = 200
    let lock = NSLock()
    /// Float copies of each layer's weights (fused layout, see FloatLayout) when resident.
    let residentLayers: [AlignedBuffer]
    let floatLayout: FloatLayout

    public convenience init(file: GGUFFile, threads: Int = 0) throws {
        var o = Options()
        o.threads = threads
        try self.init(file: file, options: o)
    }

    public init(file: GGUFFile, options: Options) throws {
        guard options.threads >= 0 else { throw ModelError.invalidArgument("threads must be >= 0 (0 = number of cores), got \(options.threads)") }
        guard options.maxBatch >= 1 else { throw ModelError.invalidArgument("maxBatch must be >= 1, got \(options.maxBatch)") }
        guard options.defaultContextCap >= 1 else { throw ModelError.invalidArgument("defaultContextCap must be >= 1") }
        self.file = file
        self.options = options
        let config = try LlamaConfig(gguf: file)
        self.config = config
        let n = options.threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : options.threads
        threads = max(1, min(n, 256))
        pool = ThreadPool(threads: threads)
        openblas_set_num_threads(Int32(threads))
        weights = try Weights(file: file, config: config, pool: pool)
        floatLayout = FloatLayout(config)
        if options.prefillWeights == .resident {
            var layers: [AlignedBuffer] = []
            for l in 0..<config.blockCount {
                let buf = try AlignedBuffer(floats: floatLayout.total, what: "resident Float weights of layer \(l)")
                Self.dequantizeLayer(weights.layers[l], layout: floatLayout, into: buf.floats, pool: pool)
                layers.append(buf)
            }
            residentLayers = layers
            residentFloatBytes = floatLayout.total * 4 * config.blockCount
        } else {
            residentLayers = []
            residentFloatBytes = 0
        }
    }

    /// A new conversation with its own KV cache. contextLength defaults to
    /// min(config.contextLength, options.defaultContextCap); it may exceed the training window.
    public func makeSession(contextLength: Int? = nil) throws -> LlamaSession {
        let n = contextLength ?? min(config.contextLength, options.defaultContextCap)
        guard n >= 1, n <= (1 << 22) else {
            throw ModelError.invalidArgument("contextLength must be in 1...\(1 << 22), got \(n)")
        }
        // K and V as halves for every layer
        let kvBytes = 2 * 2 * config.blockCount * config.kvDimension * n
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        if physical > 0 && kvBytes > physical {
            throw ModelError.invalidArgument("contextLength \(n) needs a \(kvBytes >> 20) MiB KV cache, more than this machine's \(physical >> 20) MiB of memory")
        }
        return try LlamaSession(model: self, contextLength: n)
    }

    /// Name of the int8 kernel set and the float ops set in use.
    public var kernelDescription: String {
        "q8_0 kernels: \(String(cString: ek_kernel_name())), ops: \(String(cString: ek_ops_impl_name())), threads: \(threads)"
    }

    /// Dequantizes one layer's matrices into the fused Float layout (rows split across the pool).
    static func dequantizeLayer(_ w: LayerWeights, layout f: FloatLayout, into dst: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let m = [w.q, w.k, w.v, w.o, w.gate, w.up, w.down]
        let off = [f.q, f.k, f.v, f.o, f.gate, f.up, f.down]
        var task = ek_dequant_task()
        task.nparts = 7
        task.type = (m[0].typeCode, m[1].typeCode, m[2].typeCode, m[3].typeCode, m[4].typeCode, m[5].typeCode, m[6].typeCode, 0)
        task.src = (m[0].data, m[1].data, m[2].data, m[3].data, m[4].data, m[5].data, m[6].data, nil)
        task.dst = (dst + off[0], dst + off[1], dst + off[2], dst + off[3], dst + off[4], dst + off[5], dst + off[6], nil)
        func n(_ i: Int) -> Int64 { Int64(m[i].rows * m[i].cols) }
        task.count = (n(0), n(1), n(2), n(3), n(4), n(5), n(6), 0)
        pool.run(ek_dequant_task_run, context: &task)
    }
}

/// Offsets (in floats) of one layer's matrices in the fused Float layout used by prefill:
/// [Wq; Wk; Wv] (one GEMM for Q, K, V), Wo, [Wgate; Wup] (one GEMM), Wdown.
struct FloatLayout: Sendable {
    let q: Int, k: Int, v: Int, o: Int, gate: Int, up: Int, down: Int, total: Int
    init(_ c: LlamaConfig) {
        let d = c.embeddingLength, dq = c.queryDimension, dkv = c.kvDimension, ff = c.feedForwardLength
        q = 0
        k = dq * d
        v = k + dkv * d
        o = v + dkv * d
        gate = o + d * dq
        up = gate + ff * d
        down = up + ff * d
        total = down + d * ff
    }
}
