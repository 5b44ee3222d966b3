import Foundation
import GGUF

// AI Gateway's response cache, locally: `env.AI.run(model, input, { gateway: { id, skipCache,
// cacheTtl, cacheKey } })` becomes `ai.run(model, input, gateway: .init(...))`. Identical requests
// (same model, same model file, same request bytes, or the same custom key) are answered from
// memory with the bytes of the first answer; identical requests in flight at the same time are
// computed once and answered to all. Memory-bounded (LRU within a byte budget), TTL per entry.

extension AI {
    /// The `gateway` option of `env.AI.run(model, input, { gateway: {…} })`.
    public struct GatewayOptions: Sendable, Hashable {
        /// The gateway's name (kept for parity with Workers AI; one local cache serves every id).
        public var id: String?
        /// Bypass the cache: neither read nor stored, never shared with an identical request in flight.
        public var skipCache: Bool
        /// Seconds an answer stays cached; nil: `responseCache.defaultTTL`. 0 turns caching (and
        /// in-flight sharing) off for this call.
        public var cacheTtl: Double?
        /// A key of your own instead of the digest of model, model file and request body.
        public var cacheKey: String?

        public init(id: String? = nil, skipCache: Bool = false, cacheTtl: Double? = nil, cacheKey: String? = nil) {
            self.id = id
            self.skipCache = skipCache
            self.cacheTtl = cacheTtl
            self.cacheKey = cacheKey
        }
    }

    /// `cf-aig-cache-status`: HIT when the answer came from the cache (or from an identical
    /// request computed at the same time), MISS when it was generated for this call.
    public enum CacheStatus: String, Sendable {
        case hit = "HIT"
        case miss = "MISS"
    }

    /// A response body and where it came from.
    public struct GatewayResponse: Sendable {
        public let body: ResponseBody
        public let cacheStatus: CacheStatus
    }

    /// The cache key of a request: SHA-256 (hex) of `namespace` (the dialect: the same body means
    /// different things on different routes), model id, model file identity (path, size,
    /// modification time) and the request bytes; with `cacheKey`, of namespace and that key.
    /// A model only the remote backend serves (hybrid routing, see Routing.swift) is keyed by the
    /// remote's run URL instead of a file. nil for an unknown model without a remote backend (the
    /// call then fails with 5007 without touching the cache).
    public func gatewayKey(namespace: String, model: String, body: some Collection<UInt8>, cacheKey: String? = nil) -> String? {
        var data = Array("edgeai-gateway-v1\u{0}\(namespace)\u{0}".utf8)
        if let cacheKey {
            data += Array("custom\u{0}\(cacheKey)".utf8)
            return SHA256.hex(data)
        }
        guard let info = models.first(where: { $0.id == model }) else {
            guard let remote = remoteBackend else { return nil }
            data += Array("remote\u{0}\(remote.runURL)\u{0}\(model)\u{0}".utf8)
            data += body
            return SHA256.hex(data)
        }
        data += Array("\(model)\u{0}\(ResponseCache.fileIdentity(info.path))\u{0}".utf8)
        data += body
        return SHA256.hex(data)
    }

    /// Answer through the cache: `produce` runs only when the key is neither cached nor being
    /// computed. Only successful answers are stored (a stream once it has ended normally).
    /// `namespace` separates dialects (see `gatewayKey`).
    public func cached(
        namespace: String, model: String, body: some Collection<UInt8>, gateway: GatewayOptions,
        produce: @escaping @Sendable () async throws -> ResponseBody
    ) async throws -> GatewayResponse {
        let ttl = gateway.cacheTtl ?? responseCache.defaultTTL
        guard ttl.isFinite, ttl >= 0 else {
            throw AIError.invalidInput("gateway.cacheTtl must be 0 or more seconds, got \(ttl)")
        }
        if let key = gateway.cacheKey, key.isEmpty {
            throw AIError.invalidInput("gateway.cacheKey must not be empty (leave it out for the default key)")
        }
        let key = gateway.skipCache || ttl == 0 ? nil : gatewayKey(namespace: namespace, model: model, body: body, cacheKey: gateway.cacheKey)
        let (result, status) = try await responseCache.respond(key: key, ttl: ttl, produce: produce)
        return GatewayResponse(body: result, cacheStatus: status)
    }

