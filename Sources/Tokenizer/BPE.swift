// Byte-pair encoding ranked by the `tokenizer.ggml.merges` list.
//
// Symbols are identified by ids: vocabulary tokens keep their token id;
// strings that only occur as a part or a result of a merge but are not
// tokens get synthetic ids >= vocabulary size. Merging two adjacent symbols
// is then one lookup in a map keyed by the pair of ids, which gives the merge
// rank and the id of the merged symbol. The order of merges is llama.cpp's:
// always the adjacent pair with the lowest rank, the leftmost on ties.
//
// For byte-level vocabularies (GPT-2 style, where each byte is written as a
// printable character) the token strings are translated back to raw bytes
// once at load time, so encoding works on the input's bytes directly.

final class BPEModel: @unchecked Sendable {
    /// Raw bytes of each symbol → symbol id (tokens first, then synthetic symbols).
    let symbols: ByteStringMap
    let pairs: PairMap
    let vocabSize: Int
    /// Each input byte is one initial symbol (byte-level); otherwise each UTF-8 character.
    let byteLevel: Bool
    /// Initial symbol of each byte (byte-level only); -1 if the byte has no symbol.
    let byteSymbols: [Int32]
    /// Token emitted for a byte of a symbol that is not a token; -1 = nothing.
    let fallbackTokens: [Int32]
    /// A word that is a token is emitted as is (llama.cpp `ignore_merges`).
    let ignoreMerges: Bool
    /// A word made only of newlines is emitted whole when it is a token (Gemma 4).
    let wholeNewlineWords: Bool

    init(symbols: ByteStringMap, pairs: PairMap, vocabSize: Int, byteLevel: Bool, byteSymbols: [Int32],
         fallbackTokens: [Int32], ignoreMerges: Bool, wholeNewlineWords: Bool) {
        self.symbols = symbols
        self.pairs = pairs
        self.vocabSize = vocabSize
        self.byteLevel = byteLevel
        self.byteSymbols = byteSymbols
        self.fallbackTokens = fallbackTokens
        self.ignoreMerges = ignoreMerges
        self.wholeNewlineWords = wholeNewlineWords
    }

    /// Heap entry for long words.
    struct Bigram {
        var rank: Int32
        var left: Int32
        var right: Int32
        var leftID: Int32
        var rightID: Int32
    }

    /// Scratch space for one `encode` call.
    final class Scratch {
        let ids = ScratchBuffer<Int32>()
        let starts = ScratchBuffer<Int32>()
        let lens = ScratchBuffer<Int32>()
        let ranks = ScratchBuffer<Int32>()
        let results = ScratchBuffer<Int32>()
        let prev = ScratchBuffer<Int32>()
        let next = ScratchBuffer<Int32>()
        var heap = BigramHeap(storage: [])
        // word cache (for one encode call): word bytes → ids
        var cacheSlots: [Int32] = []
        var cacheKeys: [(start: Int32, len: Int32, idStart: Int32, idCount: Int32, hash: UInt64)] = []
        var cacheKeyBytes: [UInt8] = []
        var cacheIDs: [Int32] = []

        func ensure(_ n: Int) {
            ids.ensure(n); starts.ensure(n); lens.ensure(n); ranks.ensure(n)
            results.ensure(n); prev.ensure(n); next.ensure(n)
        }
    }

    static let smallWordLimit = 48

