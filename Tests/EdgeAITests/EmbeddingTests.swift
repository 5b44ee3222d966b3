import Foundation
import GGUF
import Hummingbird
import XCTest
@testable import EdgeAI
import WorkerApp

/// Element i of a JSON array.
private func item(_ v: JSONValue?, _ i: Int) -> JSONValue? {
    guard case .array(let a)? = v, i < a.count else { return nil }
    return a[i]
}

/// The numbers of a JSON array as Floats (nil when it is not an array of numbers).
private func floats(_ v: JSONValue?) -> [Float]? {
    guard let v, case .array(let a) = v else { return nil }
    var out: [Float] = []
    for x in a {
        guard case .number(let d, _) = x else { return nil }
        out.append(Float(d))
    }
    return out
}

/// Text embeddings with all-MiniLM-L6-v2 (Tests/fetch-fixtures.sh converts it with `gguf convert`):
/// fidelity against llama.cpp and an independent numpy BERT (Tests/Fixtures/minilm-embeddings.json,
/// made by Tests/Fixtures/embeddings-reference.py), the Workers AI contract's validation, pooling,
/// truncation, batching, F16/Q8_0 conversions, and the worker's routes.
final class EmbeddingTests: XCTestCase {
    static let id = "@cf/sentence-transformers/all-minilm-l6-v2"

    struct Reference: Decodable {
        let gguf_sha256: String
        let texts: [String]
        let tokens: [[Int32]]
        let numpy_mean: [[Double]]
        let numpy_cls: [[Double]]
        let llamacpp_mean: [[Double]]
    }

    static let reference: Result<Reference, Error> = Result {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/minilm-embeddings.json")
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }

    static let shared: Result<AI, Error> = Result {
        let ai = try AI(threads: 0)
        guard let info = ai.models.first(where: { $0.id == id }) else { throw AIError.internal("Models/catalog.json has no entry \(id)") }
        guard FileManager.default.fileExists(atPath: info.path) else {
            throw AIError.internal("Missing model file \(info.path): run Tests/fetch-fixtures.sh (or Models/fetch.sh \(id))")
        }
        return ai
    }

    func ai() throws -> AI { try Self.shared.get() }
    func ref() throws -> Reference { try Self.reference.get() }

    static func cosine(_ a: [Float], _ b: [Double]) -> Double {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in 0..<min(a.count, b.count) { dot += Double(a[i]) * b[i]; na += Double(a[i]) * Double(a[i]); nb += b[i] * b[i] }
        return dot / (na.squareRoot() * nb.squareRoot())
    }

    static func cosine(_ a: [Float], _ b: [Float]) -> Double { cosine(a, b.map(Double.init)) }

