import XCTest
@testable import EdgeAI

final class CatalogTests: XCTestCase {
    func testParsesTheRepositoryCatalog() throws {
        let path = try XCTUnwrap(ModelCatalog.defaultCatalogPath, "Models/catalog.json not found")
        let models = try ModelCatalog.load(path: path, modelsDirectory: "/models")
        let smol = try XCTUnwrap(models.first(where: { $0.id == "@cf/huggingfacetb/smollm2-135m-instruct" }))
        XCTAssertEqual(smol.path, "/models/smollm2-135m-instruct-q8_0.gguf")
        XCTAssertEqual(smol.contextWindow, 8192)
        XCTAssertTrue(smol.isDefault)
    }

    func testShapes() throws {
        let list = try ModelCatalog.parse(Array(#"[{"id": "a", "file": "a.gguf"}, {"id": "b", "path": "/x/b.gguf", "context_window": 2048}]"#.utf8), modelsDirectory: "/m")
        XCTAssertEqual(list, [ModelInfo(id: "a", path: "/m/a.gguf"), ModelInfo(id: "b", path: "/x/b.gguf", contextWindow: 2048)])
        let object = try ModelCatalog.parse(Array(#"{"default": "b", "models": [{"id": "a", "filename": "a.gguf"}, {"id": "b", "file": "b.gguf"}]}"#.utf8), modelsDirectory: "/m")
        XCTAssertEqual(object.map(\.isDefault), [false, true])
    }

    func testBadCatalogsThrowInternalErrors() {
        for bad in ["{", #"{"models": 3}"#, #"[{"file": "a"}]"#, #"[{"id": "a"}]"#, "7"] {
            XCTAssertThrowsError(try ModelCatalog.parse(Array(bad.utf8), modelsDirectory: "/m"), bad) { e in
                XCTAssertEqual((e as? AIError)?.code, 3001)
            }
        }
        XCTAssertThrowsError(try AI(catalog: "/nonexistent/catalog.json")) { e in
            XCTAssertEqual((e as? AIError)?.code, 3001)
        }
    }

    func testDefaultModelAndRegistration() throws {
        let ai = try AI(catalog: nil, modelsDirectory: "/m")
        let before = ai.models.count
        ai.register("@cf/meta/llama-2-7b-chat-int8", path: "/tmp/x.gguf")
        ai.register("@cf/meta/llama-2-7b-chat-int8", path: "/tmp/y.gguf")
        XCTAssertEqual(ai.models.count, before + 1)
        XCTAssertEqual(ai.models.last?.path, "/tmp/y.gguf")
    }

    func testUnknownModelIs5007() async throws {
        let ai = try AI(catalog: nil, modelsDirectory: "/m")
        do {
            _ = try await ai.run("@cf/none", AIInput(prompt: "x"))
            XCTFail()
        } catch let e as AIError {
            XCTAssertEqual(e.description, "5007: No such model @cf/none or task")
        }
        // Validation comes first (no model needed to reject bad input).
        do {
            _ = try await ai.run("@cf/none", AIInput())
            XCTFail()
        } catch let e as AIError {
            XCTAssertEqual(e.code, 5006)
        }
    }

    func testPrefillChunksAreEvenAndNeverSingle() {
        XCTAssertEqual(ModelEngine.chunks(0..<0, maxChunk: 63), [])
        XCTAssertEqual(ModelEngine.chunks(0..<1, maxChunk: 63), [0..<1])
        XCTAssertEqual(ModelEngine.chunks(5..<68, maxChunk: 63), [5..<68])
        XCTAssertEqual(ModelEngine.chunks(0..<64, maxChunk: 63), [0..<32, 32..<64])
        XCTAssertEqual(ModelEngine.chunks(10..<137, maxChunk: 63), [10..<53, 53..<95, 95..<137])
        for n in 2..<400 {
            let c = ModelEngine.chunks(0..<n, maxChunk: 63)
            XCTAssertEqual(c.first?.lowerBound, 0)
            XCTAssertEqual(c.last?.upperBound, n)
            XCTAssertTrue(c.allSatisfy { $0.count >= 2 && $0.count <= 63 }, "\(n)")
            XCTAssertTrue(zip(c, c.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        }
    }
}
