import Foundation

/// One chat message: `{"role": "...", "content": "..."}`; in tool-calling conversations an
/// assistant message may carry the calls it made (`tool_calls`, content then may be empty) and a
/// `tool` message the id of the call it answers (`tool_call_id`) and the tool's `name`.
public struct AIMessage: Sendable, Equatable, Hashable, Codable {
    public var role: String
    public var content: String
    public var toolCalls: [AIToolCall]?
    public var toolCallID: String?
    public var name: String?

    public init(role: String, content: String, toolCalls: [AIToolCall]? = nil, toolCallID: String? = nil, name: String? = nil) {
        self.role = role
        self.content = content
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.name = name
    }

    public enum CodingKeys: String, CodingKey {
        case role, content
        case toolCalls = "tool_calls"
        case toolCallID = "tool_call_id"
        case name
    }

    /// A `tool` message: the result of the call `id`.
    public static func tool(_ content: String, id: String? = nil, name: String? = nil) -> AIMessage {
        AIMessage(role: "tool", content: content, toolCallID: id, name: name)
    }

    func write(_ w: inout JSONWriter) {
        w.raw("{"); w.key("role"); w.string(role); w.raw(","); w.key("content"); w.string(content)
        if let toolCalls {
            w.raw(","); w.key("tool_calls"); w.raw("[")
            for (i, c) in toolCalls.enumerated() {
                if i > 0 { w.raw(",") }
                w.raw("{")
                if let id = c.id { w.key("id"); w.string(id); w.raw(",") }
                w.key("name"); w.string(c.name); w.raw(","); w.key("arguments"); w.value(c.arguments); w.raw("}")
            }
            w.raw("]")
        }
        if let toolCallID { w.raw(","); w.key("tool_call_id"); w.string(toolCallID) }
        if let name { w.raw(","); w.key("name"); w.string(name) }
        w.raw("}")
    }

    public static func system(_ content: String) -> AIMessage { AIMessage(role: "system", content: content) }
    public static func user(_ content: String) -> AIMessage { AIMessage(role: "user", content: content) }
    public static func assistant(_ content: String) -> AIMessage { AIMessage(role: "assistant", content: content) }

    /// The roles Workers AI accepts.
    public static let roles: [String] = ["system", "user", "assistant", "tool"]
}

/// JSON mode: `response_format` of a request. The answer's `response` is then a parsed JSON value
/// that satisfies it, produced by constrained decoding (see README, "JSON mode").
public struct AIResponseFormat: Sendable, Equatable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Any JSON object.
        case jsonObject = "json_object"
        /// A value valid under `schema`.
        case jsonSchema = "json_schema"
    }
    public var type: Kind
    /// The JSON Schema (`json_schema` only), already unwrapped from OpenAI's
    /// `{"name", "schema", "strict"}` envelope when the request used it.
    public var schema: JSONValue?

    public init(type: Kind, schema: JSONValue? = nil) {
        self.type = type
        self.schema = schema
    }

    public static let jsonObject = AIResponseFormat(type: .jsonObject)
    public static func jsonSchema(_ schema: JSONValue) -> AIResponseFormat { AIResponseFormat(type: .jsonSchema, schema: schema) }

    enum CodingKeys: String, CodingKey { case type, schema = "json_schema" }

    /// Codable carries the schema as its JSON text (Codable cannot hold arbitrary JSON).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(Kind.self, forKey: .type)
        if let text = try c.decodeIfPresent(String.self, forKey: .schema) {
            schema = try JSONParser.parse(text)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(schema?.jsonText, forKey: .schema)
    }

    func write(_ w: inout JSONWriter) {
        w.raw("{")
        w.key("type"); w.string(type.rawValue)
        if let schema { w.raw(","); w.key("json_schema"); w.value(schema) }
        w.raw("}")
    }
}