    /// The namespace of a Workers AI request body: streams and whole answers never share a key
    /// (not even under one custom `cacheKey`), so a hit always has the shape that was asked for.
    public static func workersAINamespace(body: some Collection<UInt8>) -> String {
        if let v = try? JSONParser.parse(body), case .bool(true)? = v["stream"] { return "workers-ai-stream" }
        return "workers-ai"
    }

    /// `respond(model, json:)` through the gateway cache.
    public func respond(_ model: String, json body: some Collection<UInt8>, gateway: GatewayOptions) async throws -> GatewayResponse {
        let bytes = Array(body)
        return try await cached(namespace: AI.workersAINamespace(body: bytes), model: model, body: bytes, gateway: gateway) {
            try await self.respond(model, json: bytes)
        }
    }

    /// `run(model, input)` through the gateway cache. A cached answer has no `stats`.
    public func run(_ model: String, _ input: AIInput, gateway: GatewayOptions) async throws -> AIOutput {
        try await runReportingStatus(model, input, gateway: gateway).output
    }

    /// `run(model, input, gateway:)` and whether the answer came from the cache.
    public func runReportingStatus(_ model: String, _ input: AIInput, gateway: GatewayOptions) async throws -> (output: AIOutput, status: CacheStatus) {
        var copy = input
        copy.stream = nil
        let request = copy
        // The answer computed for this call keeps its stats; one from the cache has none.
        let computed = Locked<AIOutput?>(nil)
        let answer = try await cached(namespace: "workers-ai", model: model, body: request.jsonBytes, gateway: gateway) {
            let out = try await self.run(model, request)
            computed.withLock { $0 = out }
            return .json(out.jsonBytes)
        }
        switch answer.body {
        case .json(let bytes):
            if let out = computed.withLock({ $0 }) { return (out, answer.cacheStatus) }
            return (try AIOutput(cachedJSON: bytes), answer.cacheStatus)
        case .eventStream:
            throw AIError.internal("The gateway cache returned a stream for a non-streaming request")
        }
    }

    /// `stream(model, input)` through the gateway cache: a hit replays the chunks of the first
    /// answer (the last one carries its usage, without stats).
    public func stream(_ model: String, _ input: AIInput, gateway: GatewayOptions) async throws -> AsyncThrowingStream<AIChunk, Error> {
        try await streamReportingStatus(model, input, gateway: gateway).stream
    }

    /// `stream(model, input, gateway:)` and whether the answer comes from the cache.
    public func streamReportingStatus(_ model: String, _ input: AIInput, gateway: GatewayOptions)
        async throws -> (stream: AsyncThrowingStream<AIChunk, Error>, status: CacheStatus)
    {
        var copy = input
        copy.stream = true
        let request = copy
        let answer = try await cached(namespace: "workers-ai-stream", model: model, body: request.jsonBytes, gateway: gateway) {
            try await self.respond(model, json: request.jsonBytes)
        }
        guard case .eventStream(let events) = answer.body else {
            throw AIError.internal("The gateway cache returned a JSON body for a streaming request")
        }
        let (chunks, continuation) = AsyncThrowingStream<AIChunk, Error>.makeStream(bufferingPolicy: .unbounded)
        let pump = Task {
            do {
                for try await event in events {
                    if let chunk = try AIChunk(sseEvent: event) { continuation.yield(chunk) }
                }
                if Task.isCancelled { throw AIError.aborted }
                continuation.finish()
            } catch {
                continuation.finish(throwing: AIError.from(error))
            }
        }
        continuation.onTermination = { _ in pump.cancel() }
        return (chunks, answer.cacheStatus)
    }
}

extension AIOutput {
    /// Reads back `jsonBytes` (a cached answer).
    init(cachedJSON bytes: [UInt8]) throws(AIError) {
        guard let v = try? JSONParser.parse(bytes), case .string(let text)? = v["response"],
              let usage = AIUsage(json: v["usage"]) else {
            throw AIError.internal("A cached answer is not a Workers AI response")
        }
        self.init(response: text, usage: usage)
    }
}

