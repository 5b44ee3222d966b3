import EdgeAI
import Foundation

/// Counters of the worker, written in Prometheus' text format by `GET /metrics`.
public final class WorkerMetrics: @unchecked Sendable {
    private struct ModelCounters {
        var generations = 0
        var promptTokens = 0
        var generatedTokens = 0
        var prefillSeconds = 0.0
        var generationSeconds = 0.0
        var lastTokensPerSecond = 0.0
        var active = 0
    }

    private struct State {
        var requests: [String: Int] = [:]   // "route\u{0}status" → count
        var models: [String: ModelCounters] = [:]
        var backends: [String: Int] = [:]   // "local"/"remote" → generations routed there
    }

    private let lock = NSLock()
    private var state = State()

    public init() {}

    private func with<R>(_ body: (inout State) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&state)
    }

    /// The route label of a path (a fixed set, so the series stay few).
    public static func routeLabel(method: String, path: String) -> String {
        switch path {
        case "/", "/health", "/metrics", "/v1/chat/completions", "/v1/completions", "/v1/models": return path
        default: break
        }
        if path.hasPrefix("/v1/models/") { return "/v1/models/{id}" }
        if path.hasPrefix("/ai/run/") { return "/ai/run/{model}" }
        if path.hasPrefix("/accounts/") {
            if path.contains("/ai/run/") { return "/accounts/{account}/ai/run/{model}" }
            for tail in ["/ai/v1/chat/completions", "/ai/v1/completions", "/ai/v1/models"] where path.hasSuffix(tail) {
                return "/accounts/{account}" + tail
            }
        }
        return "other"
    }

    public func recordRequest(route: String, status: Int) {
        with { $0.requests["\(route)\u{0}\(status)", default: 0] += 1 }
    }

    /// A generation started for `model` (the worker's count of generations in progress).
    public func generationStarted(_ model: String) {
        with { $0.models[model, default: ModelCounters()].active += 1 }
    }

    /// A generation ended (whatever the outcome); `usage`/`stats` when it completed.
    public func generationEnded(_ model: String, usage: AIUsage?, stats: GenerationStats?) {
        with { s in
            var c = s.models[model, default: ModelCounters()]
            c.active = max(0, c.active - 1)
            if let usage {
                c.generations += 1
                c.promptTokens += usage.promptTokens
                c.generatedTokens += usage.completionTokens
            }
            if let stats {
                c.prefillSeconds += stats.timeToFirstToken
                c.generationSeconds += stats.generationSeconds
                if stats.tokensPerSecond > 0 { c.lastTokensPerSecond = stats.tokensPerSecond }
            }
            s.models[model] = c
        }
    }

    /// A generation was routed to `backend` (hybrid routing).
    public func recordBackend(_ backend: AI.Backend) {
        with { $0.backends[backend.rawValue, default: 0] += 1 }
    }

    /// Generations routed to each backend so far.
    public func backendCount(_ backend: AI.Backend) -> Int { with { $0.backends[backend.rawValue] ?? 0 } }

    /// Generated tokens so far (all models).
    public var generatedTokens: Int { with { $0.models.values.reduce(0) { $0 + $1.generatedTokens } } }
    /// Completed generations so far (all models).
    public var generations: Int { with { $0.models.values.reduce(0) { $0 + $1.generations } } }

    static func escape(_ v: String) -> String {
        var out = ""
        for c in v {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        return JSONWriter.javaScriptNumber(v)
    }

    /// The Prometheus text exposition (version 0.0.4).
    public func render(cache: ResponseCache.Stats, cacheBudget: Int, loaded: [String: Bool], load: [ModelLoad] = []) -> String {
        let s = with { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples {
                out += labels.isEmpty ? "\(name) \(Self.number(value))\n" : "\(name){\(labels)} \(Self.number(value))\n"
            }
        }
        let requests = s.requests.sorted { $0.key < $1.key }.map { (key, count) -> (labels: String, value: Double) in
            let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false)
            return ("route=\"\(Self.escape(String(parts[0])))\",status=\"\(parts[1])\"", Double(count))
        }
        family("edgeai_requests_total", "counter", "HTTP requests answered, by route and status.", requests)
        let models = s.models.sorted { $0.key < $1.key }
        func perModel(_ f: (ModelCounters) -> Double) -> [(labels: String, value: Double)] {
            models.map { ("model=\"\(Self.escape($0.key))\"", f($0.value)) }
        }
        family("edgeai_generations_total", "counter", "Generations run to completion (cache hits excluded).", perModel { Double($0.generations) })
        family("edgeai_prompt_tokens_total", "counter", "Prompt tokens of completed generations.", perModel { Double($0.promptTokens) })
        family("edgeai_generated_tokens_total", "counter", "Tokens generated (completion tokens of completed generations).", perModel { Double($0.generatedTokens) })
        family("edgeai_prefill_seconds_total", "counter", "Seconds from the start of generations to their first token.", perModel { $0.prefillSeconds })
        family("edgeai_generation_seconds_total", "counter", "Seconds of generation after the first token (tokens/s = rate of generated tokens over this).", perModel { $0.generationSeconds })
        family("edgeai_tokens_per_second", "gauge", "Decode speed of the last completed generation.", perModel { $0.lastTokensPerSecond })
        family("edgeai_slots", "gauge", "Sequence slots of the loaded models (requests generated together).", [("", Double(load.reduce(0) { $0 + $1.slots }))])
        family("edgeai_busy_slots", "gauge", "Slots generating a request now.", [("", Double(load.reduce(0) { $0 + $1.busySlots }))])
        family("edgeai_queue_depth", "gauge", "Requests waiting for a free slot.", [("", Double(load.reduce(0) { $0 + $1.queued }))])
        family("edgeai_backend_generations_total", "counter", "Generations by where they ran (hybrid routing: local, or the remote backend).",
               AI.Backend.allCases.map { ("backend=\"\($0.rawValue)\"", Double(s.backends[$0.rawValue] ?? 0)) })
        family("edgeai_model_loaded", "gauge", "1 when the model is loaded and ready.", loaded.sorted { $0.key < $1.key }.map { ("model=\"\(Self.escape($0.key))\"", $0.value ? 1 : 0) })
        family("edgeai_cache_hits_total", "counter", "Answers served from the gateway cache.", [("", Double(cache.hits))])
        family("edgeai_cache_inflight_joins_total", "counter", "Answers shared with an identical request in flight (computed once).", [("", Double(cache.joined))])
        family("edgeai_cache_misses_total", "counter", "Cacheable requests not found in the cache (then generated).", [("", Double(cache.misses))])
        family("edgeai_cache_bypass_total", "counter", "Requests that did not use the cache (no TTL, skip-cache, unknown model).", [("", Double(cache.bypassed))])
        family("edgeai_cache_evictions_total", "counter", "Cached answers dropped to stay within the byte budget.", [("", Double(cache.evictions))])
        family("edgeai_cache_expired_total", "counter", "Cached answers found past their TTL.", [("", Double(cache.expired))])
        family("edgeai_cache_entries", "gauge", "Answers in the cache.", [("", Double(cache.entries))])
        family("edgeai_cache_bytes", "gauge", "Bytes held by the cache.", [("", Double(cache.bytes))])
        family("edgeai_cache_budget_bytes", "gauge", "The cache's byte budget.", [("", Double(cacheBudget))])
        return out
    }
}
