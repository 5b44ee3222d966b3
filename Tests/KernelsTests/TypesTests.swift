import CKernels
import XCTest

// Independent Swift reference of ggml's block formats and of its x86 CPU arithmetic
// (llama.cpp 0.3.36, AVX2 / AVX-512 VNNI build; GCC contracts `s += a*b` into fma there).
// Written from the format descriptions, element by element, not from the C kernels.

private enum Ref {
    static func h(_ b: [UInt8], _ o: Int) -> Float { Float(Float16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8)) }
    static func f32(_ b: [UInt8], _ o: Int) -> Float {
        Float(bitPattern: UInt32(b[o]) | UInt32(b[o + 1]) << 8 | UInt32(b[o + 2]) << 16 | UInt32(b[o + 3]) << 24)
    }
    static func i16(_ b: [UInt8], _ o: Int) -> Int { Int(Int16(bitPattern: UInt16(b[o]) | UInt16(b[o + 1]) << 8)) }
    static func i8(_ b: [UInt8], _ o: Int) -> Int { Int(Int8(bitPattern: b[o])) }
    static func hsum8(_ a: [Float]) -> Float { ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7])) }

    /// K-quant 6-bit (scale, min) pairs of Q4_K / Q5_K, sub-block j of 8.
    static func k4(_ b: [UInt8], _ o: Int, _ j: Int) -> (Int, Int) {
        let q = { Int(b[o + $0]) }
        if j < 4 { return (q(j) & 63, q(j + 4) & 63) }
        return ((q(j + 4) & 0xF) | ((q(j - 4) >> 6) << 4), (q(j + 4) >> 4) | ((q(j) >> 6) << 4))
    }
    /// Q3_K signed scales (16), from the 12 packed bytes at o.
    static func k3(_ b: [UInt8], _ o: Int) -> [Int] {
        (0..<16).map { j in
            let low4 = j < 8 ? Int(b[o + j]) & 0xF : Int(b[o + j - 8]) >> 4
            let high2 = (Int(b[o + 8 + j % 4]) >> (2 * (j / 4))) & 3
            return (low4 | high2 << 4) - 32
        }
    }

    /// Per-block description used by both dequantization and the dot products: integer codes as
    /// the int8 kernels see them, per-16-element scales, and the block's float factors.
    struct KBlock { var q: [Int]; var sc16: [Int]; var d: Float; var dmin: Float; var mins: [Int] }

    static func kblock(_ t: Int32, _ b: [UInt8], _ o: Int) -> KBlock {
        var q = [Int](repeating: 0, count: 256), sc16 = [Int](repeating: 0, count: 16), mins = [Int](repeating: 0, count: 16)
        switch t {
        case 10:  // Q2_K
            for e in 0..<256 { q[e] = (Int(b[o + 16 + 32 * (e / 128) + e % 32]) >> (2 * ((e % 128) / 32))) & 3 }
            for g in 0..<16 { sc16[g] = Int(b[o + g]) & 0xF; mins[g] = Int(b[o + g]) >> 4 }
            return KBlock(q: q, sc16: sc16, d: h(b, o + 80), dmin: h(b, o + 82), mins: mins)
        case 11:  // Q3_K
            for e in 0..<256 {
                let low = (Int(b[o + 32 + 32 * (e / 128) + e % 32]) >> (2 * ((e % 128) / 32))) & 3
                let hbit = (Int(b[o + e % 32]) >> (e / 32)) & 1
                q[e] = low - (hbit == 1 ? 0 : 4)
            }
            sc16 = k3(b, o + 96)
            return KBlock(q: q, sc16: sc16, d: h(b, o + 108), dmin: 0, mins: mins)
        case 12, 13:  // Q4_K, Q5_K
            let qs = t == 12 ? 16 : 48
            for e in 0..<256 {
                let byte = Int(b[o + qs + 32 * (e / 64) + e % 32])
                q[e] = (e % 64) < 32 ? byte & 0xF : byte >> 4
                if t == 13 { q[e] += ((Int(b[o + 16 + e % 32]) >> (e / 32)) & 1) << 4 }
            }
            for j in 0..<8 { let (s, m) = k4(b, o + 4, j); sc16[2 * j] = s; sc16[2 * j + 1] = s; mins[2 * j] = m; mins[2 * j + 1] = m }
            return KBlock(q: q, sc16: sc16, d: h(b, o), dmin: h(b, o + 2), mins: mins)
        default:  // Q6_K: unsigned 6-bit codes (the -32 is applied through bsums)
            for e in 0..<256 {
                let half = e / 128, r = e % 128, l = r % 32, quarter = r / 32
                let lbyte = Int(b[o + 64 * half + l + (quarter & 1) * 32])
                let low = quarter < 2 ? lbyte & 0xF : lbyte >> 4
                let high = (Int(b[o + 128 + 32 * half + l]) >> (2 * quarter)) & 3
                q[e] = low | high << 4
            }
            for g in 0..<16 { sc16[g] = i8(b, o + 192 + g) }
            return KBlock(q: q, sc16: sc16, d: h(b, o + 208), dmin: 0, mins: mins)
        }
    }

    static let blockInfo: [Int32: (Int, Int)] = [
        0: (1, 4), 1: (1, 2), 30: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
        10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    ]

    /// ggml's dequantize_row_<type> (ggml-base: plain multiply then add, no fma).
    static func toFloat(_ t: Int32, _ b: [UInt8], _ n: Int) -> [Float] {
        var y = [Float](repeating: 0, count: n)
        let (bs, bb) = blockInfo[t]!
        for i in 0..<(n / bs) {
            let o = i * bb
            switch t {
            case 0: y[i] = f32(b, o)
            case 1: y[i] = h(b, o)
            case 30: y[i] = Float(bitPattern: UInt32(b[o]) << 16 | UInt32(b[o + 1]) << 24)
            case 2, 3, 6, 7:
                let qs = [2: 2, 3: 4, 6: 6, 7: 8][Int(t)]!
                let qh = t == 6 ? o + 2 : o + 4
                let hbits = UInt32(b[qh]) | UInt32(b[qh + 1]) << 8 | UInt32(b[qh + 2]) << 16 | UInt32(b[qh + 3]) << 24
                let d = h(b, o)
                for e in 0..<32 {
                    let byte = Int(b[o + qs + e % 16])
                    var q = e < 16 ? byte & 0xF : byte >> 4
                    if t == 6 || t == 7 { q |= Int((hbits >> UInt32(e)) & 1) << 4 }
                    switch t {
                    case 2: y[32 * i + e] = Float(q - 8) * d
                    case 6: y[32 * i + e] = Float(q - 16) * d
                    default: y[32 * i + e] = Float(q) * d + h(b, o + 2)
                    }
                }
            case 8, 9:
                let d = h(b, o), q0 = t == 8 ? 2 : 4
                for e in 0..<32 { y[32 * i + e] = Float(i8(b, o + q0 + e)) * d }
            case 15:
                let d = f32(b, o)
                for e in 0..<256 { y[256 * i + e] = d * Float(i8(b, o + 4 + e)) }
            default:
                let k = kblock(t, b, o)
                for e in 0..<256 {
                    let g = e / 16
                    switch t {
                    case 10: y[256 * i + e] = k.d * Float(k.sc16[g]) * Float(k.q[e]) - k.dmin * Float(k.mins[g])
                    case 11: y[256 * i + e] = k.d * Float(k.sc16[g]) * Float(k.q[e])
                    case 12, 13:
                        let d1 = k.d * Float(k.sc16[g]), m1 = k.dmin * Float(k.mins[g])
                        y[256 * i + e] = d1 * Float(k.q[e]) - m1
                    default: y[256 * i + e] = k.d * Float(k.sc16[g]) * Float(k.q[e] - 32)
                    }
                }
            }
        }
        return y
    }

    /// Q2_K's dequantization groups its multiplications as (d*sc)*q - (min*m); the generic line
    /// above is d*sc*q which is the same left-to-right, and ggml writes dl*q - ml with dl = d*sc.

    /// quantize_row_q8_K_ref
    static func q8K(_ x: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for s in stride(from: 0, to: x.count, by: 256) {
            var amax: Float = 0, mx: Float = 0
            for v in x[s..<s + 256] where abs(v) > amax { amax = abs(v); mx = v }
            if amax == 0 { out += [UInt8](repeating: 0, count: 292); continue }
            let iscale = -127 / mx
            var q = [Int](repeating: 0, count: 256)
            for j in 0..<256 {
                // nearest_int: add 1.5*2^23, round half to even
                let r = Int((iscale * x[s + j] + 12582912) - 12582912)
                q[j] = min(127, r)
            }
            let d = 1 / iscale
            withUnsafeBytes(of: d.bitPattern.littleEndian) { out += $0 }
            out += q.map { UInt8(bitPattern: Int8($0)) }
            for g in 0..<16 {
                let sum = Int16(q[16 * g..<16 * g + 16].reduce(0, +))
                withUnsafeBytes(of: sum.littleEndian) { out += $0 }
            }
        }
        return out
    }

    /// x86 quantize_row_q8_1 (AVX2): d = amax/127, q = rne(x * 127/amax), s = fp16(d * sum q)
    static func q81(_ x: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        for s in stride(from: 0, to: x.count, by: 32) {
            let amax = x[s..<s + 32].map { abs($0) }.max()!
            let d = amax / 127
            let id: Float = amax != 0 ? 127 / amax : 0
            let q = x[s..<s + 32].map { Int(($0 * id).rounded(.toNearestOrEven)) }
            let sum = q.reduce(0, +)
            withUnsafeBytes(of: Float16(d).bitPattern.littleEndian) { out += $0 }
            withUnsafeBytes(of: Float16(d * Float(sum)).bitPattern.littleEndian) { out += $0 }
            out += q.map { UInt8(bitPattern: Int8($0)) }
        }
        return out
    }

    /// 8 int32 lanes of one 32-element chunk: lane l = sum over elements 4l..4l+3.
    static func lanes(_ w: [Int], _ a: [Int]) -> [Int] {
        (0..<8).map { l in (4 * l..<4 * l + 4).reduce(0) { $0 + w[$1] * a[$1] } }
    }

    /// ggml's _mm512_reduce_add_ps (GCC)
    static func reduce16(_ v: [Float]) -> Float {
        let t3 = (0..<8).map { v[$0 + 8] + v[$0] }
        let t6 = (0..<4).map { t3[$0 + 4] + t3[$0] }
        return (t6[0] + t6[2]) + (t6[1] + t6[3])
    }

    /// ggml_vec_dot_<type>_<vec_dot_type> of the x86 build.
    /// Q4_K as llama.cpp's repacked path (q4_K_8x8_q8_K) computes it, per superblock with exact
    /// integers I_k = sc_2k*S_2k + sc_2k+1*S_2k+1, M_k = mn_2k*B_2k + mn_2k+1*B_2k+1 (S_j: sub-block
    /// sums of q4*q8, B_j: its bsums): gemv = one fma per superblock (I_0+..+I_3, M_0+..+M_3),
    /// gemm = one fma per k; the result is acc - accm.
    static func dotQ4KRepacked(_ w: [UInt8], _ a: [UInt8], _ n: Int, gemm: Bool) -> Float {
        var acc: Float = 0, accm: Float = 0
        for i in 0..<(n / 256) {
            let o = i * 144, oa = i * 292
            let k = kblock(12, w, o)
            let ad = f32(a, oa)
            var I = [Int](repeating: 0, count: 4), M = [Int](repeating: 0, count: 4)
            for j in 0..<8 {
                var sj = 0
                for e in 0..<32 { sj += k.q[32 * j + e] * i8(a, oa + 4 + 32 * j + e) }
                I[j / 2] += k.sc16[2 * j] * sj
                M[j / 2] += k.mins[2 * j] * (i16(a, oa + 260 + 4 * j) + i16(a, oa + 262 + 4 * j))
            }
            let dd = k.d * ad, dm = k.dmin * ad
            if gemm {
                for kk in 0..<4 {
                    acc = acc.addingProduct(Float(I[kk]), dd)
                    accm = accm.addingProduct(Float(M[kk]), dm)
                }
            } else {
                acc = acc.addingProduct(Float(I.reduce(0, +)), dd)
                accm = accm.addingProduct(Float(M.reduce(0, +)), dm)
            }
        }
        return acc - accm
    }

    /// The table's vec_dot; for Q4_K (the gemv order) `q4KPlain` selects ggml_vec_dot_q4_K_q8_K's order.
    static func dot(_ t: Int32, _ w: [UInt8], _ a: [UInt8], _ n: Int, q4KPlain: Bool = false) -> Float {
        if t == 12 && !q4KPlain { return dotQ4KRepacked(w, a, n, gemm: false) }
        switch t {
        case 0, 1, 30:
            let wf = toFloat(t, w, n), af = toFloat(t, a, n)
            if t == 30 {   // vdpbf16ps: 2 accumulators x 16 lanes over 64-element steps
                var c = [[Float]](repeating: [Float](repeating: 0, count: 16), count: 2)
                var i = 0
                while i + 64 <= n {
                    for hh in 0..<2 { for l in 0..<16 {
                        let e = i + 32 * hh + 2 * l
                        c[hh][l] = (c[hh][l] + wf[e + 1] * af[e + 1]) + wf[e] * af[e]
                    } }
                    i += 64
                }
                var s = Double(reduce16(c[0])) + Double(reduce16(c[1]))
                while i < n { s += Double(wf[i] * af[i]); i += 1 }
                return Float(s)
            }
            var acc = [[Float]](repeating: [Float](repeating: 0, count: 16), count: 4)
            let np = n / 64 * 64
            for i in stride(from: 0, to: np, by: 64) {
                for j in 0..<4 { for l in 0..<16 { acc[j][l] = acc[j][l].addingProduct(wf[i + 16 * j + l], af[i + 16 * j + l]) } }
            }
            let v = (0..<16).map { (acc[0][$0] + acc[2][$0]) + (acc[1][$0] + acc[3][$0]) }
            if t == 1 {
                var s = Double(reduce16(v))
                for i in np..<n { s += Double(wf[i] * af[i]) }
                return Float(s)
            }
            // f32 leftovers as GCC vectorized them: 16s and an 8 with separate products, the rest fma
            var s = reduce16(v)
            let rem = n - np, plain = rem / 16 * 16 + (rem % 16 >= 8 ? 8 : 0)
            for i in np..<(np + plain) { s = s + wf[i] * af[i] }
            for i in (np + plain)..<n { s = s.addingProduct(wf[i], af[i]) }
            return s
        case 2, 3, 6, 7, 8:
            let (_, bb) = blockInfo[t]!, ab = t == 3 || t == 7 ? 36 : 34, aq = ab == 34 ? 2 : 4
            var acc = [Float](repeating: 0, count: 8)
            var summs: Float = 0
            for i in 0..<(n / 32) {
                let o = i * bb, oa = i * ab
                // integer codes from the dequantizer's view: q*d (+m) with q the lane integer
                let wq: [Int] = (0..<32).map { e in
                    if t == 8 { return i8(w, o + 2 + e) }
                    let qs = [2: 2, 3: 4, 6: 6, 7: 8][Int(t)]!, qh = t == 6 ? o + 2 : o + 4
                    let byte = Int(w[o + qs + e % 16])
                    var q = e < 16 ? byte & 0xF : byte >> 4
                    if t == 6 || t == 7 { q |= ((Int(w[qh + e / 8]) >> (e % 8)) & 1) << 4 }
                    return t == 2 ? q - 8 : t == 6 ? q - 16 : q
                }
                let aq8 = (0..<32).map { i8(a, oa + aq + $0) }
                let d = h(w, o) * h(a, oa)
                if t == 3 || t == 7 { summs = summs.addingProduct(h(w, o + 2), h(a, oa + 2)) }
                let ln = lanes(wq, aq8)
                for l in 0..<8 { acc[l] = acc[l].addingProduct(d, Float(ln[l])) }
            }
            return hsum8(acc) + summs
        default:  // K-quants x Q8_K
            let (_, bb) = blockInfo[t]!
            var acc = [Float](repeating: 0, count: 8), accm = [Float](repeating: 0, count: 4)
            var summs: Float = 0
            for i in 0..<(n / 256) {
                let o = i * bb, oa = i * 292
                let k = kblock(t, w, o)
                let ad = f32(a, oa)
                let aq8 = (0..<256).map { i8(a, oa + 4 + $0) }
                let bsums = (0..<16).map { i16(a, oa + 260 + 2 * $0) }
                var sumi = [Int](repeating: 0, count: 8)
                for c in 0..<8 {
                    let ln = lanes(Array(k.q[32 * c..<32 * c + 32]), Array(aq8[32 * c..<32 * c + 32]))
                    for l in 0..<8 { sumi[l] += ln[l] * k.sc16[2 * c + l / 4] }
                }
                let d = ad * k.d, dmin = -ad * k.dmin
                switch t {
                case 10:
                    for l in 0..<8 {
                        let p = k.mins[2 * l] * bsums[2 * l] + k.mins[2 * l + 1] * bsums[2 * l + 1]
                        acc[l] = acc[l].addingProduct(dmin, Float(p))
                    }
                case 12:
                    for kk in 0..<4 {
                        let p = k.mins[4 * kk] * (bsums[4 * kk] + bsums[4 * kk + 1]) + k.mins[4 * kk + 2] * (bsums[4 * kk + 2] + bsums[4 * kk + 3])
                        accm[kk] = accm[kk].addingProduct(dmin, Float(p))
                    }
                case 13:
                    let p = (0..<16).reduce(0) { $0 + k.mins[$1] * bsums[$1] }
                    summs = summs.addingProduct(dmin, Float(p))
                case 14:
                    for l in 0..<8 { sumi[l] -= 32 * (bsums[2 * l] * k.sc16[2 * l] + bsums[2 * l + 1] * k.sc16[2 * l + 1]) }
                default: break
                }
                for l in 0..<8 { acc[l] = acc[l].addingProduct(d, Float(sumi[l])) }
            }
            let total = hsum8(acc)
            if t == 12 { return total + ((accm[0] + accm[2]) + (accm[1] + accm[3])) }
            return t == 13 ? total + summs : total
        }
    }
}

