import CKernels
import XCTest

final class ConversionTests: XCTestCase {
    func testDispatchMatchesCPU() {
        ek_init()
        let name = String(cString: ek_kernel_name())
        if ek_cpu_has_avx512vnni() != 0 {
            XCTAssertEqual(name, "avx512vnni")
            XCTAssertEqual(ek_cpu_has_avx2(), 1, "the AVX-512 path also needs AVX2/FMA/F16C")
        } else if ek_cpu_has_avx2() != 0 {
            XCTAssertEqual(name, "avx2")
        } else {
            XCTAssertEqual(name, "scalar")
        }
    }

    func testForceKernel() throws {
        let original = String(cString: ek_kernel_name())
        defer { XCTAssertEqual(ek_force_kernel(original), 0) }
        XCTAssertEqual(ek_force_kernel("bogus"), -1)
        XCTAssertEqual(String(cString: ek_kernel_name()), original, "a failed force keeps the choice")
        var g = SplitMix64(seed: 7)
        let w = randomQ8Matrix(rows: 1, cols: 576, using: &g)
        let x = randomActivation(cols: 576, using: &g)
        for path in KernelPath.all {
            if !path.supported {
                XCTAssertEqual(ek_force_kernel(path.name), -1, "\(path) is not supported here")
                continue
            }
            XCTAssertEqual(ek_force_kernel(path.name), 0)
            XCTAssertEqual(String(cString: ek_kernel_name()), path.name)
            let viaDispatch = ek_vec_dot_q8_0(576, w, x)
            let direct = path.dot(576, w, x)
            XCTAssertEqual(viaDispatch.bitPattern, direct.bitPattern, "\(path)")
        }
    }

    func testHalfToFloatAllPatterns() {
        for h in 0...UInt16.max {
            let ours = ek_fp16_to_fp32(h)
            let swift = Float(Float16(bitPattern: h))
            if swift.isNaN {
                XCTAssertTrue(ours.isNaN, "half \(String(h, radix: 16))")
                XCTAssertEqual(ours.sign, swift.sign)
            } else {
                XCTAssertEqual(ours.bitPattern, swift.bitPattern, "half \(String(h, radix: 16))")
            }
        }
    }

    func testFloatToHalfEdgeCases() {
        // (input, expected bits) worked out by hand
        let cases: [(Float, UInt16)] = [
            (0, 0x0000), (-0.0, 0x8000), (1, 0x3c00), (-2, 0xc000),
            (65504, 0x7bff),                                   // largest half
            (65519.996, 0x7bff),                               // just below the rounding point
            (65520, 0x7c00),                                   // tie -> even -> overflow to inf
            (1e6, 0x7c00), (-1e6, 0xfc00),
            (.infinity, 0x7c00), (-.infinity, 0xfc00),
            (0x1p-14, 0x0400),                                 // smallest normal
            (0x1p-24, 0x0001),                                 // smallest subnormal
            (0x1p-25, 0x0000),                                 // tie between 0 and 2^-24 -> 0 (even)
            (Float(bitPattern: 0x3300_0001), 0x0001),          // just above the tie
            (-0x1p-25, 0x8000),
            (0x1.8p-24, 0x0002),                               // 1.5 ulp: tie -> even (2)
            (0x1.8p-23, 0x0003),                               // 3 ulp exactly
            (0x1.4p-24, 0x0001),                               // 1.25 ulp -> 1
            (1 + 0x1p-11, 0x3c00),                             // tie -> even mantissa 0
            (1 + 0x3p-11, 0x3c02),                             // tie -> even mantissa 2
            (1 + 0x1p-11 + 0x1p-20, 0x3c01),                   // above the tie
            (2047.25, 0x67ff),                                 // -> 2047
            (2047.5, 0x6800),                                  // tie: 2047 is odd -> 2048
            (2048.5, 0x6800),                                  // halves step 2 here -> 2048
            (0x1.ff8p-15, 0x03ff),                             // largest subnormal (1023 ulp)
            (0x1.ffap-15, 0x03ff),                             // 1023.25 ulp
            (0x1.ffcp-15, 0x0400),                             // 1023.5 ulp: tie -> even = 2^-14
            (1e-10, 0x0000),
        ]
        for (f, bits) in cases {
            XCTAssertEqual(ek_fp32_to_fp16(f), bits, "\(f)")
            // and Swift's own conversion agrees (independent check of the table)
            XCTAssertEqual(Float16(f).bitPattern, bits, "Swift \(f)")
        }
        XCTAssertEqual(ek_fp32_to_fp16(.nan) & 0x7fff, 0x7e00)
        XCTAssertEqual(ek_fp32_to_fp16(-Float.nan), 0xfe00)
    }

