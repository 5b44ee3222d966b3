import Foundation
import XCTest
@testable import EdgeAI
import Tokenizer

/// End-to-end behaviour on the real SmolLM2-135M-Instruct Q8_0 model.
final class GenerationTests: XCTestCase {
    let model = TestModel.id

    func testGreedyMatchesLlamaCppThroughTheChatTemplate() async throws {
        let ai = try TestModel.ai()
        XCTAssertEqual(GreedyCase.all.count, 3, "fixture Tests/Fixtures/api/smollm2-q8_0-greedy.json missing")
        for c in GreedyCase.all {
            // messages → template → the very ids llama.cpp tokenized
            let input = AIInput(messages: c.messages, maxTokens: 32, temperature: 0)
            let ids = try await ai.promptTokens(model, input)
            XCTAssertEqual(ids, c.prompt_ids)
            let out = try await ai.run(model, input)
            // llama.cpp's reference ignores end tokens; we stop at the first one.
            let end = c.greedy_ids.firstIndex(where: { $0 == 2 })
            if let end {
                XCTAssertEqual(out.usage.completionTokens, end + 1, "the end token counts as generated")
                XCTAssertTrue(c.greedy_text.hasPrefix(out.response))
                XCTAssertFalse(out.response.contains("<|im_end|>"))
            } else {
                XCTAssertEqual(out.response, c.greedy_text)
                XCTAssertEqual(out.usage.completionTokens, 32)
            }
            XCTAssertEqual(out.usage.promptTokens, c.prompt_ids.count)
            XCTAssertEqual(out.usage.totalTokens, c.prompt_ids.count + out.usage.completionTokens)
        }
    }

    func testRawPromptParsesSpecialTokens() async throws {
        let ai = try TestModel.ai()
        let c = try XCTUnwrap(GreedyCase.all.first)
        let input = AIInput(prompt: c.prompt, raw: true, maxTokens: 32, temperature: 0)
        let ids = try await ai.promptTokens(model, input)
        XCTAssertEqual(ids, c.prompt_ids)
        let out = try await ai.run(model, input)
        XCTAssertEqual(out.response, c.greedy_text)
    }

    func testBarePromptIsOneUserMessage() async throws {
        let ai = try TestModel.ai()
        let bare = try await ai.promptTokens(model, AIInput(prompt: "Hello"))
        let asMessages = try await ai.promptTokens(model, AIInput(messages: [.user("Hello")]))
        XCTAssertEqual(bare, asMessages)
        let e = try await ai.engine(model)
        let text = e.tokenizer.decode(bare)
        XCTAssertTrue(text.hasSuffix("<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"), text)
    }

    func testStopsAtEndTokenWithoutPrintingIt() async throws {
        let ai = try TestModel.ai()
        // "List three colors." — llama.cpp's greedy continuation has <|im_end|> (id 2) at index 21.
        let c = try XCTUnwrap(GreedyCase.all.first(where: { $0.prompt.contains("List three colors.") }))
        let end = try XCTUnwrap(c.greedy_ids.firstIndex(of: 2))
        let out = try await ai.run(model, AIInput(messages: c.messages, maxTokens: 200, temperature: 0))
        XCTAssertEqual(out.usage.completionTokens, end + 1)
        XCTAssertEqual(out.response, "Here are three colors:\n\n- Red\n- Blue\n- Green\n- Yellow\n- White")
    }

    func testMaxTokens() async throws {
        let ai = try TestModel.ai()
        let c = try XCTUnwrap(GreedyCase.all.first)
        for n in [1, 5] {
            let out = try await ai.run(model, AIInput(messages: c.messages, maxTokens: n, temperature: 0))
            XCTAssertEqual(out.usage.completionTokens, n)
            let e = try await ai.engine(model)
            XCTAssertEqual(out.response, e.tokenizer.decode(Array(c.greedy_ids.prefix(n))))
        }
    }

    func testSeededSamplingIsReproducible() async throws {
        let ai = try TestModel.ai()
        let input = AIInput(prompt: "Write a short poem about the sea.", maxTokens: 24, temperature: 1.0, seed: 42)
        let a = try await ai.run(model, input)
        let b = try await ai.run(model, input)
        XCTAssertEqual(a.response, b.response)
        XCTAssertEqual(a.stats?.seed, 42)
        var other = input
        other.seed = 4242
        let c = try await ai.run(model, other)
        XCTAssertNotEqual(a.response, c.response)
        // With every stage on.
        let full = AIInput(prompt: "Name a fruit.", maxTokens: 16, temperature: 0.8, topP: 0.9, topK: 40, seed: 7,
                           repetitionPenalty: 1.2, frequencyPenalty: 0.3, presencePenalty: 0.2)
        let f1 = try await ai.run(model, full)
        let f2 = try await ai.run(model, full)
        XCTAssertEqual(f1.response, f2.response)
    }