private let weightTypes: [Int32] = [0, 1, 30, 2, 3, 6, 7, 8, 10, 11, 12, 13, 14]
private let allTypes: [Int32] = [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30]
private let levelNames = ["scalar", "avx2", "avx512"]

/// Random weights: random bytes, with the scale fields set to random finite halves of either
/// sign (negative mins too); every 7th block uses edge codes (all 0x00 or all 0xFF bytes).
private func randomRow(_ t: Int32, _ n: Int, _ g: inout SplitMix64) -> [UInt8] {
    let (bs, bb) = Ref.blockInfo[t]!
    let nb = n / bs
    var b = (0..<(nb * bb)).map { _ in UInt8.random(in: 0...255, using: &g) }
    func half(_ o: Int, _ f: Float) { let v = Float16(f).bitPattern; b[o] = UInt8(v & 0xff); b[o + 1] = UInt8(v >> 8) }
    func r() -> Float { Float.random(in: -0.05...0.05, using: &g) }
    switch t {
    case 0: for i in 0..<n { withUnsafeBytes(of: Float.random(in: -2...2, using: &g).bitPattern) { for k in 0..<4 { b[4 * i + k] = $0[k] } } }
        return b
    case 1: for i in 0..<n { half(2 * i, Float.random(in: -2...2, using: &g)) }
        return b
    case 30: for i in 0..<n {
            let u = Float.random(in: -2...2, using: &g).bitPattern >> 16
            b[2 * i] = UInt8(u & 0xff); b[2 * i + 1] = UInt8(u >> 8)
        }
        return b
    default: break
    }
    for i in 0..<nb {
        let o = i * bb
        if i % 7 == 3 { let fillByte: UInt8 = i % 2 == 0 ? 0 : 0xFF; for k in 0..<bb { b[o + k] = fillByte } }
        switch t {
        case 2, 6, 8: half(o, r())
        case 3, 7, 12, 13: half(o, r()); half(o + 2, r())
        case 10: half(o + 80, r()); half(o + 82, r())
        case 11: half(o + 108, r())
        case 14: half(o + 208, r())
        default: break
        }
    }
    return b
}