    func testFloatToHalfMatchesSwiftOnManyValues() {
        var g = SplitMix64(seed: 1)
        var checked = 0
        // every exponent from tiny subnormal territory to overflow, random mantissas and
        // mantissas right at / around the rounding points of the 13 dropped bits
        for e in UInt32(90)...UInt32(150) {
            var mantissas: [UInt32] = [0, 1, 0x7fffff, 0x0fff, 0x1000, 0x1001, 0x2fff, 0x3000, 0x3001, 0x7ff000]
            for _ in 0..<2000 { mantissas.append(UInt32.random(in: 0...0x7fffff, using: &g)) }
            for shift in 0..<24 {   // ties for subnormal results
                let t = UInt32(1) << UInt32(shift)
                mantissas += [t, t - 1, t + 1, (t | (t << 1)) & 0x7fffff]
            }
            for m in mantissas {
                for s in [UInt32(0), 0x8000_0000] {
                    let f = Float(bitPattern: s | (e << 23) | (m & 0x7fffff))
                    let ours = ek_fp32_to_fp16(f)
                    let want = Float16(f).bitPattern
                    if ours != want {
                        XCTFail("fp32_to_fp16(\(f) = 0x\(String(f.bitPattern, radix: 16))): \(ours) != \(want)")
                        return
                    }
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 200_000)
    }

    func testHugeAllocation() {
        XCTAssertNil(ek_alloc_huge(0))
        for bytes in [1, 4096, 3 << 20, (2 << 20) + 17] {
            guard let p = ek_alloc_huge(bytes) else { return XCTFail("alloc \(bytes)") }
            XCTAssertEqual(Int(bitPattern: p) % (2 << 20), 0, "2 MiB aligned")
            let b = p.assumingMemoryBound(to: UInt8.self)
            XCTAssertEqual(b[0], 0)
            XCTAssertEqual(b[bytes - 1], 0)
            for i in Swift.stride(from: 0, to: bytes, by: 4096) { b[i] = UInt8(truncatingIfNeeded: i / 4096 + 1) }
            b[bytes - 1] = 0xAB
            for i in Swift.stride(from: 0, to: bytes - 1, by: 4096) { XCTAssertEqual(b[i], UInt8(truncatingIfNeeded: i / 4096 + 1)) }
            XCTAssertEqual(b[bytes - 1], 0xAB)
            ek_free_huge(p, bytes)
        }
        ek_free_huge(nil, 10)
    }

    func testBF16() {
        XCTAssertEqual(ek_bf16_to_fp32(0x3f80), 1)
        XCTAssertEqual(ek_bf16_to_fp32(0xc040), -3)
        XCTAssertEqual(ek_bf16_to_fp32(0x0001).bitPattern, 0x0001_0000)
        XCTAssertEqual(ek_bf16_to_fp32(0x7f80), .infinity)
        XCTAssertTrue(ek_bf16_to_fp32(0x7fc0).isNaN)
        for h in stride(from: 0, through: 0xffff, by: 7) {
            let f = ek_bf16_to_fp32(UInt16(h))
            if !f.isNaN { XCTAssertEqual(f.bitPattern, UInt32(h) << 16) }
        }
    }
}
