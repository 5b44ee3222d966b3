import GGUF

/// llama.cpp's per-token attribute bits (`enum llama_token_attr`).
struct TokenAttr: OptionSet, Sendable {
    let rawValue: UInt16
    static let unknown = TokenAttr(rawValue: 1 << 0)
    static let unused = TokenAttr(rawValue: 1 << 1)
    static let normal = TokenAttr(rawValue: 1 << 2)
    static let control = TokenAttr(rawValue: 1 << 3)
    static let userDefined = TokenAttr(rawValue: 1 << 4)
    static let byte = TokenAttr(rawValue: 1 << 5)
    static let normalized = TokenAttr(rawValue: 1 << 6)
    static let lstrip = TokenAttr(rawValue: 1 << 7)
    static let rstrip = TokenAttr(rawValue: 1 << 8)
    static let singleWord = TokenAttr(rawValue: 1 << 9)

    /// From a `tokenizer.ggml.token_type` value (NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6).
    init(tokenType: Int) {
        switch tokenType {
        case 1: self = .normal
        case 2: self = .unknown
        case 3: self = .control
        case 4: self = .userDefined
        case 5: self = .unused
        case 6: self = .byte
        default: self = []
        }
    }

    init(rawValue: UInt16) { self.rawValue = rawValue }
}

/// The tokenizer algorithm family (`tokenizer.ggml.model`).
public enum TokenizerKind: String, Sendable {
    /// SentencePiece BPE (`llama`).
    case spm = "SPM"
    /// Byte-pair encoding ranked by merges (`gpt2`, `gemma4`).
    case bpe = "BPE"
    /// WordPiece (`bert`).
    case wpm = "WPM"
}

/// Everything the tokenizer needs from a GGUF file's `tokenizer.*` (and a
/// few `general.*`) keys.
struct VocabularyMetadata {
    var model: String
    var pre: String?
    var tokens: [String]
    var scores: [Float]?
    var tokenTypes: [Int]?
    var merges: [String]?
    var specialIDs: [String: Int] = [:]   // key suffix (e.g. "bos_token_id") → value
    var addBOS: Bool?
    var addEOS: Bool?
    var addSpacePrefix: Bool?
    var lowercase: Bool?
    var stripAccents: Bool?
    var generalName: String?
    var architecture: String?

    static let specialKeys = [
        "bos_token_id", "eos_token_id", "eot_token_id", "eom_token_id", "unknown_token_id",
        "seperator_token_id", "padding_token_id", "mask_token_id",
        "fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id", "fim_pad_token_id",
        "fim_rep_token_id", "fim_sep_token_id",
        "prefix_token_id", "suffix_token_id", "middle_token_id",
    ]

    init(model: String, tokens: [String]) {
        self.model = model
        self.tokens = tokens
    }

    init(gguf file: GGUFFile) throws {
        func get<T>(_ key: String, _ read: (String) throws -> T?) throws -> T? {
            do {
                return try read(key)
            } catch let e as GGUFError {
                throw TokenizerError(.badMetadata, "tokenizer metadata: \(e.message)")
            }
        }
        guard let model = try get("tokenizer.ggml.model", file.string) else {
            throw TokenizerError(.missingKey, "the GGUF file has no tokenizer: metadata key 'tokenizer.ggml.model' is missing")
        }
        guard let tokens = try get("tokenizer.ggml.tokens", file.strings) else {
            throw TokenizerError(.missingKey, "metadata key 'tokenizer.ggml.tokens' (the vocabulary) is missing")
        }
        self.init(model: model, tokens: tokens)
        pre = try get("tokenizer.ggml.pre", file.string)
        scores = try get("tokenizer.ggml.scores", file.floats)
        tokenTypes = try get("tokenizer.ggml.token_type", file.ints)
        merges = try get("tokenizer.ggml.merges", file.strings)
        for k in VocabularyMetadata.specialKeys {
            if let v = try get("tokenizer.ggml." + k, file.int) { specialIDs[k] = v }
        }
        addBOS = try get("tokenizer.ggml.add_bos_token", file.bool)
        addEOS = try get("tokenizer.ggml.add_eos_token", file.bool)
        addSpacePrefix = try get("tokenizer.ggml.add_space_prefix", file.bool)
        lowercase = try get("tokenizer.ggml.normalizer.lowercase", file.bool)
        stripAccents = try get("tokenizer.ggml.normalizer.strip_accents", file.bool)
        generalName = try? file.string("general.name")
        architecture = try? file.string("general.architecture")
    }
}

/// Settings that llama.cpp derives from `tokenizer.ggml.pre` for BPE vocabularies.
struct PreTokenizerConfig {
    var kind: PreTokenizerKind
    var ignoreMerges = false
    var cleanSpaces = true
    var addBOS: Bool? = nil          // overrides the BPE default (false)
    var noBOS = false                // the BOS id is cleared
    var escapeWhitespace = false     // spaces become U+2581 (SentencePiece-style BPE)
    var byteLevel = true             // GPT-2 byte-to-character encoding
    var gemma4 = false               // BOS always added; words of newlines kept whole when they are tokens

