import CKernels
import XCTest

/// ggml's reference Q8_0 quantizer, written out independently in Swift.
private func swiftQuantizeRef(_ x: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for start in stride(from: 0, to: x.count, by: 32) {
        let block = x[start..<start + 32]
        var amax: Float = 0
        for v in block where abs(v) > amax { amax = abs(v) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        let dh = Float16(d).bitPattern
        out.append(UInt8(dh & 0xff))
        out.append(UInt8(dh >> 8))
        for v in block {
            let r = (v * id).rounded(.toNearestOrAwayFromZero)
            // x86 ggml builds turn the out-of-range conversion (1/d overflowed) into 0
            out.append(r >= -128 && r <= 127 ? UInt8(bitPattern: Int8(r)) : 0)
        }
    }
    return out
}

/// llama.cpp's x86 activation quantizer (127/amax, round half to even), in Swift.
private func swiftQuantizeActivation(_ x: [Float]) -> [UInt8] {
    var out: [UInt8] = []
    for start in stride(from: 0, to: x.count, by: 32) {
        let block = x[start..<start + 32]
        let amax = block.map { abs($0) }.max() ?? 0
        let d = amax / 127
        var id: Float = amax != 0 ? 127 / amax : 0
        if id.isInfinite { id = 0 }
        let dh = Float16(d).bitPattern
        out.append(UInt8(dh & 0xff))
        out.append(UInt8(dh >> 8))
        for v in block {
            let r = (v * id).rounded(.toNearestOrEven)
            out.append(UInt8(bitPattern: Int8(max(-127, min(127, r)))))
        }
    }
    return out
}

private func quantize(_ fn: (UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int64) -> Void, _ x: [Float]) -> [UInt8] {
    var out = [UInt8](repeating: 0xAA, count: x.count / 32 * 34)
    x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBytes { fn(xp.baseAddress, $0.baseAddress, Int64(x.count)) } }
    return out
}

/// Blocks that exercise the corners of the rounding rules.
private func edgeCaseRows() -> [[Float]] {
    var rows: [[Float]] = []
    rows.append([Float](repeating: 0, count: 32))                                   // all zero
    rows.append((0..<32).map { $0 == 5 ? -3.5 : Float($0) * 0.01 })                  // negative max
    rows.append((0..<32).map { Float($0 - 16) * 1e30 })                              // huge: d -> inf half
    rows.append((0..<32).map { $0 == 0 ? 3.0e38 : -Float($0) * 1e36 })              // near FLT_MAX
    rows.append((0..<32).map { $0 == 0 ? 127 : Float($0) - 15.5 })                   // amax 127: d = 1, .5 ties
    rows.append((0..<32).map { $0 == 31 ? -127 : -Float($0) - 0.5 })                 // negative .5 ties
    rows.append((0..<32).map { $0 == 0 ? 254 : Float($0) * 2 + 1 })                  // id = 0.5: odd/2 ties
    rows.append((0..<32).map { Float($0 - 16) * 1e-30 })                             // tiny scale, half d = 0
    rows.append((0..<32).map { Float($0 - 16) * 3e-7 })                              // subnormal half d
    rows.append((0..<32).map { Float($0 - 16) * 4e-6 })                              // d near 2^-24..2^-14
    rows.append((0..<32).map { Float($0 - 16) * 1e-38 })                             // float subnormals: 1/d overflows
    rows.append((0..<32).map { $0 == 3 ? Float.leastNonzeroMagnitude : 0 })
    rows.append((0..<32).map { $0 % 2 == 0 ? 1 : -1 })                               // all |x| = amax
    rows.append((0..<32).map { _ in 0.1 })
    rows.append((0..<32).map { Float($0) * 65519.0 / 31 })                           // d rounds near half max
    return rows
}

