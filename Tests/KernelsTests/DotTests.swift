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
                let ggml = ggmlDot(w, rowOffset: 0, x, blocks: nb)
                XCTAssertEqual(Double(ggml), exact.value, accuracy: tol, "ggml order is accurate")
                for path in KernelPath.runnable {
                    let got = path.dot(Int64(cols), w, x)
                    // every path reproduces llama.cpp's rounding exactly
                    XCTAssertEqual(got.bitPattern, ggml.bitPattern, "\(path) cols \(cols): \(got) vs \(ggml)")
                }
                XCTAssertEqual(ek_vec_dot_q8_0(Int64(cols), w, x).bitPattern, ggml.bitPattern)
            }
        }
    }

    /// Extreme codes: -128 weights (activations are never -128, see ek_kernels.h) and
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

    private func checkMatvec(rows: Int, cols: Int, seed: UInt64) {
        var g = SplitMix64(seed: seed)
        let w = randomQ8Matrix(rows: rows, cols: cols, using: &g)
        let x = randomActivation(cols: cols, using: &g)
        let nb = cols / 32
        // reference: llama.cpp's arithmetic in Swift, row by row
        var reference = [Float](repeating: 0, count: rows)
        w.withUnsafeBytes { wp in
            x.withUnsafeBytes { xp in
                for r in 0..<rows { reference[r] = ggmlDot(wp, rowOffset: r * nb * 34, xp, blocks: nb) }
            }
        }
        // which is close to the exact value
        for r in Swift.stride(from: 0, to: rows, by: max(1, rows / 50)) {
            let exact = exactDot(w, rowOffset: r * nb * 34, x, blocks: nb)
            XCTAssertEqual(Double(reference[r]), exact.value, accuracy: dotTolerance(blocks: nb, magnitude: exact.magnitude))
        }
        for path in KernelPath.runnable {
            var y = [Float](repeating: .nan, count: rows)
            path.matvec(w, Int64(cols), 0, Int64(rows), x, &y)
            var bad = 0
            for r in 0..<rows where y[r].bitPattern != reference[r].bitPattern {
                bad += 1
                if bad <= 3 { XCTFail("\(path) \(rows)x\(cols) row \(r): \(y[r]) vs \(reference[r])") }
            }
            XCTAssertEqual(bad, 0, "\(path) \(rows)x\(cols): rows differing from llama.cpp's arithmetic")
            // and each row equals that path's single dot product
            for r in Swift.stride(from: 0, to: rows, by: max(1, rows / 20)) {
                let d = w.withUnsafeBytes { path.dot(Int64(cols), $0.baseAddress! + r * nb * 34, x) }
                XCTAssertEqual(y[r].bitPattern, d.bitPattern, "\(path) row \(r) vs its vec_dot")
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

    func testMatvecLongRows() {
        // the VNNI kernel prepares up to 256 activation blocks on the stack, longer rows
        // take another loop
        checkMatvec(rows: 13, cols: 8192, seed: 35)
        checkMatvec(rows: 9, cols: 8192 + 32, seed: 36)
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
