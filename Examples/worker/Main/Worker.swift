import ArgumentParser
import EdgeAI
import Foundation
import Hummingbird
import WorkerApp

@main
struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Serve the Workers AI API over HTTP from local GGUF models.",
        discussion: """
            POST /                     {"prompt": "…"} → {"generated_text": "…"} (the seed worker)
            POST /ai/run/<model id>    Workers AI request → REST envelope, or SSE with "stream": true
            POST /v1/chat/completions  OpenAI chat completions (also /v1/completions, GET /v1/models)
            GET  /health               200 {"status":"ok"} once the model is loaded, 503 before
            GET  /metrics              Prometheus text
            AI Gateway cache headers: cf-aig-cache-ttl, cf-aig-skip-cache, cf-aig-cache-key → cf-aig-cache-status
            """)

    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port).") var port = 8787
    @Option(help: "Model id (or GGUF path) for POST / (default: the catalog's default).") var model: String?
    @Option(name: .shortAndLong, help: "Compute threads (0: all cores).") var threads = 0
    @Option(help: "Require 'Authorization: Bearer KEY' on every route except /health (default: $EDGEAI_API_KEY; none when unset).")
    var apiKey: String?
    @Option(help: "Seconds answers stay cached when a request sends no cf-aig-cache-ttl header (0: only requests with the header are cached).")
    var cacheTtl = 0
    @Option(help: "Byte budget of the answer cache.") var cacheBytes = 64 << 20
    @Option(name: [.customShort("p"), .long], help: "Requests generated together per model (continuous batching; each has its own KV cache, allocated on first use).")
    var parallel = ServingOptions().slots
    @Option(help: "Requests that may wait for a free slot; beyond them the answer is error 3040 (HTTP 429).")
    var maxQueued = ServingOptions().maxQueued

    func validate() throws {
        guard cacheTtl >= 0 else { throw ValidationError("--cache-ttl must be 0 or more seconds, got \(cacheTtl)") }
        guard cacheBytes >= 0 else { throw ValidationError("--cache-bytes must be 0 or more, got \(cacheBytes)") }
        guard parallel >= 1 else { throw ValidationError("--parallel must be 1 or more, got \(parallel)") }
        guard maxQueued >= 0 else { throw ValidationError("--max-queued must be 0 or more, got \(maxQueued)") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
    }

    func run() async throws {
        do {
            let ai = try AI(threads: threads, serving: ServingOptions(slots: parallel, maxQueued: maxQueued))
            var id = model ?? ai.defaultModel
            if let m = model, m.hasSuffix(".gguf") || FileManager.default.fileExists(atPath: m) {
                ai.register(m, path: m)
                id = m
            }
            guard let id else { throw AIError(code: 5007, message: "No model given and no catalog default; pass --model") }
            let key = apiKey ?? ProcessInfo.processInfo.environment["EDGEAI_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
            if let key, key.isEmpty { throw AIError.invalidInput("--api-key must not be empty") }
            let config = WorkerConfiguration(host: host, port: port, model: id, apiKey: key,
                                             cacheTTL: Double(cacheTtl), cacheBytes: cacheBytes)
            let state = WorkerState()
            let app = makeWorkerApplication(ai: ai, configuration: config, state: state) { port in
                FileHandle.standardError.write(Data("worker: listening on http://\(config.host):\(port) (\(id) loading)\n".utf8))
            }
            // Serve at once (GET /health says 503 until the model is loaded); a model that
            // cannot load ends the worker.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.runService() }
                group.addTask {
                    try await state.load(ai: ai, model: id)
                    FileHandle.standardError.write(Data("worker: \(id) loaded\(key == nil ? "" : " (API key required)")\n".utf8))
                    try await Task.sleep(nanoseconds: .max)
                }
                try await group.next()
                group.cancelAll()
            }
        } catch let e as AIError {
            FileHandle.standardError.write(Data("error \(e.code): \(e.message)\n".utf8))
            throw ExitCode(1)
        }
    }
}
