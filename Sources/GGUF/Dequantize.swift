import CKernels
// Conversions between ggml tensor encodings and Float, written to match
// ggml's reference C code bit for bit (no fused multiply-add anywhere:
// Swift does not contract `a * b + c`).

/// IEEE binary16 <-> binary32 conversions.
public enum Half {
    /// binary16 bits -> Float (exact).
    @inline(__always)
    public static func toFloat(_ h: UInt16) -> Float {
        halfTable.withUnsafeBufferPointer { $0[Int(h)] }
    }

    /// Float -> binary16 bits, rounding to nearest even (as F16C / ggml's fallback do).
    @inline(__always)
    public static func fromFloat(_ f: Float) -> UInt16 {
        Float16(f).bitPattern
    }

    /// bfloat16 bits -> Float (exact).
    @inline(__always)
    public static func bf16ToFloat(_ h: UInt16) -> Float {
        Float(bitPattern: UInt32(h) << 16)
    }

    /// Float -> bfloat16 bits the way ggml's `ggml_compute_fp32_to_bf16` does:
    /// round to nearest even; NaN stays NaN (quiet bit set).
    @inline(__always)
    public static func bf16FromFloat(_ f: Float) -> UInt16 {
        let u = f.bitPattern
        if (u & 0x7fff_ffff) > 0x7f80_0000 {
            return UInt16(truncatingIfNeeded: (u >> 16) | 64)
        }
        return UInt16(truncatingIfNeeded: (u &+ (0x7fff &+ ((u >> 16) & 1))) >> 16)
    }
}

/// All 65,536 half values as Float (computed once, 256 KiB).
let halfTable: [Float] = (0...0xFFFF).map { Float(Float16(bitPattern: UInt16($0))) }

/// Row conversion of tensor data to Float.
public enum Dequantize {
    static func checkSupported(_ type: GGMLType, tensor: String? = nil) throws {
        if !type.canDequantize {
            let subject = tensor.map { "tensor '\($0)' has type \(type.name) (ggml type \(type.rawValue)), which" } ?? "ggml type \(type.name) (\(type.rawValue))"
            throw GGUFError(.unsupportedTensorType, "\(subject) cannot be converted to Float; supported types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K")
        }
    }

    /// Converts `count` elements (a multiple of the type's block size) of
    /// `type`-encoded data at `from` to floats at `into`.
    public static func rows(type: GGMLType, from: UnsafeRawPointer, count: Int, into: UnsafeMutablePointer<Float>) throws {
        try checkSupported(type)
        guard count >= 0, count % type.blockSize == 0 else {
            throw GGUFError(.invalidArgument, "cannot dequantize \(count) elements of type \(type.name): not a multiple of the block size \(type.blockSize)")
        }
        switch type.rawValue {
        case GGMLType.f32.rawValue:
            UnsafeMutableRawPointer(into).copyMemory(from: from, byteCount: count * 4)
        case GGMLType.f16.rawValue:
            halfTable.withUnsafeBufferPointer { table in
                for i in 0..<count {
                    into[i] = table[Int(from.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))]
                }
            }
        case GGMLType.bf16.rawValue:
            for i in 0..<count {
                into[i] = Half.bf16ToFloat(from.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            }
        case GGMLType.q8_0.rawValue:
            q8_0(from, count / 32, into)
        case GGMLType.q4_0.rawValue:
            q4_0(from, count / 32, into)
        case GGMLType.q4_1.rawValue:
            q4_1(from, count / 32, into)
        default:
            // Q5_0, Q5_1 and the K-quants: the kernels' table (byte-exact with ggml's dequantizers)
            ek_type_traits_of(Int32(type.rawValue))?.pointee.to_float?(from, into, Int64(count))
        }
    }

    /// Q8_0 block: half d, int8 qs[32] (34 bytes). y = q * d.
    static func q8_0(_ x: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        halfTable.withUnsafeBufferPointer { table in
            for b in 0..<blocks {
                let blk = x + b * 34
                let d = table[Int(blk.loadUnaligned(as: UInt16.self))]
                let qs = (blk + 2).assumingMemoryBound(to: Int8.self)
                let out = y + b * 32
                for j in 0..<32 {
                    out[j] = Float(qs[j]) * d
                }
            }
        }
    }