    /// The catalog's file is the one the references were computed from (our converter is deterministic).
    func testCatalogFileIsTheReferencedConversion() throws {
        let ai = try ai()
        let path = try XCTUnwrap(ai.models.first { $0.id == Self.id }?.path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        XCTAssertEqual(data.withUnsafeBytes { GGUF.SHA256.hex($0) }, try ref().gguf_sha256)
    }

    func testFidelityAgainstLlamaCppAndNumpy() async throws {
        let ai = try ai(), r = try ref()
        XCTAssertEqual(r.texts.count, 10)
        let start = Date()
        let out = try await ai.embed(Self.id, EmbeddingInput(text: r.texts))
        let seconds = Date().timeIntervalSince(start)
        XCTAssertEqual(out.shape, [10, 384])
        XCTAssertEqual(out.pooling, .mean)
        XCTAssertEqual(out.tokenCounts, r.tokens.map(\.count))
        var worstLlama = 1.0, worstNumpy = 1.0
        for i in 0..<10 {
            let cl = Self.cosine(out.data[i], r.llamacpp_mean[i]), cn = Self.cosine(out.data[i], r.numpy_mean[i])
            worstLlama = min(worstLlama, cl); worstNumpy = min(worstNumpy, cn)
            XCTAssertGreaterThanOrEqual(cl, 0.9999, "text \(i) vs llama.cpp")
            XCTAssertGreaterThanOrEqual(cn, 0.9999, "text \(i) vs numpy")
            let norm = out.data[i].reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            XCTAssertEqual(norm, 1, accuracy: 1e-5)
        }
        // Different texts are not the same vector (a constant answer would fail above, too).
        XCTAssertLessThan(Self.cosine(out.data[0], out.data[9]), 0.9)
        print("EmbeddingTests: min cosine vs llama.cpp \(worstLlama), vs numpy \(worstNumpy); batch of 10 in \(Int(seconds * 1000)) ms")
    }

    func testCLSPoolingAgainstNumpyAndDifferentFromMean() async throws {
        let ai = try ai(), r = try ref()
        let cls = try await ai.embed(Self.id, EmbeddingInput(text: r.texts, pooling: .cls))
        let mean = try await ai.embed(Self.id, EmbeddingInput(text: r.texts, pooling: .mean))
        XCTAssertEqual(cls.pooling, .cls)
        for i in 0..<r.texts.count {
            XCTAssertGreaterThanOrEqual(Self.cosine(cls.data[i], r.numpy_cls[i]), 0.9999, "text \(i)")
            XCTAssertLessThan(Self.cosine(cls.data[i], mean.data[i]), 0.99, "text \(i): CLS and mean pooling should differ")
        }
        // Through the JSON contract.
        let json = try await ai.run(Self.id, json: Array(#"{"text":"Hi","pooling":"cls"}"#.utf8))
        let v = try JSONParser.parse(json)
        XCTAssertEqual(v["pooling"], .string("cls"))
        guard case .array(let rows)? = v["data"], case .array(let row)? = rows.first else { return XCTFail(String(decoding: json, as: UTF8.self)) }
        let parsed = row.compactMap { if case .number(let d, _) = $0 { return Float(d) } else { return nil } }
        // Alone rather than in a batch of 10: sgemm blocks differently, so not the same bits.
        XCTAssertEqual(parsed.count, 384)
        XCTAssertGreaterThanOrEqual(Self.cosine(parsed, cls.data[9]), 0.999999)
    }

    /// One batch gives each string the vector it gets alone (rows are packed, attention per string).
    func testBatchMatchesSingles() async throws {
        let ai = try ai(), r = try ref()
        let batch = try await ai.embed(Self.id, EmbeddingInput(text: r.texts))
        for i in [0, 5, 8, 9] {
            let one = try await ai.embed(Self.id, EmbeddingInput(text: [r.texts[i]]))
            XCTAssertGreaterThanOrEqual(Self.cosine(one.data[0], batch.data[i]), 0.999999, "text \(i)")
        }
    }

    func testContractValidation() async throws {
        let ai = try ai()
        func code(_ body: String) async -> Int? {
            do {
                _ = try await ai.run(Self.id, json: Array(body.utf8))
                return nil
            } catch let e as AIError {
                return e.code
            } catch {
                return -1
            }
        }
        let many = "[" + (0..<101).map { "\"s\($0)\"" }.joined(separator: ",") + "]"
        let hundred = "[" + (0..<100).map { "\"s\($0)\"" }.joined(separator: ",") + "]"
        for bad in [#"{"text":[]}"#, "{\"text\":\(many)}", #"{"text":""}"#, #"{"text":["a",""]}"#, #"{"text":42}"#,
                    #"{"text":[1,2]}"#, #"{"text":{"a":1}}"#, #"{"text":null}"#, #"{}"#, #"{"prompt":"hi"}"#, #"["hi"]"#, "{not json",
                    #"{"text":"a","pooling":"max"}"#, #"{"text":"a","pooling":1}"#, #"{"text":"a","truncate":"yes"}"#] {
            let c = await code(bad)
            XCTAssertEqual(c, 5006, bad)
        }
        let ok = try await ai.embed(Self.id, EmbeddingInput(json: Array("{\"text\":\(hundred)}".utf8)))
        XCTAssertEqual(ok.shape, [100, 384])
        // Swift values get the same rules.
        for bad in [EmbeddingInput(text: []), EmbeddingInput(text: [""]), EmbeddingInput(text: (0..<101).map { "\($0)" })] {
            do { _ = try await ai.embed(Self.id, bad); XCTFail("accepted \(bad.text.count) strings") } catch let e as AIError {
                XCTAssertEqual(e.code, 5006)
            }
        }
        // A text-generation input to the embedding model, and an embedding input to a chat model.
        do { _ = try await ai.run(Self.id, AIInput(prompt: "hi")); XCTFail("chat on an embedding model") } catch let e as AIError {
            XCTAssertEqual(e.code, 5006)
        }
        do { _ = try await ai.embed(TestModel.id, EmbeddingInput(text: ["hi"])); XCTFail("embeddings from a chat model") } catch let e as AIError {
            XCTAssertEqual(e.code, 5006)
        }
        do { _ = try await ai.embed("@cf/no/such-model", EmbeddingInput(text: ["hi"])); XCTFail("unknown model") } catch let e as AIError {
            XCTAssertEqual(e.code, 5007)
        }
    }

    func testLongInputIs5006UnlessTruncated() async throws {
        let ai = try ai()
        let long = Array(repeating: "edge", count: 600).joined(separator: " ")
        do {
            _ = try await ai.embed(Self.id, EmbeddingInput(text: ["short", long]))
            XCTFail("a 602-token input was accepted")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 5006)
            XCTAssertTrue(e.message.contains("/text/1") && e.message.contains("512"), e.message)
        }
        let out = try await ai.embed(Self.id, EmbeddingInput(json: Array("{\"text\":[\"short\",\"\(long)\"],\"truncate\":true}".utf8)))
        XCTAssertEqual(out.shape, [2, 384])
        XCTAssertEqual(out.tokenCounts, [3, 512])
        // Exactly 512 tokens fit without truncation ([CLS] + 510 words + [SEP]).
        let fits = Array(repeating: "edge", count: 510).joined(separator: " ")
        let f = try await ai.embed(Self.id, EmbeddingInput(text: [fits]))
        XCTAssertEqual(f.tokenCounts, [512])
        XCTAssertGreaterThanOrEqual(Self.cosine(f.data[0], out.data[1]), 0.9999)
    }

    /// F16 and Q8_0 conversions of the same directory stay close to the numpy reference.
    func testF16AndQ8_0Conversions() async throws {
        let ai = try ai(), r = try ref()
        let hf = URL(fileURLWithPath: try XCTUnwrap(ai.models.first { $0.id == Self.id }?.path))
            .deletingLastPathComponent().appendingPathComponent("all-minilm-l6-v2-hf").path
        let dir = NSTemporaryDirectory() + "edgeai-embed-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Q8_0 (weights and activations in 8 bits): llama.cpp's own Q8_0 file of this model reaches
        // 0.99914 against the same reference; ours 0.99896.
        for (type, floor) in [(GGMLType.f16, 0.9999), (.q8_0, 0.998)] {
            let path = dir + "/minilm-\(type.name).gguf"
            try BertConverter.convert(directory: hf, output: path, type: type)
            let id = "test/minilm-\(type.name)"
            ai.register(id, path: path)
            let out = try await ai.embed(id, EmbeddingInput(text: r.texts))
            let worst = (0..<r.texts.count).map { Self.cosine(out.data[$0], r.numpy_mean[$0]) }.min()!
            XCTAssertGreaterThanOrEqual(worst, floor, type.name)
            print("EmbeddingTests: \(type.name) min cosine vs numpy \(worst)")
        }
    }

    func testWorkerRoutes() async throws {
        let ai = try ai()
        let worker = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: Self.id), state: WorkerState())
        defer { worker.server.cancel() }
        let p = worker.port
        let expected = try await ai.embed(Self.id, EmbeddingInput(text: ["Hello", "World"])).data[1]
        let model = Self.id
        try await Task.detached {
            let run = try httpPost(port: p, path: "/ai/run/\(model)", body: #"{"text":["Hello","World"]}"#)
            XCTAssertEqual(run.status, 200, run.text)
            let v = try JSONParser.parse(run.body)
            XCTAssertEqual(v["success"], .bool(true))
            XCTAssertEqual(v["result"]?["shape"], .array([.number(2, literal: "2"), .number(384, literal: "384")]))
            XCTAssertEqual(v["result"]?["pooling"], .string("mean"))
            let account = try httpPost(port: p, path: "/accounts/abc/ai/run/%40cf/sentence-transformers/all-minilm-l6-v2", body: #"{"text":"Hello"}"#)
            XCTAssertEqual(account.status, 200, account.text)
            let bad = try httpPost(port: p, path: "/ai/run/\(model)", body: #"{"text":[]}"#)
            XCTAssertEqual(bad.status, 400)
            XCTAssertEqual(item(try JSONParser.parse(bad.body)["errors"], 0)?["code"], .number(5006, literal: "5006"))

            let oa = try httpPost(port: p, path: "/v1/embeddings", body: "{\"model\":\"\(model)\",\"input\":[\"Hello\",\"World\"]}")
            XCTAssertEqual(oa.status, 200, oa.text)
            let o = try JSONParser.parse(oa.body)
            XCTAssertEqual(o["object"], .string("list"))
            XCTAssertEqual(o["model"], .string(model))
            XCTAssertEqual(o["usage"]?["prompt_tokens"], .number(6, literal: "6"))
            XCTAssertEqual(item(o["data"], 1)?["index"], .number(1, literal: "1"))
            XCTAssertEqual(item(o["data"], 1)?["object"], .string("embedding"))
            XCTAssertEqual(floats(item(o["data"], 1)?["embedding"]), expected)
            let single = try httpPost(port: p, path: "/accounts/abc/ai/v1/embeddings", body: "{\"model\":\"\(model)\",\"input\":\"Hello\"}")
            XCTAssertEqual(single.status, 200, single.text)
            let empty = try httpPost(port: p, path: "/v1/embeddings", body: "{\"model\":\"\(model)\",\"input\":\"\"}")
            XCTAssertEqual(empty.status, 400, empty.text)
            XCTAssertTrue(empty.text.contains("/input"), empty.text)
            let unknown = try httpPost(port: p, path: "/v1/embeddings", body: #"{"model":"@cf/nope","input":"x"}"#)
            XCTAssertEqual(unknown.status, 404, unknown.text)
        }.value
    }
}
