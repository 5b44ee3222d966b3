import EdgeAI
import Foundation

// The OpenAI dialect, as Workers AI exposes it (`/v1/chat/completions`, `/v1/completions`,
// `/v1/models`, also under `/accounts/<account>/ai/v1/`): requests mapped onto `AIInput`,
// answers and stream chunks written in OpenAI's shapes, errors in OpenAI's envelope.

/// An error in OpenAI's envelope: `{"error":{"message":…,"type":…,"param":…,"code":…}}`.
public struct OpenAIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String
    public var type: String
    public var param: String?
    public var code: String?

    public init(status: Int, message: String, type: String = "invalid_request_error", param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
    }

    public var description: String { "\(status) \(type): \(message)" }

    static func invalid(_ message: String, param: String? = nil, code: String = "invalid_value") -> OpenAIError {
        OpenAIError(status: 400, message: message, param: param, code: code)
    }

    /// A Workers AI error in OpenAI's terms (the Workers AI code stays at the front of the message).
    public init(_ e: AIError) {
        let message = e.description
        switch e.code {
        case AIError.invalidInputCode, 5023:
            self.init(status: 400, message: message, code: "invalid_request")
        case AIError.noSuchModelCode:
            self.init(status: 404, message: message, param: "model", code: "model_not_found")
        case AIError.contextWindowCode:
            self.init(status: 400, message: message, param: "messages", code: "context_length_exceeded")
        case 3006:
            self.init(status: 413, message: message, code: "request_too_large")
        case 3007, AIError.abortedCode:
            self.init(status: 408, message: message, type: "timeout", code: "request_aborted")
        case 3036, 3040:
            self.init(status: 429, message: message, type: "rate_limit_exceeded", code: "capacity_exceeded")
        default:
            self.init(status: 500, message: message, type: "server_error", code: "internal_error")
        }
    }

    public static func from(_ error: any Error) -> OpenAIError {
        if let e = error as? OpenAIError { return e }
        if let e = error as? AIError { return OpenAIError(e) }
        if error is CancellationError { return OpenAIError(AIError.aborted) }
        return OpenAIError(AIError.internal(String(describing: error)))
    }

    public var envelopeJSON: [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        w.key("error"); w.raw("{")
        w.key("message"); w.string(message); w.raw(",")
        w.key("type"); w.string(type); w.raw(",")
        w.key("param"); if let param { w.string(param) } else { w.null() }
        w.raw(",")
        w.key("code"); if let code { w.string(code) } else { w.null() }
        w.raw("}}")
        return w.bytes
    }
}

/// A parsed `/v1/chat/completions` or `/v1/completions` request.
public struct OpenAIRequest: Sendable, Equatable {
    public enum Kind: String, Sendable { case chat, completion }
    public var kind: Kind
    public var model: String
    /// The Workers AI input it maps to (`stream` is left unset: see `stream`).
    public var input: AIInput
    public var stream: Bool
    /// `stream_options.include_usage`: a last chunk with `choices: []` and the usage.
    public var includeUsage: Bool
    /// `stop`: generation ends before the first of these strings (which is not returned).
    public var stop: [String]