    /// Encodes the words of `buf` (word `i` ends at `wordEnds[i]`, starting at
    /// `start`) and appends token ids to `out`. Repeated words are encoded
    /// once per scratch (that is, per `encode` call).
    func encodeWords(_ buf: UnsafePointer<UInt8>, start: Int, wordEnds: ArraySlice<Int32>, into out: inout [Int32], scratch s: Scratch) {
        var ws = start
        if wordEnds.count < 8 && s.cacheKeys.isEmpty {
            for e in wordEnds {
                let we = Int(e)
                if we > ws { encodeWord(buf + ws, we - ws, into: &out, scratch: s) }
                ws = we
            }
            return
        }
        if s.cacheSlots.isEmpty { s.cacheSlots = [Int32](repeating: -1, count: 1024) }
        for e in wordEnds {
            let we = Int(e)
            defer { ws = we }
            let n = we - ws
            if n <= 0 { continue }
            let p = buf + ws
            let h = hashBytes(p, n)
            var mask = s.cacheSlots.count - 1
            var slot = Int(truncatingIfNeeded: h) & mask
            var found = -1
            while true {
                let k = Int(s.cacheSlots[slot])
                if k < 0 { break }
                let key = s.cacheKeys[k]
                if key.hash == h && Int(key.len) == n {
                    let same = s.cacheKeyBytes.withUnsafeBufferPointer { kb in
                        bytesEqual(kb.baseAddress! + Int(key.start), p, n)
                    }
                    if same { found = k; break }
                }
                slot = (slot + 1) & mask
            }
            if found >= 0 {
                let key = s.cacheKeys[found]
                let a = Int(key.idStart)
                out.append(contentsOf: s.cacheIDs[a..<(a + Int(key.idCount))])
                continue
            }
            let before = out.count
            encodeWord(p, n, into: &out, scratch: s)
            let idStart = s.cacheIDs.count
            s.cacheIDs.append(contentsOf: out[before...])
            let keyStart = s.cacheKeyBytes.count
            s.cacheKeyBytes.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
            s.cacheKeys.append((Int32(keyStart), Int32(n), Int32(idStart), Int32(out.count - before), h))
            if s.cacheKeys.count * 2 > s.cacheSlots.count {
                let cap = s.cacheSlots.count * 2
                s.cacheSlots = [Int32](repeating: -1, count: cap)
                mask = cap - 1
                for (i, key) in s.cacheKeys.enumerated() {
                    var sl = Int(truncatingIfNeeded: key.hash) & mask
                    while s.cacheSlots[sl] >= 0 { sl = (sl + 1) & mask }
                    s.cacheSlots[sl] = Int32(i)
                }
            } else {
                s.cacheSlots[slot] = Int32(s.cacheKeys.count - 1)
            }
        }
    }

