import XCTest
@testable import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// Q8_0 quantization against a straightforward transcription of ggml's
/// reference rules: amax = max|x|; d = amax/127; id = d != 0 ? 1/d : 0;
/// d stored as half (nearest even); q = roundf(x*id). Values whose product is
/// not a finite int32 (only with NaN/Inf input or a subnormal d) store 0.
final class Q8_0Tests: XCTestCase {
    static func reference(_ x: [Float]) -> [UInt8] {
        precondition(x.count % 32 == 0)
        var out = [UInt8]()
        for b in 0..<(x.count / 32) {
            let block = Array(x[(b * 32)..<(b * 32 + 32)])
            var amax: Float = 0
            for v in block {
                let a = fabsf(v)
                if !(amax > a) { amax = a }
            }
            let d: Float = amax / 127.0
            let id: Float = d != 0 ? 1.0 / d : 0.0
            let h = Float16(d).bitPattern
            out.append(UInt8(h & 0xff))
            out.append(UInt8(h >> 8))
            for v in block {
                let p: Float = v * id
                let r = roundf(p)
                if r.isFinite, let i = Int32(exactly: r) {
                    out.append(UInt8(truncatingIfNeeded: i))
                } else {
                    out.append(0)
                }
            }
        }
        return out
    }

    static func ours(_ x: [Float]) -> [UInt8] {
        var out = [UInt8](repeating: 0xAA, count: x.count / 32 * 34)
        x.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBytes { Q8_0.quantize(src.baseAddress!, count: x.count, into: $0.baseAddress!) }
        }
        return out
    }

    func check(_ x: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(Q8_0Tests.ours(x), Q8_0Tests.reference(x), what, file: file, line: line)
    }

    func testAllZeros() {
        let q = Q8_0Tests.ours([Float](repeating: 0, count: 64))
        XCTAssertEqual(q, [UInt8](repeating: 0, count: 68))
        check([Float](repeating: 0, count: 64), "zeros")
        check([Float](repeating: -0.0, count: 32), "negative zeros")
    }

    func testOneHugeValue() {
        var x = [Float](repeating: 0.001, count: 32)
        x[7] = 1e30        // d overflows half: stored as +Inf
        let q = Q8_0Tests.ours(x)
        XCTAssertEqual(UInt16(q[0]) | UInt16(q[1]) << 8, 0x7C00)
        XCTAssertEqual(Int8(bitPattern: q[2 + 7]), 127)
        check(x, "huge")
        x[7] = 3e38
        check(x, "near Float.greatestFiniteMagnitude")
        x[7] = 60000   // d fits in half
        check(x, "large")
    }

    func testNegativeMaximum() {
        var x = (0..<32).map { Float($0) / 10 }
        x[20] = -50
        let q = Q8_0Tests.ours(x)
        XCTAssertEqual(Int8(bitPattern: q[2 + 20]), -127)
        XCTAssertEqual(Float(Float16(bitPattern: UInt16(q[0]) | UInt16(q[1]) << 8)), Float(Float16(Float(50) / 127)))
        check(x, "negative max")
    }

    func testExactHalfTies() {
        // amax = 127 gives d = 1, id = 1: x * id is exactly k + 0.5 and rounds away from zero.
        var x: [Float] = [127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5, 3.5, 0.49999997, -0.49999997]
        x += [Float](repeating: 0.25, count: 32 - x.count)
        let q = Q8_0Tests.ours(x).dropFirst(2).map { Int8(bitPattern: $0) }
        XCTAssertEqual(Array(q.prefix(12)), [127, 1, -1, 2, -2, 3, -3, 127, -127, 4, 0, 0])
        check(x, "ties")
        // Ties with d = 2.
        let y: [Float] = [254] + (0..<31).map { Float($0) - 15 }
        check(y, "ties d=2")
    }

    func testTinyScales() {
        check((0..<32).map { Float($0) * 1e-30 }, "1e-30 (d below half's range)")
        check((0..<32).map { Float($0) * 1e-6 }, "half subnormal d")
        check((0..<32).map { Float($0) * 1e-40 }, "subnormal x")
        check([Float](repeating: Float.leastNonzeroMagnitude, count: 32), "least nonzero")
        check((0..<32).map { Float($0 - 16) * 1e-37 }, "1/d overflows")
    }

    func testNonFiniteInputDoesNotTrap() {
        var x = [Float](repeating: 1, count: 96)
        x[3] = .nan
        x[40] = .infinity
        x[70] = -.infinity
        x[71] = .nan
        check(x, "non-finite")
    }

    func testRandomBlocks() {
        var rng = SplitMix64(seed: 42)
        for scale in [Float(1e-3), 0.1, 1, 7, 300, 1e5] {
            let x = (0..<(32 * 256)).map { _ in Float.random(in: -scale...scale, using: &rng) }
            check(x, "random scale \(scale)")
        }
        // Random bit patterns (finite and not).
        let bits = (0..<(32 * 256)).map { _ in Float(bitPattern: UInt32.random(in: 0...UInt32.max, using: &rng)) }
        check(bits, "random bit patterns")
    }

    func testPartialBlockIgnoredAndDequantizeRoundTrip() throws {
        var rng = SplitMix64(seed: 7)
        let x = (0..<64).map { _ in Float.random(in: -1...1, using: &rng) }
        let q = Q8_0Tests.ours(x)
        var back = [Float](repeating: 0, count: 64)
        try q.withUnsafeBytes { src in
            try back.withUnsafeMutableBufferPointer { try Dequantize.rows(type: .q8_0, from: src.baseAddress!, count: 64, into: $0.baseAddress!) }
        }
        for i in 0..<64 { XCTAssertEqual(back[i], x[i], accuracy: 1.0 / 127 * 0.51 + 1e-3) }
        assertGGUFError(.invalidArgument, "count not a multiple of 32") {
            try q.withUnsafeBytes { src in try back.withUnsafeMutableBufferPointer { try Dequantize.rows(type: .q8_0, from: src.baseAddress!, count: 33, into: $0.baseAddress!) } }
        }
        assertGGUFError(.unsupportedTensorType, "IQ2_XXS") {
            try q.withUnsafeBytes { src in try back.withUnsafeMutableBufferPointer { try Dequantize.rows(type: .iq2_xxs, from: src.baseAddress!, count: 0, into: $0.baseAddress!) } }
        }
    }

    func testHalfAndBF16Conversions() {
        // Every half converts exactly; nearest-even on the way back.
        for h in UInt16(0)...UInt16.max {
            let f = Half.toFloat(h)
            let expected = Float(Float16(bitPattern: h))
            XCTAssertTrue(f.bitPattern == expected.bitPattern || (f.isNaN && expected.isNaN))
            if !f.isNaN { XCTAssertEqual(Half.fromFloat(f), h) }
        }
        XCTAssertEqual(Half.fromFloat(1 + 1.0 / 2048), 0x3C00)             // tie -> even
        XCTAssertEqual(Half.fromFloat(1 + 3.0 / 2048), 0x3C02)             // tie -> even
        XCTAssertEqual(Half.fromFloat(70000), 0x7C00)
        XCTAssertEqual(Half.bf16FromFloat(1.0), 0x3F80)
        XCTAssertEqual(Half.bf16FromFloat(Float(bitPattern: 0x3F80_8000)), 0x3F80)   // tie -> even
        XCTAssertEqual(Half.bf16FromFloat(Float(bitPattern: 0x3F81_8000)), 0x3F82)   // tie -> even
        XCTAssertEqual(Half.bf16FromFloat(Float(bitPattern: 0x7F80_0001)), 0x7FC0)   // NaN stays NaN
        XCTAssertEqual(Half.bf16ToFloat(0xC000), -2)
    }
}