    /// Parse a request body. Fields EdgeAI cannot honour are refused by name (never silently
    /// ignored when they would change the answer); unknown fields are ignored.
    public init(kind: Kind, json body: some Collection<UInt8>) throws(OpenAIError) {
        let root: JSONValue
        do {
            root = try JSONParser.parse(body)
        } catch {
            throw .invalid("We could not parse the JSON body of your request: \(error.description)", code: "invalid_json")
        }
        guard case .object = root else { throw .invalid("The request body must be a JSON object, got \(root.typeName)", code: "invalid_type") }
        self.kind = kind

        func present(_ key: String) -> JSONValue? {
            guard let v = root[key], v != .null else { return nil }
            return v
        }
        func typeError(_ key: String, _ expected: String, _ v: JSONValue) -> OpenAIError {
            .invalid("Invalid type for '\(key)': expected \(expected), but got \(v.typeName).", param: key, code: "invalid_type")
        }
        func number(_ key: String) throws(OpenAIError) -> Double? {
            guard let v = present(key) else { return nil }
            guard case .number(let d, _) = v else { throw typeError(key, "a number", v) }
            return d
        }
        func integer(_ key: String) throws(OpenAIError) -> Int? {
            guard let v = present(key) else { return nil }
            guard case .number(let d, let literal) = v, d == d.rounded() else { throw typeError(key, "an integer", v) }
            if let exact = Int(literal) { return exact }
            guard abs(d) < 9e18 else { throw .invalid("'\(key)' is out of range: \(literal)", param: key) }
            return Int(d)
        }
        func bool(_ key: String) throws(OpenAIError) -> Bool? {
            guard let v = present(key) else { return nil }
            guard case .bool(let b) = v else { throw typeError(key, "a boolean", v) }
            return b
        }

        guard let mv = present("model") else { throw .invalid("Missing required parameter: 'model'.", param: "model", code: "missing_required_parameter") }
        guard case .string(let model) = mv, !model.isEmpty else { throw typeError("model", "a non-empty string", mv) }
        self.model = model

        var input = AIInput()
        switch kind {
        case .chat:
            guard let messages = present("messages") else {
                throw .invalid("Missing required parameter: 'messages'.", param: "messages", code: "missing_required_parameter")
            }
            input.messages = try Self.messages(messages)
        case .completion:
            guard let prompt = present("prompt") else {
                throw .invalid("Missing required parameter: 'prompt'.", param: "prompt", code: "missing_required_parameter")
            }
            switch prompt {
            case .string(let s):
                input.prompt = s
            case .array(let items) where items.count == 1:
                guard case .string(let s) = items[0] else {
                    throw .invalid("'prompt' must be a string (token-id prompts are not supported)", param: "prompt")
                }
                input.prompt = s
            case .array:
                throw .invalid("'prompt' must be one string; batches of prompts are not supported, send one request per prompt", param: "prompt")
            default:
                throw typeError("prompt", "a string", prompt)
            }
            // A completion continues the text as it is: no chat template.
            input.raw = true
            if let echo = try bool("echo"), echo { throw .invalid("'echo' is not supported", param: "echo", code: "unsupported_parameter") }
            if let suffix = present("suffix") { throw .invalid("'suffix' is not supported (got \(suffix.typeName))", param: "suffix", code: "unsupported_parameter") }
            if let best = try integer("best_of"), best != 1 { throw .invalid("'best_of' must be 1, got \(best)", param: "best_of", code: "unsupported_parameter") }
        }

        // max_completion_tokens is the newer name of max_tokens; either may be sent.
        let maxTokens = try integer("max_tokens")
        input.maxTokens = try integer("max_completion_tokens") ?? maxTokens
        input.temperature = try number("temperature")
        input.topP = try number("top_p")
        input.seed = try integer("seed")
        input.frequencyPenalty = try number("frequency_penalty")
        input.presencePenalty = try number("presence_penalty")
        // Beyond OpenAI, as llama.cpp's and Workers AI's own fields.
        input.topK = try integer("top_k")
        input.repetitionPenalty = try number("repetition_penalty")
        input.minP = try number("min_p")

        if let n = try integer("n"), n != 1 {
            throw .invalid("'n' must be 1: EdgeAI returns one choice per request (got \(n)); send \(n) requests instead, with different seeds", param: "n", code: "unsupported_parameter")
        }
        if let lp = present("logprobs") {
            let on: Bool
            switch lp {
            case .bool(let b): on = b
            case .number(let d, _): on = d != 0   // /v1/completions takes a count
            default: throw typeError("logprobs", "a boolean", lp)
            }
            if on { throw .invalid("'logprobs' is not supported", param: "logprobs", code: "unsupported_parameter") }
        }
        if let t = try integer("top_logprobs"), t != 0 { throw .invalid("'top_logprobs' is not supported", param: "top_logprobs", code: "unsupported_parameter") }
        if let bias = present("logit_bias") {
            guard case .object(let members) = bias else { throw typeError("logit_bias", "an object", bias) }
            if !members.isEmpty { throw .invalid("'logit_bias' is not supported", param: "logit_bias", code: "unsupported_parameter") }
        }
        if present("functions") != nil || present("function_call") != nil {
            throw .invalid("The legacy 'functions'/'function_call' fields are not supported; send 'tools' and 'tool_choice'", param: "functions", code: "unsupported_parameter")
        }
        // tools, tool_choice and response_format follow the Workers AI rules (AIInput's parser)
        var extra: [(key: String, value: JSONValue)] = []
        if let tools = present("tools") {
            if case .array(let a) = tools, a.isEmpty {} else { extra.append((key: "tools", value: tools)) }
        }
        if let choice = present("tool_choice"), !extra.isEmpty { extra.append((key: "tool_choice", value: choice)) }
        if let format = present("response_format"), format["type"] != .string("text") {
            extra.append((key: "response_format", value: format))
        }
        if !extra.isEmpty {
            guard kind == .chat else { throw .invalid("'tools' and 'response_format' are only supported by /v1/chat/completions", param: extra[0].key, code: "unsupported_parameter") }
            func field(_ key: String) -> JSONValue? { extra.first { $0.key == key }?.value }
            do {
                (input.tools, input.toolChoice, input.responseFormat) = try AIInput.parseToolFields(
                    tools: field("tools"), toolChoice: field("tool_choice"), responseFormat: field("response_format"))
            } catch {
                throw OpenAIError.invalid(error.message, param: extra[0].key)
            }
        }

        stream = try bool("stream") ?? false
        includeUsage = false
        if let options = present("stream_options") {
            guard case .object = options else { throw typeError("stream_options", "an object", options) }
            guard stream else { throw .invalid("'stream_options' is only allowed when 'stream' is true", param: "stream_options") }
            if let v = options["include_usage"], v != .null {
                guard case .bool(let b) = v else { throw typeError("stream_options.include_usage", "a boolean", v) }
                includeUsage = b
            }
        }

        stop = []
        if let sv = present("stop") {
            switch sv {
            case .string(let s): stop = [s]
            case .array(let items):
                for (i, item) in items.enumerated() {
                    guard case .string(let s) = item else { throw typeError("stop[\(i)]", "a string", item) }
                    stop.append(s)
                }
            default: throw typeError("stop", "a string or an array of strings", sv)
            }
            if stop.count > 4 { throw .invalid("'stop' takes at most 4 sequences, got \(stop.count)", param: "stop") }
            if stop.contains(where: \.isEmpty) { throw .invalid("'stop' sequences must not be empty", param: "stop") }
        }

        do {
            try input.validate()
        } catch {
            throw OpenAIError(error)
        }
        self.input = input
    }