    func testNoSeedPicksDifferentSeeds() async throws {
        let ai = try TestModel.ai()
        let input = AIInput(prompt: "Hi", maxTokens: 1, temperature: 1)
        let a = try await ai.run(model, input)
        let b = try await ai.run(model, input)
        XCTAssertNotEqual(a.stats?.seed, b.stats?.seed)
    }

    func testStreamingChunksConcatenateToTheAnswer() async throws {
        let ai = try TestModel.ai()
        let input = AIInput(prompt: "Explain the edge to me using only emojis?", maxTokens: 40, temperature: 0)
        let whole = try await ai.run(model, input)
        var pieces: [String] = []
        var usage: AIUsage? = nil
        for try await chunk in try await ai.stream(model, input) {
            XCTAssertNil(usage, "nothing may follow the usage chunk")
            if let u = chunk.usage {
                XCTAssertEqual(chunk.response, "")
                usage = u
            } else {
                XCTAssertFalse(chunk.response.isEmpty)
                pieces.append(chunk.response)
            }
        }
        XCTAssertEqual(pieces.joined(), whole.response)
        XCTAssertEqual(usage, whole.usage)
        XCTAssertGreaterThan(pieces.count, 1)
    }

    func testJSONEntryPoint() async throws {
        let ai = try TestModel.ai()
        let body = #"{"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"List three colors."}],"max_tokens":12,"temperature":0}"#
        let bytes = try await ai.run(model, json: Array(body.utf8))
        let v = try JSONParser.parse(bytes)
        XCTAssertEqual(v.objectKeys, ["response", "usage"])
        guard case .string(let text)? = v["response"], let usage = v["usage"] else { return XCTFail("shape \(v)") }
        XCTAssertEqual(text, "Here are three colors:\n\n- Red\n- Blue")
        XCTAssertEqual(usage.objectKeys, ["prompt_tokens", "completion_tokens", "total_tokens"])
        XCTAssertEqual(usage["prompt_tokens"], .number(24, literal: "24"))
        XCTAssertEqual(usage["completion_tokens"], .number(12, literal: "12"))
        XCTAssertEqual(usage["total_tokens"], .number(36, literal: "36"))
        // The exact bytes: no spaces, keys in Workers AI's order.
        XCTAssertEqual(String(decoding: bytes, as: UTF8.self),
                       #"{"response":"Here are three colors:\n\n- Red\n- Blue","usage":{"prompt_tokens":24,"completion_tokens":12,"total_tokens":36}}"#)

        // stream: true → SSE bytes with the same text.
        let streamBody = body.replacingOccurrences(of: #""temperature":0"#, with: #""temperature":0,"stream":true"#)
        let sse = try await ai.run(model, json: Array(streamBody.utf8))
        let (chunks, done) = try parseSSE(sse)
        XCTAssertTrue(done)
        var joined = ""
        for (n, c) in chunks.enumerated() {
            guard case .string(let piece)? = c["response"] else { return XCTFail("chunk \(c)") }
            joined += piece
            if n == chunks.count - 1 {
                XCTAssertEqual(c.objectKeys, ["response", "usage"])
                XCTAssertEqual(piece, "")
                XCTAssertEqual(c["usage"], usage)
            } else {
                XCTAssertEqual(c.objectKeys, ["response"])
            }
        }
        XCTAssertEqual(joined, text)
    }

    func testErrorsComeBeforeCompute() async throws {
        let ai = try TestModel.ai()
        do {
            _ = try await ai.run("@cf/meta/llama-2-7b-chat-int8", AIInput(prompt: "x"))
            XCTFail("unknown model accepted")
        } catch let e as AIError {
            XCTAssertEqual(e, AIError(code: 5007, message: "No such model @cf/meta/llama-2-7b-chat-int8 or task"))
        }
        let input = AIInput(prompt: "Hello", maxTokens: 8192)
        let n = try await ai.promptTokens(model, input).count
        let window = try await ai.contextWindow(of: model)
        XCTAssertEqual(window, 8192)
        do {
            _ = try await ai.run(model, input)
            XCTFail("context overflow accepted")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 5021)
            XCTAssertEqual(e.message, "The estimated number of input and maximum output tokens (\(n + 8192)) exceeded this model context window limit (8192).")
        }
        do {
            _ = try await ai.stream(model, input)
            XCTFail("context overflow accepted by stream")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 5021)
        }
        // exactly at the limit is fine (checked without generating that much: the error comes first)
        let fits = AIInput(prompt: "Hello", maxTokens: 8192 - n)
        let stream = try await ai.stream(model, fits)
        for try await _ in stream { break }
        do {
            _ = try await ai.run(model, AIInput(prompt: "x", temperature: 7))
            XCTFail("invalid input accepted")
        } catch let e as AIError {
            XCTAssertEqual(e.description, "5006: Value of '/temperature' out of range: 7 not in [0, 5]")
        }
    }

