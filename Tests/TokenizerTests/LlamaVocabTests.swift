import Foundation
import GGUF
import XCTest
@testable import Tokenizer

/// llama.cpp's own tokenizer test vectors (vendor/llama.cpp/models/ggml-vocab-*.gguf
/// with .inp/.out), tokenized as its test does: no BOS/EOS, no special-token parsing.
/// Runs every case of a vocabulary; returns (passed, total) and reports each failure.
/// Round trip: decode(encode(text)) must give the text back, except where the
/// vocabulary cannot represent it (`representable` says so).
func runVocabCases(_ name: String, representable: (String) -> Bool = { _ in true }) throws -> (Int, Int) {
        let tok = try Fixtures.tokenizer(vocab: name)
        let cases = try Fixtures.vocabCases(name)
        var passed = 0
        for (text, expected) in cases {
            let got = tok.encode(text, addSpecial: false, parseSpecial: false)
            if got == expected {
                passed += 1
            } else {
                XCTFail("\(name): \(text.debugDescription)\n  expected \(expected)\n  got      \(got)")
            }
            if representable(text) {
                let back = tok.decode(got)
                XCTAssertEqual(back, text, "\(name): round trip of \(text.debugDescription)")
            }
        }
        print("vocab \(name): \(passed)/\(cases.count)")
        return (passed, cases.count)
}

final class LlamaVocabTests: XCTestCase {
    func run(_ name: String) throws -> (Int, Int) { try runVocabCases(name) }

    func testLlamaSPM() throws { let (p, n) = try run("llama-spm"); XCTAssertEqual(p, n) }
    func testPhi3() throws { let (p, n) = try run("phi-3"); XCTAssertEqual(p, n) }
    func testLlamaBPE() throws { let (p, n) = try run("llama-bpe"); XCTAssertEqual(p, n) }
    func testGPT2() throws { let (p, n) = try run("gpt-2"); XCTAssertEqual(p, n) }
    func testQwen2() throws { let (p, n) = try run("qwen2"); XCTAssertEqual(p, n) }
    func testQwen35() throws { let (p, n) = try run("qwen35"); XCTAssertEqual(p, n) }
    func testStarcoder() throws { let (p, n) = try run("starcoder"); XCTAssertEqual(p, n) }
    func testRefact() throws { let (p, n) = try run("refact"); XCTAssertEqual(p, n) }
    func testDeepseekLLM() throws { let (p, n) = try run("deepseek-llm"); XCTAssertEqual(p, n) }
    func testDeepseekCoder() throws { let (p, n) = try run("deepseek-coder"); XCTAssertEqual(p, n) }
    func testFalcon() throws { let (p, n) = try run("falcon"); XCTAssertEqual(p, n) }
    func testMPT() throws { let (p, n) = try run("mpt"); XCTAssertEqual(p, n) }
    func testCommandR() throws { let (p, n) = try run("command-r"); XCTAssertEqual(p, n) }
}

