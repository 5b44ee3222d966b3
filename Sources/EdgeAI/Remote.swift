import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

// The remote half of hybrid routing: a client of the Workers AI REST API
// (`POST {base}/accounts/{account}/ai/run/{model}`, `Authorization: Bearer <token>`), speaking to
// Cloudflare or to another EdgeAI worker. Nothing here touches the network unless an `AI` was
// given a `RemoteBackend` explicitly (`AI.configureRemote`).

extension AI {
    /// A Workers AI REST endpoint that answers `POST <runURL><model id>` with the
    /// `{"result":…,"success":…,"errors":[…],"messages":[]}` envelope (or server-sent events for
    /// `"stream": true`): Cloudflare's API, or another EdgeAI worker.
    public struct RemoteBackend: Sendable, Equatable, CustomStringConvertible {
        /// The URL the model id is appended to; always ends in `/ai/run/`.
        public let runURL: String
        /// Sent as `Authorization: Bearer <token>` when set.
        public let token: String?
        /// Seconds without any byte from the remote (connecting, waiting for the answer, between
        /// streamed events) before the request fails with 3007.
        public var timeout: Double

        /// - Parameters:
        ///   - url: an `http`/`https` URL. One ending in `/ai/run` (or `/ai/run/`) is used as it is,
        ///     e.g. `https://api.cloudflare.com/client/v4/accounts/<account>/ai/run/`; any other gets
        ///     `/ai/run/` appended, so `https://api.cloudflare.com/client/v4/accounts/<account>` and a
        ///     worker's root `http://127.0.0.1:8787` both work.
        ///   - token: the API token (`Authorization: Bearer`), nil for none.
        ///   - timeout: seconds of silence from the remote before giving up (3007).
        /// - Throws: 5006 for a URL that is not absolute http(s), has a query or fragment, or an
        ///   empty token or a timeout that is not positive.
        public init(url: String, token: String? = nil, timeout: Double = 60) throws(AIError) {
            guard var parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(),
                  scheme == "http" || scheme == "https", let host = parts.host, !host.isEmpty else {
                throw AIError.invalidInput("Remote backend URL must be an absolute http:// or https:// URL, got '\(url)'")
            }
            guard parts.query == nil, parts.fragment == nil else {
                throw AIError.invalidInput("Remote backend URL must not have a query or fragment, got '\(url)'")
            }
            if let token, token.isEmpty || token.contains(where: { $0.isNewline }) {
                throw AIError.invalidInput("Remote backend token must be non-empty and on one line (leave it out for none)")
            }
            guard timeout.isFinite, timeout > 0 else {
                throw AIError.invalidInput("Remote backend timeout must be a positive number of seconds, got \(timeout)")
            }
            var path = parts.percentEncodedPath
            while path.hasSuffix("/") { path.removeLast() }
            path += path.hasSuffix("/ai/run") ? "/" : "/ai/run/"
            parts.percentEncodedPath = path
            guard let normalized = parts.string else {
                throw AIError.invalidInput("Remote backend URL '\(url)' cannot be used")
            }
            self.runURL = normalized
            self.token = token
            self.timeout = timeout
        }

        /// Cloudflare's Workers AI REST API for an account:
        /// `https://api.cloudflare.com/client/v4/accounts/<accountID>/ai/run/`.
        public static func cloudflare(accountID: String, token: String, timeout: Double = 60) throws(AIError) -> RemoteBackend {
            guard !accountID.isEmpty, accountID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                throw AIError.invalidInput("Cloudflare account id must be letters and digits, got '\(accountID)'")
            }
            return try RemoteBackend(url: "https://api.cloudflare.com/client/v4/accounts/\(accountID)/ai/run/", token: token, timeout: timeout)
        }

        /// The URL of `POST` for a model: `runURL` + the model id (characters not allowed in a
        /// URL path percent-encoded; `@` and `/` stay as they are, as Cloudflare's ids are written).
        public func endpoint(model: String) throws(AIError) -> URL {
            guard !model.isEmpty, let id = model.addingPercentEncoding(withAllowedCharacters: Self.idCharacters),
                  let url = URL(string: runURL + id) else {
                throw AIError.noSuchModel(model)
            }
            return url
        }

        private static let idCharacters: CharacterSet = {
            var set = CharacterSet.urlPathAllowed
            set.remove(charactersIn: ";?#%")
            return set
        }()

        /// The run URL (the token is never shown).
        public var description: String { runURL }
    }
}

/// How a remote call failed: the error to report, and whether the remote was unavailable (could
/// not be reached, timed out, answered 5xx or 429) rather than refusing this request.
struct RemoteFailure: Error, Sendable {
    let error: AIError
    let unavailable: Bool
}

