import CKernels
import XCTest

final class DotTests: XCTestCase {
    /// Every path's Q8_0 dot product against the exact value (and so against each other).
    func testVecDotAllPathsAgainstExact() {
        var g = SplitMix64(seed: 20)
        for cols in [32, 64, 96, 576, 1536, 4096, 8192, 49152] {
            for _ in 0..<3 {
                let w = randomQ8Matrix(rows: 1, cols: cols, using: &g)
                let x = randomActivation(cols: cols, using: &g)
                let nb = cols / 32
                let exact = exactDot(w, rowOffset: 0, x, blocks: nb)
                let tol = dotTolerance(blocks: nb, magnitude: exact.magnitude)
                for path in KernelPath.runnable {
                    let got = Double(path.dot(Int64(cols), w, x))
                    XCTAssertEqual(got, exact.value, accuracy: tol, "\(path) cols \(cols)")
                }
                XCTAssertEqual(Double(ek_vec_dot_q8_0(Int64(cols), w, x)), exact.value, accuracy: tol)
            }
        }
    }

    /// Extreme codes: -128 weights (only the AVX2 path forbids -128 in the activation) and
    /// saturating magnitudes, with equal scales so integer mistakes are not hidden by rounding.
    func testVecDotExtremeCodes() {
        var w = [UInt8](repeating: 0, count: 34 * 4)
        var x = [UInt8](repeating: 0, count: 34 * 4)
        let one = Float16(1).bitPattern
        for b in 0..<4 {
            w[b * 34] = UInt8(one & 0xff); w[b * 34 + 1] = UInt8(one >> 8)
            x[b * 34] = UInt8(one & 0xff); x[b * 34 + 1] = UInt8(one >> 8)
            for j in 0..<32 {
                switch b {
                case 0: w[b * 34 + 2 + j] = 0x80; x[b * 34 + 2 + j] = 127                      // -128 * 127
                case 1: w[b * 34 + 2 + j] = 0x80; x[b * 34 + 2 + j] = UInt8(bitPattern: -127)  // -128 * -127
                case 2: w[b * 34 + 2 + j] = 127; x[b * 34 + 2 + j] = 127
                default: w[b * 34 + 2 + j] = UInt8(bitPattern: Int8(j - 16)); x[b * 34 + 2 + j] = UInt8(bitPattern: Int8(16 - j))
                }
            }
        }
        var expected = 32 * (-128 * 127) + 32 * (128 * 127) + 32 * 127 * 127
        for j in 0..<32 { expected -= (j - 16) * (j - 16) }
        for path in KernelPath.runnable {
            XCTAssertEqual(path.dot(128, w, x), Float(expected), "\(path)")
            var y: [Float] = [0]
            path.matvec(w, 128, 0, 1, x, &y)
            XCTAssertEqual(y[0], Float(expected), "\(path) matvec")
        }
    }

    /// The VNNI path is exact for any int8 activation too (its bias trick does not saturate).
    func testVNNIAcceptsMinus128Activation() throws {
        try XCTSkipUnless(KernelPath.avx512.supported, "no AVX-512 VNNI on this CPU")
        var w = [UInt8](repeating: 0, count: 34), x = [UInt8](repeating: 0, count: 34)
        let one = Float16(1).bitPattern
        w[0] = UInt8(one & 0xff); w[1] = UInt8(one >> 8); x[0] = w[0]; x[1] = w[1]
        for j in 0..<32 { w[2 + j] = 0x80; x[2 + j] = 0x80 }
        XCTAssertEqual(ek_vec_dot_q8_0_avx512vnni(32, w, x), 32 * 16384)
        var y: [Float] = [0]
        ek_matvec_q8_0_avx512vnni(w, 32, 0, 1, x, &y)
        XCTAssertEqual(y[0], 32 * 16384)
    }

    private func checkMatvec(rows: Int, cols: Int, seed: UInt64) {
        var g = SplitMix64(seed: seed)
        let w = randomQ8Matrix(rows: rows, cols: cols, using: &g)
        let x = randomActivation(cols: cols, using: &g)
        let nb = cols / 32
        var reference = [Float](repeating: 0, count: rows)
        ek_matvec_q8_0_scalar(w, Int64(cols), 0, Int64(rows), x, &reference)
        // the scalar matvec is the scalar dot, row by row, and close to exact
        for r in Swift.stride(from: 0, to: rows, by: max(1, rows / 50)) {
            let rowPtrDot = w.withUnsafeBytes { ek_vec_dot_q8_0_scalar(Int64(cols), $0.baseAddress! + r * nb * 34, x) }
            XCTAssertEqual(reference[r].bitPattern, rowPtrDot.bitPattern, "scalar matvec row \(r)")
            let exact = exactDot(w, rowOffset: r * nb * 34, x, blocks: nb)
            XCTAssertEqual(Double(reference[r]), exact.value, accuracy: dotTolerance(blocks: nb, magnitude: exact.magnitude))
        }
        var magnitudes = [Double](repeating: 0, count: rows)
        for r in 0..<rows {
            magnitudes[r] = exactDot(w, rowOffset: r * nb * 34, x, blocks: nb).magnitude
        }
        for path in KernelPath.simd {
            var y = [Float](repeating: 0, count: rows)
            path.matvec(w, Int64(cols), 0, Int64(rows), x, &y)
            var bad = 0
            for r in 0..<rows where magnitudes[r] > 0 {
                let tol = dotTolerance(blocks: nb, magnitude: magnitudes[r])
                if abs(Double(y[r]) - Double(reference[r])) > tol {
                    bad += 1
                    if bad < 5 { XCTFail("\(path) \(rows)x\(cols) row \(r): \(y[r]) vs scalar \(reference[r]) (tol \(tol))") }
                }
            }
            // each row equals that path's own single dot product within rounding
            for r in Swift.stride(from: 0, to: rows, by: max(1, rows / 20)) {
                let d = w.withUnsafeBytes { path.dot(Int64(cols), $0.baseAddress! + r * nb * 34, x) }
                let tol = dotTolerance(blocks: nb, magnitude: exactDot(w, rowOffset: r * nb * 34, x, blocks: nb).magnitude)
                XCTAssertEqual(Double(y[r]), Double(d), accuracy: tol, "\(path) row \(r) vs its vec_dot")
            }
        }
    }

