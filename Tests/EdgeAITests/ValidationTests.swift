import XCTest
@testable import EdgeAI

/// The Workers AI input schema: every field, both sides of every bound, wrong JSON types.
final class ValidationTests: XCTestCase {
    private func decode(_ json: String) throws -> AIInput { try AIInput(json: Array(json.utf8)) }

    private func assertInvalid(_ json: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        do {
            let input = try decode(json)
            XCTFail("accepted \(json) as \(input)", file: file, line: line)
        } catch let e as AIError {
            XCTAssertEqual(e.code, 5006, file: file, line: line)
            XCTAssertEqual(e.message, expected, json, file: file, line: line)
            XCTAssertEqual(e.description, "5006: \(expected)", file: file, line: line)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
    }

    private func assertValid(_ json: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNoThrow(try decode(json), json, file: file, line: line)
    }

    func testPromptOrMessagesExactlyOne() {
        assertInvalid(#"{}"#, "Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', required properties at '/' are 'messages'")
        assertInvalid(#"{"max_tokens": 5}"#, "Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', required properties at '/' are 'messages'")
        assertInvalid(#"{"prompt": "hi", "messages": [{"role": "user", "content": "hi"}]}"#,
                      "Error: oneOf at '/' not met, 2 matches: 'prompt' and 'messages' cannot both be given, send exactly one of them")
        assertValid(#"{"prompt": "hi"}"#)
        assertValid(#"{"messages": [{"role": "user", "content": "hi"}]}"#)
    }

    func testRootMustBeAnObject() {
        assertInvalid(#"[1]"#, "Type mismatch of '/', 'array' not in 'object'")
        assertInvalid(#""hi""#, "Type mismatch of '/', 'string' not in 'object'")
        assertInvalid(#"null"#, "Type mismatch of '/', 'null' not in 'object'")
    }

    func testUnparseableJSON() {
        for bad in ["", "{", #"{"prompt": }"#, #"{"prompt": "a",}"#, "{'prompt': 'a'}", #"{"prompt": "a"} x"#, "\u{FF}"] {
            do {
                _ = try decode(bad)
                XCTFail("accepted \(bad)")
            } catch let e as AIError {
                XCTAssertEqual(e.code, 5006)
                XCTAssertTrue(e.message.hasPrefix("Invalid JSON in request body: "), e.message)
            } catch {
                XCTFail("\(error)")
            }
        }
    }

    func testPrompt() {
        assertInvalid(#"{"prompt": ""}"#, "String too short at '/prompt': length 0 < minimum 1")
        assertValid(#"{"prompt": "x"}"#)
        assertInvalid(#"{"prompt": 5}"#, "Type mismatch of '/prompt', 'number' not in 'string'")
        assertInvalid(#"{"prompt": null}"#, "Type mismatch of '/prompt', 'null' not in 'string'")
        assertInvalid(#"{"prompt": ["a"]}"#, "Type mismatch of '/prompt', 'array' not in 'string'")
        assertInvalid(#"{"prompt": {"a": 1}}"#, "Type mismatch of '/prompt', 'object' not in 'string'")
        assertInvalid(#"{"prompt": true}"#, "Type mismatch of '/prompt', 'boolean' not in 'string'")
    }

    func testMessages() {
        assertInvalid(#"{"messages": []}"#, "Array too short at '/messages': 0 items < minimum 1")
        assertInvalid(#"{"messages": "hi"}"#, "Type mismatch of '/messages', 'string' not in 'array'")
        assertInvalid(#"{"messages": ["hi"]}"#, "Type mismatch of '/messages/0', 'string' not in 'object'")
        assertInvalid(#"{"messages": [{"role": "user"}]}"#, "required properties at '/messages/0' are 'role,content'")
        assertInvalid(#"{"messages": [{"content": "x"}]}"#, "required properties at '/messages/0' are 'role,content'")
        assertInvalid(#"{"messages": [{"role": "user", "content": "a"}, {"role": 1, "content": "b"}]}"#,
                      "Type mismatch of '/messages/1/role', 'number' not in 'string'")
        assertInvalid(#"{"messages": [{"role": "user", "content": null}]}"#,
                      "Type mismatch of '/messages/0/content', 'null' not in 'string'")
        assertInvalid(#"{"messages": [{"role": "user", "content": ""}]}"#,
                      "String too short at '/messages/0/content': length 0 < minimum 1")
        assertInvalid(#"{"messages": [{"role": "bot", "content": "x"}]}"#,
                      "Value of '/messages/0/role' must be one of 'system', 'user', 'assistant', 'tool', got 'bot'")
        for role in ["system", "user", "assistant", "tool"] {
            assertValid(#"{"messages": [{"role": "\#(role)", "content": "x"}]}"#)
        }
        // Newer schemas: content as a list of text parts.
        let parts = try? decode(#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]}"#)
        XCTAssertEqual(parts?.messages, [AIMessage(role: "user", content: "ab")])
        assertInvalid(#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}"#,
                      #"Value of '/messages/0/content/0' must be {"type": "text", "text": string}"#)
        // Several problems are all reported.
        assertInvalid(#"{"messages": [{"role": "bot", "content": ""}], "temperature": 9}"#,
                      "Value of '/messages/0/role' must be one of 'system', 'user', 'assistant', 'tool', got 'bot', String too short at '/messages/0/content': length 0 < minimum 1, Value of '/temperature' out of range: 9 not in [0, 5]")
    }

    func testRawAndStream() {
        assertValid(#"{"prompt": "x", "raw": true, "stream": true}"#)
        assertValid(#"{"prompt": "x", "raw": false, "stream": false}"#)
        assertInvalid(#"{"prompt": "x", "raw": "yes"}"#, "Type mismatch of '/raw', 'string' not in 'boolean'")
        assertInvalid(#"{"prompt": "x", "stream": 1}"#, "Type mismatch of '/stream', 'number' not in 'boolean'")
        assertInvalid(#"{"messages": [{"role": "user", "content": "x"}], "raw": true}"#,
                      "Property '/raw' is only valid with 'prompt', not with 'messages'")
    }

    /// (field, below, low, high, above, integer?)
    private let numericBounds: [(String, String, String, String, String, Bool)] = [
        ("temperature", "-0.01", "0", "5", "5.01", false),
        ("top_p", "0.0009", "0.001", "1", "1.001", false),
        ("top_k", "0", "1", "50", "51", true),
        ("seed", "0", "1", "9999999999", "10000000000", true),
        ("repetition_penalty", "-0.1", "0", "2", "2.1", false),
        ("frequency_penalty", "-2.1", "-2", "2", "2.1", false),
        ("presence_penalty", "-2.1", "-2", "2", "2.1", false),
        ("min_p", "-0.1", "0", "1", "1.1", false),
    ]

    func testEveryNumericBoundBothSides() {
        for (field, below, low, high, above, _) in numericBounds {
            assertValid(#"{"prompt": "x", "\#(field)": \#(low)}"#)
            assertValid(#"{"prompt": "x", "\#(field)": \#(high)}"#)
            assertInvalid(#"{"prompt": "x", "\#(field)": \#(below)}"#,
                          "Value of '/\(field)' out of range: \(below) not in [\(low), \(high)]")
            assertInvalid(#"{"prompt": "x", "\#(field)": \#(above)}"#,
                          "Value of '/\(field)' out of range: \(above) not in [\(low), \(high)]")
        }
    }

    func testEveryNumericFieldRejectsWrongTypes() {
        for (field, _, low, _, _, integer) in numericBounds + [("max_tokens", "0", "1", "", "", true)] {
            let expected = integer ? "integer" : "number"
            assertInvalid(#"{"prompt": "x", "\#(field)": "\#(low)"}"#, "Type mismatch of '/\(field)', 'string' not in '\(expected)'")
            assertInvalid(#"{"prompt": "x", "\#(field)": null}"#, "Type mismatch of '/\(field)', 'null' not in '\(expected)'")
            assertInvalid(#"{"prompt": "x", "\#(field)": true}"#, "Type mismatch of '/\(field)', 'boolean' not in '\(expected)'")
            assertInvalid(#"{"prompt": "x", "\#(field)": [1]}"#, "Type mismatch of '/\(field)', 'array' not in '\(expected)'")
            assertInvalid(#"{"prompt": "x", "\#(field)": {}}"#, "Type mismatch of '/\(field)', 'object' not in '\(expected)'")
            if integer {
                assertInvalid(#"{"prompt": "x", "\#(field)": 1.5}"#, "Type mismatch of '/\(field)', 'number' not in 'integer'")
            }
        }
    }

    func testIntegersMayBeWrittenWithAZeroFraction() throws {
        let input = try decode(#"{"prompt": "x", "top_k": 5.0, "max_tokens": 1e2, "seed": 9999999999}"#)
        XCTAssertEqual(input.topK, 5)
        XCTAssertEqual(input.maxTokens, 100)
        XCTAssertEqual(input.seed, 9_999_999_999)
    }

    func testMaxTokens() {
        assertValid(#"{"prompt": "x", "max_tokens": 1}"#)
        assertValid(#"{"prompt": "x", "max_tokens": 100000}"#)  // bounded by the context window (5021) instead
        assertInvalid(#"{"prompt": "x", "max_tokens": 0}"#, "Value of '/max_tokens' out of range: 0 < minimum 1")
        assertInvalid(#"{"prompt": "x", "max_tokens": -3}"#, "Value of '/max_tokens' out of range: -3 < minimum 1")
        XCTAssertEqual(try decode(#"{"prompt": "x", "max_tokens": 1e30}"#).maxTokens, Int.max)
    }

    func testDefaultsAreUnset() throws {
        let input = try decode(#"{"prompt": "x"}"#)
        XCTAssertEqual(input, AIInput(prompt: "x"))
        XCTAssertEqual(AIInput.defaultMaxTokens, 256)
        XCTAssertEqual(AIInput.defaultTemperature, 0.6)
    }

    func testAllFieldsDecode() throws {
        let input = try decode(#"{"prompt": "p", "raw": true, "stream": true, "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": 12, "repetition_penalty": 1.1, "frequency_penalty": -0.5, "presence_penalty": 0.25, "min_p": 0.05, "unknown_field": {"ignored": true}}"#)
        XCTAssertEqual(input, AIInput(prompt: "p", raw: true, stream: true, maxTokens: 7, temperature: 0.5, topP: 0.9, topK: 40, seed: 12, repetitionPenalty: 1.1, frequencyPenalty: -0.5, presencePenalty: 0.25, minP: 0.05))
        // …and encode back with the same keys.
        XCTAssertEqual(String(decoding: input.jsonBytes, as: UTF8.self),
                       #"{"prompt":"p","raw":true,"stream":true,"max_tokens":7,"temperature":0.5,"top_p":0.9,"top_k":40,"seed":12,"repetition_penalty":1.1,"frequency_penalty":-0.5,"presence_penalty":0.25,"min_p":0.05}"#)
        XCTAssertEqual(try AIInput(json: input.jsonBytes), input)
    }

    func testUnsupportedFeaturesAreRejected() {
        assertInvalid(#"{"prompt": "x", "tools": []}"#, "Property '/tools' is only valid with 'messages', not with 'prompt'")
        assertInvalid(#"{"prompt": "x", "functions": []}"#, "Property '/functions' is not supported: the legacy 'functions' field is not supported by EdgeAI; send 'tools'")
        assertInvalid(#"{"prompt": "x", "lora": "abc"}"#, "Property '/lora' is not supported: LoRA adapters are not supported by EdgeAI")
    }

    func testTypedInputIsValidatedToo() {
        XCTAssertThrowsError(try AIInput(prompt: "x", temperature: .nan).validate()) { e in
            XCTAssertEqual((e as? AIError)?.code, 5006)
        }
        XCTAssertThrowsError(try AIInput(prompt: "x", topK: 51).validate()) { e in
            XCTAssertEqual((e as? AIError)?.message, "Value of '/top_k' out of range: 51 not in [1, 50]")
        }
        XCTAssertNoThrow(try AIInput(messages: [.system("s"), .user("u")], temperature: 0).validate())
    }

    func testCodableUsesSnakeCase() throws {
        let input = AIInput(prompt: "p", maxTokens: 3, topP: 0.5)
        let data = try JSONEncoder().encode(input)
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        XCTAssertEqual(Set(object?.keys.map { $0 } ?? []), ["prompt", "max_tokens", "top_p"])
        XCTAssertEqual(try JSONDecoder().decode(AIInput.self, from: data), input)
        let out = AIOutput(response: "r", usage: AIUsage(promptTokens: 2, completionTokens: 3))
        let outObject = try JSONSerialization.jsonObject(with: JSONEncoder().encode(out)) as? [String: Any]
        XCTAssertEqual((outObject?["usage"] as? [String: Any])?.keys.sorted(), ["completion_tokens", "prompt_tokens", "total_tokens"])
    }
}

/// Error codes, messages, descriptions, HTTP statuses and REST envelopes.
final class ErrorTests: XCTestCase {
    func testErrorTexts() {
        XCTAssertEqual(AIError.noSuchModel("@cf/x/y").description, "5007: No such model @cf/x/y or task")
        XCTAssertEqual(AIError.contextWindow(estimated: 8810, limit: 8192).description,
                       "5021: The estimated number of input and maximum output tokens (8810) exceeded this model context window limit (8192).")
        XCTAssertEqual(AIError.aborted.code, 3008)
        XCTAssertEqual(AIError.aborted.description, "3008: Request was aborted")
    }

    func testHTTPStatuses() {
        XCTAssertEqual(AIError.invalidInput("x").httpStatus, 400)
        XCTAssertEqual(AIError.noSuchModel("x").httpStatus, 400)
        XCTAssertEqual(AIError.contextWindow(estimated: 2, limit: 1).httpStatus, 413)
        XCTAssertEqual(AIError.aborted.httpStatus, 408)
        XCTAssertEqual(AIError.internal("x").httpStatus, 500)
    }

    func testEnvelopes() {
        XCTAssertEqual(String(decoding: AIError.noSuchModel("m").envelopeJSON, as: UTF8.self),
                       #"{"result":null,"success":false,"errors":[{"code":5007,"message":"No such model m or task"}],"messages":[]}"#)
        let out = AIOutput(response: "Hi \"there\"\n/é😀", usage: AIUsage(promptTokens: 12, completionTokens: 2))
        XCTAssertEqual(String(decoding: out.envelopeJSON, as: UTF8.self),
                       #"{"result":{"response":"Hi \"there\"\n/é😀","usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14}},"success":true,"errors":[],"messages":[]}"#)
    }
}
