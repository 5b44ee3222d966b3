import EdgeAI
import Foundation
import Hummingbird

typealias FieldName = HTTPFields.Element.Name

/// Settings of the example worker.
public struct WorkerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Model of `POST /` (the seed worker's route), and the model `GET /health` waits for.
    public var model: String
    public var systemPrompt: String
    public var maxTokens: Int
    public var temperature: Double
    /// When set (non-empty), every route except `GET /health` requires `Authorization: Bearer <apiKey>`.
    public var apiKey: String?
    /// Seconds answers stay cached when a request has no `cf-aig-cache-ttl` header; 0 (the
    /// default): only requests that send the header are cached (and shared while in flight).
    public var cacheTTL: Double
    /// Byte budget of the answer cache; nil leaves the `AI`'s setting (64 MiB).
    public var cacheBytes: Int?

    public init(host: String = "127.0.0.1", port: Int = 8787, model: String,
                systemPrompt: String = "You are a helpful assistant.", maxTokens: Int = 256, temperature: Double = 0.7,
                apiKey: String? = nil, cacheTTL: Double = 0, cacheBytes: Int? = nil) {
        self.host = host
        self.port = port
        self.model = model
        self.systemPrompt = systemPrompt
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.apiKey = apiKey
        self.cacheTTL = cacheTTL
        self.cacheBytes = cacheBytes
    }
}

/// What the worker knows beyond its configuration: whether the default model is loaded, and
/// the counters of `GET /metrics`.
public final class WorkerState: @unchecked Sendable {
    public enum Readiness: Sendable, Equatable {
        case loading
        case ready
        case failed(String)
    }

    public let metrics = WorkerMetrics()
    private let lock = NSLock()
    private var _readiness = Readiness.loading

    public init(readiness: Readiness = .loading) { _readiness = readiness }

    public var readiness: Readiness {
        get { lock.lock(); defer { lock.unlock() }; return _readiness }
        set { lock.lock(); _readiness = newValue; lock.unlock() }
    }

    /// Load `model` and mark the worker ready (or failed, with the error, which is rethrown).
    public func load(ai: AI, model: String) async throws {
        do {
            try await ai.preload(model)
            readiness = .ready
        } catch {
            readiness = .failed((error as? AIError)?.description ?? String(describing: error))
            throw error
        }
    }
}

