import Foundation
import XCTest
@testable import EdgeAI
import WorkerApp

/// One JSON-mode case: a schema of ours and a request that fits it.
struct SchemaCase {
    let name: String
    let system: String
    let user: String
    /// nil: `json_object` mode.
    let schema: String?

    static let all: [SchemaCase] = [
        SchemaCase(name: "country", system: "Extract data about a country.", user: "Tell me about India.", schema: #"""
            {"type":"object","properties":{"name":{"type":"string","maxLength":40},"capital":{"type":"string","maxLength":40},
             "languages":{"type":"array","items":{"type":"string","maxLength":20},"minItems":1,"maxItems":4}},
             "required":["name","capital","languages"]}
            """#),
        SchemaCase(name: "sentiment", system: "Classify the sentiment of the user's text.", user: "I love this phone, the battery lasts forever!", schema: #"""
            {"type":"object","properties":{"sentiment":{"enum":["positive","negative","neutral"]},
             "confidence":{"type":"integer","minimum":0,"maximum":100}},"required":["sentiment","confidence"],"additionalProperties":false}
            """#),
        SchemaCase(name: "event", system: "Turn the user's message into a calendar event.", user: "Team lunch next Friday, 12 March 2027 at half past noon, UTC.", schema: #"""
            {"type":"object","properties":{"title":{"type":"string","minLength":1,"maxLength":30},"date":{"type":"string","format":"date"},
             "start":{"type":"string","format":"time"},"id":{"type":"string","format":"uuid"},"created":{"type":"string","format":"date-time"}},
             "required":["title","date","start","id","created"]}
            """#),
        SchemaCase(name: "order", system: "Extract the order as JSON.", user: "Two apples (sku APL-1) and one loaf of bread (sku BRD-7), already paid.", schema: #"""
            {"type":"object","properties":{"order_id":{"type":"integer","minimum":1,"maximum":99999},
             "items":{"type":"array","minItems":1,"maxItems":3,"items":{"type":"object","properties":{"sku":{"type":"string","maxLength":12},
             "qty":{"type":"integer","minimum":1,"maximum":10}},"required":["sku","qty"]}},"paid":{"type":"boolean"}},
             "required":["order_id","items","paid"]}
            """#),
        SchemaCase(name: "folder", system: "Describe the folder as JSON.", user: "A folder src with two files: main.swift (120 lines) and util.swift (40 lines).", schema: #"""
            {"$defs":{"file":{"type":"object","properties":{"name":{"type":"string","maxLength":20},"lines":{"$ref":"#/$defs/count"}},"required":["name","lines"]},
             "count":{"type":"integer","minimum":0,"maximum":100000}},
             "type":"object","properties":{"folder":{"type":"string","maxLength":20},"files":{"type":"array","maxItems":3,"items":{"$ref":"#/$defs/file"}}},
             "required":["folder","files"]}
            """#),
        SchemaCase(name: "anyof", system: "Answer the question with a value.", user: "How many legs does a spider have?", schema: #"""
            {"type":"object","properties":{"answer":{"anyOf":[{"type":"integer","minimum":0,"maximum":1000},{"type":"string","maxLength":10},{"type":"null"}]},
             "unit":{"oneOf":[{"const":"legs"},{"type":"null"}]}},"required":["answer"]}
            """#),
        SchemaCase(name: "movie", system: "Give details about the film as JSON.", user: "The Matrix (1999).", schema: #"""
            {"type":"object","properties":{"title":{"type":"string","maxLength":40},"subtitle":{"type":["string","null"],"maxLength":40},
             "year":{"type":"integer","minimum":1900,"maximum":2030},"rating":{"type":"number"},"genres":{"type":"array","items":{"enum":["action","drama","comedy","sci-fi","horror"]},"maxItems":3}},
             "required":["title","year","rating"]}
            """#),
        SchemaCase(name: "colors", system: "List colors.", user: "Name three primary colors.", schema: #"""
            {"type":"array","items":{"type":"string","enum":["red","green","blue","yellow","black","white"]},"minItems":2,"maxItems":4}
            """#),
        SchemaCase(name: "free-object", system: "Reply in JSON.", user: "Describe a cat with a name and an age.", schema: nil),
        SchemaCase(name: "profile", system: "Create a user profile in JSON.", user: "Alice, 30 years old, likes hiking.", schema: #"""
            {"type":"object","properties":{"user":{"type":"object","properties":{"name":{"type":"string","maxLength":30},"age":{"type":"integer","minimum":0,"maximum":150},
             "hobbies":{"type":"array","items":{"type":"string","maxLength":20},"maxItems":3}},"required":["name","age"]},
             "active":{"type":"boolean"},"score":{"type":"integer","exclusiveMinimum":-10,"exclusiveMaximum":10}},"required":["user","active","score"]}
            """#),
    ]

    func input(temperature: Double, seed: Int?) throws -> AIInput {
        let format: AIResponseFormat = try schema.map { .jsonSchema(try JSONParser.parse($0)) } ?? .jsonObject
        return AIInput(messages: [.system(system), .user(user)], maxTokens: 256, temperature: temperature, seed: seed, responseFormat: format)
    }

    var validator: SchemaValidator? { schema.map { SchemaValidator(root: try! JSONParser.parse($0)) } }
}

/// JSON mode on the real SmolLM2-135M-Instruct Q8_0 model: every output of the schema suite is a
/// complete document that an independent validator accepts, greedy and sampled.
final class JSONModeModelTests: XCTestCase {
    let model = TestModel.id

    func runSuite(temperature: Double, seeds: [Int?]) async throws {
        let ai = try TestModel.ai()
        var valid = 0, total = 0, notMet = 0
        var dump = ""
        for c in SchemaCase.all {
            for seed in seeds {
                total += 1
                let out: AIOutput
                do {
                    out = try await ai.run(model, try c.input(temperature: temperature, seed: seed))
                } catch {
                    if (error as? AIError)?.code == AIError.jsonModeNotMetCode { notMet += 1 }
                    XCTFail("\(c.name) (t=\(temperature), seed \(seed.map(String.init) ?? "-")): \(error)")
                    continue
                }
                guard let json = out.json else {
                    XCTFail("\(c.name): no JSON value in the output")
                    continue
                }
                // the value is what the text says
                XCTAssertEqual(try JSONParser.parse(out.response), json, c.name)
                var problems: [String] = []
                if let v = c.validator {
                    problems = v.problems(json)
                } else if case .object = json {} else {
                    problems = ["json_object mode produced a \(json.typeName)"]
                }
                XCTAssertEqual(problems, [], "\(c.name): \(out.response)")
                if problems.isEmpty { valid += 1 }
                // the Workers AI bytes carry the value itself, not a string
                let bytes = try JSONParser.parse(out.jsonBytes)
                XCTAssertEqual(bytes["response"], json)
                dump += #"{"case":"\#(c.name)","temperature":\#(temperature),"schema":\#(c.schema.map { try! JSONParser.parse($0).jsonText } ?? "null"),"output":\#(json.jsonText)}"# + "\n"
            }
        }
        if let path = ProcessInfo.processInfo.environment["EDGEAI_JSON_DUMP"] {
            // appended in place (never an atomic replace: the path may be a device or shared file)
            if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(dump.utf8))
        }
        print("JSON mode suite, temperature \(temperature): \(valid)/\(total) valid, \(notMet) stopped by max_tokens")
        XCTAssertEqual(valid, total)
    }

    /// Seeds of the sampled run: 7, or the list in EDGEAI_JSON_SEEDS (e.g. "1,2,3,4,5") for a longer measurement.
    static var sampledSeeds: [Int?] {
        guard let list = ProcessInfo.processInfo.environment["EDGEAI_JSON_SEEDS"] else { return [7] }
        return list.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    func testSchemaSuiteGreedy() async throws {
        try await runSuite(temperature: 0, seeds: [nil])
    }

    func testSchemaSuiteSampled() async throws {
        try await runSuite(temperature: 0.8, seeds: Self.sampledSeeds)
    }

    func testMaxTokensTooSmallIsJSONModeError() async throws {
        let ai = try TestModel.ai()
        var input = try SchemaCase.all[0].input(temperature: 0, seed: nil)
        input.maxTokens = 3
        do {
            _ = try await ai.run(model, input)
            XCTFail("three tokens cannot hold the document")
        } catch let e as AIError {
            XCTAssertEqual(e.code, AIError.jsonModeNotMetCode)
            XCTAssertTrue(e.message.hasPrefix("JSON Mode couldn't be met"), e.message)
        }
    }

    func testRequestBytesWithOpenAIEnvelope() async throws {
        let ai = try TestModel.ai()
        let body = #"{"messages":[{"role":"user","content":"Is water wet?"}],"max_tokens":40,"temperature":0,"response_format":{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":{"type":"object","properties":{"yes":{"type":"boolean"}},"required":["yes"],"additionalProperties":false}}}}"#
        let bytes = try await ai.run(model, json: Array(body.utf8))
        let v = try JSONParser.parse(bytes)
        XCTAssertEqual(v.objectKeys, ["response", "usage"])
        guard case .object(let members)? = v["response"] else { return XCTFail("response is not an object: \(String(decoding: bytes, as: UTF8.self))") }
        XCTAssertEqual(members.map(\.key), ["yes"])
        guard case .bool? = v["response"]?["yes"] else { return XCTFail("yes is not a boolean") }
    }

    func testWorkerRESTRoute() async throws {
        let ai = try TestModel.ai()
        let worker = try await RunningWorker.start(ai: ai, configuration: WorkerConfiguration(host: "127.0.0.1", port: 0, model: TestModel.id), state: WorkerState())
        defer { worker.server.cancel() }
        let p = worker.port
        try await Task.detached {
            let schema = #"{"type":"object","properties":{"color":{"enum":["red","green","blue"]}},"required":["color"]}"#
            let ok = try httpPost(port: p, path: "/ai/run/\(TestModel.id)",
                                  body: #"{"prompt":"Pick a color.","max_tokens":30,"temperature":0,"response_format":{"type":"json_schema","json_schema":\#(schema)}}"#)
            XCTAssertEqual(ok.status, 200)
            let v = try JSONParser.parse(ok.body)
            XCTAssertEqual(v["success"], .bool(true))
            guard case .string(let color)? = v["result"]?["response"]?["color"] else { return XCTFail(ok.text) }
            XCTAssertTrue(["red", "green", "blue"].contains(color))
            let stream = try httpPost(port: p, path: "/ai/run/\(TestModel.id)",
                                      body: #"{"prompt":"Pick a color.","stream":true,"response_format":{"type":"json_object"}}"#)
            XCTAssertEqual(stream.status, 400)
            let e = try JSONParser.parse(stream.body)
            XCTAssertEqual(e["errors"], .array([.object([("code", .number(5006, literal: "5006")), ("message", .string("Property '/response_format' cannot be used with '/stream': \(AIError.jsonModeStreamMessage)"))])]))
        }.value
    }

    func testErrorPaths() async throws {
        let ai = try TestModel.ai()
        func code(_ body: String) async -> (Int, String)? {
            do {
                _ = try await ai.run(model, json: Array(body.utf8))
                return nil
            } catch let e as AIError {
                return (e.code, e.message)
            } catch {
                return (-1, "\(error)")
            }
        }
        // an unsupported keyword: 5006 naming it
        let pattern = await code(#"{"prompt":"x","response_format":{"type":"json_schema","json_schema":{"type":"object","properties":{"zip":{"type":"string","pattern":"^[0-9]{5}$"}}}}}"#)
        XCTAssertEqual(pattern?.0, 5006)
        XCTAssertTrue(pattern?.1.contains("'pattern'") ?? false, pattern?.1 ?? "")
        XCTAssertTrue(pattern?.1.contains("#/properties/zip") ?? false, pattern?.1 ?? "")
        // streaming: 5006 with Workers AI's text
        let stream = await code(#"{"prompt":"x","stream":true,"response_format":{"type":"json_object"}}"#)
        XCTAssertEqual(stream?.0, 5006)
        XCTAssertTrue(stream?.1.contains(AIError.jsonModeStreamMessage) ?? false, stream?.1 ?? "")
        do {
            _ = try await ai.stream(model, AIInput(prompt: "x", responseFormat: .jsonObject))
            XCTFail("AI.stream accepted JSON mode")
        } catch let e as AIError {
            XCTAssertEqual(e.code, 5006)
        }
        // malformed response_format shapes
        for (body, fragment) in [
            (#"{"prompt":"x","response_format":{"type":"xml"}}"#, "'/response_format/type'"),
            (#"{"prompt":"x","response_format":{"type":"json_schema"}}"#, "json_schema"),
            (#"{"prompt":"x","response_format":"json"}"#, "'/response_format'"),
            (#"{"prompt":"x","response_format":{"type":"json_schema","json_schema":{"type":"integer","minimum":9,"maximum":1}}}"#, "minimum"),
        ] {
            let e = await code(body)
            XCTAssertEqual(e?.0, 5006, body)
            XCTAssertTrue(e?.1.contains(fragment) ?? false, "\(body): \(e?.1 ?? "no error")")
        }
    }
}

/// `response_format` in requests, without a model.
final class ResponseFormatValidationTests: XCTestCase {
    func testShapes() throws {
        let schema = #"{"type":"object","properties":{"a":{"type":"integer"}}}"#
        let plain = try AIInput(json: Array(#"{"prompt":"x","response_format":{"type":"json_schema","json_schema":\#(schema)}}"#.utf8))
        XCTAssertEqual(plain.responseFormat, .jsonSchema(try JSONParser.parse(schema)))
        let openAI = try AIInput(json: Array(#"{"prompt":"x","response_format":{"type":"json_schema","json_schema":{"name":"n","strict":true,"schema":\#(schema)}}}"#.utf8))
        XCTAssertEqual(openAI.responseFormat, plain.responseFormat)
        let object = try AIInput(json: Array(#"{"prompt":"x","response_format":{"type":"json_object"}}"#.utf8))
        XCTAssertEqual(object.responseFormat, .jsonObject)
        // written back and read again
        XCTAssertEqual(try AIInput(json: plain.jsonBytes), plain)
        XCTAssertTrue(String(decoding: plain.jsonBytes, as: UTF8.self).contains(#""response_format":{"type":"json_schema","json_schema":{"type":"object""#))
        // Codable keeps it too
        XCTAssertEqual(try JSONDecoder().decode(AIInput.self, from: JSONEncoder().encode(plain)), plain)
    }

    func testStreamWithResponseFormatIsRefused() {
        XCTAssertThrowsError(try AIInput(json: Array(#"{"prompt":"x","stream":true,"response_format":{"type":"json_object"}}"#.utf8))) { e in
            XCTAssertEqual((e as? AIError)?.code, 5006)
            XCTAssertTrue((e as? AIError)?.message.contains("not supported with stream mode") ?? false)
        }
        XCTAssertThrowsError(try AIInput(prompt: "x", stream: true, responseFormat: .jsonObject).validate())
    }

    func testSchemaErrorsNameTheKeyword() {
        let f = AIResponseFormat.jsonSchema(try! JSONParser.parse(#"{"type":"array","items":{"type":"string","pattern":"a"}}"#))
        XCTAssertThrowsError(try f.grammar()) { e in
            XCTAssertEqual((e as? AIError)?.code, 5006)
            XCTAssertEqual((e as? AIError)?.message, "Invalid '/response_format/json_schema': Unsupported JSON Schema keyword 'pattern' at '#/items'")
        }
    }

    func testValidatorCanFail() throws {
        // the independent validator rejects what it should (so the suite above can fail)
        let v = SchemaValidator(root: try JSONParser.parse(#"{"type":"object","properties":{"d":{"type":"string","format":"date"},"t":{"type":"string","format":"time"},"n":{"type":"integer","maximum":3},"e":{"enum":["a"]},"l":{"type":"array","maxItems":1}},"required":["d"]}"#))
        XCTAssertEqual(v.problems(try JSONParser.parse(#"{"d":"2024-02-29","t":"10:00:00Z","n":3,"e":"a","l":[1]}"#)), [])
        XCTAssertEqual(v.problems(try JSONParser.parse(#"{"d":"2023-02-29"}"#)).count, 1)
        XCTAssertEqual(v.problems(try JSONParser.parse(#"{"d":"2024-01-01","t":"10:00:00"}"#)).count, 1)
        XCTAssertEqual(v.problems(try JSONParser.parse(#"{"d":"2024-01-01","n":4,"e":"b","l":[1,2]}"#)).count, 3)
        XCTAssertEqual(v.problems(try JSONParser.parse(#"{"n":1}"#)).count, 1)
    }
}
