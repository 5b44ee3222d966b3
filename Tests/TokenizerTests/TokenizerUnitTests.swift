import GGUF
import XCTest
@testable import Tokenizer

/// Pre-tokenizer scanners, errors and helpers, on small in-memory inputs.
final class TokenizerUnitTests: XCTestCase {
    func words(_ kind: PreTokenizerKind, _ text: String) -> [String] {
        var s = text
        return s.withUTF8 { buf -> [String] in
            guard let p = buf.baseAddress, buf.count > 0 else { return [] }
            var ends = [Int32]()
            kind.split(p, buf.count, scratch: PreTokenizerScratch(), wordEnds: &ends)
            var out = [String]()
            var start = 0
            for e in ends {
                out.append(String(decoding: UnsafeBufferPointer(start: p + start, count: Int(e) - start), as: UTF8.self))
                start = Int(e)
            }
            return out
        }
    }

    func testGPT2Split() {
        XCTAssertEqual(words(.gpt2, "Hello world's  end!!\n\n  x"), ["Hello", " world", "'s", " ", " end", "!!", "\n\n ", " x"])
        XCTAssertEqual(words(.gpt2, "a 123 \t"), ["a", " 123", " \t"])
        XCTAssertEqual(words(.digitsThenGPT2, "ab 2024"), ["ab", " ", "2", "0", "2", "4"])
    }

    func testLlama3Split() {
        XCTAssertEqual(words(.llama3, "I'M 12345 ok.\r\n\r\n  go"), ["I", "'M", " ", "123", "45", " ok", ".\r\n\r\n", " ", " go"])
        XCTAssertEqual(words(.qwen2, "x 12"), ["x", " ", "1", "2"])
        XCTAssertEqual(words(.qwen35, "ca\u{0301}fe"), ["ca\u{0301}fe"])
        XCTAssertEqual(words(.qwen2, "ca\u{0301}fe"), ["ca", "\u{0301}fe"])
    }

    func testRegexStages() {
        XCTAssertEqual(words(.deepseekCoder, "if x:\n  return 12"), ["if", " x", ":", "\n", " ", " return", " ", "1", "2"])
        XCTAssertEqual(words(.deepseekLLM, "Hi 你好 123  "), ["Hi", " ", "你好", " ", "123", "  "])
        XCTAssertEqual(words(.falcon, "1234567"), ["123", "456", "7"])
        XCTAssertEqual(words(.newlines, "a b\n\nc"), ["a b", "\n\n", "c"])
    }

    /// A tiny byte-level BPE vocabulary built in memory through a GGUF file.
    func makeGGUF(model: String = "gpt2", pre: String? = "gpt-2", tokens: [String], merges: [String]? = nil,
                  types: [Int32]? = nil, extra: [(String, GGUFValue)] = []) throws -> GGUFFile {
        var w = GGUFWriter()
        w.set("general.architecture", .string("test"))
        w.set("tokenizer.ggml.model", .string(model))
        if let pre { w.set("tokenizer.ggml.pre", .string(pre)) }
        w.set("tokenizer.ggml.tokens", .array(.string(tokens)))
        if let merges { w.set("tokenizer.ggml.merges", .array(.string(merges))) }
        if let types { w.set("tokenizer.ggml.token_type", .array(.int32(types))) }
        for (k, v) in extra { w.set(k, v) }
        return try GGUFFile(bytes: w.bytes())
    }

    func testTinyBPE() throws {
        // a, b, c, "ab", "abc", Ġ (space)
        let file = try makeGGUF(tokens: ["a", "b", "c", "ab", "abc", "Ġ", "Ġab"], merges: ["a b", "ab c", "Ġ ab"])
        let tok = try Tokenizer(gguf: file)
        XCTAssertEqual(tok.encode("abc", addSpecial: false), [4])
        XCTAssertEqual(tok.encode("ab ab", addSpecial: false), [3, 6])
        XCTAssertEqual(tok.encode("cab", addSpecial: false), [2, 3])
        XCTAssertEqual(tok.decode([3, 6]), "ab ab")
        // A byte with no token is dropped, as llama.cpp does.
        XCTAssertEqual(tok.encode("d", addSpecial: false), [])
    }