private func randomFloats(_ n: Int, _ g: inout SplitMix64) -> [Float] {
    (0..<n).map { _ in Float.random(in: -1...1, using: &g) * (Int.random(in: 0..<40, using: &g) == 0 ? 30 : 1) }
}

private func runFromFloat(_ tr: UnsafePointer<ek_type_traits>, _ x: [Float]) -> [UInt8] {
    let bytes = Int(ek_row_bytes(tr.pointee.type, Int64(x.count)))
    var out = [UInt8](repeating: 0xAA, count: bytes)
    x.withUnsafeBufferPointer { xp in out.withUnsafeMutableBytes { tr.pointee.from_float(xp.baseAddress, $0.baseAddress, Int64(x.count)) } }
    return out
}

private func levels(_ t: Int32) -> [(String, UnsafePointer<ek_type_traits>)] {
    (0..<3).compactMap { lv in ek_type_traits_level(t, Int32(lv)).map { (levelNames[lv], $0) } }
}

final class TypesTests: XCTestCase {
    func testTable() {
        let expected: [Int32: (String, Int64, Int64, Int32)] = [
            0: ("f32", 1, 4, 0), 1: ("f16", 1, 2, 1), 2: ("q4_0", 32, 18, 8), 3: ("q4_1", 32, 20, 9),
            6: ("q5_0", 32, 22, 8), 7: ("q5_1", 32, 24, 9), 8: ("q8_0", 32, 34, 8), 9: ("q8_1", 32, 36, 9),
            10: ("q2_K", 256, 84, 15), 11: ("q3_K", 256, 110, 15), 12: ("q4_K", 256, 144, 15),
            13: ("q5_K", 256, 176, 15), 14: ("q6_K", 256, 210, 15), 15: ("q8_K", 256, 292, 15), 30: ("bf16", 1, 2, 30),
        ]
        for id in Int32(-3)...Int32(45) {
            guard let e = expected[id] else {
                XCTAssertNil(ek_type_traits_of(id), "type \(id) is unsupported")
                XCTAssertEqual(ek_row_bytes(id, 256), -1)
                continue
            }
            let t = ek_type_traits_of(id)!.pointee
            XCTAssertEqual(t.type, id)
            XCTAssertEqual(String(cString: t.name), e.0)
            XCTAssertEqual(t.block_size, e.1)
            XCTAssertEqual(t.block_bytes, e.2)
            XCTAssertEqual(t.vec_dot_type, e.3)
            XCTAssertNotNil(t.to_float)
            let activationOnly = id == 9 || id == 15
            XCTAssertEqual(t.vec_dot == nil, activationOnly, "\(e.0) vec_dot")
            let activationFormat = [0, 1, 8, 9, 15, 30].contains(id)
            XCTAssertEqual(t.from_float != nil, activationFormat, "\(e.0) from_float")
            XCTAssertEqual(ek_row_bytes(id, 512), 512 / e.1 * e.2)
            if e.1 > 1 { XCTAssertEqual(ek_row_bytes(id, e.1 + 1), -1) }
            for (name, lt) in levels(id) { XCTAssertEqual(lt.pointee.block_bytes, e.2, name) }
        }
        XCTAssertNil(ek_type_traits_level(12, 3))
    }

