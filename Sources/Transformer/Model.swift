import CKernels
import COpenBLAS
import Foundation
import GGUF

/// A decoder-only transformer (llama, qwen2, qwen3, gemma2, gemma3, phi3 — see `Architectures`)
/// loaded from a GGUF file.
///
/// Weights are multiplied in the type they are stored in (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
/// Q5_1, Q2_K…Q6_K), read from a copy on huge pages or from the file mapping (`WeightStorage`).
/// One model can serve several sessions; their evaluations are serialized (they share the
/// worker pool).
public final class TransformerModel: @unchecked Sendable {
    /// Which of llama.cpp's CPU attention computations to reproduce (bit for bit on the int8 path).
    public enum AttentionArithmetic: String, Sendable, Codable, CaseIterable {
        /// mul_mat + soft_max over the f16 cache (llama.cpp with flash attention off; the default
        /// of llama-cpp-python's `Llama` class).
        case llamaCpp
        /// ggml's flash-attention kernel (llama.cpp with flash attention on, e.g. `-fa on`).
        case llamaCppFlashAttention
    }

    /// Where the weight matrices live while the model runs.
    public enum WeightStorage: String, Sendable, Codable, CaseIterable {
        /// Read in place from the file mapping: no copy, the page cache's 4 KiB pages.
        case mapping
        /// Copied at load into one anonymous allocation advised onto 2 MiB transparent huge pages
        /// (the kernel's THP setting decides; small pages otherwise), and the file's pages
        /// released. Decode reads every weight once per token, and reads them faster from huge
        /// pages: fewer TLB misses (SmolLM2 Q8_0 tg 1.27× on an AMD EPYC VM).
        case hugePages
        /// `hugePages` when the matrices take at most half of the physical memory, else `mapping`.
        case automatic
    }

    public struct Options: Sendable {
        /// Worker threads including the caller; 0 = number of cores.
        public var threads: Int = 0
        /// Context length of sessions made without an explicit length: min(model's window, this).
        public var defaultContextCap: Int = 4096
        /// Largest batch evaluated at once (longer inputs run in chunks of this many tokens).
        public var maxBatch: Int = 512
        /// Opt-in OpenBLAS: batches of at least this many tokens multiply the matrices without a
        /// batched int8 kernel (F32, F16, BF16, Q2_K, Q3_K; every type on CPUs without AVX-512
        /// VNNI) with sgemm on Float copies, and run attention as sgemm over Float copies of the
        /// cache. Faster for long prompts on such models, but a token's logits then depend on the
        /// batch it was evaluated in. The default (`Int.max`, never) keeps every token's logits bit-identical
        /// whether it is decoded alone or evaluated in a batch of any size.
        public var minBatchForBLAS: Int = .max
        public var attention: AttentionArithmetic = .llamaCpp
        /// Sliding-window layers keep every position (llama.cpp's `--swa-full`) instead of the
        /// window plus two batches: more memory, but `truncate` can return to any position.
        public var fullSlidingWindowCache = false
        /// Where the weight matrices live (default: a huge-page copy when it fits comfortably).
        public var weightStorage: WeightStorage = .automatic
        public init() {}
    }

    public let config: ModelConfig
    public let options: Options
    /// Threads used for decode (pool) and prefill (OpenBLAS).
    public let threads: Int
    public let file: GGUFFile
    /// Bytes of the file's tensors in use that are read from the mapping.
    public var mappedWeightBytes: Int { weights.mappedBytes }
    /// Bytes of weight matrices copied at load (`WeightStorage.hugePages`).
    public var copiedWeightBytes: Int { weights.copiedBytes }
    /// Bytes of that copy the kernel backs with huge pages right now (Linux; 0 if none or unknown).
    public var hugePageWeightBytes: Int { weights.arena?.hugePageBytes ?? 0 }
    /// Bytes the model owns besides the mapping (norm vectors and biases as F32).
    public var ownedWeightBytes: Int { weights.ownedBytes }
    /// Count of weight matrices by stored type name (e.g. ["Q4_K": 72, "Q6_K": 18]).
    public var matrixTypes: [String: Int] {
        var counts: [String: Int] = [:]
        let w = weights
        var all: [Matrix] = [w.tokenEmbedding]
        if !w.outputIsTied { all.append(w.output) }
        for l in w.layers { all += l.qkv; all.append(l.o); all += l.gateUp; all.append(l.down) }
        for m in all { counts[m.type.name, default: 0] += 1 }
        return counts
    }

