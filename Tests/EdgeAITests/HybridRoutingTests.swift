import Foundation
import Hummingbird
import XCTest
@testable import EdgeAI
@testable import WorkerApp

#if canImport(Glibc)
import Glibc
#endif

// Hybrid routing against our own worker as the remote, on loopback only: the library's `AI` with a
// RemoteBackend (in-process worker as the remote), and two/three `worker` processes (one serving
// the model, one forwarding to it with --remote-url, one pointed at a closed port).

/// A model id the remote serves (registered to the test model's file) and the client does not have.
private let alias = "@cf/meta/llama-2-7b-chat-int8"
private let colors = #"[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"List three colors."}]"#
private let colorsText = "Here are three colors:\n\n- Red\n- Blue"
private let colorsInput = AIInput(messages: [.system("You are a helpful assistant."), .user("List three colors.")], maxTokens: 12, temperature: 0)

/// A loopback port nothing listens on (bound, then closed).
private func closedPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw AIError.internal("socket failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw AIError.internal("bind failed") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A loopback port that accepts connections (the kernel's backlog) and never answers; close the
/// returned descriptor when done.
private func silentListener() throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw AIError.internal("socket failed") }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = 0
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok, listen(fd, 16) == 0 else { close(fd); throw AIError.internal("bind/listen failed") }
    return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}

/// A blocking loopback HTTP call on a GCD thread (never on the cooperative pool the servers use).
private func call(_ port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: String? = nil) async throws -> HTTPResult {
    var h = headers
    if body != nil, h["Content-Type"] == nil { h["Content-Type"] = "application/json" }
    let allHeaders = h
    return try await withCheckedThrowingContinuation { c in
        DispatchQueue.global().async {
            c.resume(with: Result { try httpRequest(port: port, method: method, path: path, headers: allHeaders, body: body) })
        }
    }
}

/// The `result` bytes of a success envelope as our worker writes it.
private func resultBytes(_ r: HTTPResult, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
    let head = Array(#"{"result":"#.utf8), tail = Array(#","success":true,"errors":[],"messages":[]}"#.utf8)
    guard r.status == 200, r.body.starts(with: head), r.body.suffix(tail.count).elementsEqual(tail) else {
        XCTFail("not a success envelope (\(r.status)): \(r.text)", file: file, line: line)
        return []
    }
    return Array(r.body.dropFirst(head.count).dropLast(tail.count))
}

private func collect(_ stream: AsyncThrowingStream<AIChunk, Error>) async throws -> [AIChunk] {
    var out: [AIChunk] = []
    for try await c in stream { out.append(c) }
    return out
}

private func expectAIError(_ code: Int, _ messagePart: String? = nil, file: StaticString = #filePath, line: UInt = #line,
                           _ body: () async throws -> Void) async {
    do {
        try await body()
        XCTFail("expected error \(code)", file: file, line: line)
    } catch let e as AIError {
        XCTAssertEqual(e.code, code, e.description, file: file, line: line)
        if let messagePart { XCTAssertTrue(e.message.contains(messagePart), e.description, file: file, line: line) }
    } catch {
        XCTFail("not an AIError: \(error)", file: file, line: line)
    }
}

extension RunningWorker {
    /// An in-process worker of the test model, ready, optionally with an API key.
    static func start(ai: AI, apiKey: String?) async throws -> RunningWorker {
        try await start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id, apiKey: apiKey))
    }

    /// `POST /ai/run/<model>` answers with the given status, counted in the worker's metrics.
    func answered(_ status: Int) -> Double {
        let text = state.metrics.render(cache: ResponseCache.Stats(), cacheBudget: 0, loaded: [:])
        let series = "edgeai_requests_total{route=\"/ai/run/{model}\",status=\"\(status)\"} "
        for line in text.split(separator: "\n") where line.hasPrefix(series) { return Double(line.dropFirst(series.count)) ?? 0 }
        return 0
    }
}