extension AIUsage {
    init?(json: JSONValue?) {
        guard let json, case .number(let p, _)? = json["prompt_tokens"], case .number(let c, _)? = json["completion_tokens"],
              p >= 0, c >= 0, p < 1e15, c < 1e15 else { return nil }
        self.init(promptTokens: Int(p), completionTokens: Int(c))
    }
}

extension AIChunk {
    /// Reads back one `sseEvent` (nil for `data: [DONE]`).
    init?(sseEvent bytes: [UInt8]) throws(AIError) {
        var text = String(decoding: bytes, as: UTF8.self)
        guard text.hasPrefix("data: ") else { throw AIError.internal("A cached event is not a server-sent event") }
        text.removeFirst(6)
        while text.hasSuffix("\n") { text.removeLast() }
        if text == "[DONE]" { return nil }
        guard let v = try? JSONParser.parse(text), case .string(let response)? = v["response"] else {
            throw AIError.internal("A cached event is not a Workers AI chunk")
        }
        self.init(response: response, usage: AIUsage(json: v["usage"]))
    }
}

/// The memory behind `AI`'s gateway option: answers by key, least recently used evicted first
/// when the stored bytes exceed `byteBudget`, each entry dropped after its TTL; and the requests
/// being computed, so an identical request joins one instead of starting another.
public final class ResponseCache: @unchecked Sendable {
    /// Counters since creation (or `resetStats`).
    public struct Stats: Sendable, Equatable {
        /// Answered from a stored entry.
        public var hits = 0
        /// Answered by joining an identical request in flight (computed once for all).
        public var joined = 0
        /// Looked up and not found (then computed).
        public var misses = 0
        /// Calls that did not use the cache (skipCache, TTL 0, unknown model).
        public var bypassed = 0
        /// Times `produce` ran (misses + bypasses that got as far as computing).
        public var computed = 0
        /// Answers stored.
        public var stored = 0
        /// Entries dropped to stay within the budget.
        public var evictions = 0
        /// Entries found past their TTL (and dropped).
        public var expired = 0
        /// Entries and their bytes now.
        public var entries = 0
        public var bytes = 0
    }

    enum Payload {
        case json([UInt8])
        case events([[UInt8]])

        var size: Int {
            switch self {
            case .json(let b): return b.count
            case .events(let e): return e.reduce(0) { $0 + $1.count + 16 }
            }
        }
    }

    private struct Entry {
        var payload: Payload
        var size: Int
        var expires: Double
        var lastUse: UInt64
    }

    /// One computation shared by every caller with its key. Fields are guarded by the cache's lock.
    private final class Flight: @unchecked Sendable {
        enum Head { case json([UInt8]), events }
        var head: Result<Head, Error>?
        var headWaiters: [Int: CheckedContinuation<Result<Head, Error>, Never>] = [:]
        var events: [[UInt8]] = []
        var subscribers: [Int: AsyncThrowingStream<[UInt8], Error>.Continuation] = [:]
        var finished = false
        var interest = 0
        var task: Task<Void, Never>?
        let ttl: Double
        init(ttl: Double) { self.ttl = ttl }
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var flights: [String: Flight] = [:]
        var stats = Stats()
        var tick: UInt64 = 0
        var nextID = 0
        var byteBudget: Int
        var defaultTTL: Double
    }

    private let state: Locked<State>
    private let clock: @Sendable () -> Double

    /// Per-entry bookkeeping counted against the budget besides the answer's bytes.
    static let entryOverhead = 160

