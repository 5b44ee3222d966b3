import ChatTemplate
import EdgeAI
import Foundation
import GGUF
import Tokenizer
import Transformer

// MARK: GGUF reader

/// GGUF files: the reader, metadata accessors, tensor views and dequantization, and what is
/// built from metadata (tokenizer, model config). Every input ends in a file or a typed error.
public struct GGUFTarget: FuzzTarget {
    public let name = "gguf"
    public let seeds: [[UInt8]]
    public let mutator = Mutator(dictionary: ["GGUF", "general.architecture", "general.alignment", "llama", "tokenizer.ggml.model",
                                              "tokenizer.ggml.tokens", "gpt2", "bert", ".weight", "blk.0."], maxSize: 1 << 16)

    public init(corpus: String = FuzzRunner.corpusRoot + "/gguf") {
        var s = FuzzRunner.corpus(corpus)
        if s.isEmpty { s = GGUFSeeds.all() }
        seeds = s
    }

    public func run(_ input: [UInt8]) -> FuzzResult {
        let f: GGUFFile
        do {
            f = try GGUFFile(bytes: input)
        } catch let e as GGUFError {
            return e.message.isEmpty ? .failure("GGUFError \(e.kind) without a message") : .ok(e.kind.rawValue)
        } catch {
            return .failure("untyped error from GGUFFile: \(error)")
        }
        for key in f.metadataKeys {
            _ = f[key]
            _ = try? f.int(key); _ = try? f.float(key); _ = try? f.string(key); _ = try? f.bool(key)
            _ = try? f.strings(key); _ = try? f.floats(key); _ = try? f.ints(key); _ = try? f.uint32(key)
        }
        var row = [Float](repeating: 0, count: 4096)
        for t in f.tensors {
            if f.bytes(of: t).count != t.byteCount { return .failure("tensor \(t.name): view of \(f.bytes(of: t).count) bytes, expected \(t.byteCount)") }
            if t.type.canDequantize && t.elementCount <= 1 << 16 {
                _ = try? f.dequantize(t)
                if t.rowCount > 0 && t.rowLength <= row.count {
                    row.withUnsafeMutableBufferPointer { buf in _ = try? f.dequantizeRow(t, row: t.rowCount - 1, into: buf) }
                }
            }
        }
        var label = "ok-file"
        do {
            let tok = try Tokenizer(gguf: f)
            let ids = tok.encode("Hello wörld 🔥 <s>", addSpecial: true, parseSpecial: true)
            _ = tok.decode(ids)
            _ = tok.decode([-1, 0, Int32.max, Int32(tok.vocabularySize)])
            label = "ok-tokenizer"
        } catch is TokenizerError {
        } catch is GGUFError {
        } catch {
            return .failure("untyped error from Tokenizer: \(error)")
        }
        do {
            _ = try ModelConfig(gguf: f)
            label += "+config"
        } catch is ModelError {
        } catch {
            return .failure("untyped error from ModelConfig: \(error)")
        }
        return .ok(label)
    }
}

/// Small valid GGUF files that reach the tokenizer and config code (the seed corpus).
public enum GGUFSeeds {
    public static func all() -> [[UInt8]] {
        [sample(), tiny(tokenizer: "llama"), tiny(tokenizer: "gpt2"), tiny(tokenizer: "bert")].compactMap { $0 }
    }

    /// Every metadata type and a tensor of several types.
    static func sample() -> [UInt8]? {
        var rng = FuzzRNG(seed: 1)
        var w = GGUFWriter(alignment: 32)
        w.set("general.architecture", .string("llama"))
        w.set("general.name", .string("sample ✓ ünïcode"))
        w.set("test.u8", .uint8(200)); w.set("test.i8", .int8(-100)); w.set("test.u16", .uint16(60000)); w.set("test.i16", .int16(-30000))
        w.set("test.u32", .uint32(4_000_000_000)); w.set("test.i32", .int32(-2_000_000_000))
        w.set("test.u64", .uint64(UInt64.max)); w.set("test.i64", .int64(Int64.min))
        w.set("test.f32", .float32(1.5)); w.set("test.f64", .float64(-2.25)); w.set("test.bool", .bool(true))
        w.set("test.nested", .array(.array([.uint8([1, 2, 3]), .string(["x", "yz"]), .array([.bool([true, false])])])))
        w.set("test.empty", .array(.int64([])))
        let f = (0..<64).map { _ in Float.random(in: -2...2, using: &rng) }
        w.addTensor(name: "t.f32", type: .f32, shape: [16, 4], data: f.withUnsafeBytes { Array($0) })
        w.addTensor(name: "t.f16", type: .f16, shape: [8, 2], data: f.prefix(16).flatMap { x in withUnsafeBytes(of: Float16(x).bitPattern.littleEndian) { Array($0) } })
        var q8 = [UInt8](repeating: 0, count: 34 * 2)
        f.withUnsafeBufferPointer { s in q8.withUnsafeMutableBytes { Q8_0.quantize(s.baseAddress!, count: 64, into: $0.baseAddress!) } }
        w.addTensor(name: "t.q8_0", type: .q8_0, shape: [32, 2], data: q8)
        w.addTensor(name: "t.q4_0", type: .q4_0, shape: [32, 2], data: (0..<36).map { _ in UInt8.random(in: 0...255, using: &rng) })
        w.addTensor(name: "t.q6_k", type: .q6_K, shape: [256], data: (0..<210).map { _ in UInt8.random(in: 0...255, using: &rng) })
        return try? w.bytes()
    }