/// A `worker` process (the executable built beside this test bundle) on a free loopback port.
private final class WorkerProcess: @unchecked Sendable {
    let process = Process()
    private let output = Locked("")
    private(set) var port = 0

    static func executable() throws -> URL {
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent("worker")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        throw AIError.internal("no worker executable beside \(dir.path): build it (swift build -c release --product worker)")
    }

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process.executableURL = try Self.executable()
        process.arguments = ["--host", "127.0.0.1", "--port", "0", "--threads", "1"] + arguments
        var env = ProcessInfo.processInfo.environment
        for k in ["EDGEAI_REMOTE_URL", "EDGEAI_REMOTE_TOKEN", "EDGEAI_API_KEY"] { env.removeValue(forKey: k) }
        env["LOG_LEVEL"] = "error"
        env.merge(environment) { $1 }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let reader = pipe.fileHandleForReading
        let output = self.output
        try process.run()
        DispatchQueue.global().async {
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                output.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
    }

    var log: String { output.withLock { $0 } }

    /// Waits until the worker listens and `GET /health` says ok.
    func ready(timeout: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if port == 0, let range = log.range(of: #"listening on http://127\.0\.0\.1:[0-9]+"#, options: .regularExpression) {
                port = Int(log[range].split(separator: ":").last!)!
            }
            if port != 0, let h = try? await call(port, "GET", "/health"), h.status == 200 { return }
            if !process.isRunning { throw AIError.internal("worker exited (\(process.terminationStatus)): \(log)") }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw AIError.internal("worker not ready after \(timeout) s: \(log)")
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}

final class HybridRoutingTests: XCTestCase {
    func testRemoteBackendURLs() throws {
        XCTAssertEqual(try AI.RemoteBackend(url: "http://127.0.0.1:8787").runURL, "http://127.0.0.1:8787/ai/run/")
        XCTAssertEqual(try AI.RemoteBackend(url: "https://api.cloudflare.com/client/v4/accounts/abc123").runURL,
                       "https://api.cloudflare.com/client/v4/accounts/abc123/ai/run/")
        XCTAssertEqual(try AI.RemoteBackend(url: "https://api.cloudflare.com/client/v4/accounts/abc123/ai/run/").runURL,
                       "https://api.cloudflare.com/client/v4/accounts/abc123/ai/run/")
        XCTAssertEqual(try AI.RemoteBackend(url: "http://gw.example/x/ai/run").runURL, "http://gw.example/x/ai/run/")
        XCTAssertEqual(try AI.RemoteBackend.cloudflare(accountID: "abc123", token: "t").endpoint(model: "@cf/meta/llama-3.1-8b-instruct").absoluteString,
                       "https://api.cloudflare.com/client/v4/accounts/abc123/ai/run/@cf/meta/llama-3.1-8b-instruct")
        XCTAssertEqual(try AI.RemoteBackend(url: "http://h/").endpoint(model: "a b?c#d").absoluteString, "http://h/ai/run/a%20b%3Fc%23d")
        for bad in ["", "127.0.0.1:8787", "ftp://h/ai/run/", "http:///ai/run", "http://h/ai/run/?x=1", "http://h/#f"] {
            XCTAssertThrowsError(try AI.RemoteBackend(url: bad), bad) { XCTAssertEqual(($0 as? AIError)?.code, 5006, bad) }
        }
        XCTAssertThrowsError(try AI.RemoteBackend(url: "http://h", token: ""))
        XCTAssertThrowsError(try AI.RemoteBackend(url: "http://h", timeout: 0))
        XCTAssertThrowsError(try AI.RemoteBackend.cloudflare(accountID: "../x", token: "t"))

        // SSE parsing across arbitrary splits, CRLF, comments and multi-line data.
        let text = ": comment\r\ndata: {\"response\":\"a\"}\r\n\r\ndata: {\"response\":\ndata: \"b\"}\n\nevent: x\ndata: [DONE]\n\n"
        for cut in [1, 3, 7, 1000] {
            var p = SSEParser()
            var got: [String] = []
            var i = text.utf8.startIndex
            while i < text.utf8.endIndex {
                let j = text.utf8.index(i, offsetBy: cut, limitedBy: text.utf8.endIndex) ?? text.utf8.endIndex
                got += p.feed(Array(text.utf8[i..<j]))
                i = j
            }
            XCTAssertEqual(got, [#"{"response":"a"}"#, "{\"response\":\n\"b\"}", "[DONE]"], "cut \(cut)")
        }
    }

    /// The library: `AI` configured with our worker as the remote.
    func testLibraryRoutesToRemoteAndFallsBack() async throws {
        let local = try TestModel.ai()
        let modelPath = try XCTUnwrap(local.models.first { $0.id == TestModel.id }?.path)
        // The remote: its own AI serving the test model under an id the client does not have.
        let remoteAI = try AI(threads: 0)
        remoteAI.register(alias, path: modelPath)
        let key = "k-\(UUID().uuidString)"
        let remote = try await RunningWorker.start(ai: remoteAI, apiKey: key)
        defer { Task { await remote.stop() } }
        let base = "http://127.0.0.1:\(remote.port)"

        // What the remote answers when asked directly.
        let direct = try await call(remote.port, "POST", "/ai/run/\(alias)", headers: ["Authorization": "Bearer \(key)"],
                                    body: #"{"messages":\#(colors),"max_tokens":12,"temperature":0}"#)
        let directResult = resultBytes(direct)
        let directStream = try await call(remote.port, "POST", "/ai/run/\(alias)", headers: ["Authorization": "Bearer \(key)"],
                                          body: #"{"messages":\#(colors),"max_tokens":12,"temperature":0,"stream":true}"#)
        XCTAssertEqual(directStream.headers["content-type"], "text/event-stream")

        // One slot, so that one long generation makes the local model busy.
        let ai = try AI(threads: 0, serving: ServingOptions(slots: 1))
        XCTAssertFalse(ai.hasLocalModel(alias))
        // Not configured: an unknown model is 5007, nothing is sent.
        await expectAIError(5007) { _ = try await ai.run(alias, colorsInput) }
        XCTAssertEqual(remote.answered(400), 0)
        try ai.configureRemote(AI.RemoteBackend(url: base, token: key), policy: .init(maxLocalWait: 0))

        // Non-streaming: the remote's bytes.
        let (out, backend) = try await ai.runRouted(alias, colorsInput)
        XCTAssertEqual(backend, .remote)
        XCTAssertEqual(out.response, colorsText)
        XCTAssertEqual(out.usage, AIUsage(promptTokens: 24, completionTokens: 12))
        XCTAssertEqual(out.jsonBytes, directResult)
        let viaJSON = try await ai.run(alias, json: Array(#"{"messages":\#(colors),"max_tokens":12,"temperature":0}"#.utf8))
        XCTAssertEqual(viaJSON, directResult)

        // Streaming: the remote's events, chunk for chunk.
        let (stream, sbackend) = try await ai.streamRouted(alias, colorsInput)
        XCTAssertEqual(sbackend, .remote)
        let chunks = try await collect(stream)
        XCTAssertGreaterThan(chunks.count, 2)
        XCTAssertEqual(SSE.encode(chunks), directStream.body)
        XCTAssertEqual(chunks.last?.usage, AIUsage(promptTokens: 24, completionTokens: 12))
        let viaJSONStream = try await ai.run(alias, json: Array(#"{"messages":\#(colors),"max_tokens":12,"temperature":0,"stream":true}"#.utf8))
        XCTAssertEqual(viaJSONStream, directStream.body)

        // JSON mode through the remote: the parsed value comes back.
        let schema = try JSONParser.parse(#"{"type":"object","properties":{"color":{"type":"string","maxLength":12}},"required":["color"]}"#)
        let jsonOut = try await ai.run(alias, AIInput(messages: [.user("Name a color as JSON.")], maxTokens: 40, temperature: 0, responseFormat: .jsonSchema(schema)))
        XCTAssertNotNil(jsonOut.json?["color"])
        let jsonLocal = try await remoteAI.run(alias, AIInput(messages: [.user("Name a color as JSON.")], maxTokens: 40, temperature: 0, responseFormat: .jsonSchema(schema)))
        XCTAssertEqual(jsonOut.jsonBytes, jsonLocal.jsonBytes)

        // Errors from the remote keep their Workers AI codes.
        let refusedBefore = remote.answered(400)
        await expectAIError(5007, "No such model @cf/nope/none or task") { _ = try await ai.run("@cf/nope/none", colorsInput) }
        await expectAIError(5007, "No such model @cf/nope/none or task") { _ = try await ai.stream("@cf/nope/none", colorsInput) }
        XCTAssertEqual(remote.answered(400), refusedBefore + 2, "the 5007s came from the remote")
        await expectAIError(5021, "context window limit (8192)") {
            _ = try await ai.run(alias, AIInput(prompt: "Hi", maxTokens: 9000))
        }
        XCTAssertEqual(remote.answered(413), 1)
        // Invalid input is refused before anything is sent.
        await expectAIError(5006) { _ = try await ai.run(alias, AIInput(prompt: "Hi", temperature: 9)) }
        await expectAIError(5006, "stream") {
            _ = try await ai.stream(alias, AIInput(prompt: "Hi", responseFormat: .jsonObject))
        }
        // A wrong token: the remote's 10000.
        let wrongKey = try AI(threads: 0)
        try wrongKey.configureRemote(AI.RemoteBackend(url: base, token: key + "x"))
        await expectAIError(10000, "Authentication error") { _ = try await wrongKey.run(alias, colorsInput) }
        await expectAIError(10000) { _ = try await wrongKey.stream(alias, colorsInput) }
        XCTAssertEqual(AIError(code: 10000, message: "").httpStatus, 401)

        // The gateway option caches remote answers too (keyed by the remote's URL): one remote call.
        let tag = UUID().uuidString.prefix(6)
        let cachedInput = AIInput(prompt: "Say a word. \(tag)", maxTokens: 4, temperature: 0)
        let okBefore = remote.answered(200)
        let g1 = try await ai.runReportingStatus(alias, cachedInput, gateway: .init(cacheTtl: 60))
        let g2 = try await ai.runReportingStatus(alias, cachedInput, gateway: .init(cacheTtl: 60))
        XCTAssertEqual([g1.status, g2.status], [.miss, .hit])
        XCTAssertEqual(g1.output, g2.output)
        XCTAssertEqual(remote.answered(200), okBefore + 1)

        // A busy local model: with no wait allowed, the request goes to the remote (which serves
        // the same model under its catalog id), and comes back local once the slot is free.
        let localAnswer = try await local.run(TestModel.id, colorsInput)
        let idle = try await ai.route(TestModel.id)
        XCTAssertEqual(idle, .local)
        let long = try await ai.stream(TestModel.id, AIInput(prompt: "Write a long story about the sea.", maxTokens: 400, temperature: 0))
        let consumer = Task { var n = 0; for try await _ in long { n += 1 }; return n }
        for _ in 0..<400 where ai.localLoad(TestModel.id)?.busy != 1 { try await Task.sleep(nanoseconds: 5_000_000) }
        XCTAssertEqual(ai.localLoad(TestModel.id)?.busy, 1)
        XCTAssertEqual(ai.localLoad(TestModel.id)?.slots, 1)
        let (busyOut, busyBackend) = try await ai.runRouted(TestModel.id, colorsInput)
        XCTAssertEqual(busyBackend, .remote)
        XCTAssertEqual(busyOut, localAnswer)
        // Waiting is bounded: with a 0.3 s bound and a long generation, still remote, after the wait.
        try ai.configureRemote(AI.RemoteBackend(url: base, token: key), policy: .init(maxLocalWait: 0.3))
        let t0 = Date()
        let waited = try await ai.route(TestModel.id)
        XCTAssertEqual(waited, .remote)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t0), 0.29)
        consumer.cancel()   // stop reading the long stream: its generation stops
        var freed = false
        for _ in 0..<400 where !freed {
            freed = ai.localLoad(TestModel.id)?.busy == 0
            if !freed { try await Task.sleep(nanoseconds: 10_000_000) }
        }
        XCTAssertTrue(freed, "the dropped stream's slot was not freed")
        let (freeOut, freeBackend) = try await ai.runRouted(TestModel.id, colorsInput)
        XCTAssertEqual(freeBackend, .local)
        XCTAssertEqual(freeOut, localAnswer)

        // Remote first; the remote is down (a closed port): fall back to the local model.
        let down = "http://127.0.0.1:\(try closedPort())"
        try ai.configureRemote(AI.RemoteBackend(url: down, timeout: 10), policy: .init(prefer: .remote))
        let first = try await ai.route(TestModel.id)
        XCTAssertEqual(first, .remote)
        let (fbOut, fbBackend) = try await ai.runRouted(TestModel.id, colorsInput)
        XCTAssertEqual(fbBackend, .local)
        XCTAssertEqual(fbOut, localAnswer)
        let (fbStream, fbsBackend) = try await ai.streamRouted(TestModel.id, colorsInput)
        XCTAssertEqual(fbsBackend, .local)
        let fbText = try await collect(fbStream).map(\.response).joined()
        XCTAssertEqual(fbText, colorsText)
        // No local model to fall back to: the network error, as 3001.
        await expectAIError(3001, "unreachable") { _ = try await ai.run(alias, colorsInput) }
        await expectAIError(3001, "unreachable") { _ = try await ai.stream(alias, colorsInput) }
        // A remote that accepts the connection and never answers: 3007 after the timeout, local fallback.
        let silent = try silentListener()
        defer { close(silent.fd) }
        try ai.configureRemote(AI.RemoteBackend(url: "http://127.0.0.1:\(silent.port)", timeout: 0.5), policy: .init(prefer: .remote))
        let (toOut, toBackend) = try await ai.runRouted(TestModel.id, colorsInput)
        XCTAssertEqual(toBackend, .local)
        XCTAssertEqual(toOut, localAnswer)
        await expectAIError(3007, "timed out") { _ = try await ai.run(alias, colorsInput) }
        // Cancelling a call waiting on the remote: 3008 at once, no fallback.
        try ai.configureRemote(AI.RemoteBackend(url: "http://127.0.0.1:\(silent.port)", timeout: 30), policy: .init(prefer: .remote))
        for streaming in [false, true] {
            let t1 = Date()
            let pending = Task {
                if streaming { _ = try await ai.stream(TestModel.id, colorsInput) } else { _ = try await ai.run(TestModel.id, colorsInput) }
            }
            try await Task.sleep(nanoseconds: 200_000_000)
            pending.cancel()
            await expectAIError(3008) { try await pending.value }
            XCTAssertLessThan(Date().timeIntervalSince(t1), TimeBound.seconds(5), "streaming: \(streaming)")
        }
        // Fallback switched off: the error too.
        try ai.configureRemote(AI.RemoteBackend(url: down), policy: .init(prefer: .remote, fallbackToLocal: false))
        await expectAIError(3001, "unreachable") { _ = try await ai.run(TestModel.id, colorsInput) }
        // The remote lacks a model the client has: 5007 from the remote falls back too.
        try ai.configureRemote(AI.RemoteBackend(url: base, token: key), policy: .init(prefer: .remote))
        let ownID = "@cf/local/only-\(UUID().uuidString.prefix(8))"
        ai.register(ownID, path: modelPath)
        let (ownOut, ownBackend) = try await ai.runRouted(ownID, colorsInput)
        XCTAssertEqual(ownBackend, .local)
        XCTAssertEqual(ownOut, localAnswer)
        // Unconfigured again: local only.
        try ai.configureRemote(nil)
        XCTAssertNil(ai.remoteBackend)
        await expectAIError(5007) { _ = try await ai.run(alias, colorsInput) }
        await remote.stop()
    }

    /// Two worker processes: A serves the model (and an alias of it), B forwards what it does not
    /// have to A; C is pointed at a closed port.
    func testWorkersWithRemoteURL() async throws {
        let local = try TestModel.ai()
        let modelPath = try XCTUnwrap(local.models.first { $0.id == TestModel.id }?.path)
        let key = "k-\(UUID().uuidString)"
        let a = try WorkerProcess(["--register", "\(alias)=\(modelPath)", "--api-key", key])
        defer { a.stop() }
        try await a.ready()
        XCTAssertTrue(a.log.contains("registered \(alias)"), a.log)
        let b = try WorkerProcess(["--remote-wait", "0"], environment: ["EDGEAI_REMOTE_URL": "http://127.0.0.1:\(a.port)", "EDGEAI_REMOTE_TOKEN": key])
        defer { b.stop() }
        try await b.ready()
        XCTAssertTrue(b.log.contains("remote backend http://127.0.0.1:\(a.port)/ai/run/"), b.log)
        let auth = ["Authorization": "Bearer \(key)"]
        let path = "/ai/run/\(alias)"

        for stream in [false, true] {
            let body = #"{"messages":\#(colors),"max_tokens":12,"temperature":0,"stream":\#(stream)}"#
            let direct = try await call(a.port, "POST", path, headers: auth, body: body)
            let routed = try await call(b.port, "POST", path, body: body)
            XCTAssertEqual(direct.status, 200, direct.text)
            XCTAssertEqual(routed.status, 200, routed.text)
            XCTAssertEqual(routed.headers["x-edgeai-backend"], "remote")
            XCTAssertEqual(routed.headers["content-type"], direct.headers["content-type"])
            XCTAssertEqual(routed.body, direct.body, "stream: \(stream)")
            XCTAssertTrue(routed.text.contains(stream ? #"data: {"response":"Here"}"# : colorsText.replacingOccurrences(of: "\n", with: "\\n")), routed.text)
        }
        // The account form of the route, and the OpenAI dialect, go remote too.
        let account = try await call(b.port, "POST", "/accounts/acc/ai/run/\(alias)", body: #"{"prompt":"Hi","max_tokens":3,"temperature":0}"#)
        XCTAssertEqual(account.status, 200, account.text)
        XCTAssertEqual(account.headers["x-edgeai-backend"], "remote")
        let openAI = try await call(b.port, "POST", "/v1/chat/completions", body: #"{"model":"\#(alias)","messages":\#(colors),"max_tokens":12,"temperature":0}"#)
        XCTAssertEqual(openAI.status, 200, openAI.text)
        XCTAssertEqual(openAI.headers["x-edgeai-backend"], "remote")
        XCTAssertTrue(openAI.text.contains(#""content":"Here are three colors:\n\n- Red\n- Blue""#), openAI.text)
        // A stop sequence on a remote-only model: cut text, prompt_tokens from the remote's usage.
        let stopped = try await call(b.port, "POST", "/v1/chat/completions", body: #"{"model":"\#(alias)","messages":\#(colors),"max_tokens":12,"temperature":0,"stop":["- Bl"]}"#)
        XCTAssertEqual(stopped.status, 200, stopped.text)
        XCTAssertTrue(stopped.text.contains(#""content":"Here are three colors:\n\n- Red\n""#), stopped.text)
        XCTAssertTrue(stopped.text.contains(#""prompt_tokens":24"#), stopped.text)
        // B's own model runs locally.
        let own = try await call(b.port, "POST", "/ai/run/\(TestModel.id)", body: #"{"messages":\#(colors),"max_tokens":12,"temperature":0}"#)
        XCTAssertEqual(own.headers["x-edgeai-backend"], "local")
        let ownDirect = try await call(a.port, "POST", "/ai/run/\(TestModel.id)", headers: auth, body: #"{"messages":\#(colors),"max_tokens":12,"temperature":0}"#)
        XCTAssertEqual(own.body, ownDirect.body)

        // Errors: the remote's code, message and HTTP status.
        for (model, body, status, code) in [
            ("@cf/nope/none", #"{"prompt":"Hi"}"#, 400, 5007),
            (alias, #"{"prompt":"Hi","max_tokens":9000}"#, 413, 5021),
            (alias, #"{"prompt":"Hi","max_tokens":9000,"stream":true}"#, 413, 5021),
        ] {
            let direct = try await call(a.port, "POST", "/ai/run/\(model)", headers: auth, body: body)
            let routed = try await call(b.port, "POST", "/ai/run/\(model)", body: body)
            XCTAssertEqual(routed.status, status, routed.text)
            XCTAssertEqual(direct.status, status, direct.text)
            XCTAssertEqual(routed.body, direct.body)
            XCTAssertTrue(routed.text.contains(#""code":\#(code)"#), routed.text)
        }
        // A bad body: 5006 (refused by B itself, as A would).
        for body in ["{not json", #"{"prompt":"Hi","temperature":9}"#] {
            let routed = try await call(b.port, "POST", path, body: body)
            let direct = try await call(a.port, "POST", path, headers: auth, body: body)
            XCTAssertEqual(routed.status, 400, routed.text)
            XCTAssertEqual(routed.body, direct.body)
            XCTAssertTrue(routed.text.contains(#""code":5006"#), routed.text)
        }
        let metrics = try await call(b.port, "GET", "/metrics").text
        XCTAssertTrue(metrics.contains(#"edgeai_backend_generations_total{backend="remote"} 5"#), metrics)
        XCTAssertTrue(metrics.contains(#"edgeai_backend_generations_total{backend="local"} 1"#), metrics)

        // C: remote first, at a closed port; falls back to its local model, fails for the alias.
        let c = try WorkerProcess(["--remote-url", "http://127.0.0.1:\(try closedPort())", "--remote-token", "t", "--prefer", "remote"])
        defer { c.stop() }
        try await c.ready()
        for stream in [false, true] {
            let body = #"{"messages":\#(colors),"max_tokens":12,"temperature":0,"stream":\#(stream)}"#
            let fallback = try await call(c.port, "POST", "/ai/run/\(TestModel.id)", body: body)
            XCTAssertEqual(fallback.status, 200, fallback.text)
            XCTAssertEqual(fallback.headers["x-edgeai-backend"], "local")
            let fbDirect = try await call(a.port, "POST", "/ai/run/\(TestModel.id)", headers: auth, body: body)
            XCTAssertEqual(fallback.body, fbDirect.body)
            let failed = try await call(c.port, "POST", path, body: body)
            XCTAssertEqual(failed.status, 500, failed.text)
            XCTAssertTrue(failed.text.contains(#""code":3001"#) && failed.text.contains("unreachable"), failed.text)
        }

        // Flag errors end the worker with a message.
        for (args, message) in [(["--register", "x"], "ID=PATH"), (["--register", "id=/nonexistent.gguf"], "no model file"),
                                (["--remote-url", "nope"], "absolute http"), (["--prefer", "cloud"], "--prefer")] {
            let bad = try WorkerProcess(args)
            bad.process.waitUntilExit()
            XCTAssertNotEqual(bad.process.terminationStatus, 0, args.joined(separator: " "))
            for _ in 0..<100 where !bad.log.contains(message) { try await Task.sleep(nanoseconds: 20_000_000) }
            XCTAssertTrue(bad.log.contains(message), "\(args): \(bad.log)")
        }
        a.stop(); b.stop(); c.stop()
    }
}
