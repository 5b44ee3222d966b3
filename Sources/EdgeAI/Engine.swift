import ChatTemplate
import Foundation
import GGUF
import Grammar
import Transformer
import Sampling
import Tokenizer

/// One generation request, handed to a model's scheduler.
final class GenerationJob: @unchecked Sendable {
    let tokens: [Int32]
    let maxTokens: Int
    let parameters: SamplingParameters
    /// JSON mode: the grammar automaton the output must follow (used on the model's queue only).
    let automaton: GrammarAutomaton?
    /// Tool calling: the format and grammars of calls.
    let tools: ToolCallPlan?
    private let cancelled = Locked(false)
    /// When it was submitted (uptime nanoseconds).
    let submitted = DispatchTime.now().uptimeNanoseconds
    /// Called on the model's queue for every non-empty piece of text (streaming only).
    var onChunk: ((AIChunk) -> Void)?
    /// Called once on the model's queue with the outcome.
    var onFinish: ((Result<AIOutput, AIError>) -> Void)?

    init(tokens: [Int32], maxTokens: Int, parameters: SamplingParameters, automaton: GrammarAutomaton? = nil, tools: ToolCallPlan? = nil) {
        self.tokens = tokens
        self.maxTokens = maxTokens
        self.parameters = parameters
        self.automaton = automaton
        self.tools = tools
    }

    func cancel() { cancelled.withLock { $0 = true } }
    var isCancelled: Bool { cancelled.withLock { $0 } }
}

/// A loaded model: file, tokenizer, chat template, weights, and a scheduler that serves several
/// requests at once (continuous batching, see Scheduler below): up to `serving.slots` sequences,
/// each with its own KV-cache session, advance together, one forward pass per step; their caches
/// are kept after a request ends and reused by the next request sharing a prefix. All model
/// work runs on `queue`.
final class ModelEngine: @unchecked Sendable {
    let info: ModelInfo
    let file: GGUFFile
    let tokenizer: Tokenizer
    let model: TransformerModel
    /// The caller's template, else the GGUF's; nil when neither exists (a base model: `prompt`
    /// is completed as raw text and `messages` is refused).
    let template: ChatTemplate?
    let bosText: String
    let eosText: String
    /// How the template's family writes tool calls, and whether the template renders `tools`.
    let toolFormat: ToolCallFormat
    let nativeTools: Bool
    let contextWindow: Int
    let queue: DispatchQueue
    let serving: ServingOptions

    // Confined to `queue`.
    /// KV-cache slots (sessions allocated on first use).
    var slots: [Slot] = []
    /// Sequences being prefilled or generated, in admission order.
    var active: [ActiveSequence] = []
    /// JSON mode's token trie, built on the first JSON-mode request.
    private var jsonTrie: TokenTrie?
    /// Counts slot uses, for least-recently-used eviction.
    var clock: UInt64 = 0

    /// Shared with submitters: requests waiting for a slot, whether the scheduler loop is
    /// running, and how many slots are busy.
    struct Shared {
        var waiting: [GenerationJob] = []
        var running = false
        var busy = 0
    }
    let shared = Locked(Shared())

    /// The token trie of JSON mode (built once). Call on `queue`.
    func tokenTrie() -> TokenTrie {
        if let t = jsonTrie { return t }
        let t = tokenizer.jsonTokenTrie()
        jsonTrie = t
        return t
    }

    static let defaultContextCap = 8192