/// The input of a Workers AI text-generation call, field for field (snake_case in JSON).
/// Exactly one of `prompt` and `messages` must be set. `nil` means "the default".
public struct AIInput: Sendable, Equatable, Hashable, Codable {
    public var prompt: String?
    public var messages: [AIMessage]?
    /// No chat template; special tokens written in the prompt are parsed (default false).
    public var raw: Bool?
    /// Server-sent events (default false). `AI.run` ignores it; use `AI.stream`.
    public var stream: Bool?
    /// Default 256, at least 1; bounded by the context window (5021).
    public var maxTokens: Int?
    /// Default 0.6, 0…5; 0 means greedy.
    public var temperature: Double?
    /// 0.001…1 (off when absent).
    public var topP: Double?
    /// 1…50 (off when absent).
    public var topK: Int?
    /// 1…9999999999 (random when absent).
    public var seed: Int?
    /// 0…2 (llama.cpp's rule over the last 64 tokens; off when absent).
    public var repetitionPenalty: Double?
    /// −2…2 (OpenAI's formula; off when absent).
    public var frequencyPenalty: Double?
    /// −2…2 (OpenAI's formula; off when absent).
    public var presencePenalty: Double?
    /// 0…1: beyond Workers AI, llama.cpp's min-p (off when absent).
    public var minP: Double?
    /// JSON mode (not with streaming).
    public var responseFormat: AIResponseFormat?
    /// Tools the model may call (messages only; see Tools.swift).
    public var tools: [AITool]?
    /// Beyond Workers AI (OpenAI's): auto (default), none, required, or one function.
    public var toolChoice: AIToolChoice?

    public static let defaultMaxTokens = 256
    public static let defaultTemperature = 0.6

    public init(
        prompt: String? = nil, messages: [AIMessage]? = nil, raw: Bool? = nil, stream: Bool? = nil,
        maxTokens: Int? = nil, temperature: Double? = nil, topP: Double? = nil, topK: Int? = nil,
        seed: Int? = nil, repetitionPenalty: Double? = nil, frequencyPenalty: Double? = nil,
        presencePenalty: Double? = nil, minP: Double? = nil, responseFormat: AIResponseFormat? = nil,
        tools: [AITool]? = nil, toolChoice: AIToolChoice? = nil
    ) {
        self.prompt = prompt
        self.messages = messages
        self.raw = raw
        self.stream = stream
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.topP = topP
        self.topK = topK
        self.seed = seed
        self.repetitionPenalty = repetitionPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.minP = minP
        self.responseFormat = responseFormat
        self.tools = tools
        self.toolChoice = toolChoice
    }

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case prompt, messages, raw, stream
        case maxTokens = "max_tokens"
        case temperature
        case topP = "top_p"
        case topK = "top_k"
        case seed
        case repetitionPenalty = "repetition_penalty"
        case frequencyPenalty = "frequency_penalty"
        case presencePenalty = "presence_penalty"
        case minP = "min_p"
        case responseFormat = "response_format"
        case tools
        case toolChoice = "tool_choice"
    }

    /// The request as Workers AI JSON (only the fields that are set, in schema order).
    public var jsonBytes: [UInt8] {
        var w = JSONWriter()
        var first = true
        func field(_ k: CodingKeys, _ write: (inout JSONWriter) -> Void) {
            if !first { w.raw(",") }
            first = false
            w.key(k.rawValue)
            write(&w)
        }
        w.raw("{")
        if let prompt { field(.prompt) { $0.string(prompt) } }
        if let messages {
            field(.messages) { w in
                w.raw("[")
                for (n, m) in messages.enumerated() {
                    if n > 0 { w.raw(",") }
                    m.write(&w)
                }
                w.raw("]")
            }
        }
        if let raw { field(.raw) { $0.bool(raw) } }
        if let stream { field(.stream) { $0.bool(stream) } }
        if let maxTokens { field(.maxTokens) { $0.int(maxTokens) } }
        if let temperature { field(.temperature) { $0.number(temperature) } }
        if let topP { field(.topP) { $0.number(topP) } }
        if let topK { field(.topK) { $0.int(topK) } }
        if let seed { field(.seed) { $0.int(seed) } }
        if let repetitionPenalty { field(.repetitionPenalty) { $0.number(repetitionPenalty) } }
        if let frequencyPenalty { field(.frequencyPenalty) { $0.number(frequencyPenalty) } }
        if let presencePenalty { field(.presencePenalty) { $0.number(presencePenalty) } }
        if let minP { field(.minP) { $0.number(minP) } }
        if let responseFormat { field(.responseFormat) { responseFormat.write(&$0) } }
        if let tools {
            field(.tools) { w in
                w.raw("[")
                for (i, t) in tools.enumerated() { if i > 0 { w.raw(",") }; t.write(&w) }
                w.raw("]")
            }
        }
        if let toolChoice { field(.toolChoice) { toolChoice.write(&$0) } }
        w.raw("}")
        return w.bytes
    }
}