    /// Encodes one word (bytes `p[0..<n]`), appending token ids to `out`.
    func encodeWord(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32], scratch s: Scratch) {
        if ignoreMerges {
            let id = symbols.find(p, n)
            if id >= 0 && Int(id) < vocabSize { out.append(id); return }
        }
        if wholeNewlineWords {
            var allNL = true
            for i in 0..<n where p[i] != 0x0A { allNL = false; break }
            if allNL {
                let id = symbols.find(p, n)
                if id >= 0 && Int(id) < vocabSize { out.append(id); return }
            }
        }
        s.ensure(n + 1)
        let ids = s.ids.ptr, starts = s.starts.ptr, lens = s.lens.ptr
        // Initial symbols.
        var m = 0
        if byteLevel {
            byteSymbols.withUnsafeBufferPointer { bs in
                for i in 0..<n {
                    ids[i] = bs[Int(p[i])]
                    starts[i] = Int32(i)
                    lens[i] = 1
                }
            }
            m = n
        } else {
            var i = 0
            while i < n {
                let len = min(utf8SequenceLength(p[i]), n - i)
                ids[m] = symbols.find(p + i, len)
                starts[m] = Int32(i)
                lens[m] = Int32(len)
                m += 1
                i += len
            }
        }
        if m > 1 {
            if m <= BPEModel.smallWordLimit {
                m = mergeSmall(m, s)
            } else {
                m = mergeLarge(m, s)
            }
        }
        // Emit.
        fallbackTokens.withUnsafeBufferPointer { fb in
            for j in 0..<m {
                let id = ids[j]
                if id >= 0 && Int(id) < vocabSize {
                    out.append(id)
                } else {
                    let a = Int(starts[j])
                    for q in a..<(a + Int(lens[j])) {
                        let t = fb[Int(p[q])]
                        if t >= 0 { out.append(t) }
                    }
                }
            }
        }
    }

    /// Quadratic merge for short words: symbols stay in arrays, the best pair is found by a scan.
    private func mergeSmall(_ count: Int, _ s: Scratch) -> Int {
        let ids = s.ids.ptr, starts = s.starts.ptr, lens = s.lens.ptr
        let ranks = s.ranks.ptr, results = s.results.ptr
        var m = count
        @inline(__always) func pair(_ i: Int) {
            let l = ids[i], r = ids[i + 1]
            if l < 0 || r < 0 {
                ranks[i] = .max
            } else {
                let (rank, res) = pairs.lookup(l, r)
                ranks[i] = rank
                results[i] = res
            }
        }
        for i in 0..<(m - 1) { pair(i) }
        while m > 1 {
            var best = 0
            var bestRank = ranks[0]
            var i = 1
            while i < m - 1 {
                if ranks[i] < bestRank { bestRank = ranks[i]; best = i }
                i += 1
            }
            if bestRank == .max { break }
            ids[best] = results[best]
            lens[best] += lens[best + 1]
            // remove symbol best+1 and the pair that started at it
            var j = best + 1
            while j < m - 1 {
                ids[j] = ids[j + 1]
                starts[j] = starts[j + 1]
                lens[j] = lens[j + 1]
                j += 1
            }
            j = best + 1
            while j < m - 2 {
                ranks[j] = ranks[j + 1]
                results[j] = results[j + 1]
                j += 1
            }
            m -= 1
            if best > 0 { pair(best - 1) }
            if best < m - 1 { pair(best) }
        }
        return m
    }

    /// Heap-based merge for long words (linked list of symbols), as llama.cpp does it.
    private func mergeLarge(_ count: Int, _ s: Scratch) -> Int {
        let ids = s.ids.ptr, starts = s.starts.ptr, lens = s.lens.ptr
        let prev = s.prev.ptr, next = s.next.ptr
        s.heap.storage.removeAll(keepingCapacity: true)
        for i in 0..<count {
            prev[i] = Int32(i - 1)
            next[i] = i + 1 < count ? Int32(i + 1) : -1
        }
        @inline(__always) func push(_ l: Int32, _ r: Int32) {
            guard l >= 0, r >= 0 else { return }
            let li = ids[Int(l)], ri = ids[Int(r)]
            guard li >= 0, ri >= 0 else { return }
            let rank = pairs.lookup(li, ri).rank
            if rank == .max { return }
            s.heap.push(Bigram(rank: rank, left: l, right: r, leftID: li, rightID: ri))
        }
        for i in 0..<(count - 1) { push(Int32(i), Int32(i + 1)) }
        while let b = s.heap.pop() {
            let l = Int(b.left), r = Int(b.right)
            if lens[l] == 0 || lens[r] == 0 || next[l] != b.right || ids[l] != b.leftID || ids[r] != b.rightID { continue }
            ids[l] = pairs.lookup(b.leftID, b.rightID).result
            lens[l] += lens[r]
            lens[r] = 0
            next[l] = next[r]
            if next[r] >= 0 { prev[Int(next[r])] = b.left }
            push(prev[l], b.left)
            push(b.left, next[l])
        }
        // compact the surviving symbols in order
        var m = 0
        var i: Int32 = 0
        while i >= 0 {
            let k = Int(i)
            ids[m] = ids[k]
            starts[m] = starts[k]
            lens[m] = lens[k]
            m += 1
            i = next[k]
        }
        return m
    }
}

/// Min-heap of bigrams ordered by (rank, left).
struct BigramHeap {
    var storage: [BPEModel.Bigram]

    @inline(__always)
    private static func less(_ a: BPEModel.Bigram, _ b: BPEModel.Bigram) -> Bool {
        a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
    }

    mutating func push(_ x: BPEModel.Bigram) {
        storage.append(x)
        var i = storage.count - 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if BigramHeap.less(storage[i], storage[parent]) {
                storage.swapAt(i, parent)
                i = parent
            } else { break }
        }
    }

    mutating func pop() -> BPEModel.Bigram? {
        guard let top = storage.first else { return nil }
        let last = storage.removeLast()
        if !storage.isEmpty {
            storage[0] = last
            var i = 0
            let n = storage.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && BigramHeap.less(storage[l], storage[m]) { m = l }
                if r < n && BigramHeap.less(storage[r], storage[m]) { m = r }
                if m == i { break }
                storage.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}
