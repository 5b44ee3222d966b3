import XCTest
@testable import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// Each kind of damage gives the right typed error (never a crash).
final class MalformedTests: XCTestCase {
    typealias R = RawGGUF

    /// A valid raw file: one F32 [32, 2] tensor and one Q8_0 [32] tensor.
    func base() -> RawGGUF {
        var r = RawGGUF()
        r.kvs = [R.kvString("general.architecture", "llama")]
        r.tensors = [("a", [32, 2], 0, 0), ("b", [32], 8, 256)]
        r.data = [UInt8](repeating: 0x3c, count: 256) + [0, 0x3c] + [UInt8](repeating: 1, count: 32)
        return r
    }

    func open(_ r: RawGGUF) throws -> GGUFFile { try GGUFFile(bytes: r.bytes()) }

    func testBaseIsValid() throws {
        let f = try open(base())
        XCTAssertEqual(f.tensors.count, 2)
        XCTAssertEqual(try f.dequantize(f.tensors[1]), [Float](repeating: 1, count: 32))
    }

    func testMagicAndVersion() {
        var r = base()
        r.magic = Array("GGML".utf8)
        let e = assertGGUFError(.badMagic, "GGML") { try open(r) }
        XCTAssertTrue(e?.message.contains("GGML") ?? false)
        r.magic = Array("gguf".utf8)
        assertGGUFError(.badMagic, "lower case") { try open(r) }
        assertGGUFError(.badMagic, "text file") { try GGUFFile(bytes: Array("hello, world\n".utf8)) }
        assertGGUFError(.truncated, "empty") { try GGUFFile(bytes: []) }
        assertGGUFError(.truncated, "3 bytes") { try GGUFFile(bytes: Array("GGU".utf8)) }
        assertGGUFError(.badMagic, "3 other bytes") { try GGUFFile(bytes: Array("ab\n".utf8)) }
        for v: UInt32 in [0, 1, 4, 99, .max] {
            var r = base()
            r.version = v
            let e = assertGGUFError(.unsupportedVersion, "version \(v)") { try open(r) }
            XCTAssertTrue(e?.message.contains("\(v)") ?? false)
        }
        r = base()
        r.version = 0x0300_0000
        let be = assertGGUFError(.unsupportedVersion, "big-endian") { try open(r) }
        XCTAssertTrue(be?.message.contains("big-endian") ?? false)
        r.version = 2
        XCTAssertNoThrow(try open(r))
    }

    func testAbsurdCounts() {
        var r = base()
        r.tensorCount = 1 << 50
        assertGGUFError(.tooLarge, "tensor count 2^50") { try open(r) }
        r.tensorCount = .max
        assertGGUFError(.tooLarge, "tensor count max") { try open(r) }
        r.tensorCount = 1000
        assertGGUFError(.truncated, "1000 tensors in a small file") { try open(r) }
        r = base()
        r.kvCount = 1 << 41
        assertGGUFError(.tooLarge, "kv count 2^41") { try open(r) }
        r.kvCount = 1000
        assertGGUFError(.truncated, "kv count beyond the file") { try open(r) }
    }

    func testStringsAndKeys() {
        var r = base()
        r.kvs = [R.u64(1 << 40) + Array("k".utf8) + R.u32(4) + R.u32(1)]
        assertGGUFError(.badString, "key length 2^40") { try open(r) }
        r.kvs = [R.u64(5000) + Array("k".utf8) + R.u32(4) + R.u32(1)]
        assertGGUFError(.truncated, "key length past the end") { try open(r) }
        r.kvs = [R.kv("", type: 4, R.u32(1))]
        assertGGUFError(.badString, "empty key") { try open(r) }
        r.kvs = [R.kv("s", type: 8, R.u64(.max))]
        assertGGUFError(.badString, "string length max") { try open(r) }
        r.kvs = [R.kv("s", type: 8, R.u64(100_000))]
        assertGGUFError(.truncated, "string past the end") { try open(r) }
        r.kvs = [R.kvU32("dup", 1), R.kvU32("dup", 2)]
        assertGGUFError(.duplicate, "duplicate key") { try open(r) }
        for t: UInt32 in [13, 100, .max] {
            r.kvs = [R.kv("x", type: t, R.u32(0))]
            assertGGUFError(.badValueType, "value type \(t)") { try open(r) }
        }
        // Invalid UTF-8 is repaired, not fatal.
        r.kvs = [R.kv("bad.utf8", type: 8, R.u64(2) + [0xff, 0xfe])]
        XCTAssertEqual(try? open(r).string("bad.utf8"), "\u{FFFD}\u{FFFD}")
    }