    func testToFloatMatchesReference() {
        var g = SplitMix64(seed: 101)
        for t in allTypes {
            let (bs, _) = Ref.blockInfo[t]!
            for n in [256, 512, 2304] {
                let n = bs == 1 ? n + 7 : n
                let w: [UInt8]
                if t == 9 || t == 15 {
                    let x = randomFloats(n, &g)
                    w = t == 9 ? Ref.q81(x) : Ref.q8K(x)
                } else {
                    w = randomRow(t, n, &g)
                }
                let want = Ref.toFloat(t, w, n)
                for (name, tr) in levels(t) {
                    var y = [Float](repeating: .nan, count: n + 2)
                    w.withUnsafeBytes { wp in y.withUnsafeMutableBufferPointer { tr.pointee.to_float(wp.baseAddress, $0.baseAddress, Int64(n)) } }
                    XCTAssertTrue(y[n].isNaN && y[n + 1].isNaN, "type \(t) wrote past the end")
                    for i in 0..<n where y[i].bitPattern != want[i].bitPattern {
                        XCTFail("to_float type \(t) \(name) n \(n) [\(i)]: \(y[i]) != \(want[i])")
                        break
                    }
                }
            }
        }
    }

    func testQ8KAndQ81QuantizersMatchReference() {
        var g = SplitMix64(seed: 202)
        for n in [256, 1024, 4096] {
            for rep in 0..<6 {
                var x = randomFloats(n, &g)
                if rep == 1 { for i in 0..<min(n, 300) { x[i] = 0 } }                    // zero blocks
                if rep == 2 { x[5] = -1000; x[300 % n] = 1000 }                            // sign of the max
                if rep == 3 { for i in 0..<n { x[i] *= 1e-20 } }                           // tiny
                if rep == 4 { for i in 0..<n { x[i] = Float(i % 5) - 2 } }                 // ties
                for (t, ref) in [(Int32(15), Ref.q8K(x)), (Int32(9), Ref.q81(x))] {
                    for (name, tr) in levels(t) {
                        XCTAssertEqual(runFromFloat(tr, x), ref, "type \(t) \(name) n \(n) rep \(rep)")
                    }
                }
            }
        }
        // F16 / BF16 / F32 activations
        let x = randomFloats(300, &g) + [0x1p-20, -0x1p-30, 65520, -1e6, 1 + 0x1p-8, 1 + 0x3p-8]
        var f16: [UInt8] = [], bf16: [UInt8] = [], f32: [UInt8] = []
        for v in x {
            withUnsafeBytes(of: Float16(v).bitPattern.littleEndian) { f16 += $0 }
            let u = v.bitPattern
            let r = UInt16(truncatingIfNeeded: (u &+ (0x7fff &+ ((u >> 16) & 1))) >> 16)
            withUnsafeBytes(of: r.littleEndian) { bf16 += $0 }
            withUnsafeBytes(of: u.littleEndian) { f32 += $0 }
        }
        for (t, ref) in [(Int32(1), f16), (Int32(30), bf16), (Int32(0), f32)] {
            for (name, tr) in levels(t) { XCTAssertEqual(runFromFloat(tr, x), ref, "type \(t) \(name)") }
        }
    }