    let architecture: any Architecture.Type
    let weights: Weights
    let pool: ThreadPool
    let plan: Plan
    /// Idle spin of the pool's workers between the many short runs of a decode step.
    static let decodeSpinMicroseconds = 200
    let lock = NSLock()

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
        architecture = try Architectures.definition(for: file)
        let config = try ModelConfig(gguf: file)
        self.config = config
        let n = options.threads == 0 ? ProcessInfo.processInfo.activeProcessorCount : options.threads
        threads = max(1, min(n, 256))
        pool = ThreadPool(threads: threads)
        // Debian's OpenBLAS may not recognize the CPU and run its SSE3 kernels (3-5x slower sgemm).
        _ = ek_openblas_prefer_native_core()
        openblas_set_num_threads(Int32(threads))
        let copy: Bool
        switch options.weightStorage {
        case .mapping: copy = false
        case .hugePages: copy = true
        case .automatic:
            let matrixBytes = file.tensors.reduce(0) { $0 + ($1.shape.count >= 2 ? $1.byteCount : 0) }
            copy = matrixBytes <= Int(clamping: ProcessInfo.processInfo.physicalMemory) / 2
        }
        weights = try Weights(file: file, config: config, architecture: architecture, copyMatrices: copy)
        plan = Plan(config, weights)
    }

    /// A new conversation with its own KV cache. contextLength defaults to
    /// min(config.contextLength, options.defaultContextCap); it may exceed the training window.
    public func makeSession(contextLength: Int? = nil) throws -> TransformerSession {
        let n = contextLength ?? min(config.contextLength, options.defaultContextCap)
        guard n >= 1, n <= (1 << 22) else {
            throw ModelError.invalidArgument("contextLength must be in 1...\(1 << 22), got \(n)")
        }
        // K and V as halves for every layer (sliding-window layers: only the positions they keep)
        let kvBytes = TransformerSession.kvCacheBytes(config, options, contextLength: n)
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        if physical > 0 && kvBytes > physical {
            throw ModelError.invalidArgument("contextLength \(n) needs a \(kvBytes >> 20) MiB KV cache, more than this machine's \(physical >> 20) MiB of memory")
        }
        return try TransformerSession(model: self, contextLength: n)
    }

    /// Name of the kernel sets in use.
    public var kernelDescription: String {
        "kernels: \(String(cString: ek_kernel_name())), ops: \(String(cString: ek_ops_impl_name())), threads: \(threads)"
    }
}

/// Sizes derived once from the config and the weights: scratch is allocated from these.
struct Plan: Sendable {
    /// Width of a fused q | k | v row.
    let qkvWidth: Int
    /// Widest input of any product (d, attention output, ff).
    let maxColumns: Int
    /// Floats needed to hold the largest group of matrices one BLAS product dequantizes
    /// (and a chunk of the output matrix).
    let floatWeightElements: Int

    init(_ c: ModelConfig, _ w: Weights) {
        qkvWidth = c.queryDimension + c.kvDimension + c.valueDimension
        maxColumns = max(c.embeddingLength, c.attentionOutputDimension, c.feedForwardLength)
        var largest = 4096 * c.embeddingLength
        for l in w.layers {
            for group in [l.qkv, [l.o], l.gateUp, [l.down]] {
                largest = max(largest, group.reduce(0) { $0 + $1.rows * $1.cols })
            }
        }
        floatWeightElements = largest
    }
}
