import Foundation
import GGUF
import XCTest
@testable import Transformer

/// Model files are untrusted: header values that would make loading allocate absurd memory are
/// refused before any allocation, with the figure in the message.
final class AbsurdHeaderTests: XCTestCase {
    /// Loads a tiny model whose metadata has `key` overridden, expects a typed error quickly,
    /// with `figure` in its description, and no large growth of resident memory.
    func assertRefused(_ key: String, _ value: GGUFValue, figure: String, architecture: String = "llama",
                       file: StaticString = #filePath, line: UInt = #line) {
        var spec = TinyModel()
        spec.architecture = architecture
        spec.extraMetadata = [("\(architecture).\(key)", value)]
        let rssBefore = Self.residentBytes()
        let start = Date()
        do {
            let f = try spec.file()
            _ = try TransformerModel(file: f)
            XCTFail("loaded a model with \(key) = \(value)", file: file, line: line)
        } catch let e as ModelError {
            XCTAssertTrue("\(e)".contains(figure), "\(e) should name \(figure)", file: file, line: line)
        } catch {
            XCTFail("not a ModelError: \(error)", file: file, line: line)
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 2, file: file, line: line)
        let grown = Self.residentBytes() - rssBefore
        XCTAssertLessThan(grown, 256 << 20, "resident memory grew by \(grown >> 20) MiB", file: file, line: line)
    }

    func testAbsurdWidthsAreRefused() {
        assertRefused("embedding_length", .uint64(1 << 31), figure: "2147483648")
        assertRefused("embedding_length", .uint32(UInt32.max), figure: "4294967295")
        assertRefused("feed_forward_length", .uint64(1 << 40), figure: "1099511627776")
        assertRefused("attention.head_count", .uint64(1 << 31), figure: "2147483648")
        assertRefused("attention.head_count_kv", .uint64(1 << 31), figure: "2147483648")
        assertRefused("attention.key_length", .uint64(1 << 31), figure: "2147483648")
        assertRefused("block_count", .uint64(1 << 31), figure: "2147483648")
        assertRefused("rope.dimension_count", .uint64(1 << 40), figure: "1099511627776")
    }

    func testAbsurdVocabularyAndContextAreRefused() {
        assertRefused("vocab_size", .uint64(1_000_000_000), figure: "1000000000")
        assertRefused("context_length", .uint64(1 << 40), figure: "1099511627776")
        assertRefused("context_length", .int64(-1), figure: "-1")
    }

    /// Gemma's per-layer sliding-window flags are built from block_count: a huge count used to
    /// allocate (2^31 flags, 2 GB) and loop before validation refused it.
    func testSlidingWindowArchitecturesBoundTheLayerCountFirst() {
        for arch in ["gemma2", "gemma3"] {
            assertRefused("block_count", .uint64(1 << 31), figure: "2147483648", architecture: arch)
            assertRefused("block_count", .uint64(1 << 40), figure: "1099511627776", architecture: arch)
        }
        assertRefused("attention.sliding_window", .int64(-5), figure: "-5", architecture: "gemma2")
    }

    func testValuesPastInt64AreRefused() {
        // a u64 past Int.max cannot even be represented: the reader says so with the figure
        assertRefused("embedding_length", .uint64(UInt64.max), figure: "18446744073709551615")
        assertRefused("context_length", .uint64(UInt64(Int64.max) + 1), figure: "9223372036854775808")
    }

    /// A session asks for the KV cache size first: a context whose cache exceeds the machine is refused.
    func testHugeSessionContextIsRefusedBeforeAllocating() throws {
        let model = try TransformerModel(file: TinyModel().file())
        XCTAssertThrowsError(try model.makeSession(contextLength: 1 << 40)) { e in
            XCTAssertTrue("\(e)".contains("1099511627776"), "\(e)")
        }
        XCTAssertThrowsError(try model.makeSession(contextLength: 0))
        XCTAssertThrowsError(try model.makeSession(contextLength: -5))
    }

    /// Tensor dimensions whose product overflows are refused by the GGUF reader.
    func testTensorDimensionsThatOverflowAreRefused() throws {
        // a valid file, then the tensor table patched: token_embd.weight gets dims 2^40 x 2^40
        var spec = TinyModel()
        spec.layers = 1
        var bytes = try spec.ggufBytes()
        let name = Array("token_embd.weight".utf8)
        guard let at = Self.find(name, in: bytes) else { return XCTFail("tensor name not found") }
        // after the name: u32 n_dims, then n_dims u64 dims
        var p = at + name.count
        XCTAssertEqual(bytes[p], 2)
        p += 4
        for _ in 0..<2 {
            withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { for (i, b) in $0.enumerated() { bytes[p + i] = b } }
            p += 8
        }
        XCTAssertThrowsError(try GGUFFile(bytes: bytes)) { e in
            guard let g = e as? GGUFError else { return XCTFail("\(e)") }
            XCTAssertEqual(g.kind, .tooLarge)
            XCTAssertTrue(g.message.contains("1099511627776"), g.message)
        }
    }

    static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard needle.count <= hay.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle {
            return i
        }
        return nil
    }

    /// VmRSS from /proc/self/status (0 where unavailable).
    static func residentBytes() -> Int {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kb = line.split(separator: " ").compactMap { Int($0) }.first ?? 0
            return kb * 1024
        }
        return 0
    }
}
