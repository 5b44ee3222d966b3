/// Parameters of token selection. Neutral values disable a stage.
public struct SamplingParameters: Sendable, Equatable, Hashable {
    /// Logit divisor; `0` (or less) means greedy argmax.
    public var temperature: Float
    /// Keep the k most likely tokens; `0` disables.
    public var topK: Int
    /// Nucleus threshold; `1` disables.
    public var topP: Float
    /// Relative probability floor; `0` disables.
    public var minP: Float
    /// llama.cpp repetition penalty; `1` disables.
    public var repetitionPenalty: Float
    /// OpenAI frequency penalty; `0` disables.
    public var frequencyPenalty: Float
    /// OpenAI presence penalty; `0` disables.
    public var presencePenalty: Float
    /// How many of the most recent tokens the penalties look at (llama.cpp's `penalty_last_n`).
    public var penaltyWindow: Int
    /// PRNG seed; `nil` picks a random one (see `Sampler.seed`).
    public var seed: UInt64?

    public init(
        temperature: Float = 0.6,
        topK: Int = 0,
        topP: Float = 1,
        minP: Float = 0,
        repetitionPenalty: Float = 1,
        frequencyPenalty: Float = 0,
        presencePenalty: Float = 0,
        penaltyWindow: Int = 64,
        seed: UInt64? = nil
    ) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.penaltyWindow = penaltyWindow
        self.seed = seed
    }

    /// Greedy without penalties: the token is the plain argmax of the logits (highest logit, lowest id on ties).
    public var isPlainArgmax: Bool { temperature <= 0 && !hasPenalties }

    /// Greedy decoding (temperature 0, no penalties).
    public static let greedy = SamplingParameters(temperature: 0)

    public var hasPenalties: Bool {
        penaltyWindow > 0 && (repetitionPenalty != 1 || frequencyPenalty != 0 || presencePenalty != 0)
    }
}

/// Chooses tokens from logits: penalties → top-k → top-p → min-p → temperature → draw
/// (llama.cpp's default chain), with a seeded xoshiro256** generator of our own so the same
/// seed and the same logits give the same token on every machine.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    /// The seed actually in use (random when `parameters.seed` was nil).
    public let seed: UInt64
    private var rng: Xoshiro256StarStar
    private var window: [Int32] = []      // ring buffer of the last `penaltyWindow` tokens
    private var windowStart = 0
    private var candidates = TokenCandidates(logits: [])

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        var system = SystemRandomNumberGenerator()
        let seed = parameters.seed ?? system.next()
        self.seed = seed
        self.rng = Xoshiro256StarStar(seed: seed)
    }

    /// The tokens the penalties currently look at, oldest first.
    public var recentTokens: [Int32] {
        Array(window[windowStart...] + window[..<windowStart])
    }

    /// Record a token as part of the text (prompt tokens and generated tokens alike, as llama.cpp does).
    public mutating func accept(_ token: Int32) {
        let n = parameters.penaltyWindow
        guard n > 0 else { return }
        if window.count < n {
            window.append(token)
        } else {
            window[windowStart] = token
            windowStart = (windowStart + 1) % n
        }
    }

    public mutating func accept(contentsOf tokens: some Sequence<Int32>) {
        for t in tokens { accept(t) }
    }

    /// Choose the next token. Does not `accept` it: call `accept` with the token you keep.
    public mutating func sample(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        precondition(logits.count > 0, "Sampler.sample needs at least one logit")
        if parameters.temperature <= 0 && !parameters.hasPenalties {
            // Greedy without penalties: the argmax of the logits, without filling the candidates
            // (NaN counts as −∞; ties go to the lowest id, as TokenCandidates.argmax).
            var best = 0, bestLogit = -Float.infinity
            for i in logits.indices where logits[i] > bestLogit {
                best = i
                bestLogit = logits[i]
            }
            return Int32(truncatingIfNeeded: best)
        }
        candidates.reset(logits: logits)
        return sampleCandidates()
    }

    public mutating func sample(_ logits: [Float]) -> Int32 {
        logits.withUnsafeBufferPointer { sample($0) }
    }

    /// Run the whole chain on prepared candidates (exposed for tests and custom pipelines).
    public mutating func sample(_ prepared: TokenCandidates) -> Int32 {
        candidates = prepared
        return sampleCandidates()
    }

    private mutating func sampleCandidates() -> Int32 {
        let p = parameters
        if p.hasPenalties {
            SamplingStage.applyPenalties(
                &candidates, recentTokens: window,
                repetition: p.repetitionPenalty, frequency: p.frequencyPenalty, presence: p.presencePenalty)
        }
        if p.temperature <= 0 {
            // Greedy: the later stages cannot change the argmax.
            guard let best = candidates.argmax() else { return 0 }
            return candidates.items[best].id
        }
        SamplingStage.topK(&candidates, k: p.topK)
        SamplingStage.topP(&candidates, p: p.topP)
        SamplingStage.minP(&candidates, p: p.minP)
        SamplingStage.temperature(&candidates, p.temperature)
        SamplingStage.softmax(&candidates)
        let index = SamplingStage.draw(candidates, using: &rng)
        return candidates.items[index].id
    }
}