    /// - Parameters:
    ///   - byteBudget: bytes of answers kept (default 64 MiB); 0 keeps none (in-flight sharing still works).
    ///   - defaultTTL: seconds an answer stays when the call gives no TTL (default 300, as AI Gateway's 5 minutes).
    public init(byteBudget: Int = 64 << 20, defaultTTL: Double = 300) {
        self.state = Locked(State(byteBudget: max(0, byteBudget), defaultTTL: max(0, defaultTTL)))
        self.clock = { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
    }

    /// Bytes of answers kept; lowering it evicts at once.
    public var byteBudget: Int {
        get { state.withLock { $0.byteBudget } }
        set { state.withLock { s in s.byteBudget = max(0, newValue); Self.evict(&s) } }
    }

    /// Seconds an answer stays when the call does not say.
    public var defaultTTL: Double {
        get { state.withLock { $0.defaultTTL } }
        set { state.withLock { $0.defaultTTL = newValue.isFinite ? max(0, newValue) : 0 } }
    }

    public var stats: Stats { state.withLock { $0.stats } }

    /// Drop every stored answer (requests in flight continue).
    public func removeAll() {
        state.withLock { s in
            s.entries.removeAll()
            s.stats.entries = 0
            s.stats.bytes = 0
        }
    }

    /// Identity of a model file for cache keys: path, size and modification time (a replaced
    /// file gets new keys).
    public static func fileIdentity(_ path: String) -> String {
        guard let a = try? FileManager.default.attributesOfItem(atPath: path) else { return "\(path)\u{0}missing" }
        let size = (a[.size] as? NSNumber)?.int64Value ?? -1
        let mtime = (a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        return "\(path)\u{0}\(size)\u{0}\(mtime)"
    }

    /// Answer `key` from memory, from an identical computation in flight, or by running
    /// `produce` (stored for `ttl` seconds when it succeeds). A nil key bypasses the cache.
    public func respond(key: String?, ttl: Double, produce: @escaping @Sendable () async throws -> AI.ResponseBody)
        async throws -> (AI.ResponseBody, AI.CacheStatus)
    {
        guard let key, ttl > 0 else {
            state.withLock { $0.stats.bypassed += 1; $0.stats.computed += 1 }
            return (try await produce(), .miss)
        }
        enum Plan { case hit(Payload), join(Flight, Int), start(Flight, Int) }
        let now = clock()
        let plan: Plan = state.withLock { s in
            if var e = s.entries[key] {
                if e.expires > now {
                    s.tick += 1
                    e.lastUse = s.tick
                    s.entries[key] = e
                    s.stats.hits += 1
                    return .hit(e.payload)
                }
                s.entries.removeValue(forKey: key)
                s.stats.expired += 1
                s.stats.entries -= 1
                s.stats.bytes -= e.size
            }
            s.nextID += 1
            if let f = s.flights[key] {
                f.interest += 1
                s.stats.joined += 1
                return .join(f, s.nextID)
            }
            let f = Flight(ttl: ttl)
            f.interest = 1
            s.flights[key] = f
            s.stats.misses += 1
            s.stats.computed += 1
            return .start(f, s.nextID)
        }
        let flight: Flight
        let id: Int
        let status: AI.CacheStatus
        switch plan {
        case .hit(let payload):
            return (Self.replay(payload), .hit)
        case .join(let f, let n):
            (flight, id, status) = (f, n, .hit)
        case .start(let f, let n):
            (flight, id, status) = (f, n, .miss)
            let task = Task.detached { [self] in await self.compute(key: key, flight: f, produce: produce) }
            state.withLock { _ in f.task = task }
        }
        // Wait until the computation has its first answer (a whole JSON body, or the start of a stream).
        let head: Result<Flight.Head, Error> = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Result<Flight.Head, Error>, Never>) in
                let ready: Result<Flight.Head, Error>? = state.withLock { _ in
                    if let h = flight.head { return h }
                    if Task.isCancelled { return .failure(AIError.aborted) }
                    flight.headWaiters[id] = c
                    return nil
                }
                if let ready { c.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { _ in flight.headWaiters.removeValue(forKey: id) }
            waiter?.resume(returning: .failure(AIError.aborted))
        }
        switch head {
        case .failure(let error):
            release(key: key, flight: flight)
            throw AIError.from(error)
        case .success(.json(let bytes)):
            release(key: key, flight: flight)
            return (.json(bytes), status)
        case .success(.events):
            let (stream, continuation) = AsyncThrowingStream<[UInt8], Error>.makeStream(bufferingPolicy: .unbounded)
            let done: Bool = state.withLock { _ in
                for e in flight.events { continuation.yield(e) }
                if flight.finished { return true }
                flight.subscribers[id] = continuation
                return false
            }
            if done {
                continuation.finish()
                release(key: key, flight: flight)
            } else {
                continuation.onTermination = { [weak self] _ in
                    guard let self else { return }
                    self.state.withLock { _ in _ = flight.subscribers.removeValue(forKey: id) }
                    self.release(key: key, flight: flight)
                }
            }
            return (.eventStream(stream), status)
        }
    }

    /// A caller is done with a flight; the last one out of an unfinished flight stops it.
    private func release(key: String, flight: Flight) {
        let cancel: Task<Void, Never>? = state.withLock { s in
            flight.interest -= 1
            guard flight.interest == 0, !flight.finished else { return nil }
            flight.finished = true
            if s.flights[key] === flight { s.flights.removeValue(forKey: key) }
            return flight.task
        }
        cancel?.cancel()
    }

    private func compute(key: String, flight: Flight, produce: @escaping @Sendable () async throws -> AI.ResponseBody) async {
        func settleHead(_ head: Result<Flight.Head, Error>) {
            let waiters: [CheckedContinuation<Result<Flight.Head, Error>, Never>] = state.withLock { _ in
                flight.head = head
                defer { flight.headWaiters.removeAll() }
                return Array(flight.headWaiters.values)
            }
            for w in waiters { w.resume(returning: head) }
        }
        do {
            switch try await produce() {
            case .json(let bytes):
                finish(key: key, flight: flight, payload: .json(bytes))
                settleHead(.success(.json(bytes)))
            case .eventStream(let events):
                settleHead(.success(.events))
                for try await event in events {
                    let subs: [AsyncThrowingStream<[UInt8], Error>.Continuation] = state.withLock { _ in
                        flight.events.append(event)
                        return Array(flight.subscribers.values)
                    }
                    for s in subs { s.yield(event) }
                }
                // A stream that ended because everyone left is not a whole answer.
                if Task.isCancelled { throw AIError.aborted }
                let subs = finish(key: key, flight: flight, payload: nil)
                for s in subs { s.finish() }
            }
        } catch {
            let subs: [AsyncThrowingStream<[UInt8], Error>.Continuation] = state.withLock { s in
                flight.finished = true
                if s.flights[key] === flight { s.flights.removeValue(forKey: key) }
                defer { flight.subscribers.removeAll() }
                return Array(flight.subscribers.values)
            }
            settleHead(.failure(error))
            for s in subs { s.finish(throwing: AIError.from(error)) }
        }
    }

    /// Store a finished answer (when it fits the budget) and end the flight; returns its subscribers.
    @discardableResult
    private func finish(key: String, flight: Flight, payload: Payload?) -> [AsyncThrowingStream<[UInt8], Error>.Continuation] {
        let now = clock()
        return state.withLock { s in
            let payload = payload ?? .events(flight.events)
            flight.finished = true
            if s.flights[key] === flight { s.flights.removeValue(forKey: key) }
            let size = payload.size + key.utf8.count + Self.entryOverhead
            if size <= s.byteBudget {
                if let old = s.entries.removeValue(forKey: key) {
                    s.stats.entries -= 1
                    s.stats.bytes -= old.size
                }
                s.tick += 1
                s.entries[key] = Entry(payload: payload, size: size, expires: now + flight.ttl, lastUse: s.tick)
                s.stats.entries += 1
                s.stats.bytes += size
                s.stats.stored += 1
                Self.evict(&s)
            }
            defer { flight.subscribers.removeAll() }
            return Array(flight.subscribers.values)
        }
    }

    /// Drop least recently used entries until the stored bytes fit the budget.
    private static func evict(_ s: inout State) {
        while s.stats.bytes > s.byteBudget, let victim = s.entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            s.entries.removeValue(forKey: victim.key)
            s.stats.entries -= 1
            s.stats.bytes -= victim.value.size
            s.stats.evictions += 1
        }
    }

    private static func replay(_ payload: Payload) -> AI.ResponseBody {
        switch payload {
        case .json(let bytes):
            return .json(bytes)
        case .events(let events):
            let (stream, continuation) = AsyncThrowingStream<[UInt8], Error>.makeStream(bufferingPolicy: .unbounded)
            for e in events { continuation.yield(e) }
            continuation.finish()
            return .eventStream(stream)
        }
    }

    /// Test hook: a cache whose clock the test moves.
    init(byteBudget: Int, defaultTTL: Double, clock: @escaping @Sendable () -> Double) {
        self.state = Locked(State(byteBudget: max(0, byteBudget), defaultTTL: max(0, defaultTTL)))
        self.clock = clock
    }
}
