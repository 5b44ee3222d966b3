import Foundation
import XCTest
@testable import EdgeAI

/// Continuous batching: several requests share forward passes without changing their tokens.
final class SchedulerTests: XCTestCase {
    let model = TestModel.id

    private func makeAI(_ serving: ServingOptions) throws -> AI {
        let shared = try TestModel.ai()
        return try AI(modelsDirectory: shared.modelsDirectory, threads: 0, serving: serving)
    }

    /// A seeded sampled request gives the same tokens alone and among 15 others.
    func testSameSeedSameOutputAloneOrAmong15Others() async throws {
        let ai = try makeAI(ServingOptions(slots: 16))
        let target = AIInput(messages: [.system("You are a storyteller."), .user("Tell me a story about a lighthouse keeper.")],
                             maxTokens: 48, temperature: 0.8, seed: 1234)
        let alone = try await ai.run(model, target)
        XCTAssertEqual(alone.stats?.largestStep, 1)
        try await ai.clearCache(model)

        let others = (0..<15).map { i in
            AIInput(prompt: ["Name a fruit.", "Write a haiku about snow.", "What is 7 times 8?", "Describe the sea.",
                             "List three colors.", "Say hello in Spanish."][i % 6] + " (\(i))",
                    maxTokens: 24 + 4 * i, temperature: i % 3 == 0 ? 0 : 0.9, seed: i + 1)
        }
        let model = self.model
        let (together, otherOutputs) = try await withThrowingTaskGroup(of: (Int, AIOutput).self) { group in
            for (i, input) in others.enumerated() { group.addTask { (i, try await ai.run(model, input)) } }
            group.addTask { (-1, try await ai.run(model, target)) }
            var mine: AIOutput?
            var rest: [Int: AIOutput] = [:]
            for try await (i, out) in group {
                if i < 0 { mine = out } else { rest[i] = out }
            }
            return (mine!, rest)
        }
        XCTAssertEqual(together.response, alone.response)
        XCTAssertEqual(together.usage, alone.usage)
        XCTAssertEqual(otherOutputs.count, 15)
        // It really was batched with others (the test would prove nothing otherwise).
        let step = try XCTUnwrap(together.stats?.largestStep)
        XCTAssertGreaterThanOrEqual(step, 2, "the request never shared a step")
        // And the others are what they give alone too (a few of them, to bound the time).
        for i in [0, 7, 14] {
            try await ai.clearCache(model)
            let solo = try await ai.run(model, others[i])
            XCTAssertEqual(otherOutputs[i]?.response, solo.response, "request \(i)")
        }
        XCTAssertEqual(ai.load(model), ModelLoad(slots: 16, busySlots: 0, queued: 0))
    }

    /// A prompt sharing a prefix with a busy sequence copies those cells instead of prefilling them.
    func testPrefixIsCopiedFromABusySlot() async throws {
        let ai = try makeAI(ServingOptions(slots: 2))
        let system = AIMessage.system("You are a careful assistant who answers questions about geography, history and science in plain words, with short sentences.")
        let long = AIInput(messages: [system, .user("Describe every country of Europe, one by one.")], maxTokens: 400, temperature: 0)
        let second = AIInput(messages: [system, .user("What is the capital of Japan?")], maxTokens: 24, temperature: 0)

        let fresh = try await makeAI(ServingOptions(slots: 1)).run(model, second)

        let stream = try await ai.stream(model, long)
        var iterator = stream.makeAsyncIterator()
        _ = try await iterator.next()   // the long request holds slot 1 and is generating
        let out = try await ai.run(model, second)
        let stats = try XCTUnwrap(out.stats)
        XCTAssertGreaterThan(stats.copiedPromptTokens, 20, "the system prompt should have been copied")
        XCTAssertEqual(stats.reusedPromptTokens, stats.copiedPromptTokens)
        XCTAssertEqual(stats.prefilledTokens + stats.reusedPromptTokens, out.usage.promptTokens)
        XCTAssertEqual(out.response, fresh.response)
        XCTAssertEqual(out.usage, fresh.usage)
    }

    /// All slots busy and the queue full: 3040 at once, not a wait.
    func testFullQueueIsCapacityError() async throws {
        let ai = try makeAI(ServingOptions(slots: 1, maxQueued: 1))
        let long = AIInput(prompt: "Count from one to one thousand in words.", maxTokens: 1000, temperature: 0)
        let first = try await ai.stream(model, long)
        let second = try await ai.stream(model, AIInput(prompt: "Hi", maxTokens: 3, temperature: 0))
        let started = Date()
        do {
            _ = try await ai.run(model, AIInput(prompt: "Hello", maxTokens: 3))
            XCTFail("a third request was accepted by one slot and a queue of one")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 3040)
            XCTAssertEqual(e.httpStatus, 429)
            XCTAssertTrue(e.message.hasPrefix("Capacity temporarily exceeded"), e.message)
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), TimeBound.seconds(0.5))
        let load = try XCTUnwrap(ai.load(model))
        XCTAssertEqual(load.slots, 1)
        XCTAssertEqual(load.busySlots + load.queued, 2)
        // Dropping the first stream frees its slot within a step: the queued one then finishes.
        _ = consume first
        var text = ""
        for try await chunk in second { text += chunk.response }
        XCTAssertFalse(text.isEmpty)
        let after = try await ai.run(model, AIInput(prompt: "Hello", maxTokens: 3, temperature: 0))
        XCTAssertEqual(after.usage.completionTokens, 3)
    }

    func testServingOptionsAreChecked() throws {
        XCTAssertThrowsError(try AI(threads: 0, serving: ServingOptions(slots: 0))) { error in
            XCTAssertEqual((error as? AIError)?.code, 5006)
        }
    }
}
