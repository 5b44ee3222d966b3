// SentencePiece-style BPE as llama.cpp runs it for `tokenizer.ggml.model = llama`:
// start from the UTF-8 characters of the whole text (spaces already written
// as U+2581), repeatedly merge the adjacent pair whose concatenation is the
// token with the highest score (leftmost on ties), and write each remaining
// symbol that is not a token as its bytes (`<0xNN>` tokens).

final class SPMModel: @unchecked Sendable {
    /// Raw token text → token id.
    let tokens: ByteStringMap
    let scores: [Float]
    /// Token for each byte (`<0xNN>`, else the one-character token), or -1.
    let byteTokens: [Int32]
    /// Emitted for a byte without a token (llama.cpp would fail there).
    let unknownToken: Int32

    init(tokens: ByteStringMap, scores: [Float], byteTokens: [Int32], unknownToken: Int32) {
        self.tokens = tokens
        self.scores = scores
        self.byteTokens = byteTokens
        self.unknownToken = unknownToken
    }

    struct Bigram {
        var score: Float
        var left: Int32
        var right: Int32
        var size: Int32
    }

    final class Scratch {
        let starts = ScratchBuffer<Int32>()
        let lens = ScratchBuffer<Int32>()
        let prev = ScratchBuffer<Int32>()
        let next = ScratchBuffer<Int32>()
        var heap: [Bigram] = []
    }

    /// Max-heap order: higher score first, then the leftmost.
    @inline(__always)
    private static func before(_ a: Bigram, _ b: Bigram) -> Bool {
        a.score > b.score || (a.score == b.score && a.left < b.left)
    }

    private static func push(_ heap: inout [Bigram], _ x: Bigram) {
        heap.append(x)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) >> 1
            if before(heap[i], heap[parent]) {
                heap.swapAt(i, parent)
                i = parent
            } else { break }
        }
    }

    private static func pop(_ heap: inout [Bigram]) -> Bigram? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            var i = 0
            let n = heap.count
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < n && before(heap[l], heap[m]) { m = l }
                if r < n && before(heap[r], heap[m]) { m = r }
                if m == i { break }
                heap.swapAt(i, m)
                i = m
            }
        }
        return top
    }

    /// Encodes `p[0..<n]` (already escaped), appending token ids to `out`.
    func encode(_ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [Int32], scratch s: Scratch) {
        if n == 0 { return }
        s.starts.ensure(n)
        s.lens.ensure(n)
        s.prev.ensure(n)
        s.next.ensure(n)
        let starts = s.starts.ptr, lens = s.lens.ptr, prev = s.prev.ptr, next = s.next.ptr
        var count = 0
        var i = 0
        while i < n {
            let len = min(utf8SequenceLength(p[i]), n - i)
            starts[count] = Int32(i)
            lens[count] = Int32(len)
            prev[count] = Int32(count - 1)
            next[count] = i + len == n ? -1 : Int32(count + 1)
            count += 1
            i += len
        }
        var heap = s.heap
        heap.removeAll(keepingCapacity: true)
        scores.withUnsafeBufferPointer { sc in
            @inline(__always) func tryAdd(_ l: Int32, _ r: Int32) {
                guard l >= 0, r >= 0 else { return }
                let size = lens[Int(l)] + lens[Int(r)]
                let id = tokens.find(p + Int(starts[Int(l)]), Int(size))
                if id < 0 { return }
                SPMModel.push(&heap, Bigram(score: sc[Int(id)], left: l, right: r, size: size))
            }
            for k in 1..<max(count, 1) { tryAdd(Int32(k - 1), Int32(k)) }
            while let b = SPMModel.pop(&heap) {
                let l = Int(b.left), r = Int(b.right)
                if lens[l] == 0 || lens[r] == 0 || lens[l] + lens[r] != b.size { continue }
                lens[l] += lens[r]
                lens[r] = 0
                next[l] = next[r]
                if next[r] >= 0 { prev[Int(next[r])] = b.left }
                tryAdd(prev[l], b.left)
                tryAdd(b.left, next[l])
            }
        }
        s.heap = heap
        var k: Int32 = 0
        while k >= 0 {
            let st = Int(starts[Int(k)]), len = Int(lens[Int(k)])
            let id = tokens.find(p + st, len)
            if id >= 0 {
                out.append(id)
            } else {
                for q in st..<(st + len) {
                    let t = byteTokens[Int(p[q])]
                    if t >= 0 {
                        out.append(t)
                    } else if unknownToken >= 0 {
                        out.append(unknownToken)
                    }
                }
            }
            k = next[Int(k)]
        }
    }
}
