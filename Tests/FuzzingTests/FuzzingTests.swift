import EdgeAIFuzz
import Foundation
import XCTest

/// Short runs of every fuzz target (Tests/fuzz.sh runs them long). Each input ends in a result or
/// a typed error, no property is violated, and none takes longer than the hang threshold.
final class FuzzingTests: XCTestCase {
    /// Iterations scale with FUZZ_SCALE (default 1; the CI budget for all targets is about a minute in release).
    static var scale: Double { Double(ProcessInfo.processInfo.environment["FUZZ_SCALE"] ?? "") ?? 1 }

    func run(_ target: FuzzTarget, _ iterations: Int, seed: UInt64 = 12, file: StaticString = #filePath, line: UInt = #line) {
        #if DEBUG
        let n = max(target.seeds.count, Int(Double(iterations) * Self.scale) / 10)
        let hang = 20.0
        #else
        let n = Int(Double(iterations) * Self.scale)
        let hang = 5.0   // per input; generous because CI shares 2 noisy cores with the build
        #endif
        let report = FuzzRunner.run(target, iterations: n, seed: seed, hangSeconds: hang)
        print("fuzz \(report)")
        XCTAssertEqual(report.inputs, n, file: file, line: line)
        for f in report.failures.prefix(5) {
            XCTFail("\(target.name): \(f.message.prefix(500)) for \(String(decoding: f.input.prefix(300), as: UTF8.self).debugDescription)", file: file, line: line)
        }
        for h in report.hangs.prefix(5) {
            XCTFail("\(target.name): \(h.seconds) s for \(String(decoding: h.input.prefix(300), as: UTF8.self).debugDescription)", file: file, line: line)
        }
    }

    func testGGUFReader() {
        let t = GGUFTarget()
        XCTAssertGreaterThanOrEqual(t.seeds.count, 4, "Tests/Fuzz/corpus/gguf should hold the seed files")
        run(t, 100_000)
    }

    func testRequestDecoder() {
        let t = RequestTarget()
        XCTAssertGreaterThanOrEqual(t.seeds.count, 10, "Tests/Fuzz/corpus/request should hold request bodies")
        run(t, 100_000)
    }

    func testChatTemplates() {
        let t = TemplateTarget()
        XCTAssertGreaterThan(t.seeds.count, 40, "the real templates come from Tests/fetch-fixtures.sh")
        run(t, 10_000)
    }

    func testTokenizers() throws {
        let paths = FuzzVocabularies.paths()
        XCTAssertGreaterThanOrEqual(paths.count, 6, "vocabularies come from Tests/fetch-fixtures.sh")
        var kinds = Set<String>()
        for p in paths {
            let t = try TokenizerTarget(vocab: p)
            kinds.insert(t.kindName)
            run(t, 2_000)
        }
        XCTAssertEqual(kinds, ["SPM", "BPE", "WPM"], "every vocabulary type")
    }
}