    private static func messages(_ value: JSONValue) throws(OpenAIError) -> [AIMessage] {
        guard case .array(let items) = value else {
            throw .invalid("Invalid type for 'messages': expected an array, but got \(value.typeName).", param: "messages", code: "invalid_type")
        }
        if items.isEmpty { throw .invalid("'messages' must contain at least one message", param: "messages", code: "empty_array") }
        var out: [AIMessage] = []
        for (n, item) in items.enumerated() {
            let path = "messages[\(n)]"
            guard case .object = item else { throw .invalid("Invalid type for '\(path)': expected an object, but got \(item.typeName).", param: path, code: "invalid_type") }
            guard case .string(var role)? = item["role"] else {
                throw .invalid("Missing or invalid '\(path).role': expected one of 'system', 'developer', 'user', 'assistant', 'tool'", param: "\(path).role")
            }
            if role == "developer" { role = "system" }   // OpenAI's newer name for the system role
            guard AIMessage.roles.contains(role) else {
                throw .invalid("Invalid value for '\(path).role': '\(role)' (expected 'system', 'developer', 'user', 'assistant' or 'tool')", param: "\(path).role")
            }
            var calls: [AIToolCall]? = nil
            if let cv = item["tool_calls"], cv != .null {
                guard case .array(let list) = cv else {
                    throw .invalid("Invalid type for '\(path).tool_calls': expected an array, but got \(cv.typeName).", param: "\(path).tool_calls", code: "invalid_type")
                }
                guard role == "assistant" else { throw .invalid("'\(path).tool_calls' is only allowed in assistant messages", param: "\(path).tool_calls") }
                calls = []
                for (k, c) in list.enumerated() {
                    do {
                        calls!.append(try AIToolCall(jsonValue: c, path: "\(path).tool_calls[\(k)]"))
                    } catch {
                        throw .invalid(error.message, param: "\(path).tool_calls[\(k)]")
                    }
                }
            }
            var toolCallID: String? = nil
            if case .string(let id)? = item["tool_call_id"] { toolCallID = id }
            var name: String? = nil
            if case .string(let n)? = item["name"] { name = n }
            let content: String
            switch item["content"] {
            case .string(let s)?:
                content = s
            case .array(let parts)?:
                var text = ""
                for (k, part) in parts.enumerated() {
                    guard case .string(let type)? = part["type"] else {
                        throw .invalid("'\(path).content[\(k)]' must be an object with a 'type'", param: "\(path).content")
                    }
                    guard type == "text", case .string(let t)? = part["text"] else {
                        throw .invalid("'\(path).content[\(k)]' of type '\(type)' is not supported: only text parts ({\"type\": \"text\", \"text\": …})", param: "\(path).content", code: "unsupported_content")
                    }
                    text += t
                }
                content = text
            case nil, .null?:
                guard calls != nil else {
                    throw .invalid("Missing '\(path).content'", param: "\(path).content", code: "missing_required_parameter")
                }
                content = ""
            case let v?:
                throw .invalid("Invalid type for '\(path).content': expected a string or an array of text parts, but got \(v.typeName).", param: "\(path).content", code: "invalid_type")
            }
            out.append(AIMessage(role: role, content: content, toolCalls: calls, toolCallID: toolCallID, name: name))
        }
        return out
    }
}

