import XCTest
@testable import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// The model cache (`$EDGEAI_CACHE`, default `~/.cache/edgeai`).
let cacheDirectory: String = {
    if let c = ProcessInfo.processInfo.environment["EDGEAI_CACHE"], !c.isEmpty { return c }
    return (ProcessInfo.processInfo.environment["HOME"] ?? "/root") + "/.cache/edgeai"
}()

struct MissingFixture: Error, CustomStringConvertible {
    let description: String
}

/// Path of a cached model file; fails the test (does not skip) when it is absent.
func cachedModel(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let path = cacheDirectory + "/models/" + name
    if access(path, R_OK) != 0 {
        let message = "\(path) is missing: run Models/fetch.sh first (it downloads and converts the default model)"
        XCTFail(message, file: file, line: line)
        throw MissingFixture(description: message)
    }
    return path
}

let sourceModelName = "SmolLM2-135M-Instruct.Q4_1.gguf"
let q8ModelName = "smollm2-135m-instruct-q8_0.gguf"

/// Directory of this test's fixtures in the repository.
let fixturesDirectory: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(2)                       // GGUFTests/Support.swift
    return parts.joined(separator: "/") + "/Fixtures/gguf"
}()

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func temporaryPath(_ name: String) -> String {
    let dir = (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
    return "\(dir)/gguftests-\(getpid())-\(name)"
}

/// Asserts that `body` throws a `GGUFError` of `kind`; returns it.
@discardableResult
func assertGGUFError<T>(_ kind: GGUFError.Kind, _ what: String = "", file: StaticString = #filePath, line: UInt = #line,
                        _ body: () throws -> T) -> GGUFError? {
    do {
        _ = try body()
        XCTFail("expected GGUFError.\(kind) \(what), but no error was thrown", file: file, line: line)
    } catch let e as GGUFError {
        XCTAssertEqual(e.kind, kind, "\(what): \(e.message)", file: file, line: line)
        XCTAssertFalse(e.message.isEmpty, file: file, line: line)
        return e
    } catch {
        XCTFail("expected GGUFError.\(kind) \(what), got \(error)", file: file, line: line)
    }
    return nil
}

// MARK: Deterministic random numbers (SplitMix64).

struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: A raw GGUF builder for malformed files (independent of GGUFWriter).

/// Writes GGUF fields exactly as told, without any validation.
struct RawGGUF {
    var magic: [UInt8] = Array("GGUF".utf8)
    var version: UInt32 = 3
    var tensorCount: UInt64? = nil          // nil: use tensors.count
    var kvCount: UInt64? = nil              // nil: use kvs.count
    /// Pre-encoded key-value pairs (key string + type + value).
    var kvs: [[UInt8]] = []
    var tensors: [(name: String, dims: [UInt64], type: UInt32, offset: UInt64)] = []
    var alignment = 32
    var data: [UInt8] = []

    static func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    static func str(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }

    static func kv(_ key: String, type: UInt32, _ payload: [UInt8]) -> [UInt8] { str(key) + u32(type) + payload }
    static func kvU32(_ key: String, _ v: UInt32) -> [UInt8] { kv(key, type: 4, u32(v)) }
    static func kvString(_ key: String, _ s: String) -> [UInt8] { kv(key, type: 8, str(s)) }

    func bytes() -> [UInt8] {
        var out = magic
        out += RawGGUF.u32(version)
        out += RawGGUF.u64(tensorCount ?? UInt64(tensors.count))
        out += RawGGUF.u64(kvCount ?? UInt64(kvs.count))
        for kv in kvs { out += kv }
        for t in tensors {
            out += RawGGUF.str(t.name)
            out += RawGGUF.u32(UInt32(t.dims.count))
            for d in t.dims { out += RawGGUF.u64(d) }
            out += RawGGUF.u32(t.type)
            out += RawGGUF.u64(t.offset)
        }
        while out.count % alignment != 0 { out.append(0) }
        return out + data
    }
}

/// A small valid file made with GGUFWriter: every metadata type (nested
/// arrays included) and tensors of every dequantizable type plus Q4_K.
func makeSampleFile(alignment: Int = 32, seed: UInt64 = 1) throws -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    var w = GGUFWriter(alignment: alignment)
    w.set("general.architecture", .string("llama"))
    w.set("general.name", .string("sample ✓ ünïcode"))
    w.set("test.u8", .uint8(200))
    w.set("test.i8", .int8(-100))
    w.set("test.u16", .uint16(60000))
    w.set("test.i16", .int16(-30000))
    w.set("test.u32", .uint32(4_000_000_000))
    w.set("test.i32", .int32(-2_000_000_000))
    w.set("test.u64", .uint64(UInt64.max))
    w.set("test.i64", .int64(Int64.min))
    w.set("test.f32", .float32(1.5))
    w.set("test.f64", .float64(-2.25))
    w.set("test.bool", .bool(true))
    w.set("llama.block_count", .uint32(2))
    w.set("tokenizer.ggml.tokens", .array(.string(["<s>", "</s>", "a", "b", "ab", ""])))
    w.set("tokenizer.ggml.scores", .array(.float32([0, 0, -1, -2, -3.5, 0])))
    w.set("tokenizer.ggml.token_type", .array(.int32([3, 3, 1, 1, 1, 1])))
    w.set("test.nested", .array(.array([.uint8([1, 2, 3]), .string(["x", "yz"]), .array([.bool([true, false])])])))
    w.set("test.empty", .array(.int64([])))
    func randomFloats(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -2...2, using: &rng) } }
    func floatBytes(_ v: [Float]) -> [UInt8] { v.withUnsafeBytes { Array($0) } }
    let f32 = randomFloats(64)
    w.addTensor(name: "t.f32", type: .f32, shape: [16, 4], data: floatBytes(f32))
    w.addTensor(name: "t.f16", type: .f16, shape: [8, 2], data: randomFloats(16).flatMap { f in
        withUnsafeBytes(of: Float16(f).bitPattern.littleEndian) { Array($0) } })
    w.addTensor(name: "t.bf16", type: .bf16, shape: [8], data: randomFloats(8).flatMap { f in
        withUnsafeBytes(of: UInt16(f.bitPattern >> 16).littleEndian) { Array($0) } })
    var q8 = [UInt8](repeating: 0, count: 34 * 4)
    let src = randomFloats(128)
    src.withUnsafeBufferPointer { s in q8.withUnsafeMutableBytes { Q8_0.quantize(s.baseAddress!, count: 128, into: $0.baseAddress!) } }
    w.addTensor(name: "t.q8_0", type: .q8_0, shape: [64, 2], data: q8)
    w.addTensor(name: "t.q4_0", type: .q4_0, shape: [32, 2], data: (0..<36).map { _ in UInt8.random(in: 0...255, using: &rng) })
    var q41 = (0..<40).map { _ in UInt8.random(in: 0...255, using: &rng) }
    for b in 0..<2 {   // finite scales
        let d = Float16(Float.random(in: 0.001...0.1, using: &rng)).bitPattern, m = Float16(Float.random(in: -1...0, using: &rng)).bitPattern
        q41[20 * b] = UInt8(d & 0xff); q41[20 * b + 1] = UInt8(d >> 8); q41[20 * b + 2] = UInt8(m & 0xff); q41[20 * b + 3] = UInt8(m >> 8)
    }
    w.addTensor(name: "t.q4_1", type: .q4_1, shape: [32, 1, 2], data: q41)
    w.addTensor(name: "t.q4_k", type: .q4_K, shape: [256], data: [UInt8](repeating: 7, count: 144))
    w.addTensor(name: "t.empty", type: .f32, shape: [0, 3], data: [])
    return try w.bytes()
}

/// Opens every part of a parsed file: metadata accessors and tensor conversion.
@discardableResult
func exercise(_ f: GGUFFile) -> Bool {
    var ok = true
    for key in f.metadataKeys {
        _ = f[key]
        _ = try? f.int(key); _ = try? f.float(key); _ = try? f.string(key); _ = try? f.bool(key)
        _ = try? f.strings(key); _ = try? f.floats(key); _ = try? f.ints(key); _ = try? f.uint32(key)
    }
    _ = f.architecture
    var row = [Float](repeating: 0, count: 4096)
    for t in f.tensors {
        let b = f.bytes(of: t)
        if b.count != t.byteCount { ok = false }
        if t.type.canDequantize && t.elementCount <= 1 << 16 {
            _ = try? f.dequantize(t)
            if t.rowCount > 0 && t.rowLength <= row.count {
                row.withUnsafeMutableBufferPointer { buf in _ = try? f.dequantizeRow(t, row: t.rowCount - 1, into: buf) }
            }
        }
    }
    return ok
}