    func testRegisterAnyIDForAFile() async throws {
        let ai = try TestModel.ai()
        let path = try XCTUnwrap(ai.models.first(where: { $0.id == model })?.path)
        let local = try AI(catalog: nil, modelsDirectory: "/nonexistent")
        local.register("@cf/meta/llama-2-7b-chat-int8", path: path, contextWindow: 2048)
        let out = try await local.run("@cf/meta/llama-2-7b-chat-int8", AIInput(prompt: "Hi", maxTokens: 3, temperature: 0))
        XCTAssertEqual(out.usage.completionTokens, 3)
        let window = try await local.contextWindow(of: "@cf/meta/llama-2-7b-chat-int8")
        XCTAssertEqual(window, 2048)
        // Another id for the same file and settings (reached through a symbolic link) shares the
        // engine: one copy of the weights, one scheduler, counted once in the loads.
        let link = FileManager.default.temporaryDirectory.appendingPathComponent("edgeai-link-\(getpid()).gguf").path
        try? FileManager.default.removeItem(atPath: link)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: path)
        defer { try? FileManager.default.removeItem(atPath: link) }
        local.register("alias", path: link, contextWindow: 2048)
        local.register("other-window", path: path, contextWindow: 1024)
        let first = try await local.engine("@cf/meta/llama-2-7b-chat-int8")
        let alias = try await local.engine("alias"), other = try await local.engine("other-window")
        XCTAssertTrue(first === alias)
        XCTAssertFalse(first === other)
        XCTAssertEqual(local.engineLoads.count, 2)
        // The file's first registration, found through the link (what `worker --model PATH` copies
        // the settings from).
        XCTAssertEqual(local.model(forFile: link)?.id, "@cf/meta/llama-2-7b-chat-int8")
        XCTAssertEqual(local.model(forFile: link)?.contextWindow, 2048)
        XCTAssertNil(local.model(forFile: "/nonexistent/other.gguf"))
        local.register("missing", path: "/nonexistent/model.gguf")
        do {
            _ = try await local.run("missing", AIInput(prompt: "Hi"))
            XCTFail("missing file accepted")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 3001)
            XCTAssertTrue(e.message.contains("/nonexistent/model.gguf"), e.message)
        }
    }
}

/// Cancellation, concurrency and multi-turn cache reuse.
final class ConcurrencyTests: XCTestCase {
    let model = TestModel.id

