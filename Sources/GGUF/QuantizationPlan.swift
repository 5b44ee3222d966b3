import CKernels

/// A llama.cpp model file type (`enum llama_ftype`): the quantization mix
/// `llama-quantize` produces, recorded as `general.file_type`.
///
/// The mixed types (Q4_K_M, ...) choose a type per tensor the way
/// llama.cpp's `llama_tensor_get_type` does without an importance matrix and
/// with default parameters (see `llamaTensorTypes`).
public enum LlamaFileType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
    case f32 = 0
    case f16 = 1
    case q4_0 = 2
    case q4_1 = 3
    case q8_0 = 7
    case q5_0 = 8
    case q5_1 = 9
    case q4_K_S = 14
    case q4_K_M = 15
    case q5_K_S = 16
    case q5_K_M = 17
    case q6_K = 18
    case bf16 = 32

    /// The type most weights get (llama.cpp `llama_ftype_get_default_type`).
    public var defaultType: GGMLType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q4_0: return .q4_0
        case .q4_1: return .q4_1
        case .q8_0: return .q8_0
        case .q5_0: return .q5_0
        case .q5_1: return .q5_1
        case .q4_K_S, .q4_K_M: return .q4_K
        case .q5_K_S, .q5_K_M: return .q5_K
        case .q6_K: return .q6_K
        }
    }

    /// llama-quantize's name: "Q4_K_M", "F16", ...
    public var name: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q8_0: return "Q8_0"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q4_K_S: return "Q4_K_S"
        case .q4_K_M: return "Q4_K_M"
        case .q5_K_S: return "Q5_K_S"
        case .q5_K_M: return "Q5_K_M"
        case .q6_K: return "Q6_K"
        }
    }

    public var description: String { name }

    /// Looks a file type up by name, case-insensitively ("q4_k_m", "Q8_0", "f16").
    public init?(name: String) {
        let upper = name.uppercased()
        guard let t = LlamaFileType.allCases.first(where: { $0.name == upper }) else { return nil }
        self = t
    }

    /// The file type a single tensor type names unambiguously (nil for Q4_K and
    /// Q5_K, which have S and M mixes, and for types without a quantizer here).
    public init?(type: GGMLType) {
        switch type {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .q4_0: self = .q4_0
        case .q4_1: self = .q4_1
        case .q8_0: self = .q8_0
        case .q5_0: self = .q5_0
        case .q5_1: self = .q5_1
        case .q6_K: self = .q6_K
        default: return nil
        }
    }
}

/// llama.cpp's broad tensor categories (`tensor_get_category`).
enum LlamaTensorCategory {
    case output, tokenEmbedding, attentionQKV, attentionKVB, attentionV, attentionK, attentionQ,
         attentionOutput, ffnUp, ffnGate, ffnDown, other

    init(name: String) {
        if name == "output.weight" { self = .output }
        else if name == "token_embd.weight" || name == "per_layer_token_embd.weight" { self = .tokenEmbedding }
        else if name.contains("attn_qkv.weight") { self = .attentionQKV }
        else if name.contains("attn_kv_b.weight") { self = .attentionKVB }
        else if name.contains("attn_v.weight") { self = .attentionV }
        else if name.contains("attn_k.weight") { self = .attentionK }
        else if name.contains("attn_q.weight") { self = .attentionQ }
        else if name.contains("attn_output.weight") { self = .attentionOutput }
        else if name.contains("ffn_up") { self = .ffnUp }
        else if name.contains("ffn_gate") { self = .ffnGate }
        else if name.contains("ffn_down") { self = .ffnDown }
        else { self = .other }
    }

    /// attn_v-like tensors (more sensitive to quantization).
    var isAttentionV: Bool { self == .attentionV || self == .attentionQKV || self == .attentionKVB }
}