/// The worker's HTTP routes:
/// - `POST /`: the seed worker. `{"prompt": "…"}` → `{"generated_text": "…"}` (system message,
///   max_tokens 256, temperature 0.7); 400 `Invalid JSON`; 400 `Missing 'prompt' field`;
///   500 `AI processing error: <code>: <message>`.
/// - `POST /ai/run/<model id>` (also `/accounts/<account>/ai/run/<model id>`): the Workers AI REST
///   API. A Workers AI request body → `{"result":{…},"success":true,"errors":[],"messages":[]}`, or
///   `text/event-stream` for `"stream": true`; errors → `{"result":null,"success":false,"errors":[{"code":…,"message":"…"}],"messages":[]}`
///   with status 400 (5006, 5007), 413 (5021), 408 (3008) or 500.
/// - `POST /v1/chat/completions`, `POST /v1/completions`, `POST /v1/embeddings`, `GET /v1/models[/<id>]` (also under
///   `/accounts/<account>/ai/v1/`): the OpenAI-compatible API, errors in OpenAI's envelope.
/// - `GET /health`: 200 `{"status":"ok"}` once the default model is loaded, else 503.
/// - `GET /metrics`: Prometheus text.
/// The generating routes (`/ai/run`, `/v1/chat/completions`, `/v1/completions`) go through AI
/// Gateway's cache: request headers `cf-aig-cache-ttl`, `cf-aig-skip-cache`, `cf-aig-cache-key`,
/// response header `cf-aig-cache-status: HIT|MISS`. With a remote backend configured on `ai`
/// (`AI.configureRemote`), generations are routed and answers say where they ran:
/// `x-edgeai-backend: local|remote` (absent on a cache hit).
public func makeWorkerRouter(ai: AI, configuration: WorkerConfiguration, state: WorkerState = WorkerState()) -> Router<BasicRequestContext> {
    let router = Router(context: BasicRequestContext.self)
    if let budget = configuration.cacheBytes { ai.responseCache.byteBudget = budget }
    let metrics = state.metrics
    router.add(middleware: WorkerMiddleware(apiKey: configuration.apiKey, metrics: metrics))

    router.get("/health") { _, _ -> Response in
        switch state.readiness {
        case .ready: return bytes(.ok, Array(#"{"status":"ok"}"#.utf8), contentType: "application/json")
        case .loading: return bytes(.serviceUnavailable, Array(#"{"status":"loading"}"#.utf8), contentType: "application/json")
        case .failed(let why):
            var w = JSONWriter()
            w.raw("{"); w.key("status"); w.string("error"); w.raw(","); w.key("message"); w.string(why); w.raw("}")
            return bytes(.serviceUnavailable, w.bytes, contentType: "application/json")
        }
    }

    router.get("/metrics") { _, _ -> Response in
        let text = metrics.render(cache: ai.responseCache.stats, cacheBudget: ai.responseCache.byteBudget,
                                  loaded: [configuration.model: state.readiness == .ready],
                                  load: ai.engineLoads)
        return bytes(.ok, Array(text.utf8), contentType: "text/plain; version=0.0.4; charset=utf-8")
    }

    router.post("/") { request, context -> Response in
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: context.maxUploadSize)
        } catch {
            return text(.contentTooLarge, "Request body too large")
        }
        guard let json = try? JSONParser.parse(body.readableBytesView) else {
            return text(.badRequest, "Invalid JSON")
        }
        // JavaScript truthiness of body.prompt: absent, null, false, 0 and "" count as missing.
        let prompt = json["prompt"]
        switch prompt {
        case nil, .null?, .bool(false)?, .string("")?: return text(.badRequest, "Missing 'prompt' field")
        case .number(let v, _)? where v == 0: return text(.badRequest, "Missing 'prompt' field")
        default: break
        }
        // The seed's call, built as JSON so a non-string prompt fails validation as on Workers AI.
        let call: JSONValue = .object([
            ("messages", .array([
                .object([("role", .string("system")), ("content", .string(configuration.systemPrompt))]),
                .object([("role", .string("user")), ("content", prompt ?? .null)]),
            ])),
            ("max_tokens", .number(Double(configuration.maxTokens), literal: String(configuration.maxTokens))),
            ("temperature", .number(configuration.temperature, literal: String(configuration.temperature))),
        ])
        do {
            let input = try AIInput(jsonValue: call)
            let ran = BackendBox()
            let output = try await trackedRun(ai, metrics, configuration.model, input, backend: ran)
            var w = JSONWriter()
            w.raw("{")
            w.key("generated_text")
            w.string(output.response)
            w.raw("}")
            var response = bytes(.ok, w.bytes, contentType: "application/json")
            if let ranOn = ran.value { response.headers[backendHeader] = ranOn.rawValue }
            return response
        } catch {
            let message = (error as? AIError)?.description ?? String(describing: error)
            return text(.internalServerError, "AI processing error: \(message)")
        }
    }

    @Sendable func runModel(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let path = request.uri.path
        guard let range = path.range(of: "/ai/run/") else { return envelope(AIError.noSuchModel("")) }
        let rawID = String(path[range.upperBound...])
        let model = rawID.removingPercentEncoding ?? rawID
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: context.maxUploadSize)
        } catch {
            return envelope(AIError(code: 3006, message: "Request is too large"))
        }
        do {
            let gateway = try gatewayOptions(request.headers, defaultTTL: configuration.cacheTTL)
            let bodyBytes = Array(body.readableBytesView)
            let ran = BackendBox()
            let answer = try await ai.cached(namespace: AI.workersAINamespace(body: bodyBytes), model: model, body: bodyBytes, gateway: gateway) {
                try await workersAIAnswer(ai, metrics, model, bodyBytes, backend: ran)
            }
            switch answer.body {
            case .json(let result):
                var out: [UInt8] = Array("{\"result\":".utf8)
                out += result
                out += Array(",\"success\":true,\"errors\":[],\"messages\":[]}".utf8)
                var response = bytes(.ok, out, contentType: "application/json")
                response.headers[cacheStatusHeader] = answer.cacheStatus.rawValue
                if let ranOn = ran.value { response.headers[backendHeader] = ranOn.rawValue }
                return response
            case .eventStream(let events):
                return eventStream(events, cacheStatus: answer.cacheStatus, backend: ran.value)
            }
        } catch {
            let e = (error as? AIError) ?? AIError.internal(String(describing: error))
            return envelope(e)
        }
    }
    router.post("/ai/run/**", use: runModel)
    router.post("/accounts/:account/ai/run/**", use: runModel)

    // The OpenAI dialect.
    @Sendable func openAI(_ kind: OpenAIRequest.Kind, _ request: Request, _ context: BasicRequestContext) async throws -> Response {
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: context.maxUploadSize)
        } catch {
            return openAIError(OpenAIError(status: 413, message: "The request body is larger than \(context.maxUploadSize) bytes", code: "request_too_large"))
        }
        do {
            let bodyBytes = Array(body.readableBytesView)
            let parsed = try OpenAIRequest(kind: kind, json: bodyBytes)
            let gateway: AI.GatewayOptions
            do {
                gateway = try gatewayOptions(request.headers, defaultTTL: configuration.cacheTTL)
            } catch {
                throw OpenAIError(status: 400, message: error.message, code: "invalid_header")
            }
            let namespace = "openai-\(kind.rawValue)" + (parsed.stream ? "-stream" : "")
            let ran = BackendBox()
            let answer = try await ai.cached(namespace: namespace, model: parsed.model, body: bodyBytes, gateway: gateway) {
                try await openAIAnswer(ai, metrics, parsed, backend: ran)
            }
            switch answer.body {
            case .json(let json):
                var response = bytes(.ok, json, contentType: "application/json")
                response.headers[cacheStatusHeader] = answer.cacheStatus.rawValue
                if let ranOn = ran.value { response.headers[backendHeader] = ranOn.rawValue }
                return response
            case .eventStream(let events):
                return eventStream(events, cacheStatus: answer.cacheStatus, backend: ran.value)
            }
        } catch {
            return openAIError(OpenAIError.from(error))
        }
    }
    for prefix in ["", "/accounts/:account/ai"] {
        router.post("\(prefix)/v1/chat/completions") { request, context in try await openAI(.chat, request, context) }
        router.post("\(prefix)/v1/completions") { request, context in try await openAI(.completion, request, context) }
        router.post("\(prefix)/v1/embeddings") { request, context -> Response in
            var request = request
            do {
                let body = try await request.collectBody(upTo: context.maxUploadSize)
                let parsed = try OpenAIEmbeddingRequest(json: Array(body.readableBytesView))
                let out = try await ai.embed(parsed.model, parsed.input)
                return bytes(.ok, OpenAIEmbeddingRequest.response(out, model: parsed.model), contentType: "application/json")
            } catch {
                return openAIError(OpenAIError.from(error))
            }
        }
        router.get("\(prefix)/v1/models") { _, _ -> Response in
            bytes(.ok, OpenAIEncoder.modelList(ai.models), contentType: "application/json")
        }
        router.get("\(prefix)/v1/models/**") { request, _ -> Response in
            let path = request.uri.path
            guard let range = path.range(of: "/v1/models/") else { return openAIError(OpenAIError(AIError.noSuchModel(""))) }
            let rawID = String(path[range.upperBound...])
            let id = rawID.removingPercentEncoding ?? rawID
            guard let info = ai.models.first(where: { $0.id == id }) else {
                return openAIError(OpenAIError(status: 404, message: "The model '\(id)' does not exist", param: "model", code: "model_not_found"))
            }
            return bytes(.ok, OpenAIEncoder.modelObject(info), contentType: "application/json")
        }
    }
    return router
}

