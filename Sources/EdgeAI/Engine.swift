import ChatTemplate
import Foundation
import GGUF
import Transformer
import Sampling
import Tokenizer

/// One generation request, handed to a model's serial queue.
final class GenerationJob: @unchecked Sendable {
    let tokens: [Int32]
    let maxTokens: Int
    let parameters: SamplingParameters
    private let cancelled = Locked(false)
    /// Called on the model's queue for every non-empty piece of text (streaming only).
    var onChunk: ((AIChunk) -> Void)?
    /// Called once on the model's queue with the outcome.
    var onFinish: ((Result<AIOutput, AIError>) -> Void)?

    init(tokens: [Int32], maxTokens: Int, parameters: SamplingParameters) {
        self.tokens = tokens
        self.maxTokens = maxTokens
        self.parameters = parameters
    }

    func cancel() { cancelled.withLock { $0 = true } }
    var isCancelled: Bool { cancelled.withLock { $0 } }
}

/// A loaded model: file, tokenizer, chat template, weights, and one KV-cache session whose
/// contents (`cachedTokens`) are reused by the next request sharing a prefix. All generation
/// runs on `queue`, one request at a time.
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
    let contextWindow: Int
    let queue: DispatchQueue

    // Confined to `queue`.
    private var session: TransformerSession?
    private(set) var cachedTokens: [Int32] = []

    static let defaultContextCap = 8192

    init(info: ModelInfo, threads: Int) throws {
        self.info = info
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
        let tk = tokenizer
        bosText = tk.bosID.map { tk.token($0) } ?? ""
        eosText = tk.eosID.map { tk.token($0) } ?? ""
        contextWindow = info.contextWindow ?? min(model.config.contextLength, Self.defaultContextCap)
        queue = DispatchQueue(label: "EdgeAI.model.\(info.id)", qos: .userInitiated)
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
            let messages = input.messages ?? [AIMessage(role: "user", content: input.prompt ?? "")]
            let values: [[String: TemplateValue]] = messages.map { ["role": .string($0.role), "content": .string($0.content)] }
            do {
                text = try template.render(messages: values, addGenerationPrompt: true, bosToken: bosText, eosToken: eosText)
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

    /// Forget the cached conversation. Call on `queue`.
    func clearCache() {
        session?.reset()
        cachedTokens = []
    }

    /// Run one request. Call on `queue`.
    func generate(_ job: GenerationJob) {
        let result: Result<AIOutput, AIError>
        do {
            result = .success(try generateThrowing(job))
        } catch let e as AIError {
            result = .failure(e)
        } catch {
            // The cache may hold a half-evaluated batch: start afresh next time.
            clearCache()
            result = .failure(AIError.internal("Inference failed: \(error)"))
        }
        job.onFinish?(result)
        job.onChunk = nil
        job.onFinish = nil
    }

    private func generateThrowing(_ job: GenerationJob) throws -> AIOutput {
        if job.isCancelled { throw AIError.aborted }
        let start = DispatchTime.now().uptimeNanoseconds
        let session: TransformerSession
        if let s = self.session {
            session = s
        } else {
            session = try model.makeSession(contextLength: contextWindow)
            self.session = session
            cachedTokens = []
        }
        let tokens = job.tokens

        // A token's K/V and logits are bit-identical whether it was decoded alone or evaluated in
        // a batch of any size (the model's default arithmetic), so everything the cache holds -
        // earlier prompts and the tokens generated after them - is reusable as it is, and a
        // prompt prefills in batches as large as the model takes.
        let maxChunk = max(1, model.options.maxBatch)

        // Reuse the longest common prefix of what the cache holds (at least the last prompt token
        // is evaluated: its logits start the generation).
        var common = 0
        let limit = min(cachedTokens.count, tokens.count - 1, session.position)
        while common < limit && cachedTokens[common] == tokens[common] { common += 1 }
        // (0 when the sliding-window layers no longer hold what a token there would see)
        common = session.truncate(to: common)
        cachedTokens.removeSubrange(common...)

        // Prefill the suffix in even chunks, checking for cancellation in between.
        var logits: [Float] = []
        do {
            for range in Self.chunks(common..<tokens.count, maxChunk: maxChunk) {
                if job.isCancelled { throw AIError.aborted }
                logits = try session.evaluate(Array(tokens[range]))
                cachedTokens.append(contentsOf: tokens[range])
            }
        } catch let e as AIError {
            throw e
        } catch {
            clearCache()
            throw error
        }
        var sampler = Sampler(job.parameters)
        sampler.accept(contentsOf: tokens)
        var detokenizer = StreamingDetokenizer(tokenizer: tokenizer)
        var response = ""
        var sampled = 0
        var firstTokenAt: UInt64 = 0
        let endIDs = tokenizer.endOfGenerationIDs

        func emit(_ text: String) {
            guard !text.isEmpty else { return }
            response += text
            job.onChunk?(AIChunk(response: text))
        }

        var next: Int32 = logits.withUnsafeBufferPointer { sampler.sample($0) }
        while true {
            sampled += 1
            if sampled == 1 { firstTokenAt = DispatchTime.now().uptimeNanoseconds }
            if endIDs.contains(next) { break }
            emit(detokenizer.append(next))
            if sampled >= job.maxTokens { break }
            if job.isCancelled { throw AIError.aborted }
            sampler.accept(next)
            let token = next
            do {
                let out = try session.decode(token)
                cachedTokens.append(token)
                next = sampler.sample(out)
            } catch {
                clearCache()
                throw error
            }
        }
        // Bytes still pending here are a character cut off by max_tokens (or a malformed end):
        // dropped rather than sent as U+FFFD, so every chunk is whole characters.
        _ = detokenizer.finish()
        let end = DispatchTime.now().uptimeNanoseconds
        let stats = GenerationStats(
            reusedPromptTokens: common,
            prefilledTokens: tokens.count - common,
            timeToFirstToken: Double(firstTokenAt - start) / 1e9,
            generationSeconds: Double(end - firstTokenAt) / 1e9,
            sampledTokens: sampled,
            seed: sampler.seed)
        return AIOutput(response: response, usage: AIUsage(promptTokens: tokens.count, completionTokens: sampled), stats: stats)
    }
}