    private func activations(_ t: Int32, _ x: [Float]) -> [UInt8] {
        runFromFloat(ek_type_traits_of(ek_type_traits_of(t)!.pointee.vec_dot_type)!, x)
    }

    func testVecDotEveryPathMatchesReference() {
        var g = SplitMix64(seed: 303)
        for t in weightTypes {
            let (bs, _) = Ref.blockInfo[t]!
            for n in [256, 512, 1280, 4096] {
                for rep in 0..<3 {
                    let n = bs == 1 ? n + [0, 13, 40][rep] : n
                    let w = randomRow(t, n, &g)
                    let a = activations(t, randomFloats(n, &g))
                    let want = Ref.dot(t, w, a, n)
                    for (name, tr) in levels(t) {
                        let got = w.withUnsafeBytes { wp in a.withUnsafeBytes { tr.pointee.vec_dot(Int64(n), wp.baseAddress, $0.baseAddress) } }
                        XCTAssertEqual(got.bitPattern, want.bitPattern, "type \(t) \(name) n \(n): \(got) vs \(want)")
                    }
                }
            }
        }
    }

    func testQ4KOrdersMatchReference() {
        var g = SplitMix64(seed: 313)
        let fns: [(String, [ek_vec_dot_fn])] = [
            ("plain", [ek_vec_dot_q4_K_q8_K_scalar, ek_vec_dot_q4_K_q8_K_avx2, ek_vec_dot_q4_K_q8_K_avx512]),
            ("gemv", [ek_vec_dot_q4_K_q8_K_rp_scalar, ek_vec_dot_q4_K_q8_K_rp_avx2, ek_vec_dot_q4_K_q8_K_rp_avx512]),
            ("gemm", [ek_vec_dot_q4_K_q8_K_rp4_scalar, ek_vec_dot_q4_K_q8_K_rp4_avx2, ek_vec_dot_q4_K_q8_K_rp4_avx512]),
        ]
        let maxLevel = levels(12).count
        for n in [256, 512, 1280, 4096] {
            for _ in 0..<3 {
                let w = randomRow(12, n, &g)
                let a = activations(12, randomFloats(n, &g))
                let want = [Ref.dot(12, w, a, n, q4KPlain: true), Ref.dotQ4KRepacked(w, a, n, gemm: false),
                            Ref.dotQ4KRepacked(w, a, n, gemm: true)]
                for (i, (name, fs)) in fns.enumerated() {
                    for l in 0..<maxLevel {
                        let got = w.withUnsafeBytes { wp in a.withUnsafeBytes { fs[l](Int64(n), wp.baseAddress, $0.baseAddress) } }
                        XCTAssertEqual(got.bitPattern, want[i].bitPattern, "q4_K \(name) \(levelNames[l]) n \(n): \(got) vs \(want[i])")
                    }
                }
            }
        }
    }