/// Holds back text that may be the start of a stop sequence and cuts the text at the first one
/// (matching the UTF-8 bytes, so a stop sequence split across chunks is still found).
public struct StopSequenceFilter: Sendable {
    private let stops: [[UInt8]]
    private var pending: [UInt8] = []
    public private(set) var stopped = false

    public init(_ stops: [String]) { self.stops = stops.map { Array($0.utf8) }.filter { !$0.isEmpty } }

    /// Text that can be sent now. After a stop sequence (`stopped`), everything is swallowed.
    public mutating func feed(_ text: String) -> String {
        guard !stopped else { return "" }
        if stops.isEmpty { return text }
        pending += text.utf8
        // The earliest complete stop sequence ends the text.
        var cut: Int? = nil
        for s in stops {
            if let at = Self.find(s, in: pending), at < (cut ?? Int.max) { cut = at }
        }
        if let cut {
            stopped = true
            let out = String(decoding: pending[0..<cut], as: UTF8.self)
            pending = []
            return out
        }
        // Keep the longest tail that is a proper prefix of some stop sequence.
        var keep = 0
        for s in stops {
            var k = min(s.count - 1, pending.count)
            while k > keep {
                if pending[(pending.count - k)...].elementsEqual(s[0..<k]) { keep = k; break }
                k -= 1
            }
        }
        let out = String(decoding: pending[0..<(pending.count - keep)], as: UTF8.self)
        pending.removeFirst(pending.count - keep)
        return out
    }

    /// What was held back, at the end of the text.
    public mutating func flush() -> String {
        defer { pending = [] }
        return stopped ? "" : String(decoding: pending, as: UTF8.self)
    }

    private static func find(_ needle: [UInt8], in hay: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
            if hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
        }
        return nil
    }
}

/// Writes OpenAI's response objects.
public struct OpenAIEncoder: Sendable {
    public let kind: OpenAIRequest.Kind
    public let id: String
    public let created: Int
    public let model: String

    public init(kind: OpenAIRequest.Kind, model: String, id: String? = nil, created: Int? = nil) {
        self.kind = kind
        self.model = model
        let prefix = kind == .chat ? "chatcmpl-" : "cmpl-"
        self.id = id ?? prefix + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        self.created = created ?? Int(Date().timeIntervalSince1970)
    }

    private func head(_ w: inout JSONWriter, object: String) {
        w.key("id"); w.string(id); w.raw(",")
        w.key("object"); w.string(object); w.raw(",")
        w.key("created"); w.int(created); w.raw(",")
        w.key("model"); w.string(model); w.raw(",")
    }