/// Special-token facts as llama.cpp (llama-cpp-python 0.3.36) reports them for each vocabulary:
/// BOS, EOS, add_bos, add_eos, the end-of-generation ids and the number of control tokens.
final class LlamaVocabSpecialTokenTests: XCTestCase {
    struct Facts { let bos: Int32?; let eos: Int32?; let addBOS: Bool; let eog: Set<Int32>; let control: Int }
    let facts: [String: Facts] = [
        "gpt-2": .init(bos: 50256, eos: 50256, addBOS: false, eog: [50256], control: 1),
        "llama-spm": .init(bos: 1, eos: 2, addBOS: true, eog: [2], control: 2),
        "phi-3": .init(bos: 1, eos: 32000, addBOS: true, eog: [2, 32000, 32007], control: 14),
        "llama-bpe": .init(bos: 128000, eos: 128001, addBOS: true, eog: [128001, 128009], control: 256),
        "qwen2": .init(bos: 151643, eos: 151643, addBOS: false, eog: [128247, 151643, 151645], control: 4),
        "qwen35": .init(bos: 151643, eos: 151643, addBOS: false, eog: [128247, 151643, 151645], control: 4),
        "starcoder": .init(bos: 0, eos: 0, addBOS: false, eog: [0, 4], control: 38),
        "refact": .init(bos: 0, eos: 0, addBOS: false, eog: [0, 4, 18], control: 19),
        "deepseek-llm": .init(bos: 100000, eos: 100001, addBOS: true, eog: [100001], control: 2),
        "deepseek-coder": .init(bos: 32013, eos: 32014, addBOS: true, eog: [32014], control: 5),
        "falcon": .init(bos: 11, eos: 11, addBOS: false, eog: [11], control: 12),
        "mpt": .init(bos: 0, eos: 0, addBOS: false, eog: [0], control: 2),
        "command-r": .init(bos: 5, eos: 255001, addBOS: true, eog: [0, 255001], control: 9),
        "gemma-4": .init(bos: 2, eos: 1, addBOS: true, eog: [1, 50, 106], control: 18),
        "bert-bge": .init(bos: 101, eos: nil, addBOS: true, eog: [0], control: 5),
    ]

    func testFacts() throws {
        for (name, f) in facts.sorted(by: { $0.key < $1.key }) {
            let t = try Fixtures.tokenizer(vocab: name)
            XCTAssertEqual(t.bosID, f.bos, name)
            XCTAssertEqual(t.eosID, f.eos, name)
            XCTAssertEqual(t.addsBOS, f.addBOS, name)
            XCTAssertFalse(t.addsEOS, name)
            XCTAssertEqual(t.endOfGenerationIDs, f.eog, name)
            XCTAssertEqual((0..<t.vocabularySize).filter { t.isControl(Int32($0)) }.count, f.control, name)
        }
    }

    /// BOS/EOS only when asked and when the vocabulary says so; SentencePiece's space prefix.
    func testAddSpecial() throws {
        let spm = try Fixtures.tokenizer(vocab: "llama-spm")
        XCTAssertEqual(spm.encode("Hello world", addSpecial: true), [1, 15043, 3186])
        XCTAssertEqual(spm.encode("Hello world", addSpecial: false), [15043, 3186])
        XCTAssertEqual(spm.encode("", addSpecial: true), [1])
        XCTAssertEqual(spm.encode("", addSpecial: false), [])
        // "<s>" is a control token: text unless parseSpecial; after it the space prefix is added again.
        XCTAssertEqual(spm.encode("<s>Hello", addSpecial: false, parseSpecial: true), [1, 15043])
        XCTAssertNotEqual(spm.encode("<s>Hello", addSpecial: false, parseSpecial: false).first, 1)
        XCTAssertEqual(spm.decode([1, 15043, 3186]), "<s> Hello world")
        XCTAssertEqual(spm.decode([1, 15043, 3186], skipSpecial: true), " Hello world")
        XCTAssertEqual(spm.decode([15043, 3186]), "Hello world")
        let bpe = try Fixtures.tokenizer(vocab: "llama-bpe")
        XCTAssertEqual(bpe.encode("Hello", addSpecial: true).first, 128000)
        XCTAssertEqual(bpe.encode("<|begin_of_text|>Hello", addSpecial: false, parseSpecial: true), [128000, 9906])
        let bert = try Fixtures.tokenizer(vocab: "bert-bge")
        let ids = bert.encode("Hello", addSpecial: true)
        XCTAssertEqual(ids.first, 101)
        XCTAssertEqual(ids.last, 102)
    }
}

/// Other tokenizer kinds in llama.cpp's test set (not required by the issue).
final class LlamaVocabExtraTests: XCTestCase {
    /// WordPiece lower-cases and strips accents: no round trip.
    func testBertBGE() throws {
        let (p, n) = try runVocabCases("bert-bge", representable: { _ in false })
        XCTAssertEqual(p, n)
    }

    func testGemma4() throws {
        let (p, n) = try runVocabCases("gemma-4")
        XCTAssertEqual(p, n)
    }
}