    func testMMTaskMatchesVecDot() {
        // (the batched AVX-512 kernels: Q8_0, Q5_0, Q4_0, Q4_1, Q5_1, Q2_K, Q3_K, Q6_K, Q4_K, Q5_K, F16, F32, BF16; token counts across their
        // 64-token blocks, odd counts, tiles of 4 rows x 4 pairs with remainders; Q8_0 batches of 2-47 take
        // the small-batch kernel; Q8_0, Q5_0, Q4_0 batches of 48 or more tiles of 16 rows x 3 tokens
        // (64, 65, 130); F16/F32 tiles of 4 rows x 4 tokens)
        checkMMTask(combos: [[12], [14, 6], [12, 14, 13], [8, 10, 11], [6, 7, 2], [3, 8], [1], [30, 0], [8], [14], [2, 6], [13], [3], [7], [3, 7], [0], [1, 0, 8], [11], [10], [10, 11, 14], [30], [30, 1, 8]], seed: 404)
    }

    /// The AVX2 level's batched kernels (Q8_0, Q5_0, Q4_0, Q4_1, Q5_1 in tiles of 4 rows x 2 tokens, Q2_K,
    /// Q3_K, Q5_K, Q6_K and Q4_K matrices with rows % 8 == 0 in tiles of 2 x 2) against their vec_dot.
    func testMMTaskMatchesVecDotAVX2() throws {
        guard ek_cpu_has_avx2() != 0 else { throw XCTSkip("no AVX2") }
        let detected = String(cString: ek_kernel_name())
        XCTAssertEqual(ek_force_kernel("avx2"), 0)
        defer { _ = ek_force_kernel(detected) }
        checkMMTask(combos: [[8], [8, 12], [6, 8, 14], [6], [2], [2, 6], [12], [12, 14], [14], [13], [13, 8], [3], [7], [3, 7, 8], [10], [11], [10, 11, 14]], seed: 405)
    }

