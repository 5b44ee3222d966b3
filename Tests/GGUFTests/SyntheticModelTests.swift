import Foundation
import XCTest
@testable import GGUF

/// The synthetic random-weight models (SyntheticModel) are byte-for-byte the files the llama.cpp
/// references in Tests/Fixtures/random were made from: regenerating each one gives the F32
/// sha256 recorded in manifest.json.
final class SyntheticModelTests: XCTestCase {
    struct Manifest: Decodable {
        struct Variant: Decodable { let sha256: String; let bytes: Int }
        struct Arch: Decodable { let tokenizer_from: String; let f32: Variant }
        let seed: UInt64
        let architectures: [String: Arch]
    }

    static let randomFixtures: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)                       // GGUFTests/SyntheticModelTests.swift
        return parts.joined(separator: "/") + "/Fixtures/random"
    }()

    func manifest() throws -> Manifest {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.randomFixtures + "/manifest.json"))
        return try JSONDecoder().decode(Manifest.self, from: data)
    }

    func testEveryArchitectureHasAReference() throws {
        XCTAssertEqual(Set(try manifest().architectures.keys), Set(SyntheticModel.architectures))
    }

    func testRegeneratedModelsMatchManifest() throws {
        let m = try manifest()
        var sources: [String: GGUFFile] = [:]
        for arch in SyntheticModel.architectures {
            guard let entry = m.architectures[arch] else { XCTFail("\(arch) missing from manifest.json"); continue }
            let src: GGUFFile
            if let s = sources[entry.tokenizer_from] {
                src = s
            } else {
                src = try GGUFFile(path: try cachedModel(entry.tokenizer_from))
                sources[entry.tokenizer_from] = src
            }
            let bytes = try SyntheticModel.bytes(architecture: arch, tokenizerFrom: src, seed: m.seed)
            XCTAssertEqual(bytes.count, entry.f32.bytes, "\(arch): file size")
            XCTAssertEqual(SHA256.hex(bytes), entry.f32.sha256, "\(arch): sha256 of the regenerated F32 model")
            // it parses, with the expected architecture and vocabulary
            let f = try GGUFFile(bytes: bytes)
            XCTAssertEqual(f.architecture, arch)
            XCTAssertEqual(try f.strings("tokenizer.ggml.tokens")?.count, SyntheticModel.vocabularySize)
            XCTAssertNil(f["tokenizer.chat_template"])
            XCTAssertEqual(f.tensor(named: "token_embd.weight")?.shape, [256, SyntheticModel.vocabularySize])
        }
    }

    func testSpecs() throws {
        for arch in SyntheticModel.architectures {
            let s = try XCTUnwrap(SyntheticModel.spec(for: arch))
            XCTAssertEqual(s.width, 256)
            XCTAssertEqual(s.feedForward % 256, 0)
            XCTAssertEqual(s.heads, 4)
            XCTAssertEqual(s.kvHeads, 2)
            if s.slidingWindow != nil {
                // both sliding and global layers exist
                XCTAssertTrue(s.slidingLayers.contains(true), arch)
                XCTAssertTrue(s.slidingLayers.contains(false), arch)
            }
        }
        XCTAssertEqual(SyntheticModel.spec(for: "gemma3")?.slidingLayers, [true, true, true, true, true, false])
        XCTAssertEqual(SyntheticModel.spec(for: "gemma2")?.slidingLayers, [true, false, true, false])
        XCTAssertNil(SyntheticModel.spec(for: "gpt2"))
    }

    func testUnknownArchitectureIsAnError() {
        assertGGUFError(.invalidArgument) {
            try SyntheticModel.write(architecture: "gpt2", to: temporaryPath("x.gguf"), tokenizerFrom: "/nonexistent")
        }
    }
}
