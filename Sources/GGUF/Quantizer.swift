#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import CKernels

/// llama.cpp's `llama_ftype` number recorded as `general.file_type` for a
/// model whose weights were converted to `type` (the ftypes that a single
/// GGML type names unambiguously).
func llamaFileType(for type: GGMLType) -> UInt32? {
    LlamaFileType(type: type)?.rawValue
}

/// Whether llama.cpp's quantizer converts this tensor (llama-quant.cpp
/// `tensor_allows_quantization`): weights with at least 2 dimensions, except
/// norms, MoE routers, positional/type embeddings and a few special tensors.
func tensorAllowsQuantization(_ t: GGUFTensorInfo) -> Bool {
    if t.dimensionCount < 2 { return false }
    let name = t.name
    guard name.hasSuffix("weight") else { return false }
    let excludedSubstrings = [
        "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
        "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight",
        "indexer.q_proj.weight", "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight",
        "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
        "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight",
        "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd", "sam.pos_embd",
        "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
        "mm.a.code_embd",
    ]
    for s in excludedSubstrings where name.contains(s) { return false }
    if name == "position_embd.weight" || name == "token_types.weight" { return false }
    return true
}

/// One planned output tensor.
struct QuantPlan: Sendable {
    let source: GGUFTensorInfo
    let newType: GGMLType
    let outOffset: Int          // absolute, in the output file
    let outByteCount: Int
    var converts: Bool { newType != source.type }
}

/// A unit of work: rows [row0, row1) of tensor `tensor` (or a whole copy).
struct QuantChunk: Sendable {
    let tensor: Int
    let row0: Int
    let row1: Int
}

/// Shared counters for the workers (guarded by a mutex).
final class QuantProgressState: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var next = 0
    private var remainingChunks: [Int]
    private var finished: [Int] = []        // tensor indices finished, not yet reported
    let wake = DispatchSemaphore(value: 0)

    init(chunksPerTensor: [Int]) {
        remainingChunks = chunksPerTensor
        pthread_mutex_init(&mutex, nil)
    }

    deinit { pthread_mutex_destroy(&mutex) }

    private var firstError: GGUFError?

    var error: GGUFError? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return firstError
    }

    /// Records the first error; remaining chunks are skipped.
    func fail(_ e: GGUFError) {
        pthread_mutex_lock(&mutex)
        if firstError == nil { firstError = e }
        pthread_mutex_unlock(&mutex)
    }

    func takeChunk(limit: Int) -> Int? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard next < limit, firstError == nil else { return nil }
        next += 1
        return next - 1
    }

    func chunkDone(tensor: Int) {
        pthread_mutex_lock(&mutex)
        remainingChunks[tensor] -= 1
        let done = remainingChunks[tensor] == 0
        if done { finished.append(tensor) }
        pthread_mutex_unlock(&mutex)
        if done { wake.signal() }
    }

    func takeFinished() -> [Int] {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let f = finished
        finished.removeAll()
        return f
    }
}

/// Converts the model at `input` the way `llama-quantize --allow-requantize IN OUT <type>`
/// does and writes GGUF v3 to `output` (atomically, via a temporary file).
///
/// `type` names the file type (see `LlamaFileType(type:)`): Q8_0, Q4_0,
/// Q4_1, Q5_0, Q5_1, Q6_K, F16, BF16 or F32. Q4_K and Q5_K are ambiguous
/// (S and M mixes): use `quantizeModel(input:output:fileType:)`.
public func quantizeModel(input: String, output: String, type: GGMLType = .q8_0, threads: Int = 0,
                          progress: ((Int, Int, String) -> Void)? = nil) throws {
    guard let fileType = LlamaFileType(type: type) else {
        let names = LlamaFileType.allCases.map(\.name).joined(separator: ", ")
        throw GGUFError(.invalidArgument, "cannot convert a model to \(type.name); supported file types: \(names)")
    }
    try quantizeModel(input: input, output: output, fileType: fileType, threads: threads, progress: progress)
}