    func testCancellingRunStopsWithin3008() async throws {
        let ai = try TestModel.ai()
        try await ai.preload(model)
        let input = AIInput(prompt: "Tell me a very long story about a dragon.", maxTokens: 2000, temperature: 0.7, seed: 1)
        let model = self.model
        let task = Task { try await ai.run(model, input) }
        try await Task.sleep(nanoseconds: 300_000_000)
        let cancelledAt = Date()
        task.cancel()
        do {
            let out = try await task.value
            XCTFail("finished despite cancellation: \(out.usage)")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 3008)
            XCTAssertEqual(e.description, "3008: Request was aborted")
        }
        // One token of a 135M model takes milliseconds; allow generous slack for a loaded machine.
        XCTAssertLessThan(Date().timeIntervalSince(cancelledAt), TimeBound.seconds(0.5))
        // The model is free again and answers normally.
        let after = try await ai.run(model, AIInput(prompt: "Hi", maxTokens: 2, temperature: 0))
        XCTAssertEqual(after.usage.completionTokens, 2)
    }

    func testAlreadyCancelledTaskIsAborted() async throws {
        let ai = try TestModel.ai()
        try await ai.preload(model)
        let model = self.model
        let task = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await ai.run(model, AIInput(prompt: "Hi", maxTokens: 50))
        }
        do {
            _ = try await task.value
            XCTFail("ran despite cancellation")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 3008)
        }
    }

    func testStoppingAStreamStopsGeneration() async throws {
        let ai = try TestModel.ai()
        let input = AIInput(prompt: "Count from one to one thousand in words.", maxTokens: 1000, temperature: 0)
        let stream = try await ai.stream(model, input)
        var got = 0
        for try await chunk in stream {
            if !chunk.response.isEmpty { got += 1 }
            if got == 3 { break }
        }
        // The abandoned request must not hold the model for its 1000 tokens.
        let start = Date()
        let next = try await ai.run(model, AIInput(prompt: "Hi", maxTokens: 2, temperature: 0))
        XCTAssertEqual(next.usage.completionTokens, 2)
        XCTAssertLessThan(Date().timeIntervalSince(start), TimeBound.seconds(2.0))
    }

    func testConcurrentGreedyRequestsMatchSequentialOnes() async throws {
        let ai = try TestModel.ai()
        let prompts = ["What is 2+2?", "Name a color.", "Say hello in French.", "What is the capital of Italy?",
                       "Give me a fruit.", "What is water made of?", "Name a planet.", "Say something kind."]
        let inputs = prompts.map { AIInput(prompt: $0, maxTokens: 16, temperature: 0) }
        var sequential: [String] = []
        for input in inputs { sequential.append(try await ai.run(model, input).response) }
        let concurrent = try await withThrowingTaskGroup(of: (Int, String).self) { group in
            for (i, input) in inputs.enumerated() {
                group.addTask { (i, try await ai.run(TestModel.id, input).response) }
            }
            var out = [String](repeating: "", count: inputs.count)
            for try await (i, text) in group { out[i] = text }
            return out
        }
        XCTAssertEqual(concurrent, sequential)
        XCTAssertEqual(Set(sequential).count, prompts.count, "different prompts should give different answers")
    }

    func testPrefixReuseGivesIdenticalOutput() async throws {
        let ai = try TestModel.ai()
        let system = AIMessage.system("You are a helpful assistant.")
        var conversation = [system, AIMessage.user("What is edge computing? Answer in one sentence.")]
        var reused: [Int] = [], prompt: [Int] = [], completion: [Int] = []
        var withReuse: [String] = []
        try await ai.clearCache(model)
        for turn in 0..<3 {
            let out = try await ai.run(model, AIInput(messages: conversation, maxTokens: 24, temperature: 0))
            reused.append(out.stats?.reusedPromptTokens ?? -1)
            prompt.append(out.usage.promptTokens)
            completion.append(out.usage.completionTokens)
            withReuse.append(out.response)
            conversation.append(.assistant(out.response))
            conversation.append(.user(["Give an example.", "Why does it matter?", "Thanks!"][turn]))
        }
        XCTAssertEqual(reused[0], 0)
        // The cache keeps the generated tokens: the next turn reuses the whole previous prompt and
        // every decoded answer token (all but the last sampled one, an end token or the one at
        // max_tokens, which was never evaluated), so it prefills only the new user turn.
        for turn in 1..<3 {
            print("prefix reuse: turn \(turn + 1): prompt \(prompt[turn]) tokens, reused \(reused[turn]), prefilled \(prompt[turn] - reused[turn]) (previous turn: prompt \(prompt[turn - 1]) + \(completion[turn - 1]) generated)")
            XCTAssertGreaterThanOrEqual(reused[turn], prompt[turn - 1] + completion[turn - 1] - 1, "turn \(turn + 1) should reuse turn \(turn)'s prompt and answer")
        }
        // The same turns from an empty cache.
        var fresh: [String] = []
        conversation = [system, AIMessage.user("What is edge computing? Answer in one sentence.")]
        for turn in 0..<3 {
            try await ai.clearCache(model)
            let out = try await ai.run(model, AIInput(messages: conversation, maxTokens: 24, temperature: 0))
            XCTAssertEqual(out.stats?.reusedPromptTokens, 0)
            fresh.append(out.response)
            conversation.append(.assistant(withReuse[turn]))
            conversation.append(.user(["Give an example.", "Why does it matter?", "Thanks!"][turn]))
        }
        XCTAssertEqual(withReuse, fresh)
    }
}

final class StreamingTextTests: XCTestCase {
    /// Chunks are whole UTF-8 characters even when a character spans several tokens.
    func testMultiTokenCharactersAreNeverSplit() async throws {
        let ai = try TestModel.ai()
        let e = try await ai.engine(TestModel.id)
        let text = "🏔️🔥💥👀 édge"
        let ids = e.tokenizer.encode(text, addSpecial: false, parseSpecial: false)
        XCTAssertGreaterThan(ids.count, 8, "emoji take several byte tokens each")
        var detok = StreamingDetokenizer(tokenizer: e.tokenizer)
        var pieces: [String] = []
        for id in ids {
            let piece = detok.append(id)
            if !piece.isEmpty { pieces.append(piece) }
        }
        let tail = detok.finish()
        if !tail.isEmpty { pieces.append(tail) }
        XCTAssertEqual(pieces.joined(), text)
        for p in pieces { XCTAssertFalse(p.unicodeScalars.contains("\u{FFFD}"), p) }
        // And each piece is a valid JSON string in an SSE event.
        for p in pieces { XCTAssertNoThrow(try JSONParser.parse(Array(AIChunk(response: p).sseEvent.dropFirst(6).dropLast(2)))) }
    }
}