    init(info: ModelInfo, threads: Int, serving: ServingOptions = ServingOptions()) throws {
        self.info = info
        self.serving = serving
        guard FileManager.default.fileExists(atPath: info.path) else {
            throw AIError.internal("Model file for \(info.id) not found at \(info.path). Run Models/setup.sh to download the default model, or register the path of a GGUF file.")
        }
        do {
            file = try GGUFFile(path: info.path)
            tokenizer = try Tokenizer(gguf: file)
            model = try TransformerModel(file: file, threads: threads)
        } catch {
            throw AIError.internal("Cannot load model \(info.id) from \(info.path): \(error)")
        }
        let source = info.chatTemplate ?? ((try? file.string("tokenizer.chat_template")) ?? nil)
        do {
            template = try source.map { try ChatTemplate($0) }
        } catch {
            throw AIError.internal("The chat template of model \(info.id) does not parse: \(error)")
        }
        (toolFormat, nativeTools) = ToolCallFormat.of(template: template?.source)
        let tk = tokenizer
        bosText = tk.bosID.map { tk.token($0) } ?? ""
        eosText = tk.eosID.map { tk.token($0) } ?? ""
        contextWindow = info.contextWindow ?? min(model.config.contextLength, Self.defaultContextCap)
        queue = DispatchQueue(label: "EdgeAI.model.\(info.id)", qos: .userInitiated)
        slots = (0..<max(1, min(serving.slots, model.maxStepTokens))).map { _ in Slot() }
    }

    /// The tokens of a validated input: a bare prompt becomes one user message, messages go
    /// through the chat template with the generation prompt, `raw` skips the template. A model
    /// without a chat template completes a bare prompt as raw text and refuses messages. Like
    /// llama.cpp's server: a BOS/EOS the template already wrote is not added twice, and the text
    /// is tokenized with special tokens added (as the GGUF says) and parsed.
    func promptTokens(for input: AIInput) throws(AIError) -> [Int32] {
        var text: String
        if let prompt = input.prompt, input.raw == true || template == nil {
            text = prompt
        } else if let template {
            var messages = input.messages ?? [AIMessage(role: "user", content: input.prompt ?? "")]
            let tools = input.toolChoice == AIToolChoice.none ? [] : (input.tools ?? [])
            var extra: [String: TemplateValue] = [:]
            if !nativeTools {
                // the template knows no tools: ours in its system message, calls and results as text (Tools.swift)
                messages = ToolPrompt.lowered(messages, tools: tools)
            } else if !tools.isEmpty {
                extra["tools"] = .array(tools.map(\.templateValue))
            }
            let values: [[String: TemplateValue]] = messages.map(ToolPrompt.templateMessage)
            do {
                text = try template.render(messages: values, addGenerationPrompt: true, bosToken: bosText, eosToken: eosText, extra: extra)
            } catch {
                // Templates reject conversations they cannot express (e.g. roles out of order).
                throw AIError.invalidInput("The chat template of \(info.id) rejected the messages: \(error)")
            }
            if tokenizer.addsBOS, !bosText.isEmpty, text.hasPrefix(bosText) { text.removeFirst(bosText.count) }
            if tokenizer.addsEOS, !eosText.isEmpty, text.hasSuffix(eosText) { text.removeLast(eosText.count) }
        } else {
            throw AIError.invalidInput("Model \(info.id) has no chat template (it is a base model): send \"prompt\" for a raw completion, or supply a chat template (\"chat_template\" in the catalog, or AI.register(_:path:chatTemplate:))")
        }
        let tokens = tokenizer.encode(text, addSpecial: true, parseSpecial: true)
        if tokens.isEmpty { throw AIError.invalidInput("The input produced no tokens") }
        return tokens
    }

    /// Split `range` into chunks of at most `maxChunk` tokens, as even as possible (so none is
    /// smaller than 2 when the range has 2 or more tokens and maxChunk ≥ 2).
    static func chunks(_ range: Range<Int>, maxChunk: Int) -> [Range<Int>] {
        let n = range.count
        guard n > 0 else { return [] }
        let k = (n + maxChunk - 1) / maxChunk
        var out: [Range<Int>] = []
        var start = range.lowerBound
        for j in 0..<k {
            let size = n / k + (j < n % k ? 1 : 0)
            out.append(start..<(start + size))
            start += size
        }
        return out
    }