final class QuantizeTests: XCTestCase {
    func testReferenceQuantizerMatchesIndependentSwift() {
        var g = SplitMix64(seed: 2)
        var rows = edgeCaseRows()
        for scale: Float in [1e-6, 1e-3, 1, 7.5, 1e3, 6e4] {
            rows.append((0..<(32 * 40)).map { _ in Float.random(in: -1...1, using: &g) * scale })
        }
        // many exact .5 ties: integers + 0.5 with amax 127 (d = 1, id = 1)
        rows.append((0..<64).map { $0 % 32 == 0 ? 127 : Float(Int.random(in: -120...120, using: &g)) + 0.5 })
        for (i, x) in rows.enumerated() {
            XCTAssertEqual(quantize(ek_quantize_row_q8_0_ref, x), swiftQuantizeRef(x), "row \(i): \(x.prefix(4))")
        }
    }

    func testReferenceQuantizerKnownBytes() {
        // amax = 127 -> d = 1 (0x3c00), id = 1, 2.5 -> 3 and -2.5 -> -3 (away from zero)
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 0.49; x[4] = -126.5
        let q = quantize(ek_quantize_row_q8_0_ref, x)
        XCTAssertEqual(Array(q[0..<7]), [0x00, 0x3c, 127, 3, UInt8(bitPattern: -3), 0, UInt8(bitPattern: -127)])
    }

    func testActivationQuantizerAllPathsMatchSwift() {
        var g = SplitMix64(seed: 3)
        var rows = edgeCaseRows().filter { row in row.allSatisfy { $0.isFinite } }
        for n in [32, 64, 96, 576, 1536, 8192] {
            for scale: Float in [1e-4, 1, 300] {
                rows.append((0..<n).map { _ in Float.random(in: -1...1, using: &g) * scale })
            }
        }
        // half-even ties: amax 127 (id = 1) and integer + .5 values
        rows.append((0..<32).map { $0 == 0 ? -127 : Float($0 - 16) + 0.5 })
        for (i, x) in rows.enumerated() {
            let want = swiftQuantizeActivation(x)
            for path in KernelPath.runnable {
                XCTAssertEqual(quantize(path.quantize, x), want, "\(path) row \(i)")
            }
            XCTAssertEqual(quantize(ek_quantize_row_q8_0, x), want, "dispatched row \(i)")
        }
        // half-even vs away-from-zero really differ here
        let tie = (0..<32).map { $0 == 0 ? Float(127) : 2.5 }
        XCTAssertEqual(quantize(ek_quantize_row_q8_0, tie)[3], 2)
        XCTAssertEqual(quantize(ek_quantize_row_q8_0_ref, tie)[3], 3)
    }

    func testActivationCodesStayWithin127() {
        var g = SplitMix64(seed: 4)
        for _ in 0..<200 {
            let x = (0..<256).map { _ in Float.random(in: -1e4...1e4, using: &g) }
            let q = quantize(ek_quantize_row_q8_0, x)
            for b in 0..<8 {
                for j in 0..<32 { XCTAssertNotEqual(q[b * 34 + 2 + j], 0x80) }
            }
        }
    }
}

