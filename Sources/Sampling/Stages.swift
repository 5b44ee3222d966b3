/// The individual sampling stages, each a pure function of its inputs, applied by `Sampler`
/// in llama.cpp's default order: penalties → top-k → top-p → min-p → temperature → draw.
public enum SamplingStage {

    /// Repetition, frequency and presence penalties over `recentTokens` (the penalty window).
    ///
    /// For every token that occurs `count > 0` times in the window:
    /// - repetition (llama.cpp, CTRL with the negative-logit fix): `logit > 0 ? logit / r : logit * r`;
    /// - then frequency and presence (OpenAI): `logit -= count * frequency + presence`.
    /// Neutral values (r = 1, 0, 0) leave the logits untouched.
    public static func applyPenalties(
        _ candidates: inout TokenCandidates,
        recentTokens: some Collection<Int32>,
        repetition: Float,
        frequency: Float,
        presence: Float
    ) {
        if recentTokens.isEmpty || (repetition == 1 && frequency == 0 && presence == 0) { return }
        var counts: [Int32: Int] = [:]
        for t in recentTokens { counts[t, default: 0] += 1 }

        func penalize(_ c: inout TokenCandidate, _ count: Int) {
            if c.logit > 0 {
                c.logit /= repetition
            } else {
                c.logit *= repetition
            }
            c.logit -= Float(count) * frequency + presence
            if c.logit.isNaN { c.logit = -.infinity }
        }

        if candidates.isIdentityIndexed {
            for (token, count) in counts where token >= 0 && Int(token) < candidates.items.count {
                penalize(&candidates.items[Int(token)], count)
            }
        } else {
            for i in candidates.items.indices {
                if let count = counts[candidates.items[i].id] { penalize(&candidates.items[i], count) }
            }
        }
        candidates.isSorted = false
    }

    /// Keep the `k` most likely candidates (sorted). `k <= 0` disables the stage.
    public static func topK(_ candidates: inout TokenCandidates, k: Int) {
        guard k > 0 else { return }
        let k = min(k, candidates.count)
        candidates.sortPrefix(k)
        candidates.items.removeSubrange(k...)
        candidates.isSorted = true
        candidates.isIdentityIndexed = false
    }

    /// Nucleus sampling: keep the smallest set of most likely candidates whose probabilities
    /// (softmax of the current logits) sum to at least `p`; at least `minKeep` are kept.
    /// `p >= 1` disables the stage.
    public static func topP(_ candidates: inout TokenCandidates, p: Float, minKeep: Int = 1) {
        guard p < 1, candidates.count > 1 else { return }
        softmax(&candidates)
        let target = Double(p)
        var prefix = min(candidates.count, 256)
        while true {
            candidates.sortPrefix(prefix)
            var cumulative = 0.0
            var cut: Int? = nil
            for i in 0..<prefix {
                cumulative += candidates.items[i].probability
                if cumulative >= target && i + 1 >= minKeep {
                    cut = i + 1
                    break
                }
            }
            if let cut {
                candidates.items.removeSubrange(cut...)
                candidates.isSorted = true
                candidates.isIdentityIndexed = false
                return
            }
            if prefix >= candidates.count {
                candidates.sort()
                return  // rounding kept the sum below p: keep everything
            }
            prefix = min(candidates.count, prefix * 4)
        }
    }

    /// Keep candidates whose probability is at least `p` times the best one's
    /// (`exp(logit − max) >= p`); at least `minKeep` are kept. `p <= 0` disables the stage.
    public static func minP(_ candidates: inout TokenCandidates, p: Float, minKeep: Int = 1) {
        guard p > 0, candidates.count > 1 else { return }
        let maxLogit = Double(candidates.maxLogit)
        guard maxLogit.isFinite else { return }
        let threshold = Double(p)
        let kept = candidates.items.filter { deterministicExp(Double($0.logit) - maxLogit) >= threshold }
        if kept.count >= max(minKeep, 1) {
            let unchanged = kept.count == candidates.items.count
            candidates.items = kept
            candidates.isIdentityIndexed = candidates.isIdentityIndexed && unchanged
        } else {
            candidates.sortPrefix(minKeep)
            candidates.items.removeSubrange(min(minKeep, candidates.count)...)
            candidates.isSorted = true
            candidates.isIdentityIndexed = false
        }
    }

    /// Divide logits by `t`. `t <= 0` means greedy: only the best candidate survives.
    public static func temperature(_ candidates: inout TokenCandidates, _ t: Float) {
        if t <= 0 {
            guard let best = candidates.argmax() else { return }
            let c = candidates.items[best]
            candidates.items = [TokenCandidate(id: c.id, logit: c.logit, probability: 1)]
            candidates.isSorted = true
            candidates.isIdentityIndexed = false
            return
        }
        if t == 1 { return }
        for i in candidates.items.indices {
            candidates.items[i].logit /= t
        }
    }

    /// Fill `probability` with the softmax of the logits (double precision, deterministic exp).
    /// Candidates at +∞ share the mass equally; if all are −∞ they share it equally too.
    public static func softmax(_ candidates: inout TokenCandidates) {
        let n = candidates.count
        guard n > 0 else { return }
        let maxLogit = candidates.maxLogit
        if maxLogit == .infinity || maxLogit == -.infinity {
            let winners = candidates.items.reduce(0) { $0 + ($1.logit == maxLogit ? 1 : 0) }
            for i in candidates.items.indices {
                candidates.items[i].probability = candidates.items[i].logit == maxLogit ? 1.0 / Double(winners) : 0
            }
            return
        }
        let m = Double(maxLogit)
        var sum = 0.0
        candidates.items.withUnsafeMutableBufferPointer { buf in
            for i in 0..<buf.count {
                let d = Double(buf[i].logit) - m
                // exp(-40) < 2^-57: adding it to a sum ≥ 1 cannot change the double result.
                let e = d < -40 ? 0 : deterministicExp(d)
                buf[i].probability = e
                sum += e
            }
            let inv = 1.0 / sum
            for i in 0..<buf.count { buf[i].probability *= inv }
        }
    }

    /// Draw one candidate according to the probabilities (call `softmax` first), walking the
    /// candidates in their current order. Returns the index into `items`.
    public static func draw(_ candidates: TokenCandidates, using rng: inout Xoshiro256StarStar) -> Int {
        let u = rng.nextUnitDouble()
        var total = 0.0
        for c in candidates.items { total += c.probability }
        let target = u * total
        var cumulative = 0.0
        var lastPositive = 0
        for (i, c) in candidates.items.enumerated() where c.probability > 0 {
            cumulative += c.probability
            lastPositive = i
            if target < cumulative { return i }
        }
        return lastPositive
    }
}