    // MARK: Scheduler (continuous batching)
    //
    // Requests wait in `shared.waiting` until a slot is free. The loop on `queue` then repeats
    // steps while any sequence is active: admit waiting requests into free slots (the slot whose
    // cache shares the longest prefix with the prompt, else the least recently used; a longer
    // prefix held by another slot is copied over), build one batch from the next token of every
    // generating sequence plus prompt chunks of the prefilling ones (at most
    // `serving.prefillTokensPerStep` prompt tokens while others generate, so their next token
    // is not held up by a long prompt), run one forward pass, and sample each sequence with its
    // own sampler. Every token gets the arithmetic it gets alone (see
    // `TransformerModel.evaluate(_:_:)`), so a sequence's tokens do not depend on what it was
    // batched with.

    /// One KV cache and what it holds. Confined to `queue`.
    final class Slot {
        var session: TransformerSession?
        /// The tokens whose K/V the session holds (count == session.position).
        var tokens: [Int32] = []
        /// The sequence using it, if any.
        var sequence: ActiveSequence?
        /// `clock` at its last use (0: never used).
        var lastUsed: UInt64 = 0
    }

    /// Forget every cached conversation. Call on `queue` (the scheduler loop is then not running).
    func clearCache() {
        for slot in slots where slot.sequence == nil {
            slot.session?.reset()
            slot.tokens = []
        }
    }

    /// Slots, busy slots and waiting requests now.
    var load: ModelLoad {
        shared.withLock { ModelLoad(slots: slots.count, busySlots: $0.busy, queued: $0.waiting.count) }
    }

    /// Queues a request; the scheduler starts it as soon as a slot is free. Throws 3040 when all
    /// slots are busy and `serving.maxQueued` requests already wait.
    func submit(_ job: GenerationJob) throws(AIError) {
        let slotCount = slots.count, maxQueued = serving.maxQueued
        let (accepted, startLoop, busy, waiting) = shared.withLock { s -> (Bool, Bool, Int, Int) in
            if s.waiting.count >= maxQueued + (slotCount - s.busy) { return (false, false, s.busy, s.waiting.count) }
            s.waiting.append(job)
            if s.running { return (true, false, 0, 0) }
            s.running = true
            return (true, true, 0, 0)
        }
        guard accepted else { throw AIError.capacityExceeded(model: info.id, busySlots: busy, waiting: waiting) }
        if startLoop { queue.async { self.runLoop() } }
    }

    private func runLoop() {
        while true {
            admit()
            if active.isEmpty {
                let idle = shared.withLock { s -> Bool in
                    if s.waiting.isEmpty { s.running = false }
                    return s.waiting.isEmpty
                }
                if idle { return }
                continue
            }
            step()
        }
    }

    private func finish(_ job: GenerationJob, _ result: Result<AIOutput, AIError>) {
        job.onFinish?(result)
        job.onChunk = nil
        job.onFinish = nil
    }

    /// Moves waiting requests into free slots; answers cancelled ones.
    private func admit() {
        let free = slots.reduce(0) { $0 + ($1.sequence == nil ? 1 : 0) }
        var taken: [GenerationJob] = [], dropped: [GenerationJob] = []
        shared.withLock { s in
            s.waiting.removeAll { job in
                if job.isCancelled { dropped.append(job) }
                return job.isCancelled
            }
            let n = min(free, s.waiting.count)
            taken = Array(s.waiting.prefix(n))
            s.waiting.removeFirst(n)
            s.busy += n
        }
        for job in dropped { finish(job, .failure(.aborted)) }
        for job in taken { start(job) }
    }

    private func release(_ slot: Slot) {
        slot.sequence = nil
        clock += 1
        slot.lastUsed = clock
        shared.withLock { $0.busy -= 1 }
    }

    /// Tokens `cached` shares with the start of `prompt`, keeping at least the prompt's last
    /// token to evaluate (its logits start the generation).
    private static func commonPrefix(_ cached: [Int32], _ prompt: [Int32]) -> Int {
        var n = 0
        let limit = min(cached.count, prompt.count - 1)
        while n < limit && cached[n] == prompt[n] { n += 1 }
        return n
    }

