import Foundation
import GGUF
import XCTest

/// The synthetic random-weight models and llama.cpp's logits on them (Tests/Fixtures/random,
/// made by make-references.py): per architecture (SyntheticModel.architectures) the F32 model
/// regenerated in-process, and reference logits for the F32, Q8_0 and Q4_K_M files
/// (32 positions × 2048 vocabulary, row i = logits after token i).
enum RandomModelFixtures {
    struct Manifest: Decodable {
        let n_tokens: Int
        let n_vocab: Int
        let seed: UInt64
        let base_sequence: [Int32]
        let architectures: [String: Architecture]
    }

    struct Architecture: Decodable {
        let tokenizer_from: String
        /// The evaluated sequence (BOS first when the vocabulary adds one).
        let tokens: [Int32]
        let f32: Variant
        let q8_0: Variant
        let q4_k_m: Variant

        /// "f32", "q8_0" or "q4_k_m".
        func variant(_ name: String) -> Variant? {
            switch name {
            case "f32": return f32
            case "q8_0": return q8_0
            case "q4_k_m": return q4_k_m
            default: return nil
            }
        }
    }

    struct Variant: Decodable {
        let sha256: String
        let bytes: Int
        let logits_file: String
        let logit_std: Double
        let argmax_equals_input_fraction: Double
        let argmax: [Int]
    }

    struct FixtureError: Error, CustomStringConvertible {
        let description: String
    }

    static let directory: String = {
        var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(2)                       // LlamaModelTests/RandomModelFixtures.swift
        return parts.joined(separator: "/") + "/Fixtures/random"
    }()

    static var manifestPath: String { directory + "/manifest.json" }

    static func manifest() throws -> Manifest {
        try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: manifestPath)))
    }

    static func architecture(_ arch: String) throws -> Architecture {
        guard let a = try manifest().architectures[arch] else {
            throw FixtureError(description: "architecture '\(arch)' is not in \(manifestPath)")
        }
        return a
    }

    static var cache: String {
        if let c = ProcessInfo.processInfo.environment["EDGEAI_CACHE"], !c.isEmpty { return c }
        return NSHomeDirectory() + "/.cache/edgeai"
    }

    /// Path of the cached model whose tokenizer the architecture's file copies.
    static func tokenizerSource(for arch: String) throws -> String {
        let p = cache + "/models/" + (try architecture(arch)).tokenizer_from
        guard FileManager.default.fileExists(atPath: p) else {
            throw FixtureError(description: "tokenizer source \(p) is missing (SmolLM2: Models/fetch.sh; Gemma 3 270M: see Tests/Fixtures/random/make-references.py)")
        }
        return p
    }

    /// A new empty temporary directory (remove it with `removeDirectory`).
    static func temporaryDirectory() throws -> String {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let dir = "\(base)/edgeai-random-\(getpid())-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func removeDirectory(_ dir: String) {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Writes the architecture's F32 model into `directory` and checks its sha256 against the
    /// manifest (so the references apply to it); returns the path.
    static func generateF32(_ arch: String, in directory: String) throws -> String {
        let m = try manifest()
        guard let a = m.architectures[arch] else {
            throw FixtureError(description: "architecture '\(arch)' is not in \(manifestPath)")
        }
        let src = try GGUFFile(path: try tokenizerSource(for: arch))
        let bytes = try SyntheticModel.bytes(architecture: arch, tokenizerFrom: src, seed: m.seed)
        let digest = FixtureSHA256.hex(bytes)
        guard digest == a.f32.sha256 else {
            throw FixtureError(description: "\(arch): the generated F32 model has sha256 \(digest), the references were made from \(a.f32.sha256) (regenerate them with make-references.py)")
        }
        let path = directory + "/\(arch)-f32.gguf"
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw FixtureError(description: "cannot write \(path)")
        }
        return path
    }

    /// F32 model converted with our quantizer (`quantizeModel`) to `type`; returns the path.
    static func generateQuantized(_ arch: String, type: GGMLType, in directory: String, threads: Int = 2) throws -> String {
        let f32 = try generateF32(arch, in: directory)
        let out = directory + "/\(arch)-\(type.name.lowercased()).gguf"
        try quantizeModel(input: f32, output: out, type: type, threads: threads)
        return out
    }

    /// The F32 model converted by our quantizer to a llama.cpp file type (e.g. Q4_K_M).
    static func generateQuantized(_ arch: String, fileType: LlamaFileType, in directory: String, threads: Int = 2) throws -> String {
        let f32 = try generateF32(arch, in: directory)
        let out = directory + "/\(arch)-\(fileType).gguf"
        try quantizeModel(input: f32, output: out, fileType: fileType, threads: threads)
        return out
    }

    /// llama.cpp's logits for `variant` ("f32", "q8_0", "q4_k_m"): one row per token.
    static func referenceLogits(_ arch: String, _ variant: String) throws -> [[Float]] {
        let m = try manifest()
        guard let v = m.architectures[arch]?.variant(variant) else {
            throw FixtureError(description: "no reference \(arch) \(variant) in \(manifestPath)")
        }
        let path = directory + "/" + v.logits_file
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        guard data.count == m.n_tokens * m.n_vocab * 4 else {
            throw FixtureError(description: "\(path) has \(data.count) bytes, expected \(m.n_tokens * m.n_vocab * 4)")
        }
        let floats: [Float] = data.withUnsafeBytes { raw in
            (0..<(m.n_tokens * m.n_vocab)).map {
                Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)))
            }
        }
        return (0..<m.n_tokens).map { Array(floats[($0 * m.n_vocab)..<(($0 + 1) * m.n_vocab)]) }
    }

    struct Comparison: CustomStringConvertible {
        /// ||ours - ref|| / ||ref|| per position.
        var relativeRMS: [Double]
        var argmaxAgreement: Double
        var maxAbsDifference: Double
        var maxRelativeRMS: Double { relativeRMS.max() ?? .infinity }
        var description: String {
            let mean = relativeRMS.reduce(0, +) / Double(max(relativeRMS.count, 1))
            return String(format: "relative RMS max %.3e mean %.3e, argmax agreement %.1f%%, max |diff| %.3e",
                          maxRelativeRMS, mean, argmaxAgreement * 100, maxAbsDifference)
        }
    }

    static func compare(_ ours: [[Float]], _ reference: [[Float]]) -> Comparison {
        var rel: [Double] = []
        var agree = 0
        var maxAbs = 0.0
        for (o, r) in zip(ours, reference) {
            var num = 0.0, den = 0.0
            for (x, y) in zip(o, r) {
                let d = Double(x) - Double(y)
                num += d * d
                den += Double(y) * Double(y)
                maxAbs = max(maxAbs, abs(d))
            }
            rel.append((num / max(den, 1e-30)).squareRoot())
            if argmax(o) == argmax(r) { agree += 1 }
        }
        if ours.count != reference.count { rel.append(.infinity) }
        return Comparison(relativeRMS: rel, argmaxAgreement: Double(agree) / Double(max(reference.count, 1)),
                          maxAbsDifference: maxAbs)
    }

    static func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in x.indices where x[i] > x[best] { best = i }
        return best
    }
}