    func testArrays() throws {
        var r = base()
        r.kvs = [R.kv("a", type: 9, R.u32(4) + R.u64(1 << 31))]
        assertGGUFError(.badArray, "2^31 elements") { try open(r) }
        r.kvs = [R.kv("a", type: 9, R.u32(4) + R.u64(1_000_000))]
        assertGGUFError(.truncated, "a million u32 in a small file") { try open(r) }
        r.kvs = [R.kv("a", type: 9, R.u32(8) + R.u64(3) + R.str("x") + R.str("y") + R.u64(5000))]
        assertGGUFError(.truncated, "third string too long") { try open(r) }
        r.kvs = [R.kv("a", type: 9, R.u32(13) + R.u64(1) + [0])]
        assertGGUFError(.badValueType, "element type 13") { try open(r) }
        func nested(_ depth: Int) -> [UInt8] {
            var out = [UInt8]()
            for _ in 0..<depth { out += R.u32(9) + R.u64(1) }
            return out + R.u32(0) + R.u64(1) + [7]
        }
        r.kvs = [R.kv("deep", type: 9, nested(6))]
        let f = try open(r)
        var v = f["deep"]?.arrayValue
        for _ in 0..<6 {
            guard case .array(let inner)? = v else { return XCTFail("nesting lost") }
            v = inner.first
        }
        XCTAssertEqual(v, .uint8([7]))
        r.kvs = [R.kv("deep", type: 9, nested(8))]
        assertGGUFError(.badArray, "nesting 9 deep") { try open(r) }
        r.kvs = [R.kv("deep", type: 9, nested(100_000))]
        assertGGUFError(.badArray, "nesting 100000 deep") { try open(r) }
    }

    func testAlignmentKey() throws {
        var r = base()
        for a: UInt32 in [0, 3, 48] {
            r.kvs = [R.kvU32("general.alignment", a)]
            assertGGUFError(.misaligned, "alignment \(a)") { try open(r) }
        }
        r.kvs = [R.kv("general.alignment", type: 10, R.u64(32))]
        assertGGUFError(.typeMismatch, "u64 alignment") { try open(r) }
        r.kvs = [R.kvU32("general.alignment", 256)]
        r.alignment = 256
        r.tensors = [("a", [32, 2], 0, 0), ("b", [32], 8, 256)]
        let f = try open(r)
        XCTAssertEqual(f.alignment, 256)
        XCTAssertEqual(f.dataOffset, 256)
        r.tensors = [("a", [32, 2], 0, 0), ("b", [32], 8, 128)]
        assertGGUFError(.misaligned, "offset 128 with alignment 256") { try open(r) }
    }

    func testTensorTable() {
        var r = base()
        r.tensors[0].dims = [1, 1, 1, 1, 64]
        assertGGUFError(.badTensor, "5 dimensions") { try open(r) }
        r.tensors[0].dims = []
        r.tensors[0].dims.append(contentsOf: [UInt64](repeating: 1, count: 0))
        r.tensorCount = nil
        r = base()
        r.tensors[0].dims = [32, UInt64.max]
        assertGGUFError(.badShape, "negative dimension") { try open(r) }
        r.tensors[0].dims = [1 << 32, 1 << 32]
        assertGGUFError(.tooLarge, "2^64 elements") { try open(r) }
        r.tensors[0].dims = [0, 1 << 62, 1 << 62]
        assertGGUFError(.tooLarge, "overflow behind a zero") { try open(r) }
        r.tensors[0].dims = [1 << 61, 1]
        r.tensors[0].type = 28   // F64: 2^61 * 8 bytes overflows
        assertGGUFError(.tooLarge, "byte size overflow") { try open(r) }
        for t: UInt32 in [4, 5, 31, 32, 33, 36, 37, 38, 43, 1000, .max] {
            r = base()
            r.tensors[0].type = t
            let e = assertGGUFError(.unknownTensorType, "type \(t)") { try open(r) }
            XCTAssertTrue(e?.message.contains("'a'") ?? false)
        }
        r = base()
        r.tensors[1].dims = [33]
        assertGGUFError(.badShape, "Q8_0 row of 33") { try open(r) }
        r.tensors[1] = ("b", [128], 12, 256)
        assertGGUFError(.badShape, "Q4_K row of 128") { try open(r) }
        r = base()
        r.tensors[1].name = String(repeating: "x", count: 64)
        assertGGUFError(.badTensor, "64-byte name") { try open(r) }
        r.tensors[1].name = String(repeating: "x", count: 63)
        XCTAssertNoThrow(try open(r))
        r.tensors[1].name = "a"
        assertGGUFError(.duplicate, "duplicate tensor name") { try open(r) }
    }

