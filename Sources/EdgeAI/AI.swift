import Foundation
import Transformer
import Sampling

/// A lock-protected value (the package targets macOS 14, before `Synchronization.Mutex`).
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<R>(_ body: (inout Value) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}

/// The Workers AI text-generation API over local GGUF models: `env.AI.run(model, inputs)`.
///
/// ```swift
/// let ai = try AI()
/// let out = try await ai.run("@cf/huggingfacetb/smollm2-135m-instruct", AIInput(prompt: "Hello"))
/// print(out.response)
/// ```
///
/// `AI` is `Sendable`: share one instance between tasks. Models load once (lazily, or with
/// `preload`), stay in memory and serve every call; calls to one model take turns, calls to
/// different models run side by side. Every error thrown is an `AIError`.
public final class AI: Sendable {
    /// Where catalog file names are resolved.
    public let modelsDirectory: String
    /// Threads per model (0: all cores).
    public let threads: Int
    /// The memory of the `gateway:` option (AI Gateway's cache; see Gateway.swift).
    public let responseCache = ResponseCache()
    /// How each model serves concurrent requests (slots, queue, prefill per step).
    public let serving: ServingOptions
    /// Hybrid routing (Routing.swift): the remote backend and its policy.
    let routing = Routing()

    private let registry: Locked<[ModelInfo]>
    private let engines = Locked<[String: EngineSlot]>([:])
    /// Engines that finished loading (for `load(_:)`, which does not wait).
    private let loaded = Locked<[String: ModelEngine]>([:])
    /// Embedding models (Embeddings.swift).
    let embeddingEngines = EmbeddingEngines()

    private struct EngineSlot {
        let info: ModelInfo
        let task: Task<ModelEngine, Error>
    }

    /// - Parameters:
    ///   - catalog: path of a catalog JSON file (see `ModelCatalog`); nil: `ModelCatalog.defaultCatalogPath`
    ///     (`$EDGEAI_CATALOG` or this package's `Models/catalog.json`), or an empty catalog when there is none.
    ///   - modelsDirectory: where the catalog's files live; nil: `ModelCatalog.defaultModelsDirectory`.
    ///   - threads: compute threads per model, 0 for all cores.
    ///   - serving: per model, how many requests generate together and how many may wait.
    public init(catalog: String? = nil, modelsDirectory: String? = nil, threads: Int = 0, serving: ServingOptions = ServingOptions()) throws {
        let dir = modelsDirectory ?? ModelCatalog.defaultModelsDirectory
        self.modelsDirectory = dir
        guard threads >= 0 else { throw AIError.invalidInput("threads must be 0 (all cores) or more, got \(threads)") }
        self.threads = threads
        guard serving.slots >= 1, serving.maxQueued >= 0, serving.prefillTokensPerStep >= 1 else {
            throw AIError.invalidInput("serving options need slots ≥ 1, maxQueued ≥ 0 and prefillTokensPerStep ≥ 1; got \(serving.slots), \(serving.maxQueued), \(serving.prefillTokensPerStep)")
        }
        self.serving = serving
        var models: [ModelInfo] = []
        if let path = catalog ?? ModelCatalog.defaultCatalogPath {
            models = try ModelCatalog.load(path: path, modelsDirectory: dir)
        }
        registry = Locked(models)
    }

    /// Models known by id, in catalog/registration order.
    public var models: [ModelInfo] { registry.withLock { $0 } }

    /// The first registered model whose file is `path` (after resolving symbolic links), if any:
    /// registering the path under another id with its context window and chat template makes the
    /// two ids share one engine (as `worker --model PATH` does for a catalog file).
    public func model(forFile path: String) -> ModelInfo? {
        let file = Self.absolute(path)
        return registry.withLock { list in list.first { Self.sameFile($0.path, file) } }
    }