/// The type of every tensor after `llama-quantize` to `ftype` (no importance
/// matrix, default parameters: no type overrides, output tensor quantized,
/// not `pure`), for `tensors` in the order llama.cpp writes them. Mirrors
/// llama-quant.cpp `llama_tensor_get_type` / `llama_tensor_get_type_impl` /
/// `tensor_type_fallback` for the file types of `LlamaFileType`. Known gap:
/// the 70B-only attn_v bump is applied for llama models of 80 layers with
/// grouped-query attention (llama.cpp's LLM_TYPE_70B), not for other
/// architectures that llama.cpp might also classify as 70B.
func llamaTensorTypes(_ tensors: [GGUFTensorInfo], ftype: LlamaFileType, metadata: [String: GGUFValue]) -> [GGMLType] {
    let arch = metadata["general.architecture"]?.stringValue ?? ""
    let nLayer = metadata["\(arch).block_count"]?.intValue ?? 0
    let nExpert = max(1, metadata["\(arch).expert_count"]?.intValue ?? 0)
    let isFalcon = arch == "falcon"
    let is70B: Bool = {
        guard arch == "llama", nLayer == 80 else { return false }
        let heads = metadata["llama.attention.head_count"]?.intValue
        let kv = metadata["llama.attention.head_count_kv"]?.intValue ?? heads
        return heads != kv
    }()
    let categories = tensors.map { LlamaTensorCategory(name: $0.name) }
    let nAttentionV = categories.filter(\.isAttentionV).count
    let tiedEmbeddings = !categories.contains(.output)
    let base = ftype.defaultType

    func useMoreBits(_ i: Int, _ n: Int) -> Bool {
        i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2
    }

    var iAttentionV = 0, iFFNDown = 0
    var result = [GGMLType]()
    for (t, category) in zip(tensors, categories) {
        guard tensorAllowsQuantization(t) else {
            result.append(t.type)
            continue
        }
        var newType = base
        if base.isQuantized {
            let nx = t.rowLength
            if category == .output || (tiedEmbeddings && category == .tokenEmbedding) {
                if isFalcon || nx % newType.blockSize != 0 {
                    newType = .q8_0
                } else if newType != .q8_0 {
                    newType = .q6_K
                }
            } else if category == .tokenEmbedding {
                // untied token embeddings keep the default type for these ftypes
            } else if category.isAttentionV {
                if (ftype == .q4_K_M || ftype == .q5_K_M) && useMoreBits(iAttentionV, nAttentionV) {
                    newType = .q6_K
                } else if ftype == .q4_K_S && iAttentionV < 4 {
                    newType = .q5_K
                }
                if is70B && (newType == .q3_K || newType == .q4_K) { newType = .q5_K }
                if nExpert == 8 { newType = .q8_0 }
                iAttentionV += 1
            } else if category == .attentionK {
                if nExpert == 8 { newType = .q8_0 }
            } else if category == .ffnDown {
                var iLayer = iFFNDown
                if nExpert > 1 { iLayer = max(0, llamaLayer(t.name)) }
                if ftype == .q4_K_M {
                    if isFalcon {
                        newType = iLayer < nLayer / 16 ? .q6_K : useMoreBits(iLayer, nLayer) ? .q5_K : .q4_K
                    } else if useMoreBits(iLayer, nLayer) {
                        newType = .q6_K
                    }
                } else if ftype == .q5_K_M && useMoreBits(iLayer, nLayer) {
                    newType = .q6_K
                } else if ftype == .q4_K_S && !isFalcon && iLayer < nLayer / 8 {
                    newType = .q5_K
                }
                iFFNDown += 1
            } else if category == .attentionOutput {
                if !isFalcon && nExpert == 8 && (ftype == .q4_K_S || ftype == .q4_K_M) {
                    newType = .q5_K
                }
            }
            // Rows that do not fit the type's block size fall back.
            if nx % newType.blockSize != 0 {
                switch newType {
                case .q2_K, .q3_K: newType = .q4_0
                case .q4_K: newType = .q5_0
                case .q5_K: newType = .q5_1
                case .q6_K: newType = .q8_0
                default: break
                }
                if nx % newType.blockSize != 0 { newType = .f16 }
            }
        }
        result.append(newType)
    }
    return result
}

/// Whether `ekw_quantize_rows` (or a plain conversion) can produce `type`.
func canQuantize(to type: GGMLType) -> Bool {
    switch type {
    case .f32, .f16, .bf16: return true
    default: return ekw_quantize_supported(Int32(type.rawValue)) != 0
    }
}
