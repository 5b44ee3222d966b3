/// Errors from loading a llama model or running it. Every case names the thing at fault.
public enum ModelError: Error, CustomStringConvertible, Equatable, Sendable {
    /// `general.architecture` is not one this module implements (only "llama").
    case unsupportedArchitecture(String)
    /// A required metadata key is absent.
    case missingKey(String)
    /// A metadata value is present but unusable (wrong type, out of range, inconsistent).
    case badMetadata(key: String, message: String)
    /// A required tensor is absent.
    case missingTensor(String)
    /// A tensor's shape (ggml order: shape[0] is the row length) differs from what the config implies.
    case badShape(tensor: String, expected: [Int], actual: [Int])
    /// A tensor's type cannot be used (e.g. a K-quant this module does not decode).
    case unsupportedTensorType(tensor: String, type: String)
    /// A tensor the architecture may carry but this implementation does not (e.g. biases).
    case unsupportedTensor(String)
    /// A `rope.scaling.type` other than none / linear (or a bad factor).
    case unsupportedRopeScaling(String)
    /// Evaluating `count` more tokens at `position` would pass the session's context `limit`.
    case contextOverflow(position: Int, count: Int, limit: Int)
    /// A token id outside 0..<vocabularySize.
    case invalidToken(Int32, vocabularySize: Int)
    /// A bad argument to an API call (empty token list, negative length, ...).
    case invalidArgument(String)
    /// Memory for weights, the KV cache or scratch could not be allocated.
    case outOfMemory(String)

    public var description: String {
        switch self {
        case .unsupportedArchitecture(let a):
            return "unsupported model architecture '\(a)': supported are \(Architectures.names.joined(separator: ", "))"
        case .missingKey(let k):
            return "missing GGUF metadata key '\(k)'"
        case .badMetadata(let k, let m):
            return "bad GGUF metadata '\(k)': \(m)"
        case .missingTensor(let t):
            return "missing tensor '\(t)' in the GGUF file"
        case .badShape(let t, let e, let a):
            return "tensor '\(t)' has shape \(a), expected \(e) (ggml order, row length first)"
        case .unsupportedTensorType(let t, let ty):
            return "tensor '\(t)' has type \(ty), which this model cannot use (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)"
        case .unsupportedTensor(let t):
            return "tensor '\(t)' is not supported by this implementation of the architecture"
        case .unsupportedRopeScaling(let s):
            return "unsupported RoPE scaling: \(s) (supported: none, linear, per-dimension rope_freqs)"
        case .contextOverflow(let p, let c, let l):
            return "context overflow: \(c) token(s) at position \(p) would exceed the session's context length \(l); truncate or reset the session, or create it with a larger contextLength"
        case .invalidToken(let t, let v):
            return "token id \(t) is outside the vocabulary (0..<\(v))"
        case .invalidArgument(let m):
            return "invalid argument: \(m)"
        case .outOfMemory(let m):
            return "out of memory: \(m)"
        }
    }
}