/// Workers AI REST calls over URLSession (FoundationNetworking on Linux), one session per
/// configured backend. Bytes are delivered as they arrive, so streams pass through as they are made.
final class RemoteClient: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    let backend: AI.RemoteBackend

    /// What arrives for one request.
    enum Event: Sendable {
        case response(status: Int, contentType: String)
        case data([UInt8])
    }

    private struct Handler {
        let continuation: AsyncThrowingStream<Event, Error>.Continuation
    }

    private let handlers = Locked<[Int: Handler]>([:])
    private let delegateQueue: OperationQueue
    private var session: URLSession!

    init(backend: AI.RemoteBackend) {
        self.backend = backend
        delegateQueue = OperationQueue()
        delegateQueue.maxConcurrentOperationCount = 1
        delegateQueue.name = "EdgeAI.remote"
        super.init()
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = backend.timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        session = URLSession(configuration: configuration, delegate: self, delegateQueue: delegateQueue)
    }

    /// Lets running requests finish and releases the session (which holds its delegate).
    func invalidate() { session.finishTasksAndInvalidate() }

    /// `POST` the Workers AI request body for `model`; the answer's status, then its bytes.
    /// Ending the iteration early cancels the request.
    func post(model: String, body: [UInt8]) throws(AIError) -> AsyncThrowingStream<Event, Error> {
        var request = URLRequest(url: try backend.endpoint(model: model))
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        request.timeoutInterval = backend.timeout
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.setValue("application/json, text/event-stream", forHTTPHeaderField: "Accept")
        if let token = backend.token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        let (stream, continuation) = AsyncThrowingStream<Event, Error>.makeStream(bufferingPolicy: .unbounded)
        let task = session.dataTask(with: request)
        let id = task.taskIdentifier
        handlers.withLock { $0[id] = Handler(continuation: continuation) }
        continuation.onTermination = { [weak self] reason in
            if case .cancelled = reason { task.cancel() }
            self?.handlers.withLock { _ = $0.removeValue(forKey: id) }
        }
        task.resume()
        return stream
    }

    private func handler(_ task: URLSessionTask) -> Handler? {
        handlers.withLock { $0[task.taskIdentifier] }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        if let http = response as? HTTPURLResponse {
            let type = (http.allHeaderFields.first { ($0.key as? String)?.lowercased() == "content-type" }?.value as? String) ?? ""
            handler(dataTask)?.continuation.yield(.response(status: http.statusCode, contentType: type))
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        handler(dataTask)?.continuation.yield(.data([UInt8](data)))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        guard let h = handlers.withLock({ $0.removeValue(forKey: task.taskIdentifier) }) else { return }
        if let error { h.continuation.finish(throwing: error) } else { h.continuation.finish() }
    }

    // Redirects are followed only to the same scheme, host and port (never leaking the token elsewhere).
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        let from = task.originalRequest?.url
        let to = request.url
        let same = from?.scheme == to?.scheme && from?.host == to?.host && from?.port == to?.port
        completionHandler(same ? request : nil)
    }

    // MARK: Calls

    /// A non-streaming call: the `result` of the success envelope.
    func run(model: String, input: AIInput) async throws(RemoteFailure) -> AIOutput {
        var body = input
        body.stream = nil
        do {
            var status = 0
            var received: [UInt8] = []
            for try await event in try post(model: model, body: body.jsonBytes) {
                switch event {
                case .response(let s, _): status = s
                case .data(let d): received += d
                }
            }
            if Task.isCancelled { throw AIError.aborted }
            guard status == 200 else { throw Self.failure(status: status, body: received, backend: backend) }
            return try Self.output(fromEnvelope: received, backend: backend)
        } catch {
            throw Self.failure(error, backend: backend)
        }
    }

    /// A streaming call. Returns once the remote has answered 200 with an event stream (any
    /// failure before that is thrown, so the caller may still fall back); the stream then yields
    /// the remote's events as chunks, ending after `data: [DONE]`.
    func stream(model: String, input: AIInput) async throws(RemoteFailure) -> AsyncThrowingStream<AIChunk, Error> {
        var body = input
        body.stream = true
        let backend = self.backend
        let events: AsyncThrowingStream<Event, Error>
        do {
            events = try post(model: model, body: body.jsonBytes)
        } catch {
            throw RemoteFailure(error: error, unavailable: false)
        }
        let head = Gate<RemoteFailure>()
        let (chunks, continuation) = AsyncThrowingStream<AIChunk, Error>.makeStream(bufferingPolicy: .unbounded)
        let pump = Task {
            var status: Int? = nil
            var streaming = false
            var refused: [UInt8] = []   // the body of an answer that is not a 200 event stream
            var parser = SSEParser()
            var done = false
            do {
                for try await event in events {
                    switch event {
                    case .response(let s, let type):
                        status = s
                        streaming = s == 200 && type.lowercased().hasPrefix(SSE.contentType)
                        if streaming { head.open(nil) }
                    case .data(let d):
                        guard streaming else { refused += d; continue }
                        for payload in parser.feed(d) where !done {
                            if payload == "[DONE]" { done = true; break }
                            continuation.yield(try Self.chunk(fromEvent: payload, backend: backend))
                        }
                    }
                    if done { break }
                }
                if Task.isCancelled { throw AIError.aborted }
                guard let status else {
                    throw AIError.internal("Remote backend \(backend) closed the connection without an answer")
                }
                if !streaming {
                    if status != 200 || (try? JSONParser.parse(refused))?["success"] == .bool(false) {
                        throw Self.failure(status: status, body: refused, backend: backend)
                    }
                    throw AIError.internal("Remote backend \(backend) answered a streaming request with something other than \(SSE.contentType): \(Self.preview(refused))")
                }
                guard done else {
                    throw AIError.internal("Remote backend \(backend) ended the event stream before data: [DONE]")
                }
                continuation.finish()
            } catch {
                let failure = Self.failure(error, backend: backend)
                if streaming {
                    continuation.finish(throwing: failure.error)
                } else {
                    head.open(failure)
                    continuation.finish(throwing: failure.error)
                }
            }
        }
        continuation.onTermination = { _ in pump.cancel() }
        let failure = await withTaskCancellationHandler {
            await head.wait()
        } onCancel: {
            pump.cancel()
        }
        if let failure { throw failure }
        return chunks
    }

    // MARK: Decoding

    /// `{"result":{"response":…,"usage":{…}},"success":true,…}` → the output (a non-string
    /// `response` is JSON mode's value).
    static func output(fromEnvelope bytes: [UInt8], backend: AI.RemoteBackend) throws(AIError) -> AIOutput {
        guard let envelope = try? JSONParser.parse(bytes) else {
            throw AIError.internal("Remote backend \(backend) answered with something that is not JSON: \(preview(bytes))")
        }
        if envelope["success"] == .bool(false), let e = envelopeError(envelope) { throw e }
        guard let result = envelope["result"], case .object = result else {
            throw AIError.internal("Remote backend \(backend) answered without a result object: \(preview(bytes))")
        }
        let usage = AIUsage(json: result["usage"]) ?? AIUsage(promptTokens: 0, completionTokens: 0)
        let calls = toolCalls(result["tool_calls"])
        switch result["response"] {
        case .string(let text)?:
            return AIOutput(response: text, usage: usage, toolCalls: calls)
        case .some(let value) where value != .null:
            return AIOutput(response: value.jsonText, usage: usage, json: value)
        case nil, .null? where calls != nil:
            return AIOutput(response: "", usage: usage, toolCalls: calls)
        default:
            throw AIError.internal("Remote backend \(backend) answered without a response: \(preview(bytes))")
        }
    }

    /// One event's data (`{"response":"…"}`, the last with `"usage"`) → a chunk. Fields other than
    /// `response` and `usage` (Cloudflare's padding `p`) are dropped.
    static func chunk(fromEvent payload: String, backend: AI.RemoteBackend) throws(AIError) -> AIChunk {
        guard let v = try? JSONParser.parse(payload), case .object = v else {
            throw AIError.internal("Remote backend \(backend) sent an event that is not a JSON object: \(preview(Array(payload.utf8)))")
        }
        if let e = envelopeError(v) { throw e }
        let text: String
        switch v["response"] {
        case .string(let s)?: text = s
        case nil, .null?: text = ""
        default: throw AIError.internal("Remote backend \(backend) sent an event whose response is not a string: \(preview(Array(payload.utf8)))")
        }
        return AIChunk(response: text, usage: AIUsage(json: v["usage"]), toolCalls: toolCalls(v["tool_calls"]))
    }

    /// A remote answer's `tool_calls` (entries that are not calls are dropped).
    static func toolCalls(_ v: JSONValue?) -> [AIToolCall]? {
        guard case .array(let items)? = v, !items.isEmpty else { return nil }
        let calls = items.compactMap { try? AIToolCall.parse($0, path: "/tool_calls").get() }
        return calls.isEmpty ? nil : calls.map { c in var c = c; if c.id == nil { c.id = AIToolCall.newID() }; return c }
    }

    /// The first `{"code","message"}` of an `errors` list.
    static func envelopeError(_ v: JSONValue) -> AIError? {
        guard case .array(let errors)? = v["errors"], let first = errors.first,
              case .number(let code, _)? = first["code"], code.rounded() == code, abs(code) < 1e9 else { return nil }
        let message: String
        if case .string(let m)? = first["message"] { message = m } else { message = "Remote error" }
        return AIError(code: Int(code), message: message)
    }

    /// A non-200 answer: the envelope's own error when there is one, else one made from the status.
    static func failure(status: Int, body: [UInt8], backend: AI.RemoteBackend) -> RemoteFailure {
        let unavailable = status >= 500 || status == 429 || status == 0
        if let v = try? JSONParser.parse(body), let e = envelopeError(v) {
            return RemoteFailure(error: e, unavailable: unavailable)
        }
        let error: AIError
        switch status {
        case 401, 403: error = AIError(code: 10000, message: "Authentication error (remote backend \(backend) answered HTTP \(status))")
        case 408: error = AIError(code: 3007, message: "Remote backend \(backend) timed out (HTTP 408)")
        case 429: error = AIError(code: 3040, message: "Capacity temporarily exceeded (remote backend \(backend) answered HTTP 429)")
        default: error = AIError.internal("Remote backend \(backend) answered HTTP \(status): \(preview(body))")
        }
        return RemoteFailure(error: error, unavailable: unavailable)
    }

    /// Any error of a remote call as a `RemoteFailure`: URL errors are the remote being
    /// unavailable (3007 for a timeout, 3001 otherwise); cancellation is 3008.
    static func failure(_ error: any Error, backend: AI.RemoteBackend) -> RemoteFailure {
        if let f = error as? RemoteFailure { return f }
        if let e = error as? AIError { return RemoteFailure(error: e, unavailable: false) }
        if error is CancellationError { return RemoteFailure(error: .aborted, unavailable: false) }
        if let u = error as? URLError {
            switch u.code {
            case .cancelled: return RemoteFailure(error: .aborted, unavailable: false)
            case .timedOut:
                return RemoteFailure(error: AIError(code: 3007, message: "Remote backend \(backend) timed out after \(backend.timeout) s without an answer"), unavailable: true)
            default:
                return RemoteFailure(error: .internal("Remote backend \(backend) unreachable: \(u.localizedDescription) (URLError \(u.code.rawValue))"), unavailable: true)
            }
        }
        return RemoteFailure(error: .internal("Remote backend \(backend) failed: \(error)"), unavailable: true)
    }

    static func preview(_ bytes: [UInt8]) -> String {
        let text = String(decoding: bytes.prefix(200), as: UTF8.self)
        return bytes.count > 200 ? text + "…" : text
    }
}

