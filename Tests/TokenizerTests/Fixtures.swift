import Foundation
import GGUF
import XCTest
@testable import Tokenizer

/// Locations of cached fixtures (made by Tests/fetch-fixtures.sh and the model fetch script).
enum Fixtures {
    static var cache: String {
        if let c = ProcessInfo.processInfo.environment["EDGEAI_CACHE"], !c.isEmpty { return c }
        return NSHomeDirectory() + "/.cache/edgeai"
    }

    static var vocabDirectory: String { cache + "/fixtures/llama.cpp/models" }

    static var smolLM2Path: String { cache + "/models/SmolLM2-135M-Instruct.Q4_1.gguf" }

    /// Files checked into the repository (Tests/Fixtures).
    static var repoFixtures: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").path
    }

    struct MissingFixture: Error, CustomStringConvertible {
        let description: String
    }

    /// Fails the test (does not skip it) when a cached file is missing.
    static func require(_ path: String, hint: String = "run Tests/fetch-fixtures.sh") throws -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw MissingFixture(description: "missing fixture \(path): \(hint)")
        }
        return path
    }

    /// llama.cpp's tokenizer test vectors: `.inp` inputs separated by
    /// "\n__ggml_vocab_test__\n", `.out` one line of ids per input.
    static func vocabCases(_ name: String) throws -> [(text: String, ids: [Int32])] {
        let base = vocabDirectory + "/ggml-vocab-\(name).gguf"
        let inp = try String(contentsOfFile: try require(base + ".inp"), encoding: .utf8)
        let out = try String(contentsOfFile: try require(base + ".out"), encoding: .utf8)
        let sep = "\n__ggml_vocab_test__\n"
        var inputs = [String]()
        var rest = Substring(inp)
        while !rest.isEmpty {
            if let r = rest.range(of: sep) {
                inputs.append(String(rest[..<r.lowerBound]))
                rest = rest[r.upperBound...]
            } else {
                inputs.append(String(rest))
                break
            }
        }
        var lines = out.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        XCTAssertEqual(inputs.count, lines.count, "\(name): input and output counts differ")
        return zip(inputs, lines).map { text, line in
            (text, line.split(separator: " ").compactMap { Int32($0) })
        }
    }

    /// Tokenizers are cached: XCTest runs the tests of this target one after another.
    nonisolated(unsafe) static var loaded: [String: Tokenizer] = [:]

    static func tokenizer(vocab name: String) throws -> Tokenizer {
        if let t = loaded[name] { return t }
        let path = try require(vocabDirectory + "/ggml-vocab-\(name).gguf")
        let t = try Tokenizer(gguf: GGUFFile(path: path))
        loaded[name] = t
        return t
    }
}
