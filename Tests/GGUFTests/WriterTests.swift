import XCTest
@testable import GGUF
#if canImport(Glibc)
import Glibc
#endif

final class WriterTests: XCTestCase {
    func testRoundTripEveryValueType() throws {
        let bytes = try makeSampleFile()
        let f = try GGUFFile(bytes: bytes)
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.dataOffset % 32, 0)
        XCTAssertEqual(f["test.u8"], .uint8(200))
        XCTAssertEqual(f["test.i8"], .int8(-100))
        XCTAssertEqual(f["test.u16"], .uint16(60000))
        XCTAssertEqual(f["test.i16"], .int16(-30000))
        XCTAssertEqual(f["test.u32"], .uint32(4_000_000_000))
        XCTAssertEqual(f["test.i32"], .int32(-2_000_000_000))
        XCTAssertEqual(f["test.u64"], .uint64(.max))
        XCTAssertEqual(f["test.i64"], .int64(.min))
        XCTAssertEqual(f["test.f32"], .float32(1.5))
        XCTAssertEqual(f["test.f64"], .float64(-2.25))
        XCTAssertEqual(f["test.bool"], .bool(true))
        XCTAssertEqual(try f.string("general.name"), "sample ✓ ünïcode")
        XCTAssertEqual(f["test.nested"], .array(.array([.uint8([1, 2, 3]), .string(["x", "yz"]), .array([.bool([true, false])])])))
        XCTAssertEqual(f["test.empty"], .array(.int64([])))
        XCTAssertEqual(try f.strings("tokenizer.ggml.tokens"), ["<s>", "</s>", "a", "b", "ab", ""])
        XCTAssertEqual(try f.floats("tokenizer.ggml.scores"), [0, 0, -1, -2, -3.5, 0])
        XCTAssertEqual(try f.ints("tokenizer.ggml.token_type"), [3, 3, 1, 1, 1, 1])
        // Integer conversions between widths, only when the value fits.
        XCTAssertEqual(try f.int("test.u8"), 200)
        XCTAssertEqual(try f.int("test.i64"), Int(Int64.min))
        XCTAssertEqual(try f.uint32("test.u16"), 60000)
        assertGGUFError(.typeMismatch, "u64 max as Int") { try f.int("test.u64") }
        assertGGUFError(.typeMismatch, "negative as u32") { try f.uint32("test.i8") }
        assertGGUFError(.typeMismatch, "float as int") { try f.int("test.f32") }
        assertGGUFError(.typeMismatch, "bool as int") { try f.int("test.bool") }
        assertGGUFError(.typeMismatch, "int as bool") { try f.bool("test.u8") }
        XCTAssertEqual(try f.double("test.i16"), -30000)
        XCTAssertEqual(f.metadataKeys.count, 19)

        XCTAssertEqual(f.tensors.map(\.name), ["t.f32", "t.f16", "t.bf16", "t.q8_0", "t.q4_0", "t.q4_1", "t.q4_k", "t.empty"])
        for t in f.tensors {
            XCTAssertEqual(t.offset % 32, 0)
            XCTAssertEqual(f.bytes(of: t).count, t.byteCount)
        }
        let q41 = try XCTUnwrap(f.tensor(named: "t.q4_1"))
        XCTAssertEqual(q41.shape, [32, 1, 2])
        XCTAssertEqual(q41.rowCount, 2)
        XCTAssertEqual(q41.dimensionCount, 3)
        XCTAssertEqual(try f.dequantize(try XCTUnwrap(f.tensor(named: "t.empty"))), [])
        XCTAssertEqual(try f.dequantize(try XCTUnwrap(f.tensor(named: "t.bf16"))).count, 8)
        // Q4_K converts through the kernels' table: d = fp16(0x0707), codes 7 everywhere.
        let q4k = try XCTUnwrap(f.tensor(named: "t.q4_k"))
        XCTAssertEqual(try f.dequantize(q4k).count, 256)
        // A type without a dequantizer (IQ2_XXS) is a typed error naming tensor and type.
        var w = GGUFWriter()
        w.addTensor(name: "t.iq2", type: .iq2_xxs, shape: [256], data: [UInt8](repeating: 7, count: 66))
        let g = try GGUFFile(bytes: try w.bytes())
        let iq = try XCTUnwrap(g.tensor(named: "t.iq2"))
        let e = assertGGUFError(.unsupportedTensorType, "IQ2_XXS dequantize") { try g.dequantize(iq) }
        XCTAssertTrue(e?.message.contains("IQ2_XXS") ?? false)
        XCTAssertTrue(e?.message.contains("t.iq2") ?? false)
        var row = [Float](repeating: 0, count: 256)
        assertGGUFError(.unsupportedTensorType, "IQ2_XXS row") { try row.withUnsafeMutableBufferPointer { try g.dequantizeRow(iq, row: 0, into: $0) } }

