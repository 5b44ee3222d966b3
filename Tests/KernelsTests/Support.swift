import CKernels

/// Deterministic generator so failures reproduce.
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

/// One SIMD level of the kernels.
struct KernelPath: CustomStringConvertible, Sendable {
    let name: String            // as ek_kernel_name / ek_force_kernel spell it
    let supported: Bool
    let quantize: @convention(c) (UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int64) -> Void
    let dot: @convention(c) (Int64, UnsafeRawPointer?, UnsafeRawPointer?) -> Float
    let matvec: @convention(c) (UnsafeRawPointer?, Int64, Int64, Int64, UnsafeRawPointer?, UnsafeMutablePointer<Float>?) -> Void
    let dotF32: @convention(c) (Int64, UnsafePointer<Float>?, UnsafePointer<Float>?) -> Float
    var description: String { name }

    static let scalar = KernelPath(
        name: "scalar", supported: true, quantize: ek_quantize_row_q8_0_scalar,
        dot: ek_vec_dot_q8_0_scalar, matvec: ek_matvec_q8_0_scalar, dotF32: ek_vec_dot_f32_scalar)
    static let avx2 = KernelPath(
        name: "avx2", supported: ek_cpu_has_avx2() != 0, quantize: ek_quantize_row_q8_0_avx2,
        dot: ek_vec_dot_q8_0_avx2, matvec: ek_matvec_q8_0_avx2, dotF32: ek_vec_dot_f32_avx2)
    static let avx512 = KernelPath(
        name: "avx512vnni", supported: ek_cpu_has_avx512vnni() != 0, quantize: ek_quantize_row_q8_0_avx512,
        dot: ek_vec_dot_q8_0_avx512vnni, matvec: ek_matvec_q8_0_avx512vnni, dotF32: ek_vec_dot_f32_avx512)

    static let all: [KernelPath] = [.scalar, .avx2, .avx512]
    /// Every path this CPU can run (always includes the scalar one).
    static var runnable: [KernelPath] { all.filter(\.supported) }
    /// The SIMD paths this CPU can run.
    static var simd: [KernelPath] { all.filter { $0.supported && $0.name != "scalar" } }
}

/// Dequantizers of one level.
struct DequantPath: CustomStringConvertible {
    typealias Fn = @convention(c) (UnsafeRawPointer?, UnsafeMutablePointer<Float>?, Int64) -> Void
    let name: String
    let supported: Bool
    let q8_0: Fn, q4_0: Fn, q4_1: Fn, f16: Fn, bf16: Fn
    var description: String { name }

    static let all: [DequantPath] = [
        DequantPath(name: "scalar", supported: true,
                    q8_0: ek_dequantize_row_q8_0_scalar, q4_0: ek_dequantize_row_q4_0_scalar,
                    q4_1: ek_dequantize_row_q4_1_scalar, f16: ek_dequantize_row_f16_scalar,
                    bf16: ek_dequantize_row_bf16_scalar),
        DequantPath(name: "avx2", supported: ek_cpu_has_avx2() != 0,
                    q8_0: ek_dequantize_row_q8_0_avx2, q4_0: ek_dequantize_row_q4_0_avx2,
                    q4_1: ek_dequantize_row_q4_1_avx2, f16: ek_dequantize_row_f16_avx2,
                    bf16: ek_dequantize_row_bf16_avx2),
        DequantPath(name: "dispatched", supported: true,
                    q8_0: ek_dequantize_row_q8_0, q4_0: ek_dequantize_row_q4_0,
                    q4_1: ek_dequantize_row_q4_1, f16: ek_dequantize_row_f16,
                    bf16: ek_dequantize_row_bf16),
    ]
}

let q8BlockBytes = 34

/// Random finite half bit pattern with exponent in [eMin, eMax] (biased, 0 = subnormal).
func randomHalfBits<G: RandomNumberGenerator>(_ g: inout G, eMin: UInt16 = 0, eMax: UInt16 = 30) -> UInt16 {
    let e = UInt16.random(in: eMin...eMax, using: &g)
    let m = UInt16.random(in: 0...0x3ff, using: &g)
    let s: UInt16 = Bool.random(using: &g) ? 0x8000 : 0
    return s | (e << 10) | m
}