    /// llama.cpp's table (llama-vocab.cpp, `load`), for the pre-tokenizers implemented here.
    static func forName(_ name: String) -> PreTokenizerConfig? {
        switch name {
        case "default":
            return .init(kind: .bpeDefault)
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano":
            return .init(kind: .llama3, ignoreMerges: true, addBOS: true)
        case "dbrx", "smaug-bpe":
            return .init(kind: .llama3)
        case "chatglm-bpe":
            return .init(kind: .llama3, noBOS: true)
        case "glm4", "glm5":
            return .init(kind: .llama3, ignoreMerges: true, noBOS: true)
        case "deepseek-llm":
            return .init(kind: .deepseekLLM, cleanSpaces: false)
        case "deepseek-coder":
            return .init(kind: .deepseekCoder, cleanSpaces: false)
        case "falcon":
            return .init(kind: .falcon)
        case "mpt", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
             "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "olmo", "jais", "exaone4":
            return .init(kind: .gpt2)
        case "trillion", "granite-docling":
            return .init(kind: .gpt2, cleanSpaces: false)
        case "starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2":
            return .init(kind: .digitsThenGPT2)
        case "command-r", "smollm":
            return .init(kind: .digitsThenGPT2, cleanSpaces: false)
        case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "grok-2", "solar-open":
            return .init(kind: .qwen2, cleanSpaces: false)
        case "stablelm2", "megrez":
            return .init(kind: .qwen2)
        case "qwen35":
            return .init(kind: .qwen35, cleanSpaces: false)
        case "gemma4", "granite-embed-multi-311m":
            return .init(kind: .newlines, escapeWhitespace: true, byteLevel: false, gemma4: true)
        case "sarvam-moe":
            return .init(kind: .newlines, cleanSpaces: false, escapeWhitespace: true, byteLevel: false)
        default:
            return nil
        }
    }

    static let supportedNames = [
        "default", "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
        "jina-v5-nano", "dbrx", "smaug-bpe", "chatglm-bpe", "glm4", "glm5", "deepseek-llm", "deepseek-coder",
        "falcon", "mpt", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de",
        "a.x-4.0", "mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "olmo", "jais",
        "exaone4", "trillion", "granite-docling", "starcoder", "refact", "codeshell", "exaone", "minerva-7b",
        "mellum2", "command-r", "smollm", "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "grok-2",
        "solar-open", "stablelm2", "megrez", "qwen35", "gemma4", "granite-embed-multi-311m", "sarvam-moe",
    ]
}

// MARK: - GPT-2 byte-level encoding

/// The GPT-2 mapping of bytes to printable characters: bytes 0x21-0x7E,
/// 0xA1-0xAC and 0xAE-0xFF map to themselves, the other 68 bytes (in order)
/// to U+0100 and up.
enum ByteLevel {
    static let byteToCodepoint: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            if (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b) {
                map[b] = UInt32(b)
            } else {
                map[b] = 256 + n
                n += 1
            }
        }
        return map
    }()

    /// Code point → byte, or -1 (for code points < 0x144).
    static let codepointToByte: [Int16] = {
        var map = [Int16](repeating: -1, count: 0x144)
        for (b, cp) in byteToCodepoint.enumerated() { map[Int(cp)] = Int16(b) }
        return map
    }()

    /// Decodes a byte-level string to raw bytes written to `out` (room for
    /// `n` bytes is enough); returns the count, or -1 if the string holds a
    /// character outside the 256-character alphabet.
    @inline(__always)
    static func decode(_ p: UnsafePointer<UInt8>, _ n: Int, to out: UnsafeMutablePointer<UInt8>,
                       map: UnsafeBufferPointer<Int16>) -> Int {
        var i = 0
        var o = 0
        while i < n {
            let b0 = p[i]
            let cp: UInt32
            if b0 < 0x80 {
                cp = UInt32(b0)
                i += 1
            } else {
                let (c, len) = decodeCodepoint(p, i, n)
                cp = c
                i += len
            }
            guard cp < 0x144 else { return -1 }
            let b = map[Int(cp)]
            guard b >= 0 else { return -1 }
            out[o] = UInt8(truncatingIfNeeded: b)
            o += 1
        }
        return o
    }

    /// Decodes a byte-level string to raw bytes, appending them to `out`;
    /// false (with `out` partly appended) if it holds a character outside the
    /// 256-character alphabet.
    static func decode(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt8]) -> Bool {
        codepointToByte.withUnsafeBufferPointer { map in
            var i = 0
            while i < n {
                let b0 = p[i]
                if b0 < 0x80 {
                    let b = map[Int(b0)]
                    guard b >= 0 else { return false }
                    out.append(UInt8(b))
                    i += 1
                    continue
                }
                let (cp, len) = decodeCodepoint(p, i, n)
                guard cp < 0x144 else { return false }
                let b = map[Int(cp)]
                guard b >= 0 else { return false }
                out.append(UInt8(b))
                i += len
            }
            return true
        }
    }

    /// llama.cpp's `llama_decode_text`, appending to `out`: characters
    /// outside the alphabet become "[UNK_BYTE_0x…" markers.
    static func decodeText(_ text: String, into out: inout [UInt8]) {
        let start = out.count
        let ok = withUTF8Bytes(text) { u in decode(u.baseAddress!, u.count, into: &out) }
        if ok { return }
        out.removeSubrange(start...)
        for scalar in text.unicodeScalars {
            let cp = scalar.value
            if cp < 0x144, codepointToByte[Int(cp)] >= 0 {
                out.append(UInt8(codepointToByte[Int(cp)]))
            } else {
                out.append(contentsOf: Array("[UNK_BYTE_0x".utf8))
                for b in String(scalar).utf8 {
                    let hex = String(b, radix: 16)
                    out.append(contentsOf: Array((hex.count == 1 ? "0" + hex : hex).utf8))
                }
                out.append(contentsOf: Array(text.utf8))
                out.append(UInt8(ascii: "]"))
            }
        }
    }
}

@inline(__always)
func withUTF8Bytes<R>(_ s: String, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
    if let r = try s.utf8.withContiguousStorageIfAvailable(body) { return r }
    var copy = s
    return try copy.withUTF8(body)
}