    /// Q4_0 block: half d, uint8 qs[16] (18 bytes). Low nibbles are elements
    /// 0..15, high nibbles 16..31; y = (q - 8) * d.
    static func q4_0(_ x: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        halfTable.withUnsafeBufferPointer { table in
            for b in 0..<blocks {
                let blk = x + b * 18
                let d = table[Int(blk.loadUnaligned(as: UInt16.self))]
                let qs = (blk + 2).assumingMemoryBound(to: UInt8.self)
                let out = y + b * 32
                for j in 0..<16 {
                    let q = qs[j]
                    out[j] = Float(Int32(q & 0x0F) - 8) * d
                    out[j + 16] = Float(Int32(q >> 4) - 8) * d
                }
            }
        }
    }

    /// Q4_1 block: half d, half m, uint8 qs[16] (20 bytes); y = q * d + m,
    /// rounded after the product and after the sum (no fma), as ggml's reference.
    static func q4_1(_ x: UnsafeRawPointer, _ blocks: Int, _ y: UnsafeMutablePointer<Float>) {
        halfTable.withUnsafeBufferPointer { table in
            for b in 0..<blocks {
                let blk = x + b * 20
                let d = table[Int(blk.loadUnaligned(as: UInt16.self))]
                let m = table[Int(blk.loadUnaligned(fromByteOffset: 2, as: UInt16.self))]
                let qs = (blk + 4).assumingMemoryBound(to: UInt8.self)
                let out = y + b * 32
                for j in 0..<16 {
                    let q = qs[j]
                    let lo = Float(q & 0x0F) * d
                    let hi = Float(q >> 4) * d
                    out[j] = lo + m
                    out[j + 16] = hi + m
                }
            }
        }
    }
}

/// ggml's Q8_0 format: blocks of 32 values stored as { half d; int8 q[32] }.
public enum Q8_0 {
    public static let blockSize = 32
    public static let bytesPerBlock = 34

    /// Quantizes `count` floats (a multiple of 32; a partial last block is
    /// ignored) exactly like ggml's `quantize_row_q8_0_ref`:
    /// `amax = max |x|`, `d = amax / 127`, `id = d != 0 ? 1 / d : 0`,
    /// `d` stored as IEEE half (round to nearest even), `q = roundf(x * id)`.
    /// Non-finite products (possible only for NaN/Inf input or subnormal `d`)
    /// store 0, as the x86 conversion of such values truncates to 0.
    public static func quantize(_ x: UnsafePointer<Float>, count: Int, into: UnsafeMutableRawPointer) {
        let blocks = max(count, 0) / 32
        for b in 0..<blocks {
            quantizeBlock(x + b * 32, into + b * 34)
        }
    }

    @inline(__always)
    static func quantizeBlock(_ x: UnsafePointer<Float>, _ y: UnsafeMutableRawPointer) {
        var amax: Float = 0
        var poison: Float = 0                // becomes NaN if any x is Inf or NaN
        for j in 0..<32 {
            let a = abs(x[j])
            amax = amax > a ? amax : a       // C's MAX(amax, fabsf(v)), NaN behaviour included
            poison += x[j] * 0
        }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        y.storeBytes(of: Half.fromFloat(d), as: UInt16.self)
        let qs = (y + 2).assumingMemoryBound(to: Int8.self)
        if poison == 0 && id.isFinite {
            // |x * id| <= ~127. In Double, v +- 0.5 is exact, so truncating it
            // rounds half away from zero exactly like roundf.
            for j in 0..<32 {
                let v = Double(x[j] * id)
                let r = v + (v < 0 ? -0.5 : 0.5)
                qs[j] = Int8(truncatingIfNeeded: Int32(r))
            }
        } else {
            for j in 0..<32 {
                let v = (x[j] * id).rounded(.toNearestOrAwayFromZero)
                if v.isFinite && v >= -2147483648.0 && v < 2147483648.0 {
                    qs[j] = Int8(truncatingIfNeeded: Int32(v))
                } else {
                    qs[j] = 0
                }
            }
        }
    }
}