    static func usage(_ w: inout JSONWriter, _ u: AIUsage) {
        w.raw("{")
        w.key("prompt_tokens"); w.int(u.promptTokens); w.raw(",")
        w.key("completion_tokens"); w.int(u.completionTokens); w.raw(",")
        w.key("total_tokens"); w.int(u.totalTokens)
        w.raw("}")
    }

    private func finish(_ w: inout JSONWriter, _ reason: String?) {
        w.key("finish_reason")
        if let reason { w.string(reason) } else { w.null() }
    }

    /// The non-streaming answer.
    /// `tool_calls` of a message or delta: `[{"index"?, "id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}]`.
    static func toolCalls(_ w: inout JSONWriter, _ calls: [AIToolCall], indexed: Bool) {
        w.raw("[")
        for (i, c) in calls.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{")
            if indexed { w.key("index"); w.int(i); w.raw(",") }
            w.key("id"); w.string(c.id ?? "call_\(i)"); w.raw(",")
            w.key("type"); w.string("function"); w.raw(",")
            w.key("function"); w.raw("{"); w.key("name"); w.string(c.name); w.raw(",")
            w.key("arguments"); w.string(c.arguments.jsonText); w.raw("}}")
        }
        w.raw("]")
    }

    /// A stream chunk carrying the answer's tool calls whole.
    public func toolCallsChunk(_ calls: [AIToolCall]) -> [UInt8] {
        var w = JSONWriter()
        w.raw("data: {")
        head(&w, object: "chat.completion.chunk")
        w.key("choices"); w.raw("[{")
        w.key("index"); w.int(0); w.raw(",")
        w.key("delta"); w.raw("{"); w.key("tool_calls"); Self.toolCalls(&w, calls, indexed: true); w.raw("},")
        w.key("logprobs"); w.null(); w.raw(",")
        finish(&w, nil)
        w.raw("}]}\n\n")
        return w.bytes
    }