    /// A 1-layer width-32 llama with a small vocabulary of the given tokenizer model.
    static func tiny(tokenizer model: String) -> [UInt8]? {
        var w = GGUFWriter(alignment: 32)
        let a = "llama"
        w.set("general.architecture", .string(a))
        w.set("\(a).block_count", .uint32(1)); w.set("\(a).context_length", .uint32(64)); w.set("\(a).embedding_length", .uint32(32))
        w.set("\(a).feed_forward_length", .uint32(64)); w.set("\(a).attention.head_count", .uint32(1))
        w.set("\(a).attention.head_count_kv", .uint32(1)); w.set("\(a).attention.layer_norm_rms_epsilon", .float32(1e-5))
        w.set("\(a).rope.dimension_count", .uint32(32))
        var tokens: [String]
        var types: [Int32]
        switch model {
        case "gpt2":
            tokens = (0..<256).map { b in String(Character(Unicode.Scalar(UInt8(b)))) } + ["Ġ", "He", "ll", "Hell", "Hello", "<|endoftext|>"]
            types = Array(repeating: 1, count: tokens.count - 1) + [3]
            w.set("tokenizer.ggml.merges", .array(.string(["H e", "l l", "He ll", "Hell o"])))
            w.set("tokenizer.ggml.pre", .string("gpt-2"))
        case "bert":
            tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "w", "##o", "##r", "##l", "##d", "h", "##e"]
            types = [3, 3, 3, 3, 3] + Array(repeating: 1, count: tokens.count - 5)
        default:
            tokens = ["<unk>", "<s>", "</s>"] + (0..<256).map { String(format: "<0x%02X>", $0) } + ["▁", "▁H", "ello", "▁Hello", "w", "ö", "r", "l", "d"]
            types = [2, 3, 3] + Array(repeating: 6, count: 256) + Array(repeating: 1, count: 9)
            w.set("tokenizer.ggml.scores", .array(.float32((0..<tokens.count).map { -Float($0) })))
        }
        w.set("tokenizer.ggml.model", .string(model))
        w.set("tokenizer.ggml.tokens", .array(.string(tokens)))
        w.set("tokenizer.ggml.token_type", .array(.int32(types)))
        w.set("tokenizer.ggml.bos_token_id", .uint32(1)); w.set("tokenizer.ggml.eos_token_id", .uint32(2))
        w.set("\(a).vocab_size", .uint32(UInt32(tokens.count)))
        w.addTensor(name: "token_embd.weight", type: .f16, shape: [32, tokens.count], data: [UInt8](repeating: 0, count: 64 * tokens.count))
        return try? w.bytes()
    }
}

// MARK: Workers AI request decoder and validation

/// Request bodies: the JSON parser, the Workers AI decoder and its validation. Every body ends
/// in an `AIInput` or an `AIError` 5006; a parsed body written back and parsed again is the same value.
public struct RequestTarget: FuzzTarget {
    public let name = "request"
    public let seeds: [[UInt8]]
    public let mutator = Mutator(dictionary: [
        "\"prompt\":", "\"messages\":", "\"role\":", "\"content\":", "\"user\"", "\"system\"", "\"assistant\"", "\"tool\"",
        "\"stream\":true", "\"max_tokens\":", "\"temperature\":", "\"top_p\":", "\"top_k\":", "\"seed\":", "\"raw\":true",
        "\"repetition_penalty\":", "\"frequency_penalty\":", "\"presence_penalty\":", "\"min_p\":", "\"tools\":[]",
        "\"lora\":\"x\"", "\"response_format\":{}", "null", "true", "false", "1e308", "-1e308", "1e-400", "9999999999999999999999",
        "-0", "0.5", "NaN", "\"\\ud800\"", "\"\\u0000\"", "\"\\udbff\\udfff\"", "[[[[[[[[", "]]]]]]]]", "{\"a\":{\"b\":{", "}}}",
        "\\", "\"", ",", ":", "{", "}", "[", "]", "\u{FEFF}",
    ], maxSize: 1 << 16)