/// The worker as a Hummingbird application. `onServerRunning` receives the bound port
/// (useful with port 0, which picks a free one).
public func makeWorkerApplication(
    ai: AI, configuration: WorkerConfiguration, state: WorkerState = WorkerState(),
    onServerRunning: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    Application(
        router: makeWorkerRouter(ai: ai, configuration: configuration, state: state),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "EdgeAI-worker"),
        onServerRunning: { channel in await onServerRunning(channel.localAddress?.port ?? configuration.port) }
    )
}

let cacheStatusHeader = FieldName("cf-aig-cache-status")!

/// The AI Gateway request headers as gateway options: `cf-aig-cache-ttl` (whole seconds),
/// `cf-aig-skip-cache` (`true`/`false`), `cf-aig-cache-key`. Bad values → 5006 naming the header.
public func gatewayOptions(_ headers: HTTPFields, defaultTTL: Double) throws(AIError) -> AI.GatewayOptions {
    var options = AI.GatewayOptions(cacheTtl: defaultTTL)
    if let v = headers[FieldName("cf-aig-skip-cache")!] {
        switch v.trimmingCharacters(in: .whitespaces).lowercased() {
        case "true": options.skipCache = true
        case "false": options.skipCache = false
        default: throw AIError.invalidInput("Header cf-aig-skip-cache must be 'true' or 'false', got '\(v)'")
        }
    }
    if let v = headers[FieldName("cf-aig-cache-ttl")!] {
        let t = v.trimmingCharacters(in: .whitespaces)
        guard let seconds = Int(t), seconds >= 0 else {
            throw AIError.invalidInput("Header cf-aig-cache-ttl must be a whole number of seconds (0 or more), got '\(v)'")
        }
        options.cacheTtl = Double(seconds)
    }
    if let v = headers[FieldName("cf-aig-cache-key")!] {
        guard !v.isEmpty else { throw AIError.invalidInput("Header cf-aig-cache-key must not be empty") }
        options.cacheKey = v
    }
    return options
}