    /// `path` made absolute against the current directory.
    static func absolute(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    /// The catalog's default model id (the one marked default, else the first).
    public var defaultModel: String? {
        registry.withLock { list in (list.first(where: \.isDefault) ?? list.first)?.id }
    }

    /// Serve the GGUF file at `path` under `id` (any id, e.g. `@cf/meta/llama-2-7b-chat-int8`),
    /// replacing an earlier entry with that id. Loading happens on first use.
    public func register(_ id: String, path: String, contextWindow: Int? = nil, chatTemplate: String? = nil) {
        let absolute = Self.absolute(path)
        let info = ModelInfo(id: id, path: absolute, contextWindow: contextWindow, chatTemplate: chatTemplate)
        registry.withLock { list in
            if let i = list.firstIndex(where: { $0.id == id }) {
                list[i] = ModelInfo(id: id, path: absolute, contextWindow: contextWindow, isDefault: list[i].isDefault, chatTemplate: chatTemplate)
            } else {
                list.append(info)
            }
        }
        engines.withLock { _ = $0.removeValue(forKey: id) }
        loaded.withLock { _ = $0.removeValue(forKey: id) }
        embeddingEngines.forget(id)
    }

    /// The scheduler's load of a model (slots, busy slots, waiting requests); nil when the model
    /// is not loaded. Does not wait.
    public func load(_ model: String) -> ModelLoad? {
        loaded.withLock { $0[model] }?.load
    }

    /// The load of every loaded engine, once each (ids that share an engine count once).
    public var engineLoads: [ModelLoad] {
        let engines = loaded.withLock { Array($0.values) }
        var seen = Set<ObjectIdentifier>()
        return engines.filter { seen.insert(ObjectIdentifier($0)).inserted }.map(\.load)
    }

    /// Load a model now rather than on its first call.
    public func preload(_ model: String) async throws {
        _ = try await engine(model)
    }

    /// The context window (prompt + max_tokens limit) of a model; loads the model.
    public func contextWindow(of model: String) async throws -> Int {
        try await engine(model).contextWindow
    }

    /// Token ids the model would see for this input (validated like `run`); loads the model.
    public func promptTokens(_ model: String, _ input: AIInput) async throws -> [Int32] {
        try input.validate()
        return try await engine(model).promptTokens(for: input)
    }

    /// Forget the model's cached conversation (the next call prefills its whole prompt).
    public func clearCache(_ model: String) async throws {
        let e = try await engine(model)
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            e.queue.async {
                e.clearCache()
                c.resume()
            }
        }
    }

    // MARK: Running

