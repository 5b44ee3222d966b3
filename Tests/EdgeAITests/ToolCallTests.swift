import ChatTemplate
import GGUF
import Foundation
import Grammar
import Tokenizer
import WorkerApp
import XCTest
@testable import EdgeAI

/// Tool calling without a model: request shapes, answer formats, streaming hold-back, templates.
final class ToolCallParsingTests: XCTestCase {
    static let weatherSchema = #"{"type":"object","properties":{"city":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["city"]}"#

    func testBothToolShapesParseAndRoundTrip() throws {
        let flat = try AIInput(json: Array(#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"name":"get_weather","description":"Weather","parameters":\#(Self.weatherSchema)}]}"#.utf8))
        let wrapped = try AIInput(json: Array(#"{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":\#(Self.weatherSchema)}}],"tool_choice":"required"}"#.utf8))
        XCTAssertEqual(flat.tools, wrapped.tools)
        XCTAssertEqual(flat.tools?.first?.name, "get_weather")
        XCTAssertEqual(flat.tools?.first?.parameters, try JSONParser.parse(Self.weatherSchema))
        XCTAssertEqual(wrapped.toolChoice, .required)
        // the request bytes parse back to the same input
        XCTAssertEqual(try AIInput(json: wrapped.jsonBytes), wrapped)

        // a follow-up turn: OpenAI-shaped assistant call (arguments as JSON text, content null) and a tool result
        let follow = try AIInput(json: Array(#"""
        {"messages":[{"role":"user","content":"Weather in Paris?"},
          {"role":"assistant","content":null,"tool_calls":[{"id":"abcDEF123","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
          {"role":"tool","content":"{\"temp\":21}","tool_call_id":"abcDEF123","name":"get_weather"}],
         "tools":[{"name":"get_weather","parameters":\#(Self.weatherSchema)}]}
        """#.utf8))
        let calls = try XCTUnwrap(follow.messages?[1].toolCalls)
        XCTAssertEqual(calls, [AIToolCall(id: "abcDEF123", name: "get_weather", arguments: try JSONParser.parse(#"{"city":"Paris"}"#))])
        XCTAssertEqual(follow.messages?[1].content, "")
        XCTAssertEqual(follow.messages?[2].toolCallID, "abcDEF123")
        XCTAssertEqual(try AIInput(json: follow.jsonBytes), follow)
    }

    func testBadToolRequestsAre5006() {
        func problem(_ body: String) -> String? {
            do {
                _ = try AIInput(json: Array(body.utf8))
                return nil
            } catch {
                XCTAssertEqual(error.code, AIError.invalidInputCode)
                return error.message
            }
        }
        let m = #""messages":[{"role":"user","content":"hi"}]"#
        XCTAssertEqual(problem(#"{"prompt":"hi","tools":[{"name":"f"}]}"#), "Property '/tools' is only valid with 'messages', not with 'prompt'")
        XCTAssertEqual(problem(#"{\#(m),"tools":{"name":"f"}}"#), "Type mismatch of '/tools', 'object' not in 'array'")
        XCTAssertEqual(problem(#"{\#(m),"tools":[{"description":"x"}]}"#), "required properties at '/tools/0' are 'name'")
        XCTAssertEqual(problem(#"{\#(m),"tools":[{"type":"function"}]}"#), "required properties at '/tools/0' are 'type,function' (an object with name, description, parameters)")
        XCTAssertEqual(problem(#"{\#(m),"tools":[{"name":"f","parameters":"x"}]}"#), "Type mismatch of '/tools/0/parameters', 'string' not in 'object'")
        XCTAssertEqual(problem(#"{\#(m),"tools":[{"name":"f"},{"name":"f"}]}"#), "Value of '/tools/1/name' repeats the tool name 'f'")
        XCTAssertEqual(problem(#"{\#(m),"tools":[{"name":"f"}],"tool_choice":{"type":"function","function":{"name":"g"}}}"#), "Value of '/tool_choice' names the function 'g', which is not among '/tools'")
        XCTAssertEqual(problem(#"{\#(m),"tool_choice":"required"}"#), "Value of '/tool_choice' is 'required' but no '/tools' are given")
        XCTAssertEqual(problem(#"{\#(m),"tools":[{"name":"f"}],"response_format":{"type":"json_object"}}"#), "Property '/tools' cannot be used with '/response_format': the answer is either tool calls or a JSON document")
        XCTAssertTrue(problem(#"{"messages":[{"role":"assistant","tool_calls":[{"name":"f","arguments":"[1"}]}]}"#)?
            .hasPrefix(#"Value of '/messages/0/tool_calls/0/arguments' must be a JSON object (or its JSON text), got "[1""#) == true)
        XCTAssertEqual(problem(#"{"messages":[{"role":"user","content":"x","tool_calls":[{"name":"f"}]}]}"#), "Property '/messages/0/tool_calls' is only valid in an 'assistant' message")
        XCTAssertNotNil(problem(#"{\#(m),"functions":[{"name":"f"}]}"#))
    }

    func testHermesAnswers() throws {
        let args = try JSONParser.parse(#"{"city":"Paris"}"#)
        var (content, calls) = ToolCallParser.split("Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>\n<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>", format: .hermes(constrained: true), final: true)
        XCTAssertEqual(content.trimmingCharacters(in: .whitespacesAndNewlines), "Let me check.")
        XCTAssertEqual(calls.map(\.name), ["get_weather", "get_time"])
        XCTAssertEqual(calls[0].arguments, args)
        // arguments given as JSON text, "parameters" as the key, and an unclosed last call
        (content, calls) = ToolCallParser.split("<tool_call>{\"name\": \"get_weather\", \"parameters\": \"{\\\"city\\\":\\\"Paris\\\"}\"}", format: .hermes(constrained: true), final: true)
        XCTAssertEqual(content, "")
        XCTAssertEqual(calls.first?.arguments, args)
        // a call that does not parse stays text
        (content, calls) = ToolCallParser.split("a <tool_call>{name: oops}</tool_call> b", format: .hermes(constrained: true), final: true)
        XCTAssertEqual(content, "a <tool_call>{name: oops}</tool_call> b")
        XCTAssertEqual(calls, [])
        // streaming holds back an open call and a partial opening tag
        XCTAssertEqual(ToolCallParser.split("Sure <tool", format: .hermes(constrained: true), final: false).content, "Sure ")
        XCTAssertEqual(ToolCallParser.split("Sure <tool_call>{\"na", format: .hermes(constrained: true), final: false).content, "Sure ")
        XCTAssertEqual(ToolCallParser.split("1 <", format: .hermes(constrained: true), final: false).content, "1 ")
        XCTAssertEqual(ToolCallParser.split("1 < 2", format: .hermes(constrained: true), final: false).content, "1 < 2")
        XCTAssertEqual(ToolCallParser.split("1 <", format: .hermes(constrained: true), final: true).content, "1 <")
    }

    func testLlama3AndMistralAnswers() throws {
        var (content, calls) = ToolCallParser.split(" <|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}", format: .llama3, final: true)
        XCTAssertEqual(content, "")
        XCTAssertEqual(calls, [AIToolCall(name: "get_weather", arguments: try JSONParser.parse(#"{"city":"Paris"}"#))])
        XCTAssertEqual(ToolCallParser.split("{\"name\": \"f\"", format: .llama3, final: false).content, "")
        (content, calls) = ToolCallParser.split("{\"name\": \"f\"", format: .llama3, final: true)
        XCTAssertEqual(content, "{\"name\": \"f\"")
        XCTAssertEqual(calls, [])
        XCTAssertEqual(ToolCallParser.split("It is sunny.", format: .llama3, final: false).content, "It is sunny.")

        (content, calls) = ToolCallParser.split("[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}, \"id\": \"abcDEF123\"}, {\"name\": \"get_time\", \"arguments\": {}}]", format: .mistral, final: true)
        XCTAssertEqual(content, "")
        XCTAssertEqual(calls.map(\.name), ["get_weather", "get_time"])
        XCTAssertEqual(calls[0].id, "abcDEF123")
        (content, calls) = ToolCallParser.split("Checking.[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"}[TOOL_CALLS]get_time[ARGS]{}", format: .mistralArgs, final: true)
        XCTAssertEqual(content, "Checking.")
        XCTAssertEqual(calls.map(\.name), ["get_weather", "get_time"])
        XCTAssertEqual(ToolCallParser.split("Checking.[TOOL_", format: .mistral, final: false).content, "Checking.")
    }

    /// The sdist's chat templates: the family each is read as, and a whole tool conversation
    /// rendered through them (tools, an assistant call, its result).
    func testTemplateFamilies() throws {
        let dir = ProcessInfo.processInfo.environment["EDGEAI_CACHE"].map { $0 + "/fixtures" }
            ?? FileManager.default.homeDirectoryForCurrentUser.path + "/.cache/edgeai/fixtures"
        let templates = dir + "/llama.cpp/models/templates/"
        guard FileManager.default.fileExists(atPath: templates) else { throw XCTSkip("run Tests/fetch-fixtures.sh") }
        let expected: [(String, ToolCallFormat)] = [
            ("NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", .hermes(constrained: true)),
            ("Qwen-Qwen2.5-7B-Instruct.jinja", .hermes(constrained: true)),
            ("Qwen3-Coder.jinja", .hermes(constrained: false)),
            ("meta-llama-Llama-3.1-8B-Instruct.jinja", .llama3),
            ("meta-llama-Llama-3.2-3B-Instruct.jinja", .llama3),
            ("mistralai-Mistral-Nemo-Instruct-2407.jinja", .mistral),
            ("Mistral-Small-3.2-24B-Instruct-2506.jinja", .mistralArgs),
        ]
        let tool = AITool(name: "get_weather", description: "Current weather", parameters: try JSONParser.parse(Self.weatherSchema))
        let call = AIToolCall(id: "abcDEF123", name: "get_weather", arguments: try JSONParser.parse(#"{"city":"Paris"}"#))
        let messages: [AIMessage] = [.user("Weather in Paris?"), AIMessage(role: "assistant", content: "", toolCalls: [call]),
                                     .tool("{\"temp_c\": 21}", id: "abcDEF123", name: "get_weather")]
        for (file, format) in expected {
            let source = try String(contentsOfFile: templates + file, encoding: .utf8)
            let (found, native) = ToolCallFormat.of(template: source)
            XCTAssertEqual(found, format, file)
            XCTAssertTrue(native, file)
            let t = try ChatTemplate(source)
            let text = try t.render(messages: messages.map(ToolPrompt.templateMessage), addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>",
                                    extra: ["tools": .array([tool.templateValue])])
            XCTAssertTrue(text.contains("Current weather"), "\(file): the tool is not rendered")
            XCTAssertTrue(text.contains("temp_c"), "\(file): the tool result is not rendered")
            XCTAssertTrue(text.contains("Paris"), "\(file): the call is not rendered")
        }
        // templates without tools are rendered by us, in the Hermes format
        XCTAssertEqual(ToolCallFormat.of(template: "{% for m in messages %}{{ m.content }}{% endfor %}").native, false)
        let lowered = ToolPrompt.lowered(messages + [.tool("{\"rain\": false}")], tools: [tool])
        XCTAssertEqual(lowered.map(\.role), ["system", "user", "assistant", "user"])
        XCTAssertTrue(lowered[0].content.contains("\"name\": \"get_weather\""))
        XCTAssertEqual(lowered[2].content, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>")
        XCTAssertEqual(lowered[3].content, "<tool_response>\n{\"temp_c\": 21}\n</tool_response>\n<tool_response>\n{\"rain\": false}\n</tool_response>")
    }

    /// The call grammar on real token sequences: after the trigger the tool's schema decides.
    func testCallGrammarFollowsTheSchema() throws {
        let ai = try TestModel.ai()
        let tokenizer = try Tokenizer(gguf: try GGUFFile(path: ai.models.first { $0.id == TestModel.id }!.path))
        let trie = tokenizer.jsonTokenTrie()
        let tool = AITool(name: "get_weather", parameters: try JSONParser.parse(Self.weatherSchema))
        let plan = try ToolCallPlan(format: .hermes(constrained: true), tools: [tool], choice: .auto)
        func run(_ text: String) throws -> (rejectedAt: String?, run: ToolCallRun) {
            let r = try ToolCallRun(plan: plan, tokenizer: tokenizer, trie: trie)
            var consumed = ""
            for id in tokenizer.encode(text, addSpecial: false, parseSpecial: true) {
                if let m = r.masker {
                    if !m.allows(id) { return (consumed, r) }
                    try m.accept(id)
                }
                _ = try r.observe(id, bytes: tokenizer.tokenBytes(id))
                consumed += tokenizer.token(id)
            }
            return (nil, r)
        }
        let good = try run("Sure.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n</tool_call> Done")
        XCTAssertNil(good.rejectedAt)
        XCTAssertEqual(good.run.constrainedCalls, 1)
        XCTAssertEqual(good.run.finish().calls.first?.arguments, try JSONParser.parse(#"{"city":"Paris","unit":"celsius"}"#))
        XCTAssertEqual(good.run.finish().content, "Sure. Done")
        // a unit outside the enum, a missing required city, an unknown tool: refused by the grammar
        XCTAssertNotNil(try run("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"kelvin\"}}</tool_call>").rejectedAt)
        XCTAssertNotNil(try run("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"unit\": \"celsius\"}}</tool_call>").rejectedAt)
        XCTAssertNotNil(try run("<tool_call>{\"name\": \"get_time\", \"arguments\": {}}</tool_call>").rejectedAt)
        // before the tag nothing is constrained
        XCTAssertNil(try run("{\"name\": \"whatever\"} and text").rejectedAt)
    }
}

/// Tool calling on the real SmolLM2-135M-Instruct (its template has no tool support, so the tools
/// go into the system message in the Hermes format).
final class ToolCallModelTests: XCTestCase {
    let model = TestModel.id
    let weather = AITool(name: "get_weather", description: "Get the current weather in a city",
                         parameters: try! JSONParser.parse(ToolCallParsingTests.weatherSchema))
    let convert = AITool(name: "convert_currency", description: "Convert an amount between currencies",
                         parameters: try! JSONParser.parse(#"{"type":"object","properties":{"amount":{"type":"number"},"from":{"type":"string","minLength":3,"maxLength":3},"to":{"type":"string","minLength":3,"maxLength":3}},"required":["amount","from","to"]}"#))

    /// With tool_choice required, every answer (greedy and sampled) is a call whose arguments
    /// an independent validator accepts.
    func testRequiredCallsAreValid() async throws {
        let ai = try TestModel.ai()
        let prompts = ["What is the weather like in Paris today?", "How many yen is 25 US dollars?", "Is it raining in Oslo?", "Convert 100 euros to pounds."]
        var valid = 0, total = 0
        for prompt in prompts {
            for seed in [nil, 1, 2] as [Int?] {
                let input = AIInput(messages: [.user(prompt)], maxTokens: 96, temperature: seed == nil ? 0 : 0.8, seed: seed,
                                    tools: [weather, convert], toolChoice: .required)
                let out = try await ai.run(model, input)
                total += 1
                guard let call = out.toolCalls?.first, out.toolCalls?.count == 1 else { XCTFail("\(prompt) seed \(String(describing: seed)): no call: \(out.response)"); continue }
                let schema = call.name == "get_weather" ? weather.parameters! : convert.parameters!
                let problems = SchemaValidator(root: schema).problems(call.arguments)
                XCTAssertEqual(problems, [], "\(call.name) \(call.arguments.jsonText)")
                XCTAssertEqual(call.id?.count, 9)
                if problems.isEmpty { valid += 1 }
            }
        }
        XCTAssertEqual(valid, total)
        // naming the function forces that one
        let forced = try await ai.run(model, AIInput(messages: [.user("What is the weather like in Paris today?")], maxTokens: 96, temperature: 0,
                                                     tools: [weather, convert], toolChoice: .function("convert_currency")))
        XCTAssertEqual(forced.toolCalls?.map(\.name), ["convert_currency"])
        XCTAssertEqual(SchemaValidator(root: convert.parameters!).problems(forced.toolCalls![0].arguments), [])
        // the Workers AI JSON: response, tool_calls, usage
        let v = try JSONParser.parse(forced.jsonBytes)
        XCTAssertEqual(v.objectKeys, ["response", "tool_calls", "usage"])
        XCTAssertEqual(v["tool_calls"]?.jsonText, #"[{"name":"convert_currency","arguments":\#(forced.toolCalls![0].arguments.jsonText)}]"#)
    }

    /// Streaming gives the same answer, with the calls on the last chunk; a follow-up turn with the
    /// tool's result renders and answers.
    func testStreamingAndFollowUp() async throws {
        let ai = try TestModel.ai()
        let input = AIInput(messages: [.user("What is the weather like in Paris today?")], maxTokens: 96, temperature: 0, tools: [weather], toolChoice: .required)
        let out = try await ai.run(model, input)
        var text = "", last: AIChunk? = nil
        for try await c in try await ai.stream(model, input) { text += c.response; last = c }
        XCTAssertEqual(text, out.response)
        XCTAssertEqual(last?.toolCalls?.map(\.name), out.toolCalls?.map(\.name))
        XCTAssertEqual(last?.toolCalls?.map(\.arguments), out.toolCalls?.map(\.arguments))
        XCTAssertTrue(String(decoding: last!.sseEvent, as: UTF8.self).contains(#""tool_calls":[{"name":"get_weather""#))

        let call = try XCTUnwrap(out.toolCalls?.first)
        let follow = AIInput(messages: [.user("What is the weather like in Paris today?"), AIMessage(role: "assistant", content: "", toolCalls: [call]),
                                        .tool(#"{"temperature": 21, "sky": "sunny"}"#, id: call.id, name: call.name)],
                             maxTokens: 40, temperature: 0, tools: [weather])
        let prompt = try await ai.promptTokens(model, follow)
        let engine = try await ai.engine(model)
        let rendered = engine.tokenizer.decode(prompt)
        XCTAssertTrue(rendered.contains("<tool_response>\n{\"temperature\": 21, \"sky\": \"sunny\"}\n</tool_response>"), rendered)
        XCTAssertTrue(rendered.contains("<tool_call>\n{\"name\": \"get_weather\""), rendered)
        let answer = try await ai.run(model, follow)
        XCTAssertGreaterThan(answer.usage.completionTokens, 0)
        // tool_choice none: the tools are not shown and nothing is parsed
        let none = try await ai.promptTokens(model, AIInput(messages: [.user("Hi")], tools: [weather], toolChoice: AIToolChoice.none))
        XCTAssertFalse(engine.tokenizer.decode(none).contains("get_weather"))
    }

    /// The worker: Workers AI's route and the OpenAI route answer tool calls in their shapes.
    func testWorkerRoutes() async throws {
        let ai = try TestModel.ai()
        let worker = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id), state: WorkerState())
        defer { worker.server.cancel() }
        let p = worker.port
        let schema = ToolCallParsingTests.weatherSchema
        try await Task.detached {
            let w = try httpPost(port: p, path: "/ai/run/\(TestModel.id)", body: #"""
            {"messages":[{"role":"user","content":"Weather in Rome?"}],"tools":[{"name":"get_weather","parameters":\#(schema)}],"tool_choice":"required","temperature":0,"max_tokens":80}
            """#)
            XCTAssertEqual(w.status, 200, w.text)
            let v = try JSONParser.parse(w.body)
            XCTAssertEqual(v["result"]?["tool_calls"]?.array?.first?["name"], .string("get_weather"))
            guard case .object? = v["result"]?["tool_calls"]?.array?.first?["arguments"] else { return XCTFail(w.text) }

            let o = try httpPost(port: p, path: "/v1/chat/completions", body: #"""
            {"model":"\#(TestModel.id)","messages":[{"role":"user","content":"Weather in Rome?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":\#(schema)}}],"tool_choice":"required","temperature":0,"max_tokens":80}
            """#)
            XCTAssertEqual(o.status, 200, o.text)
            let choice = try XCTUnwrap(try JSONParser.parse(o.body)["choices"]?.array?.first)
            XCTAssertEqual(choice["finish_reason"], .string("tool_calls"))
            let call = try XCTUnwrap(choice["message"]?["tool_calls"]?.array?.first)
            XCTAssertEqual(call["type"], .string("function"))
            XCTAssertEqual(call["function"]?["name"], .string("get_weather"))
            guard case .string(let args)? = call["function"]?["arguments"] else { return XCTFail(o.text) }
            XCTAssertEqual(SchemaValidator(root: try JSONParser.parse(schema)).problems(try JSONParser.parse(Array(args.utf8))), [])
            guard case .string(let id)? = call["id"] else { return XCTFail(o.text) }

            // the follow-up turn in OpenAI's shape is accepted and answered
            let f = try httpPost(port: p, path: "/v1/chat/completions", body: #"""
            {"model":"\#(TestModel.id)","messages":[{"role":"user","content":"Weather in Rome?"},{"role":"assistant","content":null,"tool_calls":[{"id":"\#(id)","type":"function","function":{"name":"get_weather","arguments":\#(JSONValue.string(args).jsonText)}}]},{"role":"tool","tool_call_id":"\#(id)","content":"18 C, cloudy"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":\#(schema)}}],"temperature":0,"max_tokens":20}
            """#)
            XCTAssertEqual(f.status, 200, f.text)
            XCTAssertNotNil(try JSONParser.parse(f.body)["choices"]?.array?.first?["message"]?["content"])

            // streaming: the calls come as one delta before the finish
            let s = try httpPost(port: p, path: "/v1/chat/completions", body: #"""
            {"model":"\#(TestModel.id)","stream":true,"messages":[{"role":"user","content":"Weather in Rome?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":\#(schema)}}],"tool_choice":"required","temperature":0,"max_tokens":80}
            """#)
            XCTAssertEqual(s.status, 200)
            XCTAssertTrue(s.text.contains(#""delta":{"tool_calls":[{"index":0,"id":""#), s.text)
            XCTAssertTrue(s.text.contains(#""finish_reason":"tool_calls""#), s.text)
        }.value
    }
}

private extension JSONValue {
    var array: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
}