/// Where a request ran (hybrid routing), written by the generating call, read for the
/// `x-edgeai-backend` header; unset when the answer came from the cache.
final class BackendBox: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: AI.Backend?
    var value: AI.Backend? {
        get { lock.lock(); defer { lock.unlock() }; return _value }
        set { lock.lock(); _value = newValue; lock.unlock() }
    }
}

let backendHeader = FieldName("x-edgeai-backend")!

/// `ai.run` (routed: local or the remote backend) with the generation counted in the metrics.
func trackedRun(_ ai: AI, _ metrics: WorkerMetrics, _ model: String, _ input: AIInput, backend: BackendBox? = nil) async throws -> AIOutput {
    // Only known models get a series (others are refused by `run`, or run remotely).
    guard ai.models.contains(where: { $0.id == model }) else {
        let (out, ran) = try await ai.runRouted(model, input)
        backend?.value = ran
        metrics.recordBackend(ran)
        return out
    }
    metrics.generationStarted(model)
    do {
        let (out, ran) = try await ai.runRouted(model, input)
        backend?.value = ran
        metrics.recordBackend(ran)
        metrics.generationEnded(model, usage: out.usage, stats: out.stats)
        return out
    } catch {
        metrics.generationEnded(model, usage: nil, stats: nil)
        throw error
    }
}

/// `ai.stream` (routed) with the generation counted in the metrics (ended when the stream ends).
func trackedStream(_ ai: AI, _ metrics: WorkerMetrics, _ model: String, _ input: AIInput, backend: BackendBox? = nil) async throws -> AsyncThrowingStream<AIChunk, Error> {
    guard ai.models.contains(where: { $0.id == model }) else {
        let (chunks, ran) = try await ai.streamRouted(model, input)
        backend?.value = ran
        metrics.recordBackend(ran)
        return chunks
    }
    metrics.generationStarted(model)
    let chunks: AsyncThrowingStream<AIChunk, Error>
    do {
        let ran: AI.Backend
        (chunks, ran) = try await ai.streamRouted(model, input)
        backend?.value = ran
        metrics.recordBackend(ran)
    } catch {
        metrics.generationEnded(model, usage: nil, stats: nil)
        throw error
    }
    let (out, continuation) = AsyncThrowingStream<AIChunk, Error>.makeStream(bufferingPolicy: .unbounded)
    let pump = Task {
        var last: AIChunk? = nil
        do {
            for try await chunk in chunks {
                if chunk.usage != nil { last = chunk }
                continuation.yield(chunk)
            }
            if Task.isCancelled { throw AIError.aborted }
            metrics.generationEnded(model, usage: last?.usage, stats: last?.stats)
            continuation.finish()
        } catch {
            metrics.generationEnded(model, usage: nil, stats: nil)
            continuation.finish(throwing: error)
        }
    }
    continuation.onTermination = { _ in pump.cancel() }
    return out
}

