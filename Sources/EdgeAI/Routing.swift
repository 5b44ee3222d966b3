import Foundation

// Hybrid routing: an `AI` with a remote backend (`configureRemote`) decides per request where it
// runs. Local when the model is available locally (in the catalog, its file present) and a local
// slot is free within `maxLocalWait`; otherwise the remote. A remote that cannot answer (network
// error, timeout, HTTP 5xx or 429, or "no such model" from the remote) falls back to the local
// model when there is one. Without a remote backend nothing here runs and no network is touched.

/// Set while the router runs a request locally, so `run`/`stream` do not route it again.
enum RoutingContext {
    @TaskLocal static var local = false
}

/// The routing state of one `AI`: the remote client and the policy.
final class Routing: Sendable {
    private struct State {
        var client: RemoteClient?
        var policy = AI.RoutingPolicy()
    }
    private let state = Locked(State())

    deinit {
        // The session holds the client (its delegate) until it is invalidated.
        state.withLock { $0.client }?.invalidate()
    }

    var client: RemoteClient? { state.withLock { $0.client } }
    var policy: AI.RoutingPolicy { state.withLock { $0.policy } }

    func configure(_ client: RemoteClient?, policy: AI.RoutingPolicy) {
        let old: RemoteClient? = state.withLock { s in
            defer { s.client = client; s.policy = policy }
            return s.client
        }
        old?.invalidate()
    }

}

extension AI {
    /// Where a request ran.
    public enum Backend: String, Sendable, CaseIterable {
        /// On this machine, from the local catalog.
        case local
        /// On the configured remote backend (Workers AI REST).
        case remote
    }

    /// How requests are divided between the local models and the remote backend.
    public struct RoutingPolicy: Sendable, Equatable {
        public enum Preference: String, Sendable, CaseIterable {
            /// Local when the model is available locally and a slot frees within `maxLocalWait`, else remote.
            case local
            /// Remote for every request; local only as the fallback when the remote fails.
            case remote
        }

        public var prefer: Preference
        /// Seconds a request for a local model may wait for a free local slot before it goes to the
        /// remote instead (0: go remote at once when the model is busy).
        public var maxLocalWait: Double
        /// When the remote fails (unreachable, timed out, HTTP 5xx or 429, or 5007 "no such model"
        /// from the remote) for a model available locally, run it locally instead of failing. A
        /// stream falls back only before its first event; errors that are the request's own
        /// (5006, 5021, …) are never retried.
        public var fallbackToLocal: Bool

        public init(prefer: Preference = .local, maxLocalWait: Double = 0.5, fallbackToLocal: Bool = true) {
            self.prefer = prefer
            self.maxLocalWait = maxLocalWait
            self.fallbackToLocal = fallbackToLocal
        }
    }

    /// Route requests between the local models and a remote Workers AI REST backend (nil: local
    /// only, the default). From then on `run`, `stream` and `respond` decide per request:
    /// - a model not available locally (not in the catalog, or its file missing) goes to the remote
    ///   (instead of failing with 5007);
    /// - a local model runs locally when a slot is free within `policy.maxLocalWait` seconds (or
    ///   always goes remote first with `prefer: .remote`), otherwise remotely;
    /// - a remote failure falls back to the local model (see `RoutingPolicy.fallbackToLocal`).
    ///
    /// ```swift
    /// try ai.configureRemote(AI.RemoteBackend(url: "https://api.cloudflare.com/client/v4/accounts/\(account)", token: token),
    ///                        policy: .init(maxLocalWait: 0.25))
    /// let (out, backend) = try await ai.runRouted("@cf/meta/llama-3.1-8b-instruct", AIInput(prompt: "Hi"))
    /// ```
    /// Requests in progress keep the backend they started with.
    /// - Throws: 5006 for a negative or non-finite `maxLocalWait`.
    public func configureRemote(_ backend: RemoteBackend?, policy: RoutingPolicy = RoutingPolicy()) throws(AIError) {
        guard policy.maxLocalWait.isFinite, policy.maxLocalWait >= 0 else {
            throw AIError.invalidInput("maxLocalWait must be 0 or more seconds, got \(policy.maxLocalWait)")
        }
        routing.configure(backend.map { RemoteClient(backend: $0) }, policy: policy)
    }

    /// The configured remote backend (nil: local only).
    public var remoteBackend: RemoteBackend? { routing.client?.backend }

    /// The routing policy in force (meaningful with a remote backend).
    public var routingPolicy: RoutingPolicy { routing.policy }

