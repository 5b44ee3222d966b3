import Foundation
import XCTest
@testable import EdgeAI

/// The default model of the catalog (SmolLM2-135M-Instruct Q8_0), shared by all model tests.
enum TestModel {
    static let id = "@cf/huggingfacetb/smollm2-135m-instruct"

    private static let shared: Result<AI, Error> = Result {
        let ai = try AI(threads: 0)
        guard let info = ai.models.first(where: { $0.id == id }) else {
            throw AIError.internal("Models/catalog.json has no entry \(id)")
        }
        guard FileManager.default.fileExists(atPath: info.path) else {
            throw AIError.internal("Missing model file \(info.path): run Models/setup.sh (or Tests/fetch-fixtures.sh) to create it")
        }
        return ai
    }

    /// The shared AI, or a test failure naming the missing file.
    static func ai(file: StaticString = #filePath, line: UInt = #line) throws -> AI {
        switch shared {
        case .success(let ai): return ai
        case .failure(let e):
            XCTFail("\(e)", file: file, line: line)
            throw e
        }
    }
}

/// Time bounds in tests are multiplied by `EDGEAI_TIME_SLACK` (default 1): under a sanitizer
/// (Tests/sanitize.sh sets 50) every step is 5-50 times slower and a bound meant for an optimized
/// build would fail on speed, not on behaviour.
enum TimeBound {
    static let slack: Double = ProcessInfo.processInfo.environment["EDGEAI_TIME_SLACK"].flatMap(Double.init) ?? 1
    static func seconds(_ s: Double) -> Double { s * slack }
}

/// Reference greedy decodings by llama.cpp of the same GGUF (Tests/Fixtures/api).
struct GreedyCase: Decodable {
    let prompt: String
    let prompt_ids: [Int32]
    let greedy_ids: [Int32]
    let greedy_text: String

    static let all: [GreedyCase] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/api/smollm2-q8_0-greedy.json")
        struct File: Decodable { let cases: [GreedyCase] }
        guard let data = try? Data(contentsOf: url), let file = try? JSONDecoder().decode(File.self, from: data) else { return [] }
        return file.cases
    }()

    /// The (system, user) pair of a ChatML prompt written with SmolLM2's template.
    var messages: [AIMessage] {
        let parts = prompt.components(separatedBy: "<|im_end|>\n<|im_start|>")
        let system = parts[0].replacingOccurrences(of: "<|im_start|>system\n", with: "")
        let user = parts[1].replacingOccurrences(of: "user\n", with: "")
        return [.system(system), .user(user)]
    }
}

/// Parses a server-sent-event byte stream as Workers AI writes it.
func parseSSE(_ bytes: [UInt8]) throws -> (chunks: [JSONValue], done: Bool) {
    let text = String(decoding: bytes, as: UTF8.self)
    var chunks: [JSONValue] = []
    var done = false
    guard text.hasSuffix("\n\n") else { throw AIError.internal("SSE stream does not end with a blank line") }
    for event in text.dropLast(2).components(separatedBy: "\n\n") {
        guard event.hasPrefix("data: "), !event.contains("\n") else { throw AIError.internal("bad SSE event \(event)") }
        let payload = String(event.dropFirst(6))
        if done { throw AIError.internal("event after [DONE]") }
        if payload == "[DONE]" { done = true; continue }
        chunks.append(try JSONParser.parse(payload))
    }
    return (chunks, done)
}
