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
            --remote-url URL: models not found locally (or busy past --remote-wait) go to
            a Workers AI REST endpoint; answers carry x-edgeai-backend: local|remote
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
    @Option(name: .customLong("register"), help: ArgumentHelp("Serve a local GGUF file under a model id (repeatable).", valueName: "ID=PATH"))
    var registrations: [String] = []
    @Option(help: ArgumentHelp("Workers AI REST endpoint for hybrid routing: a URL ending in /ai/run/, an account URL (…/accounts/<id>), or another worker's root (default: $EDGEAI_REMOTE_URL; none: local only).", valueName: "URL"))
    var remoteUrl: String?
    @Option(help: "Bearer token for the remote (default: $EDGEAI_REMOTE_TOKEN).") var remoteToken: String?
    @Option(help: "Seconds a request for a local model waits for a free local slot before going to the remote.")
    var remoteWait = 0.5
    @Option(help: "local: local models run locally when a slot is free (default); remote: everything goes to the remote first, local only as fallback.")
    var prefer = "local"
    @Flag(help: "Do not fall back to the local model when the remote fails.") var noFallback = false
    @Option(help: "Seconds without an answer from the remote before giving up.") var remoteTimeout = 60.0

    func validate() throws {
        guard cacheTtl >= 0 else { throw ValidationError("--cache-ttl must be 0 or more seconds, got \(cacheTtl)") }
        guard cacheBytes >= 0 else { throw ValidationError("--cache-bytes must be 0 or more, got \(cacheBytes)") }
        guard parallel >= 1 else { throw ValidationError("--parallel must be 1 or more, got \(parallel)") }
        guard maxQueued >= 0 else { throw ValidationError("--max-queued must be 0 or more, got \(maxQueued)") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535, got \(port)") }
        guard remoteWait.isFinite, remoteWait >= 0 else { throw ValidationError("--remote-wait must be 0 or more seconds, got \(remoteWait)") }
        guard remoteTimeout.isFinite, remoteTimeout > 0 else { throw ValidationError("--remote-timeout must be more than 0 seconds, got \(remoteTimeout)") }
        guard AI.RoutingPolicy.Preference(rawValue: prefer) != nil else { throw ValidationError("--prefer must be 'local' or 'remote', got '\(prefer)'") }
        for r in registrations { _ = try Self.registration(r) }
    }

    /// `ID=PATH` (split at the first `=`; the file must exist).
    static func registration(_ text: String) throws -> (id: String, path: String) {
        guard let eq = text.firstIndex(of: "="), eq != text.startIndex, text.index(after: eq) != text.endIndex else {
            throw ValidationError("--register wants ID=PATH, got '\(text)'")
        }
        let id = String(text[..<eq]), path = String(text[text.index(after: eq)...])
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else {
            throw ValidationError("--register \(id): no model file at '\(path)'")
        }
        return (id, path)
    }

    func run() async throws {
        do {
            let ai = try AI(threads: threads, serving: ServingOptions(slots: parallel, maxQueued: maxQueued))
            for r in registrations {
                let (rid, path) = try Self.registration(r)
                let known = ai.models.first { $0.id == rid }
                ai.register(rid, path: path, contextWindow: known?.contextWindow, chatTemplate: known?.chatTemplate)
                FileHandle.standardError.write(Data("worker: \(known == nil ? "registered" : "re-registered") \(rid) = \(path)\n".utf8))
            }
            var id = model ?? ai.defaultModel
            if let m = model, m.hasSuffix(".gguf") || FileManager.default.fileExists(atPath: m) {
                // A catalog model's file keeps the catalog's settings, so that requests naming its
                // catalog id and requests naming the path share one engine (one copy of the weights).
                let twin = ai.model(forFile: m)
                ai.register(m, path: m, contextWindow: twin?.contextWindow, chatTemplate: twin?.chatTemplate)
                id = m
            }
            guard let id else { throw AIError(code: 5007, message: "No model given and no catalog default; pass --model") }
            let env = ProcessInfo.processInfo.environment
            let remoteURL = remoteUrl ?? env["EDGEAI_REMOTE_URL"].flatMap { $0.isEmpty ? nil : $0 }
            let remoteKey = remoteToken ?? env["EDGEAI_REMOTE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            if let remoteURL {
                let backend = try AI.RemoteBackend(url: remoteURL, token: remoteKey, timeout: remoteTimeout)
                try ai.configureRemote(backend, policy: AI.RoutingPolicy(
                    prefer: AI.RoutingPolicy.Preference(rawValue: prefer) ?? .local, maxLocalWait: remoteWait, fallbackToLocal: !noFallback))
                FileHandle.standardError.write(Data("worker: remote backend \(backend) (prefer \(prefer), wait \(remoteWait) s\(noFallback ? ", no fallback" : ""))\n".utf8))
            } else if remoteKey != nil, remoteToken != nil {
                throw AIError.invalidInput("--remote-token needs --remote-url (or EDGEAI_REMOTE_URL)")
            }
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
                    if ai.remoteBackend != nil && !ai.hasLocalModel(id) {
                        // A remote-only default model: nothing to load here.
                        state.readiness = .ready
                        FileHandle.standardError.write(Data("worker: \(id) is served by the remote backend\(key == nil ? "" : " (API key required)")\n".utf8))
                    } else {
                        try await state.load(ai: ai, model: id)
                        FileHandle.standardError.write(Data("worker: \(id) loaded\(key == nil ? "" : " (API key required)")\n".utf8))
                    }
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