    /// Whether `model` can run on this machine: it is in the catalog (or registered) and its file exists.
    public func hasLocalModel(_ model: String) -> Bool {
        guard let info = models.first(where: { $0.id == model }) else { return false }
        return FileManager.default.fileExists(atPath: info.path)
    }

    /// Where a request for `model` would run now: waits up to `maxLocalWait` for a free local
    /// slot. Without a remote backend: always `.local`. This looks, it does not reserve: requests
    /// deciding at the same instant may all see a slot free; the extra ones then wait in the
    /// model's queue, or go to the remote when the queue is full (3040).
    public func route(_ model: String) async throws -> Backend {
        guard routing.client != nil else { return .local }
        let policy = routing.policy
        if !hasLocalModel(model) || policy.prefer == .remote { return .remote }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(policy.maxLocalWait * 1e9)
        while true {
            if localSlotFree(model) { return .local }
            let now = DispatchTime.now().uptimeNanoseconds
            if now >= deadline { return .remote }
            do {
                try await Task.sleep(nanoseconds: min(5_000_000, deadline - now))
            } catch {
                throw AIError.aborted
            }
        }
    }

    private func localSlotFree(_ model: String) -> Bool {
        guard let load = localLoad(model) else { return true }   // not loaded: nothing runs on it
        return load.busy < load.slots && load.queued == 0
    }

    /// `run` and where it ran. Without a remote backend: always local.
    public func runRouted(_ model: String, _ input: AIInput) async throws -> (output: AIOutput, backend: Backend) {
        guard !RoutingContext.local, let client = routing.client else {
            return (try await runLocally(model, input), .local)
        }
        try input.validate()
        if try await route(model) == .local {
            do {
                return (try await runLocally(model, input), .local)
            } catch let e as AIError where e.code == AIError.capacityCode {
                // Every slot and the queue filled between the look and the submit: the remote takes it.
            }
        }
        do {
            return (try await client.run(model: model, input: input), .remote)
        } catch {
            if fallsBack(error, model) { return (try await runLocally(model, input), .local) }
            throw error.error
        }
    }

    /// `stream` and where it runs (decided before this returns; a remote stream that fails after
    /// its first event fails, it does not fall back). Without a remote backend: always local.
    public func streamRouted(_ model: String, _ input: AIInput) async throws -> (stream: AsyncThrowingStream<AIChunk, Error>, backend: Backend) {
        guard !RoutingContext.local, let client = routing.client else {
            return (try await streamLocally(model, input), .local)
        }
        try input.validate()
        if input.responseFormat != nil {
            throw AIError.invalidInput("Property '/response_format' cannot be used with '/stream': \(AIError.jsonModeStreamMessage)")
        }
        if try await route(model) == .local {
            do {
                return (try await streamLocally(model, input), .local)
            } catch let e as AIError where e.code == AIError.capacityCode {
                // As in runRouted: full locally, the remote takes it.
            }
        }
        do {
            return (try await client.stream(model: model, input: input), .remote)
        } catch {
            if fallsBack(error, model) { return (try await streamLocally(model, input), .local) }
            throw error.error
        }
    }

    private func fallsBack(_ failure: RemoteFailure, _ model: String) -> Bool {
        guard routing.policy.fallbackToLocal, !Task.isCancelled, hasLocalModel(model) else { return false }
        return failure.unavailable || failure.error.code == AIError.noSuchModelCode
    }

    /// The hook at the top of `run`: nil when the request is not routed (no remote backend, or
    /// the router itself is running it locally).
    func routedRun(_ model: String, _ input: AIInput) async throws -> AIOutput? {
        guard !RoutingContext.local, routing.client != nil else { return nil }
        return try await runRouted(model, input).output
    }

    /// The hook at the top of `stream` (see `routedRun`).
    func routedStream(_ model: String, _ input: AIInput) async throws -> AsyncThrowingStream<AIChunk, Error>? {
        guard !RoutingContext.local, routing.client != nil else { return nil }
        return try await streamRouted(model, input).stream
    }

    /// `run` on the local model (not routed again).
    private func runLocally(_ model: String, _ input: AIInput) async throws -> AIOutput {
        try await RoutingContext.$local.withValue(true) { try await run(model, input) }
    }

    /// `stream` on the local model (not routed again).
    private func streamLocally(_ model: String, _ input: AIInput) async throws -> AsyncThrowingStream<AIChunk, Error> {
        try await RoutingContext.$local.withValue(true) { try await stream(model, input) }
    }
}