/// Converts the model at `input` the way `llama-quantize --allow-requantize IN OUT <ftype>`
/// does (no importance matrix, default options) and writes GGUF v3 to
/// `output` (atomically, via a temporary file); the result is byte-identical
/// to llama.cpp's.
///
/// Every weight llama.cpp would quantize (2-D and larger, names ending in
/// "weight", norms and a few special tensors excluded) gets the type
/// llama.cpp's `llama_tensor_get_type` chooses for `fileType` (e.g. Q4_K_M:
/// Q4_K, with Q6_K for some attn_v and ffn_down layers, Q6_K or Q8_0 for the
/// output / tied token embedding, and Q5_0 / Q5_1 / Q8_0 / F16 fallbacks for
/// rows whose length is not a multiple of the block size); all other
/// tensors, and tensors already of their target type, are copied unchanged.
/// Quantized sources are dequantized first (requantization). Metadata is
/// copied, `split.*` keys are dropped, and `general.quantization_version` = 2
/// and `general.file_type` are set.
///
/// - Parameters:
///   - threads: worker threads (0 = number of online CPUs).
///   - progress: called on the calling thread as tensors finish, with
///     (tensors finished, total tensors, name of the finished tensor).
public func quantizeModel(input: String, output: String, fileType: LlamaFileType, threads: Int = 0,
                          progress: ((Int, Int, String) -> Void)? = nil) throws {
    let src = try GGUFFile(path: input)
    // llama.cpp writes tensors in its loader's order: by layer number
    // ("blk.N." prefix, others first), then by name bytes.
    let sourceTensors = src.tensors.sorted { a, b in
        let la = llamaLayer(a.name), lb = llamaLayer(b.name)
        if la != lb { return la < lb }
        return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
    }

    // Tensor types.
    let planTypes = llamaTensorTypes(sourceTensors, ftype: fileType, metadata: src.metadata)
    for (t, newType) in zip(sourceTensors, planTypes) where newType != t.type {
        if !t.type.canDequantize {
            throw GGUFError(.unsupportedTensorType, "tensor '\(t.name)' has type \(t.type.name) (ggml type \(t.type.rawValue)), which cannot be converted to \(newType.name); supported source types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K")
        }
        if !canQuantize(to: newType) {
            throw GGUFError(.unsupportedTensorType, "tensor '\(t.name)' would become \(newType.name), which this quantizer cannot produce")
        }
    }

    // Metadata as llama.cpp writes it: everything copied, split keys removed,
    // quantization version and file type removed and appended.
    var metadata = [(key: String, value: GGUFValue)]()
    let dropped: Set<String> = ["split.no", "split.count", "split.tensors.count",
                                "general.quantization_version", "general.file_type"]
    for key in src.metadataKeys where !dropped.contains(key) {
        if let v = src[key] { metadata.append((key: key, value: v)) }
    }
    metadata.append((key: "general.quantization_version", value: .uint32(2)))
    metadata.append((key: "general.file_type", value: .uint32(fileType.rawValue)))

    var entries = [TensorPlanEntry]()
    for (i, t) in sourceTensors.enumerated() {
        let newType = planTypes[i]
        guard let bytes = newType.byteCount(elements: t.elementCount) else {
            throw GGUFError(.tooLarge, "tensor '\(t.name)' is too large")
        }
        entries.append(TensorPlanEntry(name: t.name, type: newType, shape: t.shape, byteCount: bytes))
    }
    let alignment = try validatePlan(metadata: metadata, tensors: entries, defaultAlignment: 32)
    let (header, offsets, dataSize) = ggufHeaderLayout(metadata: metadata, tensors: entries, alignment: alignment)
    let total = header.count + dataSize
    var plans = [QuantPlan]()
    for (i, t) in sourceTensors.enumerated() {
        plans.append(QuantPlan(source: t, newType: planTypes[i], outOffset: header.count + offsets[i], outByteCount: entries[i].byteCount))
    }

    // Work split: copies are one chunk; conversions are cut into row ranges
    // of about 128 Ki elements so both threads stay busy.
    var chunks = [QuantChunk]()
    var chunksPerTensor = [Int](repeating: 0, count: plans.count)
    for (i, p) in plans.enumerated() {
        let rows = p.source.rowCount
        if !p.converts || rows == 0 {
            chunks.append(QuantChunk(tensor: i, row0: 0, row1: rows))
            chunksPerTensor[i] = 1
            continue
        }
        let rowsPerChunk = max(1, (1 << 17) / max(p.source.rowLength, 1))
        var r = 0
        while r < rows {
            let r1 = min(rows, r + rowsPerChunk)
            chunks.append(QuantChunk(tensor: i, row0: r, row1: r1))
            chunksPerTensor[i] += 1
            r = r1
        }
    }

    // Output: a temporary file of the final size (holes read as the zero
    // padding); workers pwrite their chunks at fixed offsets.
    let tmp = output + ".tmp-\(getpid())"
    let fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw posixError("cannot create '\(tmp)'") }
    var success = false
    defer {
        close(fd)
        if !success { unlink(tmp) }
    }
    if ftruncate(fd, off_t(total)) != 0 { throw posixError("cannot size '\(tmp)' to \(total) bytes") }
    try header.withUnsafeBytes { try writeFully(fd: fd, $0, at: 0, path: tmp) }

    let workers = max(1, min(threads > 0 ? threads : Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), chunks.count))
    let state = QuantProgressState(chunksPerTensor: chunksPerTensor)
    let group = DispatchGroup()
    let chunkList = chunks
    let planList = plans
    let maxChunkBytes = chunks.map { c -> Int in
        let p = plans[c.tensor]
        return p.converts ? (c.row1 - c.row0) * (p.newType.byteCount(elements: p.source.rowLength) ?? 0) : 0
    }.max() ?? 0
    let maxRow = plans.map { $0.converts ? $0.source.rowLength : 0 }.max() ?? 0
    for _ in 0..<workers {
        DispatchQueue.global().async(group: group) {
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(maxRow, 1))
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: max(maxChunkBytes, 1), alignment: 64)
            defer {
                scratch.deallocate()
                buffer.deallocate()
            }
            while let c = state.takeChunk(limit: chunkList.count) {
                let chunk = chunkList[c]
                do {
                    try convertChunk(src: src, plan: planList[chunk.tensor], chunk: chunk, fd: fd, path: tmp,
                                     buffer: buffer, scratch: scratch)
                } catch let e as GGUFError {
                    state.fail(e)
                } catch {
                    state.fail(GGUFError(.io, "\(error)"))
                }
                state.chunkDone(tensor: chunk.tensor)
            }
        }
    }
    var reported = 0
    while reported < plans.count {
        state.wake.wait()
        for t in state.takeFinished() {
            reported += 1
            progress?(reported, plans.count, plans[t].source.name)
        }
    }
    group.wait()
    if let e = state.error { throw e }

    // Removing the old file first avoids ext4's flush-on-replace (auto_da_alloc),
    // which would make the rename wait for the whole file to be written out.
    unlink(output)
    if rename(tmp, output) != 0 { throw posixError("cannot rename '\(tmp)' to '\(output)'") }
    success = true
}