    /// Gives a free slot to `job`, reusing (or copying) the longest cached prefix of its prompt.
    private func start(_ job: GenerationJob) {
        let admitted = DispatchTime.now().uptimeNanoseconds
        let prompt = job.tokens
        var chosen: Slot?, best = -1
        for slot in slots where slot.sequence == nil {
            let c = Self.commonPrefix(slot.tokens, prompt)
            if c > best || (c == best && slot.lastUsed < chosen!.lastUsed) { chosen = slot; best = c }
        }
        guard let slot = chosen else { preconditionFailure("admit() takes only as many requests as free slots") }
        clock += 1
        slot.lastUsed = clock
        if job.isCancelled {
            release(slot)
            finish(job, .failure(.aborted))
            return
        }
        let session: TransformerSession
        if let s = slot.session {
            session = s
        } else {
            do {
                session = try model.makeSession(contextLength: contextWindow)
            } catch {
                release(slot)
                finish(job, .failure(.internal("Cannot allocate the KV cache of a new sequence of \(info.id): \(error)")))
                return
            }
            slot.session = session
            slot.tokens = []
        }
        // (0 when the sliding-window layers no longer hold what a token there would see)
        var reused = session.truncate(to: best)
        slot.tokens.removeSubrange(reused...)
        // Another slot (idle or busy) may hold a longer prefix: copy its cells.
        var donor: Slot?, donorCommon = reused
        for other in slots where other !== slot && other.session != nil {
            let c = Self.commonPrefix(other.tokens, prompt)
            if c > donorCommon { donor = other; donorCommon = c }
        }
        var copied = 0
        if let donor, let source = donor.session, session.copyPrefix(from: source, count: donorCommon) {
            slot.tokens = Array(prompt[..<donorCommon])
            copied = donorCommon - reused
            reused = donorCommon
        }
        let sequence = ActiveSequence(job: job, engine: self, slot: slot, reused: reused, copied: copied, admitted: admitted)
        slot.sequence = sequence
        active.append(sequence)
    }

    /// One forward pass over every active sequence.
    private func step() {
        // Cancelled sequences end here: their slots are free for the next admission.
        for seq in active where seq.job.isCancelled && seq.result == nil { seq.result = .failure(.aborted) }
        retireFinished()
        guard !active.isEmpty else { return }

        let limit = min(model.maxStepTokens, contextWindow)
        var members: [ActiveSequence] = [], parts: [SequenceTokens] = []
        for seq in active where !seq.isPrefilling && members.count < limit {
            members.append(seq)
            parts.append(SequenceTokens(seq.slot.session!, [seq.pending]))
        }
        var budget = limit - members.count
        if !members.isEmpty { budget = min(budget, max(1, serving.prefillTokensPerStep)) }
        for seq in active where seq.isPrefilling && budget > 0 {
            let remaining = seq.prompt.count - seq.promptDone
            // Even chunks (as `chunks(_:maxChunk:)`), so a long prompt does not end in a tiny one.
            let take = remaining <= budget ? remaining : {
                let k = (remaining + budget - 1) / budget
                return (remaining + k - 1) / k
            }()
            members.append(seq)
            parts.append(SequenceTokens(seq.slot.session!, Array(seq.prompt[seq.promptDone..<(seq.promptDone + take)])))
            budget -= take
        }

        for seq in members { seq.largestStep = max(seq.largestStep, members.count) }
        let vocab = model.config.vocabSize
        do {
            try model.evaluate(parts) { logits in
                for (k, seq) in members.enumerated() {
                    seq.slot.tokens.append(contentsOf: parts[k].tokens)
                    if seq.isPrefilling {
                        seq.promptDone += parts[k].tokens.count
                        if seq.isPrefilling { continue }
                    }
                    seq.consume(UnsafeBufferPointer(rebasing: logits[(k * vocab)..<((k + 1) * vocab)]))
                }
            }
        } catch {
            // A step that fails writes nothing, but start these caches afresh to be safe.
            for seq in members where seq.result == nil {
                seq.slot.session?.reset()
                seq.slot.tokens = []
                seq.result = .failure(AIError.from(error) == .aborted ? .aborted : .internal("Inference failed: \(error)"))
            }
        }
        retireFinished()
    }