    /// Generate a complete answer. `input.stream` is ignored (see `stream`).
    /// Throws `AIError`: 5006 invalid input, 5007 unknown model, 5021 context window, 3008 cancelled.
    public func run(_ model: String, _ input: AIInput) async throws -> AIOutput {
        if let routed = try await routedRun(model, input) { return routed }   // a remote backend is configured (Routing.swift)
        let (engine, job) = try await prepare(model, input)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<AIOutput, Error>) in
                job.onFinish = { result in continuation.resume(with: result.mapError { $0 as Error }) }
                do {
                    try engine.submit(job)
                } catch {
                    job.onFinish = nil
                    continuation.resume(throwing: error)
                }
            }
        } onCancel: {
            job.cancel()
        }
    }

    /// Generate an answer piece by piece. Validation, model lookup and the context-window check
    /// happen before this returns (and throw); the stream then yields text chunks (each a whole
    /// number of UTF-8 characters) and finally an empty chunk carrying `usage`. Stopping the
    /// iteration (or cancelling its task) stops generation within one token.
    public func stream(_ model: String, _ input: AIInput) async throws -> AsyncThrowingStream<AIChunk, Error> {
        if let routed = try await routedStream(model, input) { return routed }   // a remote backend is configured (Routing.swift)
        if input.responseFormat != nil {
            throw AIError.invalidInput("Property '/response_format' cannot be used with '/stream': \(AIError.jsonModeStreamMessage)")
        }
        let (engine, job) = try await prepare(model, input)
        let (stream, continuation) = AsyncThrowingStream<AIChunk, Error>.makeStream(bufferingPolicy: .unbounded)
        continuation.onTermination = { _ in job.cancel() }
        job.onChunk = { continuation.yield($0) }
        job.onFinish = { result in
            switch result {
            case .success(let out):
                continuation.yield(AIChunk(response: "", usage: out.usage, stats: out.stats, toolCalls: out.toolCalls))
                continuation.finish()
            case .failure(let error):
                continuation.finish(throwing: error)
            }
        }
        try engine.submit(job)
        return stream
    }

    // MARK: JSON entry points

    /// What a Workers AI request body answers: JSON bytes, or (for `"stream": true`) a stream of
    /// server-sent-event bytes.
    public enum ResponseBody: Sendable {
        case json([UInt8])
        case eventStream(AsyncThrowingStream<[UInt8], Error>)
    }

    /// Request bytes in, Workers AI response out. Throws `AIError` (before any output).
    public func respond(_ model: String, json body: some Collection<UInt8>) async throws -> ResponseBody {
        // An embedding model answers the embeddings contract (Embeddings.swift).
        // (A model only a remote backend knows is routed by `run`/`stream`, Routing.swift.)
        if (try? info(model)) != nil, try await isEmbeddingModel(model) { return .json(try await embed(model, json: body)) }
        let input = try AIInput(json: body)
        if input.stream == true {
            let chunks = try await stream(model, input)
            let (bytes, continuation) = AsyncThrowingStream<[UInt8], Error>.makeStream(bufferingPolicy: .unbounded)
            let pump = Task {
                do {
                    for try await chunk in chunks { continuation.yield(chunk.sseEvent) }
                    continuation.yield(AIChunk.sseDone)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in pump.cancel() }
            return .eventStream(bytes)
        }
        return .json(try await run(model, input).jsonBytes)
    }

    /// Request bytes in, response bytes out: the response JSON, or all SSE events when the request
    /// says `"stream": true`. Throws `AIError`.
    public func run(_ model: String, json body: some Collection<UInt8>) async throws -> [UInt8] {
        switch try await respond(model, json: body) {
        case .json(let bytes):
            return bytes
        case .eventStream(let events):
            var out: [UInt8] = []
            for try await e in events { out += e }
            return out
        }
    }

    // MARK: Load, for hybrid routing

    /// How busy a model's local slots are, for hybrid routing (Routing.swift): the scheduler's
    /// load; nil when the model is not loaded (nothing runs on it).
    func localLoad(_ model: String) -> (busy: Int, slots: Int, queued: Int)? {
        guard let l = load(model) else { return nil }
        return (busy: l.busySlots, slots: l.slots, queued: l.queued)
    }

    // MARK: Internals

    func info(_ model: String) throws(AIError) -> ModelInfo {
        guard let info = registry.withLock({ $0.first(where: { $0.id == model }) }) else {
            throw AIError.noSuchModel(model)
        }
        return info
    }

    /// Whether two entries can be served by one engine: the same file (after resolving links)
    /// with the same context window and chat template.
    static func sameEngine(_ a: ModelInfo, _ b: ModelInfo) -> Bool {
        a.contextWindow == b.contextWindow && a.chatTemplate == b.chatTemplate && sameFile(a.path, b.path)
    }

    /// Whether two paths name the same file (after resolving symbolic links).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        func resolved(_ path: String) -> String {
            guard let r = realpath(path, nil) else { return path }
            defer { free(r) }
            return String(cString: r)
        }
        return a == b || resolved(a) == resolved(b)
    }

    func engine(_ model: String) async throws -> ModelEngine {
        let info = try info(model)
        let threads = self.threads, serving = self.serving
        let task: Task<ModelEngine, Error> = engines.withLock { slots in
            if let slot = slots[model], slot.info == info { return slot.task }
            // Another id for the same file with the same settings (e.g. `worker --model PATH` and
            // the catalog id of that file) shares its engine: one copy of the weights, one scheduler.
            if let other = slots.values.first(where: { Self.sameEngine($0.info, info) }) {
                slots[model] = EngineSlot(info: info, task: other.task)
                return other.task
            }
            let t = Task<ModelEngine, Error>.detached {
                try await withCheckedThrowingContinuation { continuation in
                    DispatchQueue.global(qos: .userInitiated).async {
                        continuation.resume(with: Result { try ModelEngine(info: info, threads: threads, serving: serving) })
                    }
                }
            }
            slots[model] = EngineSlot(info: info, task: t)
            return t
        }
        do {
            let engine = try await task.value
            loaded.withLock { $0[model] = engine }
            return engine
        } catch {
            // Let a later call retry (e.g. after the file was downloaded).
            engines.withLock { slots in
                if let slot = slots[model], slot.info == info { slots.removeValue(forKey: model) }
            }
            throw AIError.from(error)
        }
    }

    private func prepare(_ model: String, _ input: AIInput) async throws -> (ModelEngine, GenerationJob) {
        try input.validate()
        if try await isEmbeddingModel(model) { throw AIError.embeddingModelForText(model) }
        // JSON mode: the schema compiles before anything is loaded (its errors are 5006).
        let automaton = try input.responseFormat?.automaton()
        let engine = try await engine(model)
        if Task.isCancelled { throw AIError.aborted }
        let tokens = try engine.promptTokens(for: input)
        var tools: ToolCallPlan? = nil
        if let list = input.tools, !list.isEmpty, input.toolChoice != AIToolChoice.none {
            tools = try ToolCallPlan(format: engine.toolFormat, tools: list, choice: input.toolChoice ?? .auto)
        }
        let maxTokens = input.maxTokens ?? AIInput.defaultMaxTokens
        let (sum, overflow) = tokens.count.addingReportingOverflow(maxTokens)
        let estimated = overflow ? Int.max : sum
        if estimated > engine.contextWindow {
            throw AIError.contextWindow(estimated: estimated, limit: engine.contextWindow)
        }
        let parameters = SamplingParameters(
            temperature: Float(input.temperature ?? AIInput.defaultTemperature),
            topK: input.topK ?? 0,
            topP: Float(input.topP ?? 1),
            minP: Float(input.minP ?? 0),
            repetitionPenalty: Float(input.repetitionPenalty ?? 1),
            frequencyPenalty: Float(input.frequencyPenalty ?? 0),
            presencePenalty: Float(input.presencePenalty ?? 0),
            penaltyWindow: 64,
            seed: input.seed.map { UInt64($0) })
        return (engine, GenerationJob(tokens: tokens, maxTokens: maxTokens, parameters: parameters, automaton: automaton, tools: tools))
    }
}

extension AIError {
    /// Any error as an `AIError` (cancellation → 3008, others → 3001 with their description).
    static func from(_ error: any Error) -> AIError {
        if let e = error as? AIError { return e }
        if error is CancellationError { return .aborted }
        return .internal(String(describing: error))
    }
}
