/// One candidate token: its id, its (possibly modified) logit and, after `softmax`, its probability.
public struct TokenCandidate: Sendable, Equatable {
    public var id: Int32
    public var logit: Float
    public var probability: Double

    public init(id: Int32, logit: Float, probability: Double = 0) {
        self.id = id
        self.logit = logit
        self.probability = probability
    }
}

/// The working set of a sampling step: the candidates still in play.
///
/// Built from a logits vector (candidate `i` is token `i`); stages narrow and reorder it.
/// Orders are total (higher logit first, then lower id) so every stage is deterministic.
public struct TokenCandidates: Sendable {
    public var items: [TokenCandidate]
    /// True when `items` is sorted by decreasing logit (ties: increasing id).
    public var isSorted: Bool
    /// True while `items[i].id == i` for every i (fresh from a logits vector, nothing removed).
    public internal(set) var isIdentityIndexed: Bool

    /// Candidates from raw logits; NaN logits become −∞ so they can never be chosen.
    public init(logits: UnsafeBufferPointer<Float>) {
        var items = [TokenCandidate]()
        items.reserveCapacity(logits.count)
        for (i, l) in logits.enumerated() {
            items.append(TokenCandidate(id: Int32(truncatingIfNeeded: i), logit: l.isNaN ? -.infinity : l))
        }
        self.items = items
        self.isSorted = false
        self.isIdentityIndexed = true
    }

    public init(logits: [Float]) {
        self = logits.withUnsafeBufferPointer { TokenCandidates(logits: $0) }
    }

    /// Candidates in an arbitrary order (tests, custom pipelines).
    public init(_ items: [TokenCandidate]) {
        self.items = items.map { TokenCandidate(id: $0.id, logit: $0.logit.isNaN ? -.infinity : $0.logit, probability: $0.probability) }
        self.isSorted = false
        self.isIdentityIndexed = items.enumerated().allSatisfy { Int($0.element.id) == $0.offset }
    }

    public var count: Int { items.count }
    public var ids: [Int32] { items.map(\.id) }
    public var logits: [Float] { items.map(\.logit) }

    /// Refill from a new logits vector, reusing storage.
    public mutating func reset(logits: UnsafeBufferPointer<Float>) {
        items.removeAll(keepingCapacity: true)
        for (i, l) in logits.enumerated() {
            items.append(TokenCandidate(id: Int32(truncatingIfNeeded: i), logit: l.isNaN ? -.infinity : l))
        }
        isSorted = false
        isIdentityIndexed = true
    }

    @inline(__always)
    static func precedes(_ a: TokenCandidate, _ b: TokenCandidate) -> Bool {
        a.logit > b.logit || (a.logit == b.logit && a.id < b.id)
    }

    /// Sort all candidates (decreasing logit, ties by id).
    public mutating func sort() {
        guard !isSorted else { return }
        items.sort(by: Self.precedes)
        isSorted = true
        isIdentityIndexed = false
    }

    /// Make `items[0..<m]` the best `m` candidates in sorted order (the rest stay after them,
    /// unordered). Cheaper than a full sort when m is much smaller than the count.
    public mutating func sortPrefix(_ m: Int) {
        if isSorted { return }
        let n = items.count
        if m <= 0 { return }
        if m >= n || m * 8 >= n {
            sort()
            return
        }
        items.withUnsafeMutableBufferPointer { buf in
            Self.select(buf, k: m)
            var prefix = UnsafeMutableBufferPointer(rebasing: buf[0..<m])
            prefix.sort(by: Self.precedes)
        }
        isIdentityIndexed = false
    }

    /// Quickselect: afterwards buf[0..<k] holds the k best candidates (unordered).
    static func select(_ buf: UnsafeMutableBufferPointer<TokenCandidate>, k: Int) {
        var lo = 0
        var hi = buf.count - 1
        var rounds = 0
        while lo < hi {
            rounds += 1
            if rounds > 64 {  // pathological input: finish with a sort of the remaining range
                var range = UnsafeMutableBufferPointer(rebasing: buf[lo...hi])
                range.sort(by: precedes)
                return
            }
            // median of three as pivot
            let mid = lo + (hi - lo) / 2
            if precedes(buf[mid], buf[lo]) { buf.swapAt(mid, lo) }
            if precedes(buf[hi], buf[lo]) { buf.swapAt(hi, lo) }
            if precedes(buf[hi], buf[mid]) { buf.swapAt(hi, mid) }
            let pivot = buf[mid]
            var i = lo
            var j = hi
            while i <= j {
                while precedes(buf[i], pivot) { i += 1 }
                while precedes(pivot, buf[j]) { j -= 1 }
                if i <= j {
                    buf.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            // now [lo..j] precede-or-equal pivot, [i..hi] follow-or-equal
            if k - 1 <= j {
                hi = j
            } else if k - 1 >= i {
                lo = i
            } else {
                return
            }
        }
    }

    /// Index of the best candidate (highest logit, lowest id on ties); nil when empty.
    public func argmax() -> Int? {
        guard !items.isEmpty else { return nil }
        if isSorted { return 0 }
        var best = 0
        for i in 1..<items.count where Self.precedes(items[i], items[best]) {
            best = i
        }
        return best
    }

    /// The largest logit (−∞ when empty).
    public var maxLogit: Float {
        if isSorted, let first = items.first { return first.logit }
        var m = -Float.infinity
        for c in items where c.logit > m { m = c.logit }
        return m
    }
}