    /// Answers and removes the sequences that have a result, freeing their slots.
    private func retireFinished() {
        var done: [ActiveSequence] = []
        active.removeAll { seq in
            if seq.result != nil { done.append(seq) }
            return seq.result != nil
        }
        for seq in done {
            release(seq.slot)
            finish(seq.job, seq.result!)
        }
    }
}

extension ModelEngine {
    /// A request in a slot: its prompt's progress, sampler, detokenizer and JSON-mode masker.
    /// Confined to the model's queue.
    final class ActiveSequence {
        let job: GenerationJob
        let slot: Slot
        let prompt: [Int32]
        /// Prompt tokens in the cache (reused, copied or evaluated).
        var promptDone: Int
        let reused: Int
        let copied: Int
        /// The sampled token to evaluate next (generation phase).
        var pending: Int32 = 0
        var result: Result<AIOutput, AIError>?
        /// The most sequences in one step this one was part of.
        var largestStep = 1

        private var sampler: Sampler
        private var detokenizer: StreamingDetokenizer
        private let masker: TokenMasker?
        /// Tool calling: the answer's calls and the grammar of the one in progress.
        private let tools: ToolCallRun?
        private let tokenizer: Tokenizer
        private var masked: [Float] = []
        private var constraintNanos: UInt64 = 0
        private var response = ""
        private var sampled = 0
        private let admitted: UInt64
        private var firstTokenAt: UInt64 = 0
        private let endIDs: Set<Int32>

        var isPrefilling: Bool { promptDone < prompt.count }

        init(job: GenerationJob, engine: ModelEngine, slot: Slot, reused: Int, copied: Int, admitted: UInt64) {
            self.job = job
            self.slot = slot
            self.prompt = job.tokens
            self.promptDone = reused
            self.reused = reused
            self.copied = copied
            self.admitted = admitted
            sampler = Sampler(job.parameters)
            sampler.accept(contentsOf: job.tokens)
            detokenizer = StreamingDetokenizer(tokenizer: engine.tokenizer)
            endIDs = engine.tokenizer.endOfGenerationIDs
            masker = job.automaton.map { TokenMasker(automaton: $0, trie: engine.tokenTrie(), endTokens: engine.tokenizer.endOfGenerationIDs.sorted()) }
            tokenizer = engine.tokenizer
            var run: ToolCallRun? = nil
            if let plan = job.tools {
                do {
                    run = try ToolCallRun(plan: plan, tokenizer: engine.tokenizer, trie: engine.tokenTrie())
                } catch {
                    result = .failure(error)
                }
            }
            tools = run
        }

        private func emit(_ text: String) {
            guard !text.isEmpty else { return }
            response += text
            job.onChunk?(AIChunk(response: text))
        }

        /// JSON mode: tokens that cannot continue the document get -inf before sampling.
        private func choose(_ logits: UnsafeBufferPointer<Float>) throws -> Int32 {
            if let forced = tools?.forced { return forced }
            guard let masker = masker ?? tools?.masker else { return sampler.sample(logits) }
            // constraintNanos counts the work JSON mode adds (checks, masks, grammar steps), not sampling itself
            var t0 = DispatchTime.now().uptimeNanoseconds
            if job.parameters.isPlainArgmax && !masker.isComplete {
                // Greedy: when the best token may continue the document it is also the best of the
                // masked logits (masking only lowers others), so the mask is not needed.
                var best = 0
                for i in 1..<logits.count where logits[i] > logits[best] || logits[best].isNaN { best = i }
                let t = Int32(best)
                if !logits[best].isNaN && masker.allows(t) {
                    try masker.accept(t)
                    constraintNanos += DispatchTime.now().uptimeNanoseconds - t0
                    return t
                }
            }
            masked.removeAll(keepingCapacity: true)
            masked.append(contentsOf: logits)
            let allowed = masked.withUnsafeMutableBufferPointer { masker.apply(to: $0) }
            if allowed == 0 && masker.automaton.overflowed {
                throw AIError.internal("JSON mode: the schema's automaton grew past \(masker.automaton.maxStates) states; simplify the schema")
            }
            if allowed == 0 {
                throw AIError.internal("JSON mode: no token of the vocabulary can continue the document \(String(decoding: masker.text.suffix(80), as: UTF8.self))")
            }
            constraintNanos += DispatchTime.now().uptimeNanoseconds - t0
            let t = sampler.sample(masked)
            t0 = DispatchTime.now().uptimeNanoseconds
            try masker.accept(t)
            constraintNanos += DispatchTime.now().uptimeNanoseconds - t0
            return t
        }