final class DequantizeTests: XCTestCase {
    private func run(_ fn: DequantPath.Fn, _ src: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count + 3)   // +3: must not be written
        src.withUnsafeBytes { s in out.withUnsafeMutableBufferPointer { fn(s.baseAddress, $0.baseAddress, Int64(count)) } }
        for i in count..<(count + 3) { XCTAssertTrue(out[i].isNaN, "wrote past the end") }
        return Array(out[0..<count])
    }

    private func assertSameBits(_ a: [Float], _ b: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for i in 0..<min(a.count, b.count) where !(a[i].isNaN && b[i].isNaN) {
            if a[i].bitPattern != b[i].bitPattern {
                XCTFail("\(what)[\(i)]: \(a[i]) != \(b[i])", file: file, line: line)
                return
            }
        }
    }

    private func randomBlocks(count nb: Int, bytesPerBlock: Int, scales: Int, using g: inout SplitMix64) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: nb * bytesPerBlock)
        for b in 0..<nb {
            for s in 0..<scales {
                // finite halves including subnormals and zero
                let h = b % 17 == 0 ? UInt16(0) : randomHalfBits(&g)
                out[b * bytesPerBlock + 2 * s] = UInt8(h & 0xff)
                out[b * bytesPerBlock + 2 * s + 1] = UInt8(h >> 8)
            }
            for j in (2 * scales)..<bytesPerBlock { out[b * bytesPerBlock + j] = UInt8.random(in: 0...255, using: &g) }
        }
        return out
    }

    func testQ8_0() {
        var g = SplitMix64(seed: 10)
        for nb in [1, 2, 7, 18, 48] {
            let src = randomBlocks(count: nb, bytesPerBlock: 34, scales: 1, using: &g)
            var want: [Float] = []
            for b in 0..<nb {
                let d = halfAt(src, b * 34)
                for j in 0..<32 { want.append(Float(Int8(bitPattern: src[b * 34 + 2 + j])) * d) }
            }
            for path in DequantPath.all where path.supported {
                assertSameBits(run(path.q8_0, src, count: nb * 32), want, "q8_0 \(path) nb \(nb)")
            }
        }
    }

    func testQ4_0() {
        var g = SplitMix64(seed: 11)
        for nb in [1, 3, 18, 48] {
            let src = randomBlocks(count: nb, bytesPerBlock: 18, scales: 1, using: &g)
            var want = [Float](repeating: 0, count: nb * 32)
            for b in 0..<nb {
                let d = halfAt(src, b * 18)
                for j in 0..<16 {
                    let byte = src[b * 18 + 2 + j]
                    want[b * 32 + j] = Float(Int(byte & 0x0f) - 8) * d        // low nibble: element j
                    want[b * 32 + j + 16] = Float(Int(byte >> 4) - 8) * d     // high nibble: element j+16
                }
            }
            for path in DequantPath.all where path.supported {
                assertSameBits(run(path.q4_0, src, count: nb * 32), want, "q4_0 \(path) nb \(nb)")
            }
        }
    }

    func testQ4_1() {
        var g = SplitMix64(seed: 12)
        for nb in [1, 3, 18, 48] {
            let src = randomBlocks(count: nb, bytesPerBlock: 20, scales: 2, using: &g)
            var want = [Float](repeating: 0, count: nb * 32)
            for b in 0..<nb {
                let d = halfAt(src, b * 20), m = halfAt(src, b * 20 + 2)
                for j in 0..<16 {
                    let byte = src[b * 20 + 4 + j]
                    let lo = Float(byte & 0x0f) * d      // two roundings: product, then sum
                    let hi = Float(byte >> 4) * d
                    want[b * 32 + j] = lo + m
                    want[b * 32 + j + 16] = hi + m
                }
            }
            for path in DequantPath.all where path.supported {
                assertSameBits(run(path.q4_1, src, count: nb * 32), want, "q4_1 \(path) nb \(nb)")
            }
        }
        // Note: with a half scale, q*d (4-bit times 11-bit significands) is exact in float, so
        // q*d + m rounds once either way and fused/unfused cannot differ; the bit comparison
        // above is the whole contract.
    }

    func testF16AndBF16() {
        var g = SplitMix64(seed: 13)
        for n in [1, 7, 8, 9, 31, 64, 1000] {
            var src = [UInt8](repeating: 0, count: 2 * n)
            for i in 0..<(2 * n) { src[i] = UInt8.random(in: 0...255, using: &g) }
            let halves = (0..<n).map { UInt16(src[2 * $0]) | UInt16(src[2 * $0 + 1]) << 8 }
            let wantF16 = halves.map { Float(Float16(bitPattern: $0)) }
            let wantBF16 = halves.map { Float(bitPattern: UInt32($0) << 16) }
            for path in DequantPath.all where path.supported {
                assertSameBits(run(path.f16, src, count: n), wantF16, "f16 \(path) n \(n)")
                assertSameBits(run(path.bf16, src, count: n), wantBF16, "bf16 \(path) n \(n)")
            }
        }
    }
}
