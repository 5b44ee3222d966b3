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
        let digest = SHA256.hex(bytes)
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