/// Random Q8_0 weights: `rows` rows of `cols` columns, scales around 1e-3..1e-1, all int8 codes
/// possible (including -128).
func randomQ8Matrix<G: RandomNumberGenerator>(rows: Int, cols: Int, using g: inout G) -> [UInt8] {
    let nb = cols / 32
    var out = [UInt8](repeating: 0, count: rows * nb * q8BlockBytes)
    for blk in 0..<(rows * nb) {
        let o = blk * q8BlockBytes
        let d = Float16(Float.random(in: 0.001...0.1, using: &g) * (Bool.random(using: &g) ? 1 : -1)).bitPattern
        out[o] = UInt8(d & 0xff)
        out[o + 1] = UInt8(d >> 8)
        for j in 0..<32 { out[o + 2 + j] = UInt8.random(in: 0...255, using: &g) }
    }
    return out
}

/// A random activation row quantized with ek_quantize_row_q8_0 (codes in [-127, 127]).
func randomActivation<G: RandomNumberGenerator>(cols: Int, using g: inout G) -> [UInt8] {
    var x = [Float](repeating: 0, count: cols)
    for i in 0..<cols {
        // mostly small values with a few outliers, like transformer activations
        x[i] = Float.random(in: -1...1, using: &g) * (Int.random(in: 0..<50, using: &g) == 0 ? 20 : 1)
    }
    var q = [UInt8](repeating: 0, count: cols / 32 * q8BlockBytes)
    x.withUnsafeBufferPointer { xp in
        q.withUnsafeMutableBytes { ek_quantize_row_q8_0_scalar(xp.baseAddress, $0.baseAddress, Int64(cols)) }
    }
    return q
}

func halfAt(_ bytes: [UInt8], _ o: Int) -> Float {
    Float(Float16(bitPattern: UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8))
}

/// Exact (Double) Q8_0 dot product and the sum of absolute terms, for error bounds.
func exactDot(_ w: [UInt8], rowOffset: Int, _ x: [UInt8], blocks nb: Int) -> (value: Double, magnitude: Double) {
    var value = 0.0, magnitude = 0.0
    for b in 0..<nb {
        let ow = rowOffset + b * q8BlockBytes, ox = b * q8BlockBytes
        let scale = Double(halfAt(w, ow)) * Double(halfAt(x, ox))
        var s = 0, a = 0
        for j in 0..<32 {
            let p = Int(Int8(bitPattern: w[ow + 2 + j])) * Int(Int8(bitPattern: x[ox + 2 + j]))
            s += p
            a += abs(p)
        }
        value += Double(s) * scale
        magnitude += Double(a) * abs(scale)
    }
    return (value, magnitude)
}

/// Float32 error bound for a sum of `terms` products accumulated in any order.
func dotTolerance(blocks nb: Int, magnitude: Double) -> Double {
    Double(2 * nb + 16) * 0x1p-24 * magnitude + 1e-30
}

/// llama.cpp's x86 Q8_0 dot product (ggml_vec_dot_q8_0_q8_0, AVX2/AVX-512 builds), written out
/// in Swift: 8 int32 lanes per block (lane l = the 4 byte pairs 4l..4l+3), each lane accumulated
/// over the blocks in order with a fused multiply-add by fp16(w.d)*fp16(x.d), then summed as
/// ((a0+a4)+(a2+a6)) + ((a1+a5)+(a3+a7)).
func ggmlDot(_ w: UnsafeRawBufferPointer, rowOffset: Int, _ x: UnsafeRawBufferPointer, blocks nb: Int) -> Float {
    var acc = (Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0), Float(0))
    withUnsafeMutableBytes(of: &acc) { raw in
        let a = raw.bindMemory(to: Float.self)
        for b in 0..<nb {
            let ow = rowOffset + b * q8BlockBytes, ox = b * q8BlockBytes
            let dw = Float(Float16(bitPattern: UInt16(w[ow]) | UInt16(w[ow + 1]) << 8))
            let dx = Float(Float16(bitPattern: UInt16(x[ox]) | UInt16(x[ox + 1]) << 8))
            let d = dw * dx
            for l in 0..<8 {
                var s: Int32 = 0
                for k in (4 * l)..<(4 * l + 4) {
                    s += Int32(Int8(bitPattern: w[ow + 2 + k])) * Int32(Int8(bitPattern: x[ox + 2 + k]))
                }
                a[l] = a[l].addingProduct(Float(s), d)   // one rounding, like vfmadd
            }
        }
    }
    return ((acc.0 + acc.4) + (acc.2 + acc.6)) + ((acc.1 + acc.5) + (acc.3 + acc.7))
}

func ggmlDot(_ w: [UInt8], rowOffset: Int, _ x: [UInt8], blocks nb: Int) -> Float {
    w.withUnsafeBytes { wp in x.withUnsafeBytes { xp in ggmlDot(wp, rowOffset: rowOffset, xp, blocks: nb) } }
}