        // Q4_0 from raw bytes: (q - 8) * d, low nibbles first.
        let q40 = try XCTUnwrap(f.tensor(named: "t.q4_0"))
        let raw = f.bytes(of: q40)
        let v = try f.dequantize(q40)
        for b in 0..<2 {
            let d = Float(Float16(bitPattern: UInt16(raw[18 * b]) | UInt16(raw[18 * b + 1]) << 8))
            for j in 0..<32 {
                let byte = raw[18 * b + 2 + j % 16]
                let q = Int(j < 16 ? byte & 0x0F : byte >> 4) - 8
                let expected = Float(q) * d
                XCTAssertTrue(v[32 * b + j] == expected || (v[32 * b + j].isNaN && expected.isNaN))
            }
        }
    }

    func testAlignmentAndFileOutput() throws {
        var w = GGUFWriter(alignment: 64)
        w.set("a", .string("x"))
        w.set("b", .uint32(1))
        w.set("a", .string("replaced in place"))
        w.addTensor(name: "t1", type: .f32, shape: [3], data: [UInt8](repeating: 1, count: 12))
        w.addTensor(name: "t2", type: .f16, shape: [5], data: [UInt8](repeating: 2, count: 10))
        let path = temporaryPath("align64.gguf")
        defer { unlink(path) }
        try w.write(to: path)
        let f = try GGUFFile(path: path)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.metadataKeys, ["general.alignment", "a", "b"])
        XCTAssertEqual(try f.string("a"), "replaced in place")
        XCTAssertEqual(f.dataOffset % 64, 0)
        XCTAssertEqual(f.tensors.map(\.offset), [0, 64])
        XCTAssertEqual(Array(f.bytes(of: f.tensors[1])), [UInt8](repeating: 2, count: 10))
        XCTAssertEqual(Array(f.fileBytes), try w.bytes())
        w.remove("b")
        XCTAssertEqual(try GGUFFile(bytes: try w.bytes()).metadataKeys, ["general.alignment", "a"])
    }

    func testWriterRejectsBadInput() {
        func writer(_ build: (inout GGUFWriter) -> Void) -> GGUFWriter {
            var w = GGUFWriter()
            build(&w)
            return w
        }
        assertGGUFError(.invalidArgument, "wrong data size") { try writer { $0.addTensor(name: "t", type: .f32, shape: [4], data: [0, 0]) }.bytes() }
        assertGGUFError(.duplicate, "duplicate tensor") {
            try writer { $0.addTensor(name: "t", type: .i8, shape: [1], data: [0]); $0.addTensor(name: "t", type: .i8, shape: [1], data: [0]) }.bytes()
        }
        assertGGUFError(.badTensor, "5 dimensions") { try writer { $0.addTensor(name: "t", type: .i8, shape: [1, 1, 1, 1, 1], data: [0]) }.bytes() }
        assertGGUFError(.badShape, "row not divisible") { try writer { $0.addTensor(name: "t", type: .q8_0, shape: [16], data: []) }.bytes() }
        assertGGUFError(.badShape, "negative dimension") { try writer { $0.addTensor(name: "t", type: .i8, shape: [-1], data: []) }.bytes() }
        assertGGUFError(.tooLarge, "element overflow") { try writer { $0.addTensor(name: "t", type: .i8, shape: [1 << 40, 1 << 40], data: []) }.bytes() }
        assertGGUFError(.badTensor, "long name") { try writer { $0.addTensor(name: String(repeating: "n", count: 64), type: .i8, shape: [1], data: [0]) }.bytes() }
        assertGGUFError(.misaligned, "alignment 48") { try GGUFWriter(alignment: 48).bytes() }
        assertGGUFError(.typeMismatch, "alignment type") { try writer { $0.set("general.alignment", .uint64(32)) }.bytes() }
        assertGGUFError(.badString, "empty key") { try writer { $0.set("", .bool(true)) }.bytes() }
        assertGGUFError(.io, "unwritable path") { try GGUFWriter().write(to: "/nonexistent-dir/x.gguf") }
    }

    func testTypeTable() {
        XCTAssertEqual(GGMLType.allKnown.count, 35)
        XCTAssertEqual(GGMLType.q8_0.rawValue, 8)
        XCTAssertEqual(GGMLType.bf16.rawValue, 30)
        XCTAssertEqual(GGMLType.mxfp4.rawValue, 39)
        XCTAssertEqual(GGMLType(rawValue: 14)?.name, "Q6_K")
        XCTAssertEqual(GGMLType(rawValue: 14)?.bytesPerBlock, 210)
        XCTAssertEqual(GGMLType(rawValue: 12)?.blockSize, 256)
        XCTAssertEqual(GGMLType(name: "q4_1"), .q4_1)
        XCTAssertNil(GGMLType(rawValue: 4))     // removed from ggml
        XCTAssertNil(GGMLType(rawValue: 31))
        XCTAssertNil(GGMLType(rawValue: 43))
        XCTAssertEqual(Set(GGMLType.allKnown.filter(\.canDequantize)), [.f32, .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K])
        for t in GGMLType.allKnown {
            XCTAssertGreaterThan(t.bytesPerBlock, 0, t.name)
            XCTAssertEqual(GGMLType(name: t.name), t)
        }
    }
}
