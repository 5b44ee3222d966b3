import Foundation
import CKernels
import GGUF
import XCTest
@testable import Transformer

/// Shapes, paths and errors on a tiny random llama (2 layers, width 64, 2 query heads sharing
/// 1 KV head), written by our GGUF writer.
final class TinyModelTests: XCTestCase {
    func model(_ spec: TinyModel = TinyModel(), threads: Int = 2, configure: (inout TransformerModel.Options) -> Void = { _ in }) throws -> TransformerModel {
        var o = TransformerModel.Options()
        o.threads = threads
        configure(&o)
        return try TransformerModel(file: try spec.file(), options: o)
    }

    func tokens(_ n: Int, vocab: Int = 96, seed: UInt64 = 7) -> [Int32] {
        var r = SplitMix(seed)
        return (0..<n).map { _ in r.token(vocab) }
    }

    func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        XCTAssertEqual(a.count, b.count)
        return zip(a, b).map { abs($0 - $1) }.max() ?? 0
    }

    /// Largest difference as a fraction of b's logit range.
    func relDiff(_ a: [Float], _ b: [Float]) -> Float {
        maxAbsDiff(a, b) / max((b.max() ?? 0) - (b.min() ?? 0), 1e-6)
    }

    func testConfigFromMetadata() throws {
        let m = try model()
        let c = m.config
        XCTAssertEqual(c.blockCount, 2)
        XCTAssertEqual(c.embeddingLength, 64)
        XCTAssertEqual(c.headCount, 2)
        XCTAssertEqual(c.headCountKV, 1)
        XCTAssertEqual(c.headDimension, 32)
        XCTAssertEqual(c.kvDimension, 32)
        XCTAssertEqual(c.feedForwardLength, 128)
        XCTAssertEqual(c.vocabSize, 96)
        XCTAssertEqual(c.contextLength, 256)
        XCTAssertEqual(c.ropeScaling, .none)
        XCTAssertEqual(c.rmsEpsilon, 1e-5)
        XCTAssertEqual(m.matrixTypes, ["Q8_0": 15])   // all matrices used as stored
        XCTAssertEqual(m.ownedWeightBytes, (2 * 2 + 1) * 64 * 4)   // F32 norm vectors only
    }

    /// Decode logits against a textbook Double forward pass over the same (dequantized) weights.
    /// The int8 path quantizes activations to Q8_0 (and keeps K/V as halves), so agreement is
    /// to about 1% of the logit range, not bit for bit; a wrong RoPE, mask, GQA mapping or norm
    /// is off by far more.
    func testDecodeMatchesDoubleReference() throws {
        let spec = TinyModel()
        let file = try spec.file()
        let m = try TransformerModel(file: file, threads: 2)
        let s = try m.makeSession(contextLength: 80)
        let ref = try ReferenceLlama(file: file)
        var worst: Float = 0
        for t in tokens(70) {
            let ours = Array(try s.decode(t))
            let theirs = ref.step(t).map { Float($0) }
            let range = (theirs.max()! - theirs.min()!)
            worst = max(worst, maxAbsDiff(ours, theirs) / range)
            XCTAssertEqual(ours.indices.max { ours[$0] < ours[$1] }, theirs.indices.max { theirs[$0] < theirs[$1] })
        }
        XCTAssertLessThan(worst, 0.02, "decode logits deviate from the Double reference by \(worst) of the logit range")
    }

    /// The same for batches: int8 path (short) and OpenBLAS path (long), all rows.
    func testBatchesMatchDoubleReference() throws {
        let file = try TinyModel().file()
        let toks = tokens(70)
        let ref = try ReferenceLlama(file: file)
        let expected = toks.map { ref.step($0).map { Float($0) } }
        for minBLAS in [4, 1000] {
            var o = TransformerModel.Options()
            o.minBatchForBLAS = minBLAS
            o.maxBatch = 64
            let m = try TransformerModel(file: file, options: o)
            let all = try m.makeSession(contextLength: 80).evaluateAll(toks)
            for i in 0..<70 {
                let e = expected[i]
                let rel = maxAbsDiff(all[i], e) / (e.max()! - e.min()!)
                XCTAssertLessThan(rel, 0.02, "row \(i), minBatchForBLAS \(minBLAS)")
            }
        }
    }

    /// Batch invariance (the default arithmetic): every token's logits are bit-identical whether
    /// it is decoded alone or evaluated in a batch of any size.
    func testBatchesMatchSingleDecodesBitForBit() throws {
        try checkBatchesMatchSingleDecodes()
    }

    /// The same on the AVX2 kernels (their batched Q8_0 kernel against their decode).
    func testBatchesMatchSingleDecodesBitForBitAVX2() throws {
        guard TransformerModel.forceKernels("avx2") else { throw XCTSkip("no AVX2") }
        defer { TransformerModel.resetKernels() }
        try checkBatchesMatchSingleDecodes()
    }

    /// F16, F32 and BF16 matrices (their batched AVX-512 kernels against their decode).
    func testFloatWeightBatchesMatchSingleDecodesBitForBit() throws {
        var spec = TinyModel()
        spec.types = ["attn_q.weight": .f16, "attn_k.weight": .f32, "attn_v.weight": .f16, "attn_output.weight": .f32,
                      "ffn_gate.weight": .f16, "ffn_up.weight": .f32, "ffn_down.weight": .f16, "token_embd.weight": .f16]
        try checkBatchesMatchSingleDecodes(spec)
        spec.types = ["attn_q.weight": .bf16, "attn_k.weight": .bf16, "attn_v.weight": .f16, "attn_output.weight": .bf16,
                      "ffn_gate.weight": .bf16, "ffn_up.weight": .f32, "ffn_down.weight": .bf16, "token_embd.weight": .bf16]
        try checkBatchesMatchSingleDecodes(spec)
    }

    private func checkBatchesMatchSingleDecodes(_ spec: TinyModel = TinyModel()) throws {
        let m = try model(spec) { $0.maxBatch = 64 }
        let toks = tokens(70)
        let b = try m.makeSession(contextLength: 80)
        let single = try toks.map { Array(try b.decode($0)) }
        XCTAssertEqual(b.position, 70)
        for chunk in [2, 7, 64] {
            let a = try m.makeSession(contextLength: 80)
            var rows: [[Float]] = []
            var i = 0
            while i < toks.count {
                let j = min(toks.count, i + chunk)
                rows += try a.evaluateAll(Array(toks[i..<j]))
                i = j
            }
            XCTAssertEqual(a.position, 70)
            for k in 0..<70 {
                XCTAssertEqual(rows[k].map(\.bitPattern), single[k].map(\.bitPattern), "token \(k), chunks of \(chunk)")
            }
        }
    }

    /// Continuous batching: sessions at different positions evaluated in one step (decode tokens
    /// and prefill chunks mixed) get, row for row, the bits each gets alone, and their caches
    /// continue alike. Head width 32 (the per-head attention path) and 64 (the grouped one).
    func testSequencesInOneStepMatchAlone() throws {
        for spec in [TinyModel(), TinyModel(width: 256, heads: 4, kvHeads: 2, ff: 256)] {
            let m = try model(spec) { $0.maxBatch = 64 }
            let prefixes = [1, 5, 12, 3, 9, 2].enumerated().map { tokens($0.element, seed: UInt64(10 + $0.offset)) }
            let steps = [1, 1, 3, 1, 7, 1].enumerated().map { tokens($0.element, seed: UInt64(30 + $0.offset)) }
            let next = tokens(prefixes.count, seed: 99)
            var alone: [[Float]] = [], aloneNext: [[Float]] = []
            for k in prefixes.indices {
                let s = try m.makeSession(contextLength: 40)
                _ = try s.evaluateAll(prefixes[k])
                alone.append(try s.evaluateAll(steps[k]).last!)
                aloneNext.append(Array(try s.decode(next[k])))
            }
            let sessions = try prefixes.map { p -> TransformerSession in
                let s = try m.makeSession(contextLength: 40)
                _ = try s.evaluateAll(p)
                return s
            }
            for (round, want) in [(0, alone), (1, aloneNext)] {
                let parts = sessions.indices.map { SequenceTokens(sessions[$0], round == 0 ? steps[$0] : [next[$0]]) }
                let rows = try m.evaluate(parts) { logits in
                    (0..<parts.count).map { Array(logits[($0 * spec.vocab)..<(($0 + 1) * spec.vocab)]) }
                }
                for k in sessions.indices {
                    XCTAssertEqual(rows[k].map(\.bitPattern), want[k].map(\.bitPattern), "head width \(spec.headDim), sequence \(k), step \(round)")
                }
            }
        }
    }

    /// A batch on the OpenBLAS path against single decodes. The float products sum in another
    /// order than the int8 ones; the Q8_0 rounding of later activations turns those last-bit
    /// differences into logit differences of ~1% of the range (as between llama.cpp's own paths).
    func testBLASBatchMatchesSingleDecodes() throws {
        do {
            let m = try model { $0.minBatchForBLAS = 4 }
            let toks = tokens(40)
            let a = try m.makeSession(contextLength: 64)
            let all = try a.evaluateAll(toks)
            let b = try m.makeSession(contextLength: 64)
            for (i, t) in toks.enumerated() {
                let one = Array(try b.decode(t))
                XCTAssertLessThan(relDiff(all[i], one), 0.02, "token \(i)")
                XCTAssertEqual(all[i].indices.max { all[i][$0] < all[i][$1] }, one.indices.max { one[$0] < one[$1] })
            }
            // the last-token-only evaluate (q8 output product) agrees with the batch logits
            let c = try m.makeSession(contextLength: 64)
            XCTAssertLessThan(relDiff(try c.evaluate(toks), all[39]), 0.01)
        }
    }

    /// Batches longer than maxBatch run in chunks; a prefix of the cache can be continued.
    func testChunkedPrefillAndContinuation() throws {
        let m = try model { $0.maxBatch = 16; $0.minBatchForBLAS = 8 }
        let toks = tokens(50)
        let a = try m.makeSession(contextLength: 64)
        let logitsA = try a.evaluate(toks)
        let b = try m.makeSession(contextLength: 64)
        _ = try b.evaluate(Array(toks[0..<23]))
        _ = try b.evaluate(Array(toks[23..<30]))
        let logitsB = try b.evaluate(Array(toks[30...]))
        XCTAssertLessThan(relDiff(logitsA, logitsB), 0.02)
        XCTAssertEqual(b.position, 50)
    }

    func testTruncateAndReevaluate() throws {
        let m = try model()
        let toks = tokens(12)
        let s = try m.makeSession(contextLength: 32)
        let first = try s.evaluateAll(toks)
        s.truncate(to: 7)
        XCTAssertEqual(s.position, 7)
        let again = try s.evaluateAll(Array(toks[7...]))
        for i in 0..<5 { XCTAssertEqual(again[i], first[7 + i], "row \(7 + i) after truncate") }
        // a different continuation after truncating, then back: same logits as a fresh session
        s.truncate(to: 5)
        _ = try s.evaluate([1, 2, 3])
        s.truncate(to: 5)
        let back = try s.evaluate(Array(toks[5...]))
        XCTAssertEqual(back, first[11])
        s.truncate(to: 100)   // beyond the position: no effect
        XCTAssertEqual(s.position, 12)
        s.reset()
        XCTAssertEqual(s.position, 0)
        XCTAssertEqual(try s.evaluate(toks), first[11])
    }

    func testContextOverflowIsTypedAndWritesNothing() throws {
        let m = try model()
        let s = try m.makeSession(contextLength: 16)
        let toks = tokens(16)
        let logits10 = try s.evaluate(Array(toks[0..<10]))
        XCTAssertThrowsError(try s.evaluate(Array(toks[0..<7]))) { e in
            XCTAssertEqual(e as? ModelError, .contextOverflow(position: 10, count: 7, limit: 16))
            XCTAssertTrue("\(e)".contains("context"))
        }
        XCTAssertEqual(s.position, 10)
        _ = try s.evaluate(Array(toks[10..<16]))
        XCTAssertEqual(s.position, 16)
        XCTAssertThrowsError(try s.decode(1)) { e in
            XCTAssertEqual(e as? ModelError, .contextOverflow(position: 16, count: 1, limit: 16))
        }
        s.truncate(to: 10)
        XCTAssertEqual(Array(try s.decode(toks[9])).count, 96)
        // the cache up to 10 was untouched by the failed calls
        let fresh = try m.makeSession(contextLength: 16)
        XCTAssertEqual(try fresh.evaluate(Array(toks[0..<10])), logits10)
    }

    func testBadArguments() throws {
        let m = try model()
        let s = try m.makeSession(contextLength: 16)
        XCTAssertThrowsError(try s.evaluate([])) { XCTAssertTrue($0 is ModelError) }
        XCTAssertThrowsError(try s.decode(96)) { XCTAssertEqual($0 as? ModelError, .invalidToken(96, vocabularySize: 96)) }
        XCTAssertThrowsError(try s.evaluate([1, -1])) { XCTAssertEqual($0 as? ModelError, .invalidToken(-1, vocabularySize: 96)) }
        XCTAssertEqual(s.position, 0)
        XCTAssertThrowsError(try m.makeSession(contextLength: 0)) { XCTAssertTrue($0 is ModelError) }
        XCTAssertThrowsError(try m.makeSession(contextLength: 1 << 23)) { XCTAssertTrue($0 is ModelError) }
        XCTAssertEqual(try m.makeSession().contextLength, 256)   // min(model window, cap)
    }

    func testUnsupportedArchitecture() throws {
        var spec = TinyModel()
        spec.architecture = "mamba"
        XCTAssertThrowsError(try model(spec)) { e in
            XCTAssertEqual(e as? ModelError, .unsupportedArchitecture("mamba"))
            XCTAssertTrue("\(e)".contains("mamba") && "\(e)".contains("gemma3, phi3"))
        }
    }

    func testMissingTensor() throws {
        var spec = TinyModel()
        spec.omit = ["blk.1.ffn_up.weight"]
        XCTAssertThrowsError(try model(spec)) { e in
            XCTAssertEqual(e as? ModelError, .missingTensor("blk.1.ffn_up.weight"))
            XCTAssertTrue("\(e)".contains("blk.1.ffn_up.weight"))
        }
    }

    func testMisshapedTensor() throws {
        var spec = TinyModel()
        spec.shapeOverride = ["blk.0.attn_k.weight": [64, 64]]   // 2 KV heads' worth of rows, config says 1
        XCTAssertThrowsError(try model(spec)) { e in
            XCTAssertEqual(e as? ModelError, .badShape(tensor: "blk.0.attn_k.weight", expected: [64, 32], actual: [64, 64]))
        }
    }

    func testMissingAndBadMetadata() throws {
        var spec = TinyModel()
        spec.heads = 3   // 64 is not a multiple of 3
        XCTAssertThrowsError(try model(spec)) { e in
            guard case .badMetadata(let key, _)? = e as? ModelError else { return XCTFail("\(e)") }
            XCTAssertEqual(key, "llama.embedding_length")
        }
        var spec2 = TinyModel()
        spec2.extraMetadata = [("llama.rope.scaling.type", .string("yarn")), ("llama.rope.scaling.factor", .float32(4))]
        XCTAssertThrowsError(try model(spec2)) { e in
            guard case .unsupportedRopeScaling(let what)? = e as? ModelError else { return XCTFail("\(e)") }
            XCTAssertTrue(what.contains("yarn"))
        }
        var spec3 = TinyModel()
        spec3.extraMetadata = [("llama.block_count", .string("two"))]
        XCTAssertThrowsError(try model(spec3)) { e in
            guard case .badMetadata(let key, _)? = e as? ModelError else { return XCTFail("\(e)") }
            XCTAssertEqual(key, "llama.block_count")
        }
    }

    func testLinearRopeScalingChangesPositionsOnly() throws {
        var spec = TinyModel()
        spec.extraMetadata = [("llama.rope.scaling.type", .string("linear")), ("llama.rope.scaling.factor", .float32(2))]
        let m = try model(spec)
        XCTAssertEqual(m.config.ropeScaling, .linear(factor: 2))
        let plain = try model()
        let toks = tokens(6)
        let a = try m.makeSession(contextLength: 16).evaluateAll(toks)
        let b = try plain.makeSession(contextLength: 16).evaluateAll(toks)
        XCTAssertEqual(a[0], b[0])                 // position 0: no rotation either way
        XCTAssertNotEqual(a[5], b[5])
    }

    /// F32, F16, BF16, Q4_0, Q4_1 weights are used as stored (no Q8_0 copy); the result tracks
    /// the Double reference over the original weights, and an untied output matrix is used.
    func testOtherWeightTypesAndUntiedOutput() throws {
        var spec = TinyModel()
        spec.tiedOutput = false
        spec.types = ["attn_q.weight": .f16, "attn_k.weight": .bf16, "attn_v.weight": .f32,
                      "ffn_gate.weight": .q4_0, "ffn_up.weight": .q4_1, "token_embd.weight": .f16,
                      "attn_norm.weight": .f16]
        let file = try spec.file()
        let m = try TransformerModel(file: file, threads: 2)
        XCTAssertEqual(Set(m.matrixTypes.keys), ["F16", "BF16", "F32", "Q4_0", "Q4_1", "Q8_0"])
        XCTAssertFalse(m.weights.outputIsTied)
        let ref = try ReferenceLlama(file: file)
        let s = try m.makeSession(contextLength: 32)
        var worst: Float = 0
        for t in tokens(10) {
            let ours = Array(try s.decode(t)), theirs = ref.step(t).map { Float($0) }
            worst = max(worst, maxAbsDiff(ours, theirs) / (theirs.max()! - theirs.min()!))
        }
        XCTAssertLessThan(worst, 0.03)
    }

    /// Matrices copied onto huge pages give the same bits as the file mapping, and the file's
    /// released pages still read back the same bytes.
    func testWeightStorageGivesTheSameBits() throws {
        var spec = TinyModel()
        spec.vocab = 4096   // a token_embd of several pages (4096 × 64 Q8_0: 278 KiB)
        spec.width = 128
        spec.ff = 256
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("edgeai-storage-\(getpid()).gguf").path
        try Data(try spec.ggufBytes()).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var results: [[[Float]]] = []
        for storage in [TransformerModel.WeightStorage.mapping, .hugePages, .automatic] {
            let file = try GGUFFile(path: path)
            var o = TransformerModel.Options()
            o.threads = 2
            o.weightStorage = storage
            let m = try TransformerModel(file: file, options: o)
            let matrixBytes = file.tensors.filter { $0.shape.count >= 2 }.reduce(0) { $0 + $1.byteCount }
            if storage == .mapping {
                XCTAssertEqual(m.copiedWeightBytes, 0)
                XCTAssertGreaterThanOrEqual(m.mappedWeightBytes, matrixBytes)
            } else {
                XCTAssertEqual(m.copiedWeightBytes, matrixBytes, "\(storage)")
                XCTAssertLessThan(m.mappedWeightBytes, matrixBytes / 100)   // the norm vectors only
                let embd = try XCTUnwrap(file.tensor(named: "token_embd.weight"))
                let e = m.weights.tokenEmbedding
                if let rp = e.repacked {
                    // Q8_0 on AVX-512 VNNI: the copy is the rows regrouped by 16; `data` stays the
                    // file's rows in the mapping (pages released while repacking read back the same)
                    XCTAssertEqual(ek_mm_uses_q8_0_x16(), 1)
                    XCTAssertEqual(e.data, file.bytes(of: embd).baseAddress)
                    var want = [UInt8](repeating: 0, count: embd.byteCount)
                    ek_repack_q8_0_x16(e.data, Int64(e.rows), Int64(e.cols), &want)
                    XCTAssertEqual(want, Array(UnsafeRawBufferPointer(start: rp, count: embd.byteCount)))
                } else {
                    XCTAssertNotEqual(e.data, file.bytes(of: embd).baseAddress)
                    XCTAssertEqual(Array(file.bytes(of: embd)), Array(UnsafeRawBufferPointer(start: e.data, count: embd.byteCount)))
                }
            }
            let s = try m.makeSession(contextLength: 64)
            var out = try s.evaluateAll(tokens(20, vocab: spec.vocab))
            for t in tokens(10, vocab: spec.vocab, seed: 9) { out.append(Array(try s.decode(t))) }
            results.append(out)
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], results[2])
    }

    func testThreadCountsAgree() throws {
        let toks = tokens(30)
        var results: [[Float]] = []
        for t in [1, 2, 3] {
            let m = try model(threads: t)
            let s = try m.makeSession(contextLength: 64)
            _ = try s.evaluate(Array(toks[0..<20]))
            var last: [Float] = []
            for x in toks[20...] { last = Array(try s.decode(x)) }
            results.append(last)
        }
        XCTAssertEqual(results[0], results[1])
        XCTAssertEqual(results[0], results[2])
    }

    func testSessionsOfOneModelOnSeveralThreads() throws {
        let m = try model()
        let toks = tokens(16)
        let expected = try m.makeSession(contextLength: 32).evaluate(toks)
        let out = UnsafeMutableBufferPointer<Result<[Float], Error>>.allocate(capacity: 4)
        defer { out.deallocate() }
        nonisolated(unsafe) let o = out
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let r = Result { try m.makeSession(contextLength: 32).evaluate(toks) }
            (o.baseAddress! + i).initialize(to: r)
        }
        for i in 0..<4 { XCTAssertEqual(try out[i].get(), expected) }
    }
}