    public init(corpus: String = FuzzRunner.corpusRoot + "/request") {
        seeds = FuzzRunner.corpus(corpus)
    }

    static func same(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .number(let d, _)), (.number(let d, _), .null): return !d.isFinite
        case let (.array(x), .array(y)): return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) }
        case let (.object(x), .object(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && same($0.value, $1.value) }
        default: return a == b
        }
    }

    public func run(_ input: [UInt8]) -> FuzzResult {
        // the parser alone: write back and re-parse gives the same value
        if let v = try? JSONParser.parse(input) {
            var w = JSONWriter()
            w.value(v)
            guard let again = try? JSONParser.parse(w.bytes) else {
                return .failure("written JSON does not parse: \(String(decoding: w.bytes.prefix(200), as: UTF8.self))")
            }
            // JSON.stringify semantics: a literal beyond Double's range (1e400) is Infinity, written as null
            if !Self.same(again, v) { return .failure("JSON round trip changed the value") }
        }
        do {
            let input = try AIInput(json: input)
            try input.validate()
            return .ok("ok-valid")
        } catch {
            // typed throws: the error is an AIError
            return error.code == 5006 ? .ok("5006") : .failure("error code \(error.code) for a request body: \(error)")
        }
    }
}

// MARK: chat templates

/// Chat templates: lexer, parser and renderer on mutated real templates, rendered with a
/// conversation that has tools, tool calls and a system prompt. Every input ends in output or a
/// `TemplateError`; the render limits keep each one short.
public struct TemplateTarget: FuzzTarget {
    public let name = "template"
    public let seeds: [[UInt8]]
    public let mutator = Mutator(dictionary: [
        "{{", "}}", "{%", "%}", "{#", "#}", "{%-", "-%}", "for ", "in ", "endfor", "if ", "elif ", "else", "endif", "set ", "endset",
        "macro ", "endmacro", "call", "endcall", "filter ", "endfilter", "namespace(", "range(", "loop.", "recursive", "messages",
        "message['content']", "tools", "|tojson", "|join", "|length", "|trim", "|indent(", "|replace(", "|list", "|sort", "|map(",
        " * ", " ~ ", " + ", " ** ", "10**9", "99999999999", "-1", "[::-1]", "(", ")", "[", "]", "'", "\"", ",", ".", "|",
        "raise_exception(", "strftime_now(", "caller()", "is defined", "not ", " and ", " or ",
    ], maxSize: 1 << 16)
    let context: [String: TemplateValue]

    public init(corpus: String = FuzzRunner.corpusRoot + "/template", realTemplates: String? = FuzzRunner.cache + "/fixtures/llama.cpp/models/templates") {
        var s = FuzzRunner.corpus(corpus)
        if let realTemplates { s += FuzzRunner.corpus(realTemplates) }
        seeds = s
        let tool: TemplateValue = ["type": "function", "function": ["name": "get_weather", "description": "Weather of a city",
                                                                    "parameters": ["type": "object", "properties": ["city": ["type": "string"]], "required": ["city"]]]]
        context = [
            "messages": [
                ["role": "system", "content": "You are helpful."],
                ["role": "user", "content": "What is the weather in Paris?"],
                ["role": "assistant", "content": "", "tool_calls": [["type": "function", "id": "call_1",
                                                                      "function": ["name": "get_weather", "arguments": ["city": "Paris"]]]]],
                ["role": "tool", "content": "{\"temp\": 21}", "tool_call_id": "call_1", "name": "get_weather"],
                ["role": "assistant", "content": "It is 21 °C.<think>x</think>"],
                ["role": "user", "content": [["type": "text", "text": "Thanks 🔥"]]],
            ],
            "tools": [tool],
            "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>",
        ]
    }

    public func run(_ input: [UInt8]) -> FuzzResult {
        let source = String(decoding: input, as: UTF8.self)
        do {
            let t = try ChatTemplate(source)
            _ = try t.render(context)
            return .ok("ok-rendered")
        } catch let e as TemplateError {
            if let l = e.limit { return .ok("limit-\(l.rawValue)") }
            return .ok(e.kind.rawValue)
        } catch {
            return .failure("untyped error: \(error)")
        }
    }
}

