// Deterministic pseudo-random numbers and math for sampling.
//
// Everything here uses only IEEE-754 basic operations (+, −, ×, ÷, comparisons, bit
// manipulation), which are exactly reproducible on every conforming machine, so a given
// seed and the same logits always select the same token, on Linux and macOS alike.

/// SplitMix64 (Steele, Lea, Flood 2014): used to expand a 64-bit seed into generator state.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman, Vigna 2018): the sampler's generator. Seeded through SplitMix64 as
/// its authors recommend, so every seed (including 0) gives a valid, well-mixed state.
public struct Xoshiro256StarStar: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// A uniformly distributed double in [0, 1) built from the top 53 bits.
    public mutating func nextUnitDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}

/// exp(x) in double precision from basic operations only (no libm), so results are
/// bit-identical everywhere. Relative error below 2e-16 on the range used by softmax (x ≤ 0).
@inline(__always)
public func deterministicExp(_ x: Double) -> Double {
    if x.isNaN { return x }
    if x > 709.0 { return .infinity }
    if x < -745.0 { return 0 }
    // x = k·ln2 + r, |r| ≤ ln2/2; ln2 split in a high part with trailing zero bits so k·ln2Hi is exact.
    let invLn2 = 1.4426950408889634
    let ln2Hi = 6.93147180369123816490e-01
    let ln2Lo = 1.90821492927058770002e-10
    let k = (x * invLn2).rounded()
    let r = (x - k * ln2Hi) - k * ln2Lo
    // Taylor series to degree 13: remainder < (0.347^14)/14! ≈ 4e-18.
    var p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    // Scale by 2^k in two steps so subnormal results stay correct.
    let ki = Int(k)
    if ki >= -1021 {
        return p * Double(sign: .plus, exponent: ki, significand: 1.0)
    }
    return p * Double(sign: .plus, exponent: ki + 600, significand: 1.0) * 0x1.0p-600
}