    func testMatvecSmallShapesAndRemainders() {
        for rows in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33] {
            for cols in [32, 64, 576] {
                checkMatvec(rows: rows, cols: cols, seed: UInt64(rows * 1000 + cols))
            }
        }
    }

    func testMatvecModelShapes() {
        checkMatvec(rows: 576, cols: 576, seed: 31)     // attention q/o
        checkMatvec(rows: 192, cols: 576, seed: 32)     // k/v (3 kv heads x 64)
        checkMatvec(rows: 1536, cols: 576, seed: 33)    // ffn gate/up
        checkMatvec(rows: 576, cols: 1536, seed: 34)    // ffn down (longest rows of the model)
    }

    func testMatvecLongRowsCrossColumnChunks() {
        // the VNNI kernel prepares the activation in chunks of 128 blocks
        checkMatvec(rows: 13, cols: 4096, seed: 35)
        checkMatvec(rows: 9, cols: 4096 + 32, seed: 36)
        checkMatvec(rows: 6, cols: 14336, seed: 37)
    }

    func testMatvecOutputMatrix() {
        // the 49152 x 576 output projection, the largest matrix of SmolLM2
        checkMatvec(rows: 49152, cols: 576, seed: 38)
    }

    func testMatvecWritesOnlyItsRange() {
        var g = SplitMix64(seed: 40)
        let rows = 37, cols = 576
        let w = randomQ8Matrix(rows: rows, cols: cols, using: &g)
        let x = randomActivation(cols: cols, using: &g)
        var full = [Float](repeating: 0, count: rows)
        ek_matvec_q8_0(w, Int64(cols), 0, Int64(rows), x, &full)
        let sentinel = Float(bitPattern: 0x7fc0_dead)
        for path in KernelPath.runnable {
            var full2 = [Float](repeating: 0, count: rows)
            path.matvec(w, Int64(cols), 0, Int64(rows), x, &full2)
            for (r0, r1) in [(0, 0), (3, 4), (3, 8), (5, 30), (1, 37), (36, 37), (0, 37)] {
                var y = [Float](repeating: sentinel, count: rows)
                path.matvec(w, Int64(cols), Int64(r0), Int64(r1), x, &y)
                for r in 0..<rows {
                    if r >= r0 && r < r1 {
                        // a row's value does not depend on how the range was cut
                        XCTAssertEqual(y[r].bitPattern, full2[r].bitPattern, "\(path) [\(r0),\(r1)) row \(r)")
                    } else {
                        XCTAssertEqual(y[r].bitPattern, sentinel.bitPattern, "\(path) [\(r0),\(r1)) wrote row \(r)")
                    }
                }
            }
        }
    }

    func testEmptyRowsGiveZero() {
        let w: [UInt8] = [0], x: [UInt8] = [0]
        for path in KernelPath.runnable {
            var y = [Float](repeating: .nan, count: 6)
            path.matvec(w, 0, 0, 6, x, &y)
            XCTAssertEqual(y, [Float](repeating: 0, count: 6), "\(path)")
            XCTAssertEqual(path.dot(0, w, x), 0)
        }
        var y = [Float](repeating: .nan, count: 6)
        y.withUnsafeMutableBufferPointer { yp in
            w.withUnsafeBytes { wp in
                x.withUnsafeBytes { xp in
                    var job = ek_matvec_job(w: wp.baseAddress, xq: xp.baseAddress, y: yp.baseAddress, nrows: 6, ncols: 0)
                    let pool = ek_pool_create(2)
                    ek_pool_matvec_q8_0(pool, &job, 1)
                    ek_pool_destroy(pool)
                }
            }
        }
        XCTAssertEqual(y, [Float](repeating: 0, count: 6))
    }

    func testVecDotF32() {
        var g = SplitMix64(seed: 50)
        for n in [0, 1, 5, 8, 15, 16, 17, 31, 32, 33, 64, 100, 576, 1537] {
            let a = (0..<n).map { _ in Float.random(in: -2...2, using: &g) }
            let b = (0..<n).map { _ in Float.random(in: -2...2, using: &g) }
            var exact = 0.0, mag = 0.0
            for i in 0..<n { exact += Double(a[i]) * Double(b[i]); mag += abs(Double(a[i]) * Double(b[i])) }
            let tol = Double(n + 4) * 0x1p-24 * mag + 1e-30
            for path in KernelPath.runnable {
                XCTAssertEqual(Double(path.dotF32(Int64(n), a, b)), exact, accuracy: tol, "\(path) n \(n)")
            }
            XCTAssertEqual(Double(ek_vec_dot_f32(Int64(n), a, b)), exact, accuracy: tol)
        }
    }
}