// MARK: tokenizers

/// Tokenizer round trips on random bytes and random Unicode: ids inside the vocabulary, the
/// streaming detokenizer agreeing with `decode`, and (for vocabularies that can represent any
/// text: byte-level BPE, SentencePiece with byte fallback) decode(encode(text)) == text.
public struct TokenizerTarget: FuzzTarget {
    public let name: String
    public let seeds: [[UInt8]]
    public let mutator = Mutator(dictionary: [" ", "  ", "\n", "\t", "\r\n", "Hello", "'s", "'ll", "123", "🔥", "é", "e\u{301}", "日本",
                                              "<s>", "</s>", "<|endoftext|>", "[CLS]", "\u{0}", "\u{FEFF}", "\u{200B}", "ﬁ", "Ⅻ"], maxSize: 4096)
    let tokenizer: Tokenizer
    let lossless: Bool
    let singleByteTokens: Set<UInt8>
    /// SPM, BPE or WPM.
    public var kindName: String { tokenizer.kind.rawValue }

    /// `vocab`: a vocabulary-only GGUF (llama.cpp's ggml-vocab-*.gguf) or a model file.
    public init(vocab path: String) throws {
        tokenizer = try Tokenizer(gguf: GGUFFile(path: path))
        name = "tokenizer-" + URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent.replacingOccurrences(of: "ggml-vocab-", with: "")
        lossless = tokenizer.kind != .wpm
        // Bytes the vocabulary has a one-byte token for. A byte-level BPE vocabulary without some
        // of them (falcon, starcoder lack a few control bytes) drops such bytes, as llama.cpp does.
        var single = Set<UInt8>()
        for id in 0..<tokenizer.vocabularySize {
            let b = tokenizer.tokenBytes(Int32(id))
            if b.count == 1 { single.insert(b[0]) }
        }
        singleByteTokens = single
        var s: [[UInt8]] = ["Hello world", " leading space", "naïve café — 日本語のテキスト 🏔️🔥", "a\n\n\tb  c   ", "x = f(y)[0] // 42;", ""].map { Array($0.utf8) }
        var rng = FuzzRNG(seed: 7)
        for _ in 0..<8 { s.append((0..<64).map { _ in UInt8.random(in: 0...255, using: &rng) }) }
        seeds = s
    }

    /// Inputs are read two ways: as bytes (invalid UTF-8 repaired), and as a list of random
    /// Unicode scalars drawn from the bytes (any plane, no surrogates).
    public func run(_ input: [UInt8]) -> FuzzResult {
        let asText = String(decoding: input, as: UTF8.self)
        if case .failure(let m) = check(asText) { return .failure(m) }
        var scalars = String.UnicodeScalarView()
        var i = 0
        while i + 2 < input.count {
            let v = (UInt32(input[i]) << 16 | UInt32(input[i + 1]) << 8 | UInt32(input[i + 2])) % 0x110000
            if let u = Unicode.Scalar(v) { scalars.append(u) }
            i += 3
        }
        return check(String(scalars))
    }

    func check(_ text: String) -> FuzzResult {
        let ids = tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        if let bad = ids.first(where: { $0 < 0 || Int($0) >= tokenizer.vocabularySize }) {
            return .failure("id \(bad) outside the vocabulary of \(tokenizer.vocabularySize) for \(text.debugDescription)")
        }
        _ = tokenizer.encode(text, addSpecial: true, parseSpecial: true)
        let decoded = tokenizer.decode(ids, skipSpecial: true)
        var stream = StreamingDetokenizer(tokenizer: tokenizer)
        var pieces = ""
        for id in ids { pieces += stream.append(id) }
        pieces += stream.finish()
        if pieces != decoded {
            return .failure("streaming detokenizer gave \(pieces.debugDescription), decode gave \(decoded.debugDescription)")
        }
        if lossless && decoded != text && representable(text) {
            return .failure("round trip of \(text.debugDescription) gave \(decoded.debugDescription)")
        }
        return .ok(decoded == text ? "ok-roundtrip" : (lossless ? "ok-unrepresentable" : "ok-lossy"))
    }

    /// Text the vocabulary can give back exactly.
    func representable(_ text: String) -> Bool {
        switch tokenizer.kind {
        case .bpe: return text.utf8.allSatisfy { singleByteTokens.contains($0) }
        case .spm: return tokenizer.id(forToken: "<0x00>") != nil
        case .wpm: return false
        }
    }
}