// MARK: SHA-256 (FIPS 180-4)

enum FixtureSHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    static func hex(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { hex($0) } }

    static func hex(_ data: UnsafeRawBufferPointer) -> String {
        var h: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) =
            (0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19)
        let w = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)
        defer { w.deallocate() }
        @inline(__always) func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        k.withUnsafeBufferPointer { kp in
            let k = kp.baseAddress!
            func block(_ p: UnsafeRawPointer) {
                for i in 0..<16 { w[i] = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
                for i in 16..<64 {
                    let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
                    let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
                    w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
                }
                var (a, b, c, d, e, f, g, hh) = h
                for i in 0..<64 {
                    let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
                    let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
                    hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
                }
                h = (h.0 &+ a, h.1 &+ b, h.2 &+ c, h.3 &+ d, h.4 &+ e, h.5 &+ f, h.6 &+ g, h.7 &+ hh)
            }
            let n = data.count
            var i = 0
            if let base = data.baseAddress {
                while i + 64 <= n { block(base + i); i += 64 }
            }
            var tail = [UInt8](repeating: 0, count: 128)
            for j in 0..<(n - i) { tail[j] = data[i + j] }
            tail[n - i] = 0x80
            let tailBlocks = (n - i) + 9 <= 64 ? 1 : 2
            let bits = UInt64(n) * 8
            for j in 0..<8 { tail[tailBlocks * 64 - 1 - j] = UInt8(truncatingIfNeeded: bits >> (8 * UInt64(j))) }
            tail.withUnsafeBytes { t in
                for b in 0..<tailBlocks { block(t.baseAddress! + 64 * b) }
            }
        }
        return [h.0, h.1, h.2, h.3, h.4, h.5, h.6, h.7].map { v in
            let s = String(v, radix: 16)
            return String(repeating: "0", count: 8 - s.count) + s
        }.joined()
    }
}