func writeFully(fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String) throws {
    guard let base = bytes.baseAddress else { return }
    var done = 0
    while done < bytes.count {
        let n = pwrite(fd, base + done, bytes.count - done, off_t(offset + done))
        if n < 0 {
            if errno == EINTR { continue }
            throw posixError("cannot write '\(path)'")
        }
        if n == 0 { throw GGUFError(.io, "cannot write '\(path)': no progress") }
        done += n
    }
}

/// Converts (or copies) rows [row0, row1) of one tensor and writes them to the output file.
func convertChunk(src: GGUFFile, plan: QuantPlan, chunk: QuantChunk, fd: Int32, path: String,
                  buffer: UnsafeMutableRawPointer, scratch: UnsafeMutablePointer<Float>) throws {
    let data = src.bytes(of: plan.source)
    guard let from = data.baseAddress, data.count == plan.source.byteCount else {
        if plan.source.byteCount == 0 { return }
        throw GGUFError(.outOfBounds, "tensor '\(plan.source.name)' does not lie inside the input file")
    }
    if !plan.converts {
        try writeFully(fd: fd, data, at: plan.outOffset, path: path)
        return
    }
    let n = plan.source.rowLength
    let srcRow = plan.source.rowByteCount
    let dstRow = plan.newType.byteCount(elements: n) ?? 0
    for r in chunk.row0..<chunk.row1 {
        try dequantizeRow(type: plan.source.type, from: from + r * srcRow, count: n, into: scratch)
        let o = buffer + (r - chunk.row0) * dstRow
        switch plan.newType {
        case .f16:
            for j in 0..<n { o.storeBytes(of: Half.fromFloat(scratch[j]), toByteOffset: 2 * j, as: UInt16.self) }
        case .bf16:
            for j in 0..<n { o.storeBytes(of: Half.bf16FromFloat(scratch[j]), toByteOffset: 2 * j, as: UInt16.self) }
        case .f32:
            o.copyMemory(from: scratch, byteCount: 4 * n)
        default:
            if ekw_quantize_rows(Int32(plan.newType.rawValue), scratch, o, 1, Int64(n)) != dstRow {
                throw GGUFError(.invalidArgument, "cannot quantize tensor '\(plan.source.name)' to \(plan.newType.name)")
            }
        }
    }
    try writeFully(fd: fd, UnsafeRawBufferPointer(start: buffer, count: (chunk.row1 - chunk.row0) * dstRow),
                   at: plan.outOffset + chunk.row0 * dstRow, path: path)
}