    func testOffsets() throws {
        var r = base()
        r.tensors[1].offset = 16
        assertGGUFError(.misaligned, "offset 16") { try open(r) }
        r.tensors[1].offset = 1 << 40
        assertGGUFError(.outOfBounds, "offset 2^40") { try open(r) }
        r.tensors[1].offset = UInt64.max & ~31
        assertGGUFError(.outOfBounds, "offset near 2^64") { try open(r) }
        r.tensors[1].offset = 512
        assertGGUFError(.outOfBounds, "offset past the end") { try open(r) }
        r.tensors[1].offset = 224
        let e = assertGGUFError(.overlap, "b inside a") { try open(r) }
        XCTAssertTrue((e?.message.contains("'a'") ?? false) && (e?.message.contains("'b'") ?? false))
        r.tensors[1].offset = 0
        assertGGUFError(.overlap, "same offset") { try open(r) }
        // Out of file order but disjoint is fine.
        r = base()
        r.tensors = [("b", [32], 8, 0), ("a", [32, 2], 0, 64)]
        r.data = [0, 0x3c] + [UInt8](repeating: 1, count: 32) + [UInt8](repeating: 0, count: 30) + [UInt8](repeating: 0, count: 256)
        let f = try open(r)
        XCTAssertEqual(try f.dequantize(f.tensors[0]), [Float](repeating: 1, count: 32))
    }

    func testTruncatedTensorData() {
        let full = base().bytes()
        let dataStart = full.count - 290
        for cut in [1, 33, 34, 35, 100, 255, 256, 289, 290] {
            assertGGUFError(.truncated, "cut \(cut) bytes") { try GGUFFile(bytes: Array(full.dropLast(cut))) }
        }
        XCTAssertEqual(dataStart % 32, 0)
        assertGGUFError(.truncated, "header without data") { try GGUFFile(bytes: Array(full.prefix(dataStart - 5))) }
    }

    /// Every prefix of a small valid file is either complete (only tensor padding cut) or `.truncated`.
    func testEveryPrefixOfSampleFile() throws {
        let full = try makeSampleFile()
        let f = try GGUFFile(bytes: full)
        let needed = f.dataOffset + (f.tensors.map { $0.offset + $0.byteCount }.max() ?? 0)
        var truncated = 0
        for n in 0..<full.count {
            do {
                let g = try GGUFFile(bytes: Array(full.prefix(n)))
                XCTAssertGreaterThanOrEqual(n, needed, "prefix \(n) opened")
                XCTAssertTrue(exercise(g))
            } catch let e as GGUFError {
                XCTAssertEqual(e.kind, .truncated, "prefix \(n): \(e.message)")
                truncated += 1
            }
        }
        XCTAssertEqual(truncated, needed)
        print("sample file: \(full.count) prefixes tried, \(truncated) truncated")
    }

    /// The real model cut at every KiB of its first 64 KiB and at points inside its tensor data.
    func testTruncatedRealFile() throws {
        let f = try GGUFFile(path: try cachedModel(sourceModelName))
        let all = f.fileBytes
        var tried = 0
        for kib in 0...64 {
            let n = kib * 1024
            assertGGUFError(.truncated, "first \(kib) KiB") { try GGUFFile(bytes: Array(all[0..<n])) }
            tried += 1
        }
        let second = f.tensors.sorted { $0.offset < $1.offset }[1]
        let cuts = [f.dataOffset - 1, f.dataOffset, f.dataOffset + 1, f.dataOffset + 4096,
                    f.dataOffset + second.offset, f.dataOffset + second.offset + 17,
                    f.fileSize / 2, f.fileSize - 1]
        for n in cuts {
            assertGGUFError(.truncated, "cut at byte \(n)") { try GGUFFile(bytes: Array(all[0..<n])) }
            tried += 1
        }
        // Through the file system (mmap path) too.
        let path = temporaryPath("cut.gguf")
        defer { unlink(path) }
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        let n = f.dataOffset + 1000
        XCTAssertEqual(write(fd, all.baseAddress!, n), n)
        close(fd)
        assertGGUFError(.truncated, "file cut in tensor data") { try GGUFFile(path: path) }
        tried += 1
        print("real file: \(tried) truncations tried, all .truncated")
    }

    func testFileSystemErrors() {
        assertGGUFError(.io, "missing file") { try GGUFFile(path: "/nonexistent/model.gguf") }
        assertGGUFError(.io, "directory") { try GGUFFile(path: "/tmp") }
        let path = temporaryPath("empty.gguf")
        defer { unlink(path) }
        close(Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644))
        assertGGUFError(.truncated, "empty file") { try GGUFFile(path: path) }
    }
}
