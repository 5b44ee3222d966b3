import Foundation
import Hummingbird
import XCTest
@testable import EdgeAI
@testable import WorkerApp

#if canImport(Glibc)
import Glibc
#endif

private func json(_ r: HTTPResult, file: StaticString = #filePath, line: UInt = #line) throws -> JSONValue {
    do { return try JSONParser.parse(r.body) } catch {
        XCTFail("not JSON (\(r.status)): \(r.text)", file: file, line: line)
        throw error
    }
}

private func string(_ v: JSONValue?) -> String? {
    if case .string(let s)? = v { return s }
    return nil
}

private func int(_ v: JSONValue?) -> Int? {
    if case .number(let d, _)? = v { return Int(d) }
    return nil
}

private func first(_ v: JSONValue?) -> JSONValue? {
    if case .array(let a)? = v { return a.first }
    return nil
}

/// The value of a metric line `name{labels} value` (nil when absent).
private func metric(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}

private let colors = #"[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"List three colors."}]"#
private let colorsText = "Here are three colors:\n\n- Red\n- Blue"

final class ServingTests: XCTestCase {
    func testOpenAIRoutes() async throws {
        let ai = try TestModel.ai()
        let w = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id))
        defer { Task { await w.stop() } }

        // Non-streaming: the same greedy text as the Workers AI route, in OpenAI's shape.
        let chat = try await w.call("POST", "/v1/chat/completions",
                                    body: #"{"model":"\#(TestModel.id)","messages":\#(colors),"max_tokens":12,"temperature":0}"#)
        XCTAssertEqual(chat.status, 200, chat.text)
        XCTAssertEqual(chat.headers["cf-aig-cache-status"], "MISS")
        let v = try json(chat)
        XCTAssertEqual(v.objectKeys, ["id", "object", "created", "model", "choices", "usage"])
        XCTAssertEqual(string(v["object"]), "chat.completion")
        XCTAssertTrue(string(v["id"])?.hasPrefix("chatcmpl-") ?? false)
        XCTAssertEqual(string(v["model"]), TestModel.id)
        let choice = try XCTUnwrap(first(v["choices"]))
        XCTAssertEqual(string(choice["message"]?["role"]), "assistant")
        XCTAssertEqual(string(choice["message"]?["content"]), colorsText)
        XCTAssertEqual(string(choice["finish_reason"]), "length")
        XCTAssertEqual(int(v["usage"]?["prompt_tokens"]), 24)
        XCTAssertEqual(int(v["usage"]?["completion_tokens"]), 12)
        XCTAssertEqual(int(v["usage"]?["total_tokens"]), 36)

        // max_completion_tokens, an end token before the limit: finish_reason "stop".
        let short = try await w.call("POST", "/v1/chat/completions",
                                     body: #"{"model":"\#(TestModel.id)","messages":[{"role":"user","content":"Say OK."}],"max_completion_tokens":40,"temperature":0,"n":1,"seed":7}"#)
        XCTAssertEqual(short.status, 200, short.text)
        let sv = try json(short)
        let shortTokens = try XCTUnwrap(int(sv["usage"]?["completion_tokens"]))
        XCTAssertLessThan(shortTokens, 40)
        XCTAssertEqual(string(first(sv["choices"])?["finish_reason"]), "stop")

        // Streaming: chat.completion.chunk events, role first, finish_reason and usage last, [DONE].
        let stream = try await w.call("POST", "/v1/chat/completions",
                                      body: #"{"model":"\#(TestModel.id)","messages":\#(colors),"max_tokens":12,"temperature":0,"stream":true}"#)
        XCTAssertEqual(stream.status, 200, stream.text)
        XCTAssertEqual(stream.headers["content-type"], "text/event-stream")
        let (chunks, done) = try parseSSE(stream.body)
        XCTAssertTrue(done)
        XCTAssertTrue(chunks.allSatisfy { string($0["object"]) == "chat.completion.chunk" })
        XCTAssertEqual(Set(chunks.compactMap { string($0["id"]) }).count, 1, "one id for all chunks")
        XCTAssertEqual(string(first(chunks.first?["choices"])?["delta"]?["role"]), "assistant")
        let streamed = chunks.compactMap { string(first($0["choices"])?["delta"]?["content"]) }.joined()
        XCTAssertEqual(streamed, colorsText)
        let last = try XCTUnwrap(chunks.last)
        XCTAssertEqual(string(first(last["choices"])?["finish_reason"]), "length")
        XCTAssertEqual(int(last["usage"]?["completion_tokens"]), 12)
        XCTAssertTrue(chunks.dropLast().allSatisfy { first($0["choices"])?["finish_reason"] == .null })

        // stream_options.include_usage: a last chunk without choices carries the usage.
        let withUsage = try await w.call("POST", "/v1/chat/completions",
                                         body: #"{"model":"\#(TestModel.id)","messages":\#(colors),"max_tokens":12,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}"#)
        let (uchunks, _) = try parseSSE(withUsage.body)
        XCTAssertEqual(uchunks.last?["choices"], .array([]))
        XCTAssertEqual(int(uchunks.last?["usage"]?["total_tokens"]), 36)
        XCTAssertNil(uchunks.dropLast().last?["usage"])

        // stop: the text ends before the stop sequence (also when it spans two tokens).
        for streamFlag in [false, true] {
            let r = try await w.call("POST", "/v1/chat/completions",
                                     body: #"{"model":"\#(TestModel.id)","messages":\#(colors),"max_tokens":12,"temperature":0,"stop":["- Bl","zzz"],"stream":\#(streamFlag)}"#)
            XCTAssertEqual(r.status, 200, r.text)
            let text: String
            let reason: String?
            if streamFlag {
                let (c, _) = try parseSSE(r.body)
                text = c.compactMap { string(first($0["choices"])?["delta"]?["content"]) }.joined()
                reason = string(first(c.last?["choices"])?["finish_reason"])
            } else {
                let rv = try json(r)
                text = string(first(rv["choices"])?["message"]?["content"]) ?? ""
                reason = string(first(rv["choices"])?["finish_reason"])
            }
            XCTAssertEqual(text, "Here are three colors:\n\n- Red\n", "stream: \(streamFlag)")
            XCTAssertEqual(reason, "stop")
        }

        // /v1/completions: raw text completion.
        let completion = try await w.call("POST", "/v1/completions",
                                          body: #"{"model":"\#(TestModel.id)","prompt":"The capital of France is","max_tokens":4,"temperature":0}"#)
        XCTAssertEqual(completion.status, 200, completion.text)
        let cv = try json(completion)
        XCTAssertEqual(string(cv["object"]), "text_completion")
        XCTAssertFalse(string(first(cv["choices"])?["text"])?.isEmpty ?? true)
        XCTAssertEqual(int(cv["usage"]?["completion_tokens"]), 4)

        // Models.
        let models = try await w.call("GET", "/v1/models")
        XCTAssertEqual(models.status, 200)
        let mv = try json(models)
        XCTAssertEqual(string(mv["object"]), "list")
        guard case .array(let list)? = mv["data"] else { return XCTFail(models.text) }
        XCTAssertTrue(list.contains { string($0["id"]) == TestModel.id && string($0["object"]) == "model" })
        let one = try await w.call("GET", "/v1/models/\(TestModel.id)")
        XCTAssertEqual(string(try json(one)["id"]), TestModel.id)
        let accounts = try await w.call("GET", "/accounts/abc/ai/v1/models")
        XCTAssertEqual(accounts.status, 200)

        // Errors in OpenAI's envelope.
        func expectError(_ body: String, _ status: Int, code: String, param: String? = nil, line: UInt = #line) async throws {
            let r = try await w.call("POST", "/v1/chat/completions", body: body)
            XCTAssertEqual(r.status, status, r.text, line: line)
            let e = try json(r)
            XCTAssertEqual(e.objectKeys, ["error"], line: line)
            XCTAssertEqual(e["error"]?.objectKeys, ["message", "type", "param", "code"], line: line)
            XCTAssertEqual(string(e["error"]?["code"]), code, r.text, line: line)
            if let param { XCTAssertEqual(string(e["error"]?["param"]), param, line: line) }
            XCTAssertFalse(string(e["error"]?["message"])?.isEmpty ?? true, line: line)
        }
        try await expectError(#"{"model":"\#(TestModel.id)","messages":\#(colors),"n":2}"#, 400, code: "unsupported_parameter", param: "n")
        try await expectError(#"{"model":"@cf/nope/none","messages":\#(colors)}"#, 404, code: "model_not_found", param: "model")
        try await expectError(#"{"messages":\#(colors)}"#, 400, code: "missing_required_parameter", param: "model")
        try await expectError(#"{"model":"\#(TestModel.id)","messages":[]}"#, 400, code: "empty_array", param: "messages")
        try await expectError("{not json", 400, code: "invalid_json")
        try await expectError(#"{"model":"\#(TestModel.id)","messages":\#(colors),"temperature":9}"#, 400, code: "invalid_request")
        try await expectError(#"{"model":"\#(TestModel.id)","messages":\#(colors),"max_tokens":9000}"#, 400, code: "context_length_exceeded")
        try await expectError(#"{"model":"\#(TestModel.id)","messages":\#(colors),"tools":[{"type":"function"}]}"#, 400, code: "invalid_value", param: "tools")
        try await expectError(#"{"model":"\#(TestModel.id)","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}"#, 400, code: "unsupported_content")
        await w.stop()
    }

    func testRequestMapping() throws {
        let r = try OpenAIRequest(kind: .chat, json: Array(#"""
            {"model":"m","messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}]}],
             "max_tokens":5,"max_completion_tokens":7,"temperature":0.5,"top_p":0.9,"seed":42,"frequency_penalty":0.5,"presence_penalty":-0.5,
             "stop":"END","user":"u1","logprobs":false,"response_format":{"type":"text"}}
            """#.utf8))
        XCTAssertEqual(r.model, "m")
        XCTAssertEqual(r.input.messages, [.system("Be brief."), .user("Hi there")])
        XCTAssertEqual(r.input.maxTokens, 7)
        XCTAssertEqual(r.input.temperature, 0.5)
        XCTAssertEqual(r.input.topP, 0.9)
        XCTAssertEqual(r.input.seed, 42)
        XCTAssertEqual(r.input.frequencyPenalty, 0.5)
        XCTAssertEqual(r.input.presencePenalty, -0.5)
        XCTAssertEqual(r.stop, ["END"])
        XCTAssertFalse(r.stream)
        XCTAssertThrowsError(try OpenAIRequest(kind: .chat, json: Array(#"{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}"#.utf8)))
        XCTAssertThrowsError(try OpenAIRequest(kind: .chat, json: Array(#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}"#.utf8)))
        // tools, tool_choice and response_format go through the Workers AI parser and its rules
        let t = try OpenAIRequest(kind: .chat, json: Array(#"""
            {"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}
            """#.utf8))
        XCTAssertEqual(t.input.tools?.map(\.name), ["f"])
        XCTAssertEqual(t.input.toolChoice, .function("f"))
        let j = try OpenAIRequest(kind: .chat, json: Array(#"{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}"#.utf8))
        XCTAssertEqual(j.input.responseFormat?.type, .jsonObject)
        for (body, param, words) in [
            (#""tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}"#, "tools", "names the function 'g'"),
            (#""tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]"#, "tools", "repeats the tool name 'f'"),
            (#""tools":{"name":"f"}"#, "tools", "Type mismatch of '/tools'"),
            (#""response_format":{"type":"json_schema"}"#, "response_format", "json_schema"),
        ] {
            XCTAssertThrowsError(try OpenAIRequest(kind: .chat, json: Array((#"{"model":"m","messages":[{"role":"user","content":"x"}],"# + body + "}").utf8))) { e in
                let err = e as? OpenAIError
                XCTAssertEqual(err?.status, 400, body)
                XCTAssertEqual(err?.param, param, body)
                XCTAssertTrue(err?.message.contains(words) == true, "\(body): \(String(describing: err?.message))")
            }
        }
        let c = try OpenAIRequest(kind: .completion, json: Array(#"{"model":"m","prompt":["Once"],"max_tokens":3}"#.utf8))
        XCTAssertEqual(c.input.prompt, "Once")
        XCTAssertEqual(c.input.raw, true)

        // The stop filter holds back a possible start of a stop sequence and cuts at the first one.
        var f = StopSequenceFilter(["</s>", "STOP"])
        XCTAssertEqual(f.feed("Hello <"), "Hello ")
        XCTAssertEqual(f.feed("/"), "")
        XCTAssertEqual(f.feed("x> ST"), "</x> ")
        XCTAssertEqual(f.feed("OP and more"), "")
        XCTAssertTrue(f.stopped)
        XCTAssertEqual(f.feed("later"), "")
        var g = StopSequenceFilter(["ab"])
        XCTAssertEqual(g.feed("xa"), "x")
        XCTAssertEqual(g.flush(), "a")
        var u = StopSequenceFilter(["é!"])
        XCTAssertEqual(u.feed("café"), "caf")
        XCTAssertEqual(u.feed("?"), "é?")
    }

    func testGatewayHeadersOverHTTP() async throws {
        let ai = try TestModel.ai()
        let w = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id))
        defer { Task { await w.stop() } }
        let tag = UUID().uuidString.prefix(6)
        let body = #"{"messages":[{"role":"user","content":"Pick a number. \#(tag)"}],"max_tokens":8,"temperature":1}"#
        let path = "/ai/run/\(TestModel.id)"
        let ttl = ["cf-aig-cache-ttl": "60"]

        // Without a TTL (the worker's default is 0) nothing is cached.
        let plain = try await w.call("POST", path, body: body)
        XCTAssertEqual(plain.headers["cf-aig-cache-status"], "MISS")
        let generated0 = w.state.metrics.generations
        let a = try await w.call("POST", path, headers: ttl, body: body)
        let b = try await w.call("POST", path, headers: ttl, body: body)
        XCTAssertEqual(a.status, 200, a.text)
        XCTAssertEqual(a.headers["cf-aig-cache-status"], "MISS")
        XCTAssertEqual(b.headers["cf-aig-cache-status"], "HIT")
        XCTAssertEqual(a.body, b.body)
        XCTAssertEqual(w.state.metrics.generations, generated0 + 1, "the hit generated again")
        // cf-aig-skip-cache: computed again.
        let skipped = try await w.call("POST", path, headers: ttl.merging(["cf-aig-skip-cache": "true"]) { $1 }, body: body)
        XCTAssertEqual(skipped.headers["cf-aig-cache-status"], "MISS")
        XCTAssertEqual(w.state.metrics.generations, generated0 + 2)
        // cf-aig-cache-key: a different body under the same key is a hit with the first bytes.
        let keyed = ["cf-aig-cache-ttl": "60", "cf-aig-cache-key": "k-\(tag)"]
        let k1 = try await w.call("POST", path, headers: keyed, body: body)
        let k2 = try await w.call("POST", path, headers: keyed, body: #"{"prompt":"something else","max_tokens":3}"#)
        XCTAssertEqual([k1.headers["cf-aig-cache-status"], k2.headers["cf-aig-cache-status"]], ["MISS", "HIT"])
        XCTAssertEqual(k1.body, k2.body)
        // TTL expiry (1 s).
        let short = ["cf-aig-cache-ttl": "1"]
        let sbody = #"{"prompt":"Count: \#(tag)","max_tokens":3,"temperature":0}"#
        _ = try await w.call("POST", path, headers: short, body: sbody)
        do { let v1 = try await w.call("POST", path, headers: short, body: sbody).headers["cf-aig-cache-status"]; XCTAssertEqual(v1, "HIT") }
        try await Task.sleep(nanoseconds: 1_100_000_000)
        do { let v2 = try await w.call("POST", path, headers: short, body: sbody).headers["cf-aig-cache-status"]; XCTAssertEqual(v2, "MISS") }
        // A bad header is a 5006.
        let bad = try await w.call("POST", path, headers: ["cf-aig-cache-ttl": "soon"], body: body)
        XCTAssertEqual(bad.status, 400)
        XCTAssertTrue(bad.text.contains("cf-aig-cache-ttl"), bad.text)

        // Streams replay the same events.
        let sreq = #"{"messages":[{"role":"user","content":"Tell a joke. \#(tag)"}],"max_tokens":8,"temperature":1,"stream":true}"#
        let s1 = try await w.call("POST", path, headers: ttl, body: sreq)
        let s2 = try await w.call("POST", path, headers: ttl, body: sreq)
        XCTAssertEqual([s1.headers["cf-aig-cache-status"], s2.headers["cf-aig-cache-status"]], ["MISS", "HIT"])
        XCTAssertEqual(s2.headers["content-type"], "text/event-stream")
        XCTAssertEqual(s1.body, s2.body)
        XCTAssertTrue(try parseSSE(s2.body).done)

        // The OpenAI route: the same bytes (id and created included) on a hit, streams too.
        for stream in [false, true] {
            let oreq = #"{"model":"\#(TestModel.id)","messages":[{"role":"user","content":"Hello \#(tag)"}],"max_tokens":6,"temperature":1,"stream":\#(stream)}"#
            let o1 = try await w.call("POST", "/v1/chat/completions", headers: ttl, body: oreq)
            let o2 = try await w.call("POST", "/v1/chat/completions", headers: ttl, body: oreq)
            XCTAssertEqual([o1.headers["cf-aig-cache-status"], o2.headers["cf-aig-cache-status"]], ["MISS", "HIT"])
            XCTAssertEqual(o1.body, o2.body)
        }

        // Identical requests in flight together: computed once, the same bytes to both.
        let before = w.state.metrics.generations
        let dreq = #"{"messages":[{"role":"user","content":"Write a haiku. \#(tag)"}],"max_tokens":24,"temperature":1}"#
        async let d1 = w.call("POST", path, headers: ttl, body: dreq)
        async let d2 = w.call("POST", path, headers: ttl, body: dreq)
        let (r1, r2) = try await (d1, d2)
        XCTAssertEqual(r1.status, 200)
        XCTAssertEqual(r1.body, r2.body)
        XCTAssertEqual(Set([r1.headers["cf-aig-cache-status"], r2.headers["cf-aig-cache-status"]]), ["MISS", "HIT"])
        XCTAssertEqual(w.state.metrics.generations, before + 1)
        await w.stop()
    }

    func testHealthMetricsAndAuth() async throws {
        let ai = try TestModel.ai()
        let state = WorkerState()
        let key = "sekret-\(UUID().uuidString)"
        let w = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id, apiKey: key), state: state)
        defer { Task { await w.stop() } }
        let auth = ["Authorization": "Bearer \(key)"]

        // Health needs no key; 503 until the model is loaded.
        let loading = try await w.call("GET", "/health")
        XCTAssertEqual(loading.status, 503)
        XCTAssertEqual(loading.text, #"{"status":"loading"}"#)
        try await state.load(ai: ai, model: TestModel.id)
        let ok = try await w.call("GET", "/health")
        XCTAssertEqual(ok.status, 200)
        XCTAssertEqual(ok.text, #"{"status":"ok"}"#)

        // Everything else needs the key.
        let noKey = try await w.call("POST", "/ai/run/\(TestModel.id)", body: #"{"prompt":"Hi","max_tokens":2}"#)
        XCTAssertEqual(noKey.status, 401)
        XCTAssertEqual(noKey.text, #"{"result":null,"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[]}"#)
        let wrongKey = try await w.call("GET", "/v1/models", headers: ["Authorization": "Bearer \(key)x"])
        XCTAssertEqual(wrongKey.status, 401)
        XCTAssertEqual(string(try json(wrongKey)["error"]?["code"]), "invalid_api_key")
        for (method, path) in [("GET", "/metrics"), ("POST", "/"), ("GET", "/v1/models")] {
            let r = try await w.call(method, path, headers: ["Authorization": "Basic \(key)"], body: method == "POST" ? #"{"prompt":"Hi"}"# : nil)
            XCTAssertEqual(r.status, 401, path)
        }
        let withKey = try await w.call("POST", "/ai/run/\(TestModel.id)", headers: auth, body: #"{"prompt":"Hi","max_tokens":2}"#)
        XCTAssertEqual(withKey.status, 200, withKey.text)
        let models = try await w.call("GET", "/v1/models", headers: auth)
        XCTAssertEqual(models.status, 200)

        // A cached pair for the cache counters.
        let body = #"{"prompt":"Metrics \#(UUID().uuidString.prefix(6))","max_tokens":3}"#
        for _ in 0..<2 { _ = try await w.call("POST", "/ai/run/\(TestModel.id)", headers: auth.merging(["cf-aig-cache-ttl": "60"]) { $1 }, body: body) }

        let m = try await w.call("GET", "/metrics", headers: auth)
        XCTAssertEqual(m.status, 200)
        XCTAssertTrue(m.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") ?? false)
        let text = m.text
        let model = "model=\"\(TestModel.id)\""
        XCTAssertEqual(metric(text, "edgeai_requests_total{route=\"/ai/run/{model}\",status=\"200\"}"), 3, text)
        XCTAssertEqual(metric(text, "edgeai_requests_total{route=\"/ai/run/{model}\",status=\"401\"}"), 1, text)
        XCTAssertEqual(metric(text, "edgeai_requests_total{route=\"/health\",status=\"503\"}"), 1, text)
        XCTAssertEqual(metric(text, "edgeai_generations_total{\(model)}"), 2, text)
        XCTAssertGreaterThanOrEqual(metric(text, "edgeai_generated_tokens_total{\(model)}") ?? 0, 2)
        XCTAssertGreaterThan(metric(text, "edgeai_prompt_tokens_total{\(model)}") ?? 0, 0)
        XCTAssertNotNil(metric(text, "edgeai_generation_seconds_total{\(model)}"))
        XCTAssertEqual(metric(text, "edgeai_busy_slots"), 0)
        XCTAssertEqual(metric(text, "edgeai_queue_depth"), 0)
        XCTAssertEqual(metric(text, "edgeai_model_loaded{\(model)}"), 1)
        XCTAssertGreaterThanOrEqual(metric(text, "edgeai_cache_hits_total") ?? 0, 1)
        XCTAssertGreaterThanOrEqual(metric(text, "edgeai_cache_misses_total") ?? 0, 1)
        XCTAssertNotNil(metric(text, "edgeai_cache_bytes"))
        XCTAssertTrue(text.contains("# TYPE edgeai_requests_total counter"))
        // Every sample line is `name{labels} number` or `name number`.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let value = line.split(separator: " ").last.map(String.init) ?? ""
            XCTAssertNotNil(Double(value), String(line))
        }
        await w.stop()
    }

    func testBusySlotsWhileGenerating() async throws {
        let ai = try TestModel.ai()
        // Loaded first: the polls below must see the generations, not the load (the weights are
        // copied at load, which can take longer than the polling on a busy machine).
        try await ai.preload(TestModel.id)
        let w = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id))
        defer { Task { await w.stop() } }
        // Three generations at once on one model of the default 8 slots: all run, none waits.
        let bodies = (0..<3).map { #"{"prompt":"Story \#($0) \#(UUID().uuidString.prefix(4))","max_tokens":48}"# }
        let calls = bodies.map { b in Task { try await w.call("POST", "/ai/run/\(TestModel.id)", body: b) } }
        var busy = 0.0, queued = 0.0
        for _ in 0..<100 {
            let text = try await w.call("GET", "/metrics").text
            busy = max(busy, metric(text, "edgeai_busy_slots") ?? 0)
            queued = max(queued, metric(text, "edgeai_queue_depth") ?? 0)
            if busy >= 2 { break }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        for c in calls { let v3 = try await c.value.status; XCTAssertEqual(v3, 200) }
        XCTAssertGreaterThanOrEqual(busy, 1)
        XCTAssertLessThanOrEqual(busy, 3)
        // (requests submitted during a step wait for its end before they are admitted, so a
        // short queue depth may be seen even with free slots)
        XCTAssertLessThanOrEqual(queued, 3)
        let slotsText = try await w.call("GET", "/metrics").text
        XCTAssertEqual(metric(slotsText, "edgeai_slots"), 8)
        let after = try await w.call("GET", "/metrics").text
        XCTAssertEqual(metric(after, "edgeai_busy_slots"), 0)
        XCTAssertEqual(metric(after, "edgeai_queue_depth"), 0)
        await w.stop()
    }
}