/// Token counts of one call.
public struct AIUsage: Sendable, Equatable, Hashable, Codable {
    public var promptTokens: Int
    public var completionTokens: Int
    public var totalTokens: Int

    public init(promptTokens: Int, completionTokens: Int) {
        self.promptTokens = promptTokens
        self.completionTokens = completionTokens
        self.totalTokens = promptTokens + completionTokens
    }

    public enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens"
        case completionTokens = "completion_tokens"
        case totalTokens = "total_tokens"
    }

    func write(_ w: inout JSONWriter) {
        w.raw("{")
        w.key("prompt_tokens"); w.int(promptTokens); w.raw(",")
        w.key("completion_tokens"); w.int(completionTokens); w.raw(",")
        w.key("total_tokens"); w.int(totalTokens)
        w.raw("}")
    }
}

/// Measurements of one call (not part of the Workers AI JSON).
public struct GenerationStats: Sendable, Equatable, Hashable {
    /// Tokens of the prompt found in the model's cache from an earlier call (not prefilled again).
    public var reusedPromptTokens: Int
    /// Tokens actually prefilled.
    public var prefilledTokens: Int
    /// Seconds from the start of the call to the model (after any wait for the model) to the first sampled token.
    public var timeToFirstToken: Double
    /// Seconds spent generating after the first token.
    public var generationSeconds: Double
    /// Tokens sampled (including a final end token).
    public var sampledTokens: Int
    /// Seed used by the sampler.
    public var seed: UInt64
    /// JSON mode: seconds spent masking tokens and advancing the grammar (part of the above).
    public var constraintSeconds: Double = 0
    /// JSON mode: token masks computed by walking the vocabulary trie (the others came from the cache).
    public var maskWalks: Int = 0
    /// Seconds the request waited for a free slot before it started (not part of the above).
    public var queueSeconds: Double = 0
    /// Of `reusedPromptTokens`: tokens copied from the cache of another sequence (a shared
    /// system prompt or earlier turn) rather than found in the slot's own cache.
    public var copiedPromptTokens: Int = 0
    /// The most sequences (this one included) evaluated together in one step of this request:
    /// 1 when it ran alone.
    public var largestStep: Int = 1

    /// Decode speed: tokens after the first per second.
    public var tokensPerSecond: Double {
        generationSeconds > 0 && sampledTokens > 1 ? Double(sampledTokens - 1) / generationSeconds : 0
    }
}

/// The non-streaming result: `{"response": "…", "usage": {…}}`; in JSON mode `response` is the
/// parsed value (`json`), not a string.
public struct AIOutput: Sendable, Codable {
    /// The generated text (in JSON mode: the document's text).
    public var response: String
    public var usage: AIUsage
    /// Timings and cache figures (not encoded).
    public var stats: GenerationStats?
    /// JSON mode: the parsed document, written as `response` in the JSON form.
    public var json: JSONValue? = nil
    /// With `tools`: the calls the model made (written as `tool_calls` when there are any;
    /// `response` is then the text outside them).
    public var toolCalls: [AIToolCall]? = nil