        /// Samples from the logits after the last evaluated token; sets `result` when done.
        func consume(_ logits: UnsafeBufferPointer<Float>) {
            do {
                let next = try choose(logits)
                sampled += 1
                if sampled == 1 { firstTokenAt = DispatchTime.now().uptimeNanoseconds }
                if endIDs.contains(next) { return complete() }
                if let tools {
                    let step = try tools.observe(next, bytes: tokenizer.tokenBytes(next))
                    emit(tools.streamable(final: false))
                    if step == .stop { return complete() }
                } else {
                    emit(detokenizer.append(next))
                }
                if let masker, masker.isComplete { return complete() }
                if sampled >= job.maxTokens { return complete() }
                if job.isCancelled { throw AIError.aborted }
                sampler.accept(next)
                pending = next
            } catch let e as AIError {
                result = .failure(e)
            } catch {
                result = .failure(.internal("Generation failed: \(error)"))
            }
        }

        private func complete() {
            // Bytes still pending here are a character cut off by max_tokens (or a malformed end):
            // dropped rather than sent as U+FFFD, so every chunk is whole characters.
            _ = detokenizer.finish()
            let end = DispatchTime.now().uptimeNanoseconds
            let stats = GenerationStats(
                reusedPromptTokens: reused,
                prefilledTokens: prompt.count - reused,
                timeToFirstToken: Double(firstTokenAt - admitted) / 1e9,
                generationSeconds: Double(end - firstTokenAt) / 1e9,
                sampledTokens: sampled,
                seed: sampler.seed,
                constraintSeconds: Double(constraintNanos) / 1e9,
                maskWalks: masker?.walks ?? 0,
                queueSeconds: Double(admitted - job.submitted) / 1e9,
                copiedPromptTokens: copied,
                largestStep: largestStep)
            var json: JSONValue? = nil
            var calls: [AIToolCall]? = nil
            if let tools {
                emit(tools.streamable(final: true))
                let (content, found) = tools.finish()
                response = content
                calls = found
            }
            if let masker {
                guard masker.isAccepting else {
                    result = .failure(AIError.jsonModeNotMet(maxTokens: job.maxTokens))
                    return
                }
                do {
                    json = try JSONParser.parse(masker.text)
                } catch {
                    result = .failure(AIError.internal("JSON mode produced text that does not parse (\(error)): \(String(decoding: masker.text.prefix(200), as: UTF8.self))"))
                    return
                }
            }
            result = .success(AIOutput(response: response, usage: AIUsage(promptTokens: prompt.count, completionTokens: sampled), stats: stats, json: json, toolCalls: calls))
        }
    }
}

/// How a model serves concurrent requests.
public struct ServingOptions: Sendable, Equatable {
    /// Sequences generated together (each with its own KV cache, allocated on first use and
    /// kept for prefix reuse): llama-server's `--parallel`.
    public var slots: Int
    /// Requests that may wait for a slot; beyond them a request fails with 3040 (HTTP 429).
    public var maxQueued: Int
    /// Prompt tokens evaluated per step while other sequences generate (bounds the delay a new
    /// prompt adds to their next token; a prompt alone prefills in steps of up to 512 tokens).
    public var prefillTokensPerStep: Int

    public init(slots: Int = 8, maxQueued: Int = 128, prefillTokensPerStep: Int = 128) {
        self.slots = slots
        self.maxQueued = maxQueued
        self.prefillTokensPerStep = prefillTokensPerStep
    }
}

/// A model's scheduler at one moment.
public struct ModelLoad: Sendable, Equatable {
    public var slots: Int
    public var busySlots: Int
    public var queued: Int
}