    public func completion(text: String, finishReason: String, usage: AIUsage, toolCalls: [AIToolCall]? = nil) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        head(&w, object: kind == .chat ? "chat.completion" : "text_completion")
        w.key("choices"); w.raw("[{")
        w.key("index"); w.int(0); w.raw(",")
        if kind == .chat {
            w.key("message"); w.raw("{")
            w.key("role"); w.string("assistant"); w.raw(",")
            w.key("content")
            if let toolCalls, !toolCalls.isEmpty {
                if text.isEmpty { w.null() } else { w.string(text) }
                w.raw(","); w.key("tool_calls"); Self.toolCalls(&w, toolCalls, indexed: false)
            } else {
                w.string(text)
            }
            w.raw("},")
        } else {
            w.key("text"); w.string(text); w.raw(",")
        }
        w.key("logprobs"); w.null(); w.raw(",")
        finish(&w, finishReason)
        w.raw("}],")
        w.key("usage"); Self.usage(&w, usage)
        w.raw("}")
        return w.bytes
    }

    /// One stream chunk as a server-sent event. `role` only on the first chat chunk; `finishReason`
    /// (and, unless sent separately, `usage`) on the last.
    public func chunk(text: String?, role: Bool = false, finishReason: String? = nil, usage: AIUsage? = nil) -> [UInt8] {
        var w = JSONWriter()
        w.raw("data: {")
        head(&w, object: kind == .chat ? "chat.completion.chunk" : "text_completion")
        w.key("choices"); w.raw("[{")
        w.key("index"); w.int(0); w.raw(",")
        if kind == .chat {
            w.key("delta"); w.raw("{")
            var first = true
            if role { w.key("role"); w.string("assistant"); first = false }
            if let text {
                if !first { w.raw(",") }
                w.key("content"); w.string(text)
            }
            w.raw("},")
        } else {
            w.key("text"); w.string(text ?? ""); w.raw(",")
        }
        w.key("logprobs"); w.null(); w.raw(",")
        finish(&w, finishReason)
        w.raw("}]")
        if let usage { w.raw(","); w.key("usage"); Self.usage(&w, usage) }
        w.raw("}\n\n")
        return w.bytes
    }

    /// The `stream_options.include_usage` chunk: no choices, the usage.
    public func usageChunk(_ usage: AIUsage) -> [UInt8] {
        var w = JSONWriter()
        w.raw("data: {")
        head(&w, object: kind == .chat ? "chat.completion.chunk" : "text_completion")
        w.key("choices"); w.raw("[],")
        w.key("usage"); Self.usage(&w, usage)
        w.raw("}\n\n")
        return w.bytes
    }

    /// `GET /v1/models`.
    public static func modelList(_ models: [ModelInfo]) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        w.key("object"); w.string("list"); w.raw(",")
        w.key("data"); w.raw("[")
        for (n, m) in models.enumerated() {
            if n > 0 { w.raw(",") }
            model(&w, m)
        }
        w.raw("]}")
        return w.bytes
    }

    /// `GET /v1/models/<id>`.
    public static func modelObject(_ m: ModelInfo) -> [UInt8] {
        var w = JSONWriter()
        model(&w, m)
        return w.bytes
    }

    private static func model(_ w: inout JSONWriter, _ m: ModelInfo) {
        let mtime = (try? FileManager.default.attributesOfItem(atPath: m.path)[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        w.raw("{")
        w.key("id"); w.string(m.id); w.raw(",")
        w.key("object"); w.string("model"); w.raw(",")
        w.key("created"); w.int(Int(mtime)); w.raw(",")
        w.key("owned_by"); w.string("edgeai")
        w.raw("}")
    }
}

/// `finish_reason` of an answer: "stop" at an end token or stop sequence, "length" when
/// max_tokens ran out. (An end token sampled exactly as the last allowed token counts as "length":
/// the usage alone does not tell them apart.)
func finishReason(completionTokens: Int, maxTokens: Int, stoppedBySequence: Bool) -> String {
    stoppedBySequence || completionTokens < maxTokens ? "stop" : "length"
}

/// `/v1/embeddings` (OpenAI's shape): `{input: string | [string], model, encoding_format?: "float"}`
/// → `{object: "list", data: [{object: "embedding", index, embedding: […]}], model, usage}`.
public struct OpenAIEmbeddingRequest: Sendable, Equatable {
    public var model: String
    public var input: EmbeddingInput

    public init(json body: some Collection<UInt8>) throws(OpenAIError) {
        let root: JSONValue
        do {
            root = try JSONParser.parse(body)
        } catch {
            throw .invalid("We could not parse the JSON body of your request: \(error.description)", code: "invalid_json")
        }
        guard case .object = root else { throw .invalid("The request body must be a JSON object, got \(root.typeName)", code: "invalid_type") }
        guard case .string(let model)? = root["model"], !model.isEmpty else {
            throw .invalid("'model' is required and must be a string", param: "model", code: "invalid_type")
        }
        self.model = model
        if let f = root["encoding_format"] {
            guard case .string("float") = f else {
                throw .invalid("Only encoding_format 'float' is supported", param: "encoding_format")
            }
        }
        if root["dimensions"] != nil {
            throw .invalid("'dimensions' is not supported: the model's vectors have a fixed size", param: "dimensions", code: "unsupported_parameter")
        }
        guard let input = root["input"] else { throw .invalid("'input' is required", param: "input", code: "invalid_type") }
        // The Workers AI rules (1-100 non-empty strings) with OpenAI's field name.
        do {
            self.input = try EmbeddingInput(jsonValue: .object([(key: "text", value: input)]))
        } catch {
            throw OpenAIError.invalid(error.message.replacingOccurrences(of: "'/text", with: "'/input"), param: "input")
        }
    }

    public static func response(_ out: EmbeddingOutput, model: String) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        w.key("object"); w.string("list"); w.raw(",")
        w.key("data"); w.raw("[")
        for (i, v) in out.data.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("{\"object\":\"embedding\",\"index\":\(i),\"embedding\":[")
            for (j, x) in v.enumerated() {
                if j > 0 { w.raw(",") }
                w.raw(x.isFinite ? "\(x)" : "null")
            }
            w.raw("]}")
        }
        w.raw("],")
        w.key("model"); w.string(model); w.raw(",")
        w.key("usage"); w.raw("{\"prompt_tokens\":\(out.promptTokens),\"total_tokens\":\(out.promptTokens)}")
        w.raw("}")
        return w.bytes
    }
}