    public init(response: String, usage: AIUsage, stats: GenerationStats? = nil, json: JSONValue? = nil, toolCalls: [AIToolCall]? = nil) {
        self.response = response
        self.usage = usage
        self.stats = stats
        self.json = json
        self.toolCalls = toolCalls
    }

    public enum CodingKeys: String, CodingKey { case response, toolCalls = "tool_calls", usage }

    /// Exactly Workers AI's bytes: `{"response":"…","usage":{"prompt_tokens":n,"completion_tokens":m,"total_tokens":n+m}}`.
    public var jsonBytes: [UInt8] {
        var w = JSONWriter()
        write(&w)
        return w.bytes
    }

    func write(_ w: inout JSONWriter) {
        w.raw("{")
        w.key("response")
        if let json { w.value(json) } else { w.string(response) }
        w.raw(",")
        if let toolCalls, !toolCalls.isEmpty {
            w.key("tool_calls"); AIToolCall.writeList(toolCalls, &w); w.raw(",")
        }
        w.key("usage"); usage.write(&w)
        w.raw("}")
    }

    /// The REST API success envelope: `{"result":{…},"success":true,"errors":[],"messages":[]}`.
    public var envelopeJSON: [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        w.key("result"); write(&w); w.raw(",")
        w.key("success"); w.bool(true); w.raw(",")
        w.key("errors"); w.raw("[],")
        w.key("messages"); w.raw("[]")
        w.raw("}")
        return w.bytes
    }
}

extension AIOutput: Equatable {
    /// Outputs are equal when their JSON is (timings are ignored).
    public static func == (a: AIOutput, b: AIOutput) -> Bool {
        a.response == b.response && a.usage == b.usage && a.json == b.json && a.toolCalls == b.toolCalls
    }
}

/// One streamed piece: text (never a partial UTF-8 character), and on the last chunk the usage.
public struct AIChunk: Sendable, Equatable {
    public var response: String
    public var usage: AIUsage?
    /// On the last chunk: timings and cache figures.
    public var stats: GenerationStats?
    /// On the last chunk, with `tools`: the calls the model made (their text is not streamed).
    public var toolCalls: [AIToolCall]?

    public init(response: String, usage: AIUsage? = nil, stats: GenerationStats? = nil, toolCalls: [AIToolCall]? = nil) {
        self.response = response
        self.usage = usage
        self.stats = stats
        self.toolCalls = toolCalls
    }

    public static func == (a: AIChunk, b: AIChunk) -> Bool { a.response == b.response && a.usage == b.usage && a.toolCalls == b.toolCalls }

    /// This chunk as one server-sent event: `data: {"response":"…"}` + blank line
    /// (the last chunk adds `"usage":{…}`).
    public var sseEvent: [UInt8] {
        var w = JSONWriter()
        w.raw("data: {")
        w.key("response"); w.string(response)
        if let toolCalls, !toolCalls.isEmpty {
            w.raw(","); w.key("tool_calls"); AIToolCall.writeList(toolCalls, &w)
        }
        if let usage {
            w.raw(",")
            w.key("usage"); usage.write(&w)
        }
        w.raw("}\n\n")
        return w.bytes
    }

    /// The terminating event `data: [DONE]` + blank line.
    public static let sseDone: [UInt8] = Array("data: [DONE]\n\n".utf8)
}

/// Server-sent events encoding of a Workers AI stream.
public enum SSE {
    public static let contentType = "text/event-stream"

    /// All events of a finished stream: one per chunk, the usage event, then `[DONE]`.
    public static func encode(_ chunks: [AIChunk]) -> [UInt8] {
        var out: [UInt8] = []
        for c in chunks { out += c.sseEvent }
        out += AIChunk.sseDone
        return out
    }
}
