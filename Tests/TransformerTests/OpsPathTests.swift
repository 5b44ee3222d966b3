import CKernels
import Foundation
import XCTest

/// Every SIMD implementation of the forward-pass ops (ek_ops.h) that this CPU can run, against
/// the portable C one on random data — bit for bit where the op is meant to reproduce
/// llama.cpp's rounding — and the portable one against plain Double math.
final class OpsPathTests: XCTestCase {
    /// ops levels: 0 scalar, 1 avx2, 2 avx512 (matvec: 2 = avx512vnni)
    var levels: [Int32] {
        var l: [Int32] = [0]
        if ek_cpu_has_avx2() != 0 { l.append(1) }
        if ek_cpu_has_avx512vnni() != 0 { l.append(2) }
        return l
    }

    override func tearDown() {
        // back to the best implementation
        for lv in [Int32(2), 1, 0] where ek_ops_force_impl(lv) == 0 { break }
        for lv in [Int32(2), 1, 0] where ek_matvec_ggml_force(lv) == 0 { break }
    }

    func forEachLevel(_ body: (Int32) throws -> Void) rethrows {
        for lv in levels {
            XCTAssertEqual(ek_ops_force_impl(lv), 0)
            XCTAssertEqual(ek_matvec_ggml_force(lv), 0)
            try body(lv)
        }
    }

    var rng = SplitMix(2024)