/// What `AI.respond(model, json:)` answers, with the generation counted in the metrics.
func workersAIAnswer(_ ai: AI, _ metrics: WorkerMetrics, _ model: String, _ body: [UInt8], backend: BackendBox? = nil) async throws -> AI.ResponseBody {
    // An embedding model answers Workers AI's embeddings contract.
    if ai.models.contains(where: { $0.id == model }), try await ai.isEmbeddingModel(model) { return .json(try await ai.embed(model, json: body)) }
    let input = try AIInput(json: body)
    guard input.stream == true else { return .json(try await trackedRun(ai, metrics, model, input, backend: backend).jsonBytes) }
    let chunks = try await trackedStream(ai, metrics, model, input, backend: backend)
    let (events, continuation) = AsyncThrowingStream<[UInt8], Error>.makeStream(bufferingPolicy: .unbounded)
    let pump = Task {
        do {
            for try await chunk in chunks { continuation.yield(chunk.sseEvent) }
            if Task.isCancelled { throw AIError.aborted }
            continuation.yield(AIChunk.sseDone)
            continuation.finish()
        } catch {
            continuation.finish(throwing: error)
        }
    }
    continuation.onTermination = { _ in pump.cancel() }
    return .eventStream(events)
}

/// An OpenAI answer: JSON, or `chat.completion.chunk` / `text_completion` events ending in `[DONE]`.
func openAIAnswer(_ ai: AI, _ metrics: WorkerMetrics, _ request: OpenAIRequest, backend: BackendBox? = nil) async throws -> AI.ResponseBody {
    let model = request.model
    let input = request.input
    let encoder = OpenAIEncoder(kind: request.kind, model: model)
    let maxTokens = input.maxTokens ?? AIInput.defaultMaxTokens
    if !request.stream && request.stop.isEmpty {
        let out = try await trackedRun(ai, metrics, model, input, backend: backend)
        var reason = finishReason(completionTokens: out.usage.completionTokens, maxTokens: maxTokens, stoppedBySequence: false)
        if let calls = out.toolCalls, !calls.isEmpty { reason = "tool_calls" }
        return .json(encoder.completion(text: out.response, finishReason: reason, usage: out.usage, toolCalls: out.toolCalls))
    }
    let chunks = try await trackedStream(ai, metrics, model, input, backend: backend)
    /// Runs the generation through the stop filter, handing out text; returns the usage and
    /// whether a stop sequence ended it. With a stop sequence the generation is cut short and
    /// completion_tokens counts the pieces of text received (one per token that produced text).
    let calls = ToolCallBox()
    @Sendable func drive(_ emit: (String) -> Void) async throws -> (AIUsage, Bool) {
        var filter = StopSequenceFilter(request.stop)
        var usage: AIUsage? = nil
        var pieces = 0
        var iterator = chunks.makeAsyncIterator()
        while let chunk = try await iterator.next() {
            if let u = chunk.usage { usage = u }
            if let c = chunk.toolCalls { calls.set(c) }
            if !chunk.response.isEmpty { pieces += 1 }
            let text = filter.feed(chunk.response)
            if !text.isEmpty { emit(text) }
            if filter.stopped { break }
        }
        if Task.isCancelled { throw AIError.aborted }
        let tail = filter.flush()
        if !tail.isEmpty { emit(tail) }
        if filter.stopped || usage == nil {
            let prompt: Int
            if ai.hasLocalModel(model) {
                prompt = try await ai.promptTokens(model, input).count
            } else {
                // A remote model (hybrid routing): no local tokenizer; its prompt_tokens come with the last event.
                while usage == nil, let chunk = try await iterator.next() { if let u = chunk.usage { usage = u } }
                prompt = usage?.promptTokens ?? 0
            }
            return (AIUsage(promptTokens: prompt, completionTokens: pieces), filter.stopped)
        }
        return (usage!, false)
    }
    if !request.stream {
        var text = ""
        let (usage, stopped) = try await drive { text += $0 }
        var reason = finishReason(completionTokens: usage.completionTokens, maxTokens: maxTokens, stoppedBySequence: stopped)
        let found = calls.get()
        if !found.isEmpty { reason = "tool_calls" }
        return .json(encoder.completion(text: text, finishReason: reason, usage: usage, toolCalls: found))
    }
    let (events, continuation) = AsyncThrowingStream<[UInt8], Error>.makeStream(bufferingPolicy: .unbounded)
    let pump = Task {
        do {
            if request.kind == .chat { continuation.yield(encoder.chunk(text: "", role: true)) }
            let (usage, stopped) = try await drive { continuation.yield(encoder.chunk(text: $0)) }
            var reason = finishReason(completionTokens: usage.completionTokens, maxTokens: maxTokens, stoppedBySequence: stopped)
            let found = calls.get()
            if !found.isEmpty {
                continuation.yield(encoder.toolCallsChunk(found))
                reason = "tool_calls"
            }
            let final = request.kind == .chat ? encoder.chunk(text: nil, finishReason: reason, usage: request.includeUsage ? nil : usage)
                                              : encoder.chunk(text: "", finishReason: reason, usage: request.includeUsage ? nil : usage)
            continuation.yield(final)
            if request.includeUsage { continuation.yield(encoder.usageChunk(usage)) }
            continuation.yield(AIChunk.sseDone)
            continuation.finish()
        } catch {
            continuation.finish(throwing: error)
        }
    }
    continuation.onTermination = { _ in pump.cancel() }
    return .eventStream(events)
}

