enum XoshiroFixture {
    /// xoshiro256** seeded with SplitMix64(1), computed with an independent transcription of
    /// the reference algorithm (Python, arbitrary-precision integers masked to 64 bits).
    static let seed1: [UInt64] = [12966619160104079557, 9600361134598540522, 10590380919521690900, 7218738570589545383]
}