    func randomFloats(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in rng.normal() * scale } }

    func testMatvecQ8_0AllPathsEqualScalarAndExactMath() {
        for (rows, cols) in [(37, 64), (64, 576), (13, 1536), (5, 96)] {
            // weights: Q8_0 blocks with random scales and int8 values in [-127, 127]
            var w = [UInt8](repeating: 0, count: rows * cols / 32 * 34)
            for b in 0..<(rows * cols / 32) {
                let d = ek_fp32_to_fp16(0.001 + rng.uniform() * 0.05)
                w[b * 34] = UInt8(d & 0xff); w[b * 34 + 1] = UInt8(d >> 8)
                for j in 0..<32 { w[b * 34 + 2 + j] = UInt8(bitPattern: Int8(Int(rng.next() % 255) - 127)) }
            }
            let x = randomFloats(cols, scale: 3)
            var xq = [UInt8](repeating: 0, count: cols / 32 * 34)
            ek_quantize_row_q8_0(x, &xq, Int64(cols))
            var expect = [Float](repeating: 0, count: rows)
            ek_matvec_q8_0_ggml_scalar(w, Int64(cols), 0, Int64(rows), xq, &expect)
            // exact math (Double) on the same blocks
            for r in 0..<rows {
                var s = 0.0
                for b in 0..<(cols / 32) {
                    let wb = (r * cols / 32 + b) * 34, xb = b * 34
                    let dw = Double(ek_fp16_to_fp32(UInt16(w[wb]) | UInt16(w[wb + 1]) << 8))
                    let dx = Double(ek_fp16_to_fp32(UInt16(xq[xb]) | UInt16(xq[xb + 1]) << 8))
                    var isum = 0
                    for j in 0..<32 { isum += Int(Int8(bitPattern: w[wb + 2 + j])) * Int(Int8(bitPattern: xq[xb + 2 + j])) }
                    s += Double(Float(dw) * Float(dx)) * Double(isum)
                }
                XCTAssertEqual(Double(expect[r]), s, accuracy: 1e-4 * max(1, abs(s)))
            }
            forEachLevel { lv in
                // a sub-range of rows only touches those rows
                var y = [Float](repeating: .nan, count: rows)
                ek_matvec_q8_0_ggml(w, Int64(cols), 1, Int64(rows), xq, &y)
                XCTAssertTrue(y[0].isNaN, "row 0 written, level \(lv)")
                XCTAssertEqual(Array(y[1...]), Array(expect[1...]), "level \(lv), \(rows)x\(cols)")
            }
        }
    }

    /// The batched AVX-512 VEC attention row (16 scores / 16 dimensions at a time) against the
    /// one-dot-at-a-time code: same bits, for head dims 64, 128, 256, any length, window, softcap.
    func testBatchedVecAttentionRowEqualsRowwise() {
        for hd in [64, 128, 256] {
            let kvLen = 300
            for (first, nPos) in [(0, 1), (0, 15), (0, 16), (0, 17), (3, 64), (0, 65), (10, 130), (0, 300)] {
                for softcap: Float in [0, 30] { for mode: Int32 in [0, 1] {
                    let q = randomFloats(hd, scale: 1.5)
                    let kf = randomFloats(kvLen * hd), vf = randomFloats(kvLen * hd)
                    var k = [UInt16](repeating: 0, count: kvLen * hd), vt = [UInt16](repeating: 0, count: kvLen * hd)
                    ek_f32_to_f16_row(kf, &k, Int64(kvLen * hd))
                    ek_f32_to_f16_row(vf, &vt, Int64(kvLen * hd))
                    var scratch = [Float](repeating: .nan, count: 3 * kvLen + 256)
                    var slow = [Float](repeating: 0, count: hd), fast = slow
                    let scale = 1 / Float(hd).squareRoot()
                    ek_attn_force_rowwise(1)
                    ek_attn_row_ext(q, k, vt, Int64(kvLen), Int64(first), Int64(nPos), Int64(hd), scale, softcap, mode, &scratch, &slow)
                    ek_attn_force_rowwise(0)
                    scratch = [Float](repeating: .nan, count: 3 * kvLen + 256)
                    ek_attn_row_ext(q, k, vt, Int64(kvLen), Int64(first), Int64(nPos), Int64(hd), scale, softcap, mode, &scratch, &fast)
                    XCTAssertEqual(fast.map(\.bitPattern), slow.map(\.bitPattern), "hd \(hd) first \(first) n \(nPos) softcap \(softcap) mode \(mode)")
                } }
            }
        }
    }

    /// The attention task with the heads of a KV group computed together (grouped AVX-512 path)
    /// against the one-dot-at-a-time rows: same bits (group sizes 1, 3, 4; window; softcap; both
    /// modes; 2 and 3 threads; 1-3 tokens, whose groups are split into parts between the threads).
    func testGroupedAttentionTaskEqualsRowwise() {
        for (hd, nh, nkv) in [(64, 9, 3), (256, 4, 1), (128, 2, 2)] { for nTok in [37, 1, 3] { for nth: Int32 in [2, 3] {
            let kvLen = 200, pos0 = 150
            let kf = randomFloats(nkv * kvLen * hd), vf = randomFloats(nkv * kvLen * hd)
            var k = [UInt16](repeating: 0, count: kf.count), vt = [UInt16](repeating: 0, count: vf.count)
            ek_f32_to_f16_row(kf, &k, Int64(kf.count))
            ek_f32_to_f16_row(vf, &vt, Int64(vf.count))
            let q = randomFloats(nTok * nh * hd, scale: 1.5)
            for mode: Int32 in [0, 1] {
                for (window, softcap): (Int64, Float) in [(0, 0), (40, 0), (0, 20)] {
                    var outs: [[Float]] = []
                    for slow: Int32 in [1, 0] {
                        ek_attn_force_rowwise(slow)
                        let group = nh / nkv, stride = group * (3 * kvLen + 256)
                        var scratch = [Float](repeating: .nan, count: Int(nth) * stride)
                        var out = [Float](repeating: .nan, count: nTok * nh * hd)
                        q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in vt.withUnsafeBufferPointer { vp in
                            scratch.withUnsafeMutableBufferPointer { sp in out.withUnsafeMutableBufferPointer { op in
                                var t = ek_attn_task(q: qp.baseAddress, q_stride: Int64(nh * hd), k: kp.baseAddress, vt: vp.baseAddress,
                                                     kv_len: Int64(kvLen), out: op.baseAddress, out_stride: Int64(nh * hd),
                                                     out_q8: nil, out_q8_stride: 0, scratch: sp.baseAddress, scratch_stride: Int64(stride),
                                                     n_tok: Int64(nTok), pos0: Int64(pos0), n_head: Int64(nh), n_head_kv: Int64(nkv),
                                                     head_dim: Int64(hd), scale: 1 / Float(hd).squareRoot(), mode: mode,
                                                     window: window, softcap: softcap)
                                withUnsafeMutablePointer(to: &t) { tp in
                                    for ith: Int32 in 0..<nth { ek_attn_task_run(UnsafeMutableRawPointer(tp), ith, nth) }
                                }
                            } }
                        } } }
                        outs.append(out)
                    }
                    ek_attn_force_rowwise(0)
                    XCTAssertEqual(outs[0].map(\.bitPattern), outs[1].map(\.bitPattern), "hd \(hd) heads \(nh)/\(nkv) tokens \(nTok) threads \(nth) mode \(mode) window \(window) softcap \(softcap)")
                }
            }
        } } }
    }

    func testAttentionRowAllPathsEqualScalarAndNearExactMath() {
        let hd = 64, kvLen = 80
        for nPos in [1, 2, 17, 64, 65, 80] {
            let q = randomFloats(hd, scale: 1.5)
            let kf = randomFloats(kvLen * hd), vf = randomFloats(kvLen * hd)
            var k = [UInt16](repeating: 0, count: kvLen * hd), vt = [UInt16](repeating: 0, count: kvLen * hd)
            ek_f32_to_f16_row(kf, &k, Int64(kvLen * hd))
            for p in 0..<kvLen { for e in 0..<hd { vt[e * kvLen + p] = ek_fp32_to_fp16(vf[p * hd + e]) } }
            // Double reference over the f16 K/V
            let scale = 1 / Float(hd).squareRoot()
            var sc = (0..<nPos).map { p in (0..<hd).reduce(0.0) { $0 + Double(q[$1]) * Double(ek_fp16_to_fp32(k[p * hd + $1])) } * Double(scale) }
            let m = sc.max()!
            sc = sc.map { exp($0 - m) }
            let sum = sc.reduce(0, +)
            let exact = (0..<hd).map { e in (0..<nPos).reduce(0.0) { $0 + sc[$1] / sum * Double(ek_fp16_to_fp32(vt[e * kvLen + $1])) } }
            for mode: Int32 in [0, 1, 2] {
                var scratch = [Float](repeating: 0, count: 3 * kvLen + 256)
                var expect = [Float](repeating: 0, count: hd)
                XCTAssertEqual(ek_ops_force_impl(0), 0)
                ek_attn_row(q, k, vt, Int64(kvLen), Int64(nPos), Int64(hd), scale, mode, &scratch, &expect)
                for e in 0..<hd { XCTAssertEqual(Double(expect[e]), exact[e], accuracy: 0.01, "mode \(mode) n \(nPos)") }
                forEachLevel { lv in
                    var out = [Float](repeating: 0, count: hd)
                    ek_attn_row(q, k, vt, Int64(kvLen), Int64(nPos), Int64(hd), scale, mode, &scratch, &out)
                    XCTAssertEqual(out, expect, "mode \(mode) n \(nPos) level \(lv)")
                }
            }
        }
    }

    func testGeluAllPathsEqualScalar() {
        var g = randomFloats(1000, scale: 6)
        g += [0, -0.0, -10, 10, -9.999, 9.999, -10.001, 10.001, 65504, -70000, 1e-8, 3.14159]
        let u = randomFloats(g.count)
        XCTAssertEqual(ek_ops_force_impl(0), 0)
        var want = [Float](repeating: 0, count: g.count)
        ek_gelu_mul_f32(&want, g, u, Int64(g.count))
        forEachLevel { lv in
            var got = [Float](repeating: .nan, count: g.count)
            ek_gelu_mul_f32(&got, g, u, Int64(g.count))
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "level \(lv)")
        }
    }

    func testExpSiluRopeAllPathsEqualScalar() {
        let n = 1000
        var x = randomFloats(n, scale: 8)
        x += [0, -0.0, 88, 89, -87, -104, -110, 1e-30, 700, -700]
        let g = randomFloats(x.count, scale: 4), u = randomFloats(x.count)
        XCTAssertEqual(ek_ops_force_impl(0), 0)
        var e0 = [Float](repeating: 0, count: x.count), s0 = e0
        ek_exp_f32(&e0, x, Int64(x.count))
        ek_silu_mul_f32(&s0, g, u, Int64(g.count))
        for (i, v) in x.enumerated() where abs(v) < 87 {
            XCTAssertEqual(Double(e0[i]), Foundation.exp(Double(v)), accuracy: 3e-7 * Foundation.exp(Double(v)), "exp(\(v))")
        }
        XCTAssertEqual(e0[x.count - 2], .infinity)
        XCTAssertEqual(e0[x.count - 1], 0)
        for i in 0..<g.count {
            let ref = Double(g[i]) / (1 + Foundation.exp(-Double(g[i]))) * Double(u[i])
            XCTAssertEqual(Double(s0[i]), ref, accuracy: 1e-6 * max(1, abs(ref)))
        }
        var cs = [Float](repeating: 0, count: 128)
        ek_rope_cache(&cs, 37, 64, 10000, 1, nil)
        var r0 = randomFloats(3 * 64)
        let rIn = r0
        ek_rope_normal(&r0, 3, 64, 64, cs)
        for h in 0..<3 {
            for i in 0..<32 {
                let th = 37 * pow(10000.0, -2 * Double(i) / 64)
                let a = Double(rIn[h * 64 + 2 * i]), b = Double(rIn[h * 64 + 2 * i + 1])
                XCTAssertEqual(Double(r0[h * 64 + 2 * i]), a * cos(th) - b * sin(th), accuracy: 1e-4)
                XCTAssertEqual(Double(r0[h * 64 + 2 * i + 1]), a * sin(th) + b * cos(th), accuracy: 1e-4)
            }
        }
        forEachLevel { lv in
            var e = [Float](repeating: 0, count: x.count), s = e
            ek_exp_f32(&e, x, Int64(x.count))
            ek_silu_mul_f32(&s, g, u, Int64(g.count))
            XCTAssertEqual(e, e0, "exp level \(lv)")
            XCTAssertEqual(s, s0, "silu level \(lv)")
            var r = rIn
            ek_rope_normal(&r, 3, 64, 64, cs)
            XCTAssertEqual(r, r0, "rope level \(lv)")
        }
    }

    func testNormSoftmaxAllPathsAgree() {
        let x = randomFloats(576, scale: 2), w = randomFloats(576)
        XCTAssertEqual(ek_ops_force_impl(0), 0)
        var n0 = [Float](repeating: 0, count: 576)
        ek_rmsnorm_f32(&n0, x, w, 576, 1e-5)
        let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / 576
        for i in 0..<576 { XCTAssertEqual(Double(n0[i]), Double(x[i]) / (ms + 1e-5).squareRoot() * Double(w[i]), accuracy: 1e-5) }
        var sm0 = randomFloats(333, scale: 5)
        let smIn = sm0
        ek_softmax_f32(&sm0, 333, 0.5)
        XCTAssertEqual(sm0.reduce(0, +), 1, accuracy: 1e-5)
        forEachLevel { lv in
            var n = [Float](repeating: 0, count: 576)
            ek_rmsnorm_f32(&n, x, w, 576, 1e-5)
            for i in 0..<576 { XCTAssertEqual(n[i], n0[i], accuracy: 1e-6 * max(1, abs(n0[i])), "rmsnorm level \(lv)") }
            var sm = smIn
            ek_softmax_f32(&sm, 333, 0.5)
            for i in 0..<333 { XCTAssertEqual(sm[i], sm0[i], accuracy: 1e-6, "softmax level \(lv)") }
        }
    }
}