/// The tool calls of a streamed answer (they come with its last chunk).
final class ToolCallBox: @unchecked Sendable {
    private let lock = NSLock()
    private var calls: [AIToolCall] = []
    func set(_ c: [AIToolCall]) { lock.lock(); calls = c; lock.unlock() }
    func get() -> [AIToolCall] { lock.lock(); defer { lock.unlock() }; return calls }
}

/// Checks `Authorization: Bearer <key>` (every route but `/health`) and counts answers by route and status.
struct WorkerMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let apiKey: String?
    let metrics: WorkerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        let route = WorkerMetrics.routeLabel(method: request.method.rawValue, path: path)
        let response: Response
        if let key = apiKey, !key.isEmpty, route != "/health", !Self.authorized(request.headers[.authorization], key: key) {
            response = Self.unauthorized(openAI: path.hasPrefix("/v1/") || path.contains("/ai/v1/"))
        } else {
            do {
                response = try await next(request, context)
            } catch let e as HTTPError {
                metrics.recordRequest(route: route, status: Int(e.status.code))
                throw e
            } catch {
                metrics.recordRequest(route: route, status: 500)
                throw error
            }
        }
        metrics.recordRequest(route: route, status: Int(response.status.code))
        return response
    }

    /// `Bearer <key>`, compared in time independent of where the strings differ.
    static func authorized(_ header: String?, key: String) -> Bool {
        guard let header else { return false }
        let parts = header.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return false }
        let given = Array(parts[1].trimmingCharacters(in: .whitespaces).utf8)
        let expected = Array(key.utf8)
        var diff = given.count == expected.count ? 0 : 1
        for i in 0..<expected.count { diff |= Int(expected[i] ^ (i < given.count ? given[i] : 0)) }
        return diff == 0
    }

    static func unauthorized(openAI: Bool) -> Response {
        var response: Response
        if openAI {
            response = openAIError(OpenAIError(status: 401, message: "Incorrect API key provided: send the worker's key as 'Authorization: Bearer <key>'",
                                               code: "invalid_api_key"))
        } else {
            response = bytes(.unauthorized, AIError(code: 10000, message: "Authentication error").envelopeJSON, contentType: "application/json")
        }
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }
}

private func eventStream(_ events: AsyncThrowingStream<[UInt8], Error>, cacheStatus: AI.CacheStatus, backend: AI.Backend? = nil) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = SSE.contentType
    headers[.cacheControl] = "no-cache"
    headers[cacheStatusHeader] = cacheStatus.rawValue
    if let backend { headers[backendHeader] = backend.rawValue }
    return Response(status: .ok, headers: headers, body: ResponseBody { writer in
        for try await event in events {
            try await writer.write(ByteBuffer(bytes: event))
        }
        try await writer.finish(nil)
    })
}

private func bytes(_ status: HTTPResponse.Status, _ body: [UInt8], contentType: String) -> Response {
    var headers = HTTPFields()
    headers[.contentType] = contentType
    return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
}

private func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
    bytes(status, Array(message.utf8), contentType: "text/plain;charset=UTF-8")
}

private func envelope(_ error: AIError) -> Response {
    bytes(HTTPResponse.Status(code: error.httpStatus), error.envelopeJSON, contentType: "application/json")
}

private func openAIError(_ error: OpenAIError) -> Response {
    bytes(HTTPResponse.Status(code: error.status), error.envelopeJSON, contentType: "application/json")
}
