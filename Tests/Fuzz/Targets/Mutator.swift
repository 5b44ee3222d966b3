import Foundation

/// Deterministic random numbers for the fuzz loops (SplitMix64): a run is reproduced by its seed.
public struct FuzzRNG: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Byte-level mutations in the style of libFuzzer's default mutators: bit flips, random runs,
/// interesting integers, truncation, insertion, deletion, copies, splices with another seed, and
/// insertion of dictionary tokens (keywords of the input format).
public struct Mutator: Sendable {
    public var dictionary: [[UInt8]]
    public var maxSize: Int

    public init(dictionary: [String] = [], maxSize: Int = 1 << 20) {
        self.dictionary = dictionary.map { Array($0.utf8) }
        self.maxSize = maxSize
    }

    static let interesting: [UInt64] = [0, 1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 31, 32, 33, 63, 64, 127, 128, 255, 256,
                                        1 << 15, 1 << 16, 1 << 30, (1 << 30) + 1, 1 << 31, 1 << 32, 1 << 40, 1 << 62,
                                        UInt64(Int64.max), UInt64(Int64.max) + 1, .max, .max - 1]

    /// `rounds` mutations of `input`; `other` is another seed to splice from.
    public func mutate(_ input: [UInt8], other: [UInt8], rounds: Int, _ rng: inout FuzzRNG) -> [UInt8] {
        var b = input
        for _ in 0..<max(1, rounds) {
            switch Int.random(in: 0..<10, using: &rng) {
            case 0:   // flip bits
                guard !b.isEmpty else { break }
                let p = Int.random(in: 0..<b.count, using: &rng)
                b[p] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            case 1:   // random byte run
                guard !b.isEmpty else { break }
                let p = Int.random(in: 0..<b.count, using: &rng)
                for j in p..<min(b.count, p + Int.random(in: 1...8, using: &rng)) { b[j] = UInt8.random(in: 0...255, using: &rng) }
            case 2:   // an interesting integer, 1/2/4/8 bytes little-endian
                let width = [1, 2, 4, 8].randomElement(using: &rng)!
                guard b.count > width else { break }
                let p = Int.random(in: 0..<(b.count - width), using: &rng)
                let v = Mutator.interesting.randomElement(using: &rng)!
                for j in 0..<width { b[p + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
            case 3:   // truncate
                guard !b.isEmpty else { break }
                b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
            case 4:   // insert random bytes
                let p = Int.random(in: 0...b.count, using: &rng)
                b.insert(contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: p)
            case 5:   // delete a range
                guard !b.isEmpty else { break }
                let p = Int.random(in: 0..<b.count, using: &rng)
                b.removeSubrange(p..<min(b.count, p + Int.random(in: 1...16, using: &rng)))
            case 6:   // duplicate a range elsewhere (grows repetitive structure)
                guard b.count > 2 else { break }
                let from = Int.random(in: 0..<b.count, using: &rng)
                let len = Int.random(in: 1...min(64, b.count - from), using: &rng)
                let to = Int.random(in: 0...b.count, using: &rng)
                b.insert(contentsOf: Array(b[from..<(from + len)]), at: to)
            case 7:   // splice with the other seed
                guard !other.isEmpty, !b.isEmpty else { break }
                let cut = Int.random(in: 0..<b.count, using: &rng)
                let from = Int.random(in: 0..<other.count, using: &rng)
                b = Array(b[..<cut]) + Array(other[from...])
            case 8:   // a dictionary token
                guard !dictionary.isEmpty else { break }
                let tok = dictionary.randomElement(using: &rng)!
                let p = Int.random(in: 0...b.count, using: &rng)
                if Bool.random(using: &rng) || p + tok.count > b.count {
                    b.insert(contentsOf: tok, at: p)
                } else {
                    b.replaceSubrange(p..<(p + tok.count), with: tok)
                }
            default:  // an ASCII digit run (numbers, counts, lengths in text formats)
                let p = Int.random(in: 0...b.count, using: &rng)
                let digits = String(Mutator.interesting.randomElement(using: &rng)! >> UInt64.random(in: 0..<64, using: &rng))
                b.insert(contentsOf: Array(digits.utf8), at: p)
            }
        }
        if b.count > maxSize { b = Array(b.prefix(maxSize)) }
        return b
    }
}