    func testErrors() throws {
        let unknownPre = try makeGGUF(pre: "no-such-pre", tokens: ["a"], merges: [])
        XCTAssertThrowsError(try Tokenizer(gguf: unknownPre)) { e in
            let err = e as? TokenizerError
            XCTAssertEqual(err?.kind, .unsupportedPreTokenizer)
            XCTAssertTrue(err?.message.contains("'no-such-pre'") ?? false, "\(e)")
        }
        let noMerges = try makeGGUF(tokens: ["a"], merges: nil)
        XCTAssertThrowsError(try Tokenizer(gguf: noMerges)) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .missingKey)
        }
        let badModel = try makeGGUF(model: "rwkv-world-x", tokens: ["a"])
        XCTAssertThrowsError(try Tokenizer(gguf: badModel)) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .unsupportedModel)
            XCTAssertTrue("\(e)".contains("rwkv-world-x"))
        }
        var w = GGUFWriter()
        w.set("general.architecture", .string("test"))
        XCTAssertThrowsError(try Tokenizer(gguf: GGUFFile(bytes: w.bytes()))) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .missingKey)
        }
        let wrongType = try makeGGUF(tokens: ["a"], merges: [], extra: [("tokenizer.ggml.bos_token_id", .string("one"))])
        XCTAssertThrowsError(try Tokenizer(gguf: wrongType)) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .badMetadata)
        }
        let shortTypes = try makeGGUF(tokens: ["a", "b"], merges: [], types: [1])
        XCTAssertThrowsError(try Tokenizer(gguf: shortTypes)) { e in
            XCTAssertEqual((e as? TokenizerError)?.kind, .badMetadata)
        }
        let empty = try makeGGUF(tokens: [], merges: [])
        XCTAssertThrowsError(try Tokenizer(gguf: empty))
    }

    func testSPMByteFallbackAndSpaces() throws {
        var tokens = ["<unk>", "<s>", "</s>"]
        for b in 0..<256 { tokens.append(String(format: "<0x%02X>", b)) }
        tokens += ["▁", "h", "i", "▁h", "▁hi"]
        var types = [Int32](repeating: 1, count: tokens.count)
        types[0] = 2; types[1] = 3; types[2] = 3
        for i in 3..<259 { types[i] = 6 }
        var w = GGUFWriter()
        w.set("tokenizer.ggml.model", .string("llama"))
        w.set("tokenizer.ggml.tokens", .array(.string(tokens)))
        w.set("tokenizer.ggml.token_type", .array(.int32(types)))
        var scores = [Float](repeating: 0, count: tokens.count)
        scores[262] = -1; scores[263] = -0.5
        w.set("tokenizer.ggml.scores", .array(.float32(scores)))
        let tok = try Tokenizer(gguf: GGUFFile(bytes: w.bytes()))
        XCTAssertTrue(tok.addsSpacePrefix)
        XCTAssertEqual(tok.encode("hi", addSpecial: true), [1, 263])
        // "é" has no token: its two UTF-8 bytes become byte tokens.
        XCTAssertEqual(tok.encode("é", addSpecial: false), [259, 3 + 0xC3, 3 + 0xA9])
        XCTAssertEqual(tok.decode([259, 3 + 0xC3, 3 + 0xA9]), "é")
        XCTAssertEqual(tok.decode(tok.encode(" hi hi", addSpecial: false)), " hi hi")
    }

    func testStreamingHoldsIncompleteUTF8() {
        XCTAssertEqual(StreamingDetokenizer.completePrefixLength([0x61, 0xF0, 0x9F]), 1)
        XCTAssertEqual(StreamingDetokenizer.completePrefixLength([0x61, 0xF0, 0x9F, 0x94, 0xA5]), 5)
        XCTAssertEqual(StreamingDetokenizer.completePrefixLength([0xC3]), 0)
        XCTAssertEqual(StreamingDetokenizer.completePrefixLength([0xC3, 0xA9]), 2)
        XCTAssertEqual(StreamingDetokenizer.completePrefixLength([0x80, 0x80]), 2)     // stray continuation bytes
        XCTAssertEqual(StreamingDetokenizer.completePrefixLength([0xE0, 0x80]), 2)     // impossible sequence: emit
        XCTAssertEqual(StreamingDetokenizer.completePrefixLength([0xFF]), 1)
    }

    func testCleanUpSpaces() {
        func clean(_ s: String) -> String { String(decoding: Tokenizer.cleanUpSpaces(Array(s.utf8)), as: UTF8.self) }
        XCTAssertEqual(clean("a , b . c ? d !"), "a, b. c? d!")
        XCTAssertEqual(clean("it ' s"), "it's")
        XCTAssertEqual(clean("I 'm you 're we 've he 'll don 't"), "I'm you're we've he 'll don 't")
    }
}
