import XCTest
@testable import GGUF

/// Seeded random damage to a small valid file: every outcome is a file that
/// opens (and can be used) or a GGUFError; never a crash.
final class FuzzTests: XCTestCase {
    func testRandomMutations() throws {
        let original = try makeSampleFile()
        let valid = try GGUFFile(bytes: original)
        // Offsets of interesting fields: counts, lengths and tensor-table words.
        let headerEnd = valid.dataOffset
        var rng = SplitMix64(seed: 0x6767_7566)
        var outcomes = [String: Int]()
        let iterations = 10_000
        let boundary: [UInt64] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 31, 32, 33, 63, 64, 255, 256, 1 << 16, 1 << 30, (1 << 30) + 1,
                                  1 << 31, 1 << 32, 1 << 40, 1 << 62, UInt64(Int64.max), UInt64(Int64.max) + 1, .max, .max - 1]
        for i in 0..<iterations {
            var b = original
            let mutations = Int.random(in: 1...4, using: &rng)
            for _ in 0..<mutations {
                let inHeader = Bool.random(using: &rng)
                let limit = max(1, inHeader ? headerEnd : b.count)
                switch Int.random(in: 0..<7, using: &rng) {
                case 0:   // flip bits
                    let p = Int.random(in: 0..<min(limit, b.count), using: &rng)
                    b[p] ^= UInt8.random(in: 1...255, using: &rng)
                case 1:   // random byte run
                    let p = Int.random(in: 0..<min(limit, b.count), using: &rng)
                    for j in p..<min(b.count, p + Int.random(in: 1...16, using: &rng)) { b[j] = UInt8.random(in: 0...255, using: &rng) }
                case 2:   // overwrite a 4- or 8-byte word with a boundary value
                    let width = Bool.random(using: &rng) ? 8 : 4
                    guard b.count > width else { break }
                    let p = Int.random(in: 0..<(min(limit, b.count - width)), using: &rng)
                    let v = boundary.randomElement(using: &rng)!
                    for j in 0..<width { b[p + j] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(j))) }
                case 3:   // truncate
                    b = Array(b.prefix(Int.random(in: 0..<b.count, using: &rng)))
                case 4:   // insert bytes
                    let p = Int.random(in: 0...min(limit, b.count), using: &rng)
                    b.insert(contentsOf: (0..<Int.random(in: 1...12, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: p)
                case 5:   // delete bytes
                    guard !b.isEmpty else { break }
                    let p = Int.random(in: 0..<min(limit, b.count), using: &rng)
                    b.removeSubrange(p..<min(b.count, p + Int.random(in: 1...12, using: &rng)))
                default:  // copy a region elsewhere
                    guard b.count > 16 else { break }
                    let from = Int.random(in: 0..<(b.count - 8), using: &rng)
                    let to = Int.random(in: 0..<(b.count - 8), using: &rng)
                    for j in 0..<8 { b[to + j] = b[from + j] }
                }
            }
            do {
                let f = try GGUFFile(bytes: b)
                XCTAssertTrue(exercise(f), "mutation \(i): tensor views inconsistent")
                outcomes["opened", default: 0] += 1
            } catch let e as GGUFError {
                XCTAssertFalse(e.message.isEmpty)
                outcomes[e.kind.rawValue, default: 0] += 1
            } catch {
                XCTFail("mutation \(i): unexpected error type \(error)")
            }
        }
        XCTAssertEqual(outcomes.values.reduce(0, +), iterations)
        XCTAssertGreaterThan(outcomes.count, 6, "mutations should reach many different checks: \(outcomes)")
        print("fuzz: \(iterations) mutated files: " + outcomes.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
    }
}