/// One row to floats: the dispatched SIMD CKernels converters (byte-exact
/// with ggml's reference, like `Dequantize`) where they exist.
@inline(__always)
func dequantizeRow(type: GGMLType, from: UnsafeRawPointer, count n: Int, into y: UnsafeMutablePointer<Float>) throws {
    switch type {
    case .f16: ek_dequantize_row_f16(from, y, Int64(n))
    case .bf16: ek_dequantize_row_bf16(from, y, Int64(n))
    case .q8_0: ek_dequantize_row_q8_0(from, y, Int64(n))
    case .q4_0: ek_dequantize_row_q4_0(from, y, Int64(n))
    case .q4_1: ek_dequantize_row_q4_1(from, y, Int64(n))
    default: try Dequantize.rows(type: type, from: from, count: n, into: y)
    }
}

/// The layer number llama.cpp's loader reads with `sscanf(name, "blk.%d.", &layer)`; -1 if none.
func llamaLayer(_ name: String) -> Int {
    var u = Substring(name).utf8[...]
    guard u.starts(with: "blk.".utf8) else { return -1 }
    u = u.dropFirst(4)
    while let c = u.first, c == 0x20 || (0x09...0x0d).contains(c) { u = u.dropFirst() }
    var negative = false
    if let c = u.first, c == UInt8(ascii: "-") || c == UInt8(ascii: "+") {
        negative = c == UInt8(ascii: "-")
        u = u.dropFirst()
    }
    var value = 0
    var digits = 0
    while let c = u.first, (0x30...0x39).contains(c) {
        value = min(value &* 10 &+ Int(c - 0x30), Int(Int32.max))
        digits += 1
        u = u.dropFirst()
    }
    if digits == 0 { return -1 }
    return negative ? -value : value
}