    /// Q8_0 rows regrouped by ek_repack_q8_0_x16 (the AVX-512 level's layout for every batch size,
    /// decode included: tiles of 16 rows x 1-3 tokens) against vec_dot on the original rows.
    func testQ8_0RepackedMatchesVecDot() throws {
        guard ek_mm_uses_q8_0_x16() != 0 else { throw XCTSkip("no AVX-512 VNNI") }
        checkMMTask(combos: [[8], [8, 8, 8], [8, 2, 8]], seed: 406, repack: true)
        // its rows read back as floats (the embedding lookup) equal the original rows dequantized
        var g = SplitMix64(seed: 407)
        let rows = 48, ncols = 96
        let w = randomRow(8, rows * ncols, &g)
        var rp = [UInt8](repeating: 0, count: w.count)
        ek_repack_q8_0_x16(w, Int64(rows), Int64(ncols), &rp)
        let rb = Int(ek_row_bytes(8, Int64(ncols)))
        for r in 0..<rows {
            var got = [Float](repeating: 0, count: ncols), want = got
            ek_row_q8_0_x16(rp, Int64(r), Int64(ncols), &got)
            w.withUnsafeBytes { ek_type_traits_of(8)!.pointee.to_float($0.baseAddress! + r * rb, &want, Int64(ncols)) }
            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "row \(r)")
        }
    }

    private func checkMMTask(combos: [[Int32]], seed: UInt64, repack: Bool = false) {
        var g = SplitMix64(seed: seed)
        for types in combos {
            let ncols = types.count == 1 ? 768 : 512
            for nTok in [1, 2, 3, 4, 5, 6, 7, 8, 9, 23, 32, 33, 47, 48, 64, 65, 130] {
                if nTok > 9 && !(types.allSatisfy { [8, 6, 2, 14, 12, 13, 3, 7, 1, 0, 10, 11, 30].contains($0) }) { continue }
                for useAcc in [false, true] {
                    let np = types.count
                    // (a lone Q4_K: rows a multiple of 8, the repacked case; Q8_0 to repack: a multiple of 16; in mixes: any)
                    let rows = (0..<np).map {
                        repack && types[$0] == 8 ? 16 * Int.random(in: 1...5, using: &g)
                            : types.count == 1 && types[$0] == 12 ? 8 * Int.random(in: 1...8, using: &g) : Int.random(in: 1...70, using: &g) }
                    let ws = (0..<np).map { randomRow(types[$0], ncols * rows[$0], &g) }
                    let xs = (0..<nTok).map { _ in randomFloats(ncols, &g) }
                    let acts = (0..<np).map { p in xs.flatMap { activations(types[p], $0) } }
                    let aStride = (0..<np).map { p in acts[p].count / nTok }
                    let yStride = 80
                    let outs = (0..<np).map { _ in [Float](repeating: 0.25, count: nTok * yStride) }
                    // expected: per row and token, the table's vec_dot whatever the batch; Q4_K
                    // matrices with rows % 8 != 0: ggml_vec_dot_q4_K_q8_K (llama.cpp does not
                    // repack them)
                    var want = outs
                    for p in 0..<np {
                        let tr = ek_type_traits_of(types[p])!.pointee
                        let rb = Int(ek_row_bytes(types[p], Int64(ncols)))
                        for r in 0..<rows[p] {
                            for k in 0..<nTok {
                                let v = ws[p].withUnsafeBytes { wp in acts[p].withUnsafeBytes { ap -> Float in
                                    let wr = wp.baseAddress! + r * rb, ar = ap.baseAddress! + k * aStride[p]
                                    if types[p] == 12 && rows[p] % 8 != 0 { return ek_vec_dot_q4_K_q8_K_scalar(Int64(ncols), wr, ar) }
                                    return tr.vec_dot(Int64(ncols), wr, ar) } }
                                if useAcc { want[p][k * yStride + r] += v } else { want[p][k * yStride + r] = v }
                            }
                        }
                    }
                    for nth in [1, 2, 3] {
                        var got = outs
                        runMM(types: types, ncols: ncols, nTok: nTok, yStride: yStride, ws: ws, acts: acts, aStride: aStride,
                              rows: rows, outs: &got, useAcc: useAcc, nth: nth, repack: repack)
                        for p in 0..<np {
                            XCTAssertEqual(got[p].map(\.bitPattern), want[p].map(\.bitPattern),
                                           "types \(types) part \(p) nTok \(nTok) acc \(useAcc) nth \(nth)")
                        }
                    }
                }
            }
        }
    }

    private func runMM(types: [Int32], ncols: Int, nTok: Int, yStride: Int, ws: [[UInt8]], acts: [[UInt8]], aStride: [Int],
                       rows: [Int], outs: inout [[Float]], useAcc: Bool, nth: Int, repack: Bool = false) {
        let np = types.count
        // pinned copies so the task can hold raw pointers
        let wp = ws.map { w -> UnsafeMutableRawPointer in let p = UnsafeMutableRawPointer.allocate(byteCount: w.count, alignment: 64); w.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: w.count) }; return p }
        // Q8_0 parts regrouped by 16 rows (the original rows stay in w, as in a model)
        let rp: [UnsafeMutableRawPointer?] = (0..<np).map { p in
            guard repack, types[p] == 8 else { return nil }
            let q = UnsafeMutableRawPointer.allocate(byteCount: ws[p].count, alignment: 64)
            ek_repack_q8_0_x16(wp[p], Int64(rows[p]), Int64(ncols), q)
            return q
        }
        defer { rp.forEach { $0?.deallocate() } }
        let ap = acts.map { a -> UnsafeMutableRawPointer in let p = UnsafeMutableRawPointer.allocate(byteCount: a.count, alignment: 64); a.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: a.count) }; return p }
        let op = outs.map { o -> UnsafeMutablePointer<Float> in let p = UnsafeMutablePointer<Float>.allocate(capacity: o.count); p.initialize(from: o, count: o.count); return p }
        defer { wp.forEach { $0.deallocate() }; ap.forEach { $0.deallocate() }; op.forEach { $0.deallocate() } }
        var t = ek_mm_task()
        t.ncols = Int64(ncols); t.n_tok = Int64(nTok); t.y_stride = Int64(yStride); t.nparts = Int32(np)
        func pick<T>(_ a: [T], _ i: Int, _ d: T) -> T { i < a.count ? a[i] : d }
        func raw(_ a: [UnsafeMutableRawPointer], _ i: Int) -> UnsafeRawPointer? { i < a.count ? UnsafeRawPointer(a[i]) : nil }
        t.type = (pick(types, 0, 0), pick(types, 1, 0), pick(types, 2, 0))
        t.w = (raw(wp, 0), raw(wp, 1), raw(wp, 2))
        t.a = (raw(ap, 0), raw(ap, 1), raw(ap, 2))
        t.a_stride = (Int64(pick(aStride, 0, 0)), Int64(pick(aStride, 1, 0)), Int64(pick(aStride, 2, 0)))
        let o: [UnsafeMutablePointer<Float>?] = (0..<3).map { $0 < np ? op[$0] : nil }
        if useAcc { t.acc = (o[0], o[1], o[2]); t.y = (nil, nil, nil) } else { t.y = (o[0], o[1], o[2]); t.acc = (nil, nil, nil) }
        t.rows = (Int64(pick(rows, 0, 0)), Int64(pick(rows, 1, 0)), Int64(pick(rows, 2, 0)))
        let rpc: [UnsafeRawPointer?] = rp.map { $0.map { UnsafeRawPointer($0) } }
        t.rp = (pick(rpc, 0, nil), pick(rpc, 1, nil), pick(rpc, 2, nil))
        withUnsafeMutablePointer(to: &t) { tp in
            for ith in 0..<nth { ek_mm_task_run(UnsafeMutableRawPointer(tp), Int32(ith), Int32(nth)) }
        }
        for p in 0..<np { outs[p] = Array(UnsafeBufferPointer(start: op[p], count: outs[p].count)) }
    }

    func testDequantTaskUsesTable() {
        var g = SplitMix64(seed: 505)
        let types: [Int32] = [12, 14, 6, 10, 1, 30, 0, 8]
        var t = ek_dequant_task()
        t.nparts = Int32(types.count)
        let n = 1024
        let srcs = types.map { randomRow($0, n, &g) }
        let sp = srcs.map { s -> UnsafeMutableRawPointer in let p = UnsafeMutableRawPointer.allocate(byteCount: s.count, alignment: 64); s.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: s.count) }; return p }
        let dp = types.map { _ in UnsafeMutablePointer<Float>.allocate(capacity: n) }
        defer { sp.forEach { $0.deallocate() }; dp.forEach { $0.deallocate() } }
        withUnsafeMutableBytes(of: &t.type) { b in for (i, v) in types.enumerated() { b.storeBytes(of: v, toByteOffset: 4 * i, as: Int32.self) } }
        withUnsafeMutableBytes(of: &t.src) { b in for (i, v) in sp.enumerated() { b.storeBytes(of: UnsafeRawPointer(v), toByteOffset: 8 * i, as: UnsafeRawPointer.self) } }
        withUnsafeMutableBytes(of: &t.dst) { b in for (i, v) in dp.enumerated() { b.storeBytes(of: v, toByteOffset: 8 * i, as: UnsafeMutablePointer<Float>.self) } }
        withUnsafeMutableBytes(of: &t.count) { b in for i in 0..<types.count { b.storeBytes(of: Int64(n), toByteOffset: 8 * i, as: Int64.self) } }
        withUnsafeMutablePointer(to: &t) { tp in for ith in 0..<3 { ek_dequant_task_run(UnsafeMutableRawPointer(tp), Int32(ith), 3) } }
        for (i, ty) in types.enumerated() {
            let want = Ref.toFloat(ty, srcs[i], n)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: dp[i], count: n)).map(\.bitPattern), want.map(\.bitPattern), "type \(ty)")
        }
    }
}