/// Opened once, with nil (go on) or an error; waiters wake when it opens.
final class Gate<Failure: Error & Sendable>: @unchecked Sendable {
    private struct State {
        var opened = false
        var value: Failure? = nil
        var waiters: [CheckedContinuation<Failure?, Never>] = []
    }
    private let state = Locked(State())

    func open(_ value: Failure?) {
        let waiters: [CheckedContinuation<Failure?, Never>] = state.withLock { s in
            guard !s.opened else { return [] }
            s.opened = true
            s.value = value
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume(returning: value) }
    }

    func wait() async -> Failure? {
        await withCheckedContinuation { (c: CheckedContinuation<Failure?, Never>) in
            let ready: (Bool, Failure?) = state.withLock { s in
                if s.opened { return (true, s.value) }
                s.waiters.append(c)
                return (false, nil)
            }
            if ready.0 { c.resume(returning: ready.1) }
        }
    }
}

/// Splits a server-sent-event byte stream into the data of its events (`data:` lines joined by
/// newlines; comments and other fields ignored; `\r\n` and `\n` line ends).
struct SSEParser {
    private var buffer: [UInt8] = []
    private var data: [String] = []

    mutating func feed(_ bytes: [UInt8]) -> [String] {
        buffer += bytes
        var out: [String] = []
        var start = 0
        while let nl = buffer[start...].firstIndex(of: 0x0A) {
            var end = nl
            if end > start && buffer[end - 1] == 0x0D { end -= 1 }
            let line = String(decoding: buffer[start..<end], as: UTF8.self)
            start = nl + 1
            if line.isEmpty {
                if !data.isEmpty { out.append(data.joined(separator: "\n")) }
                data.removeAll()
            } else if line.hasPrefix("data:") {
                var value = line.dropFirst(5)
                if value.first == " " { value = value.dropFirst() }
                data.append(String(value))
            }
        }
        buffer.removeSubrange(0..<start)
        return out
    }
}
