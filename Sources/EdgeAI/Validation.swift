// Workers AI input validation: the schema table of text generation, with messages that name
// the field (as a JSON pointer) and the rule, in the style of Workers AI's validator.

extension AIInput {
    /// Inclusive numeric bounds of the schema.
    public enum Bounds {
        public static let temperature = 0.0...5.0
        public static let topP = 0.001...1.0
        public static let topK = 1...50
        public static let seed = 1...9_999_999_999
        public static let repetitionPenalty = 0.0...2.0
        public static let frequencyPenalty = -2.0...2.0
        public static let presencePenalty = -2.0...2.0
        public static let minP = 0.0...1.0
        public static let minMaxTokens = 1
    }

    /// Fields Workers AI knows but this runtime does not implement.
    static let unsupportedFields: [String: String] = [
        "functions": "the legacy 'functions' field is not supported by EdgeAI; send 'tools'",
        "lora": "LoRA adapters are not supported by EdgeAI",
    ]

    static func formatNumber(_ v: Double) -> String { JSONWriter.javaScriptNumber(v) }

    static func rangeError(_ field: String, _ value: Double, _ lo: Double, _ hi: Double) -> String {
        "Value of '/\(field)' out of range: \(formatNumber(value)) not in [\(formatNumber(lo)), \(formatNumber(hi))]"
    }

    /// Check the value rules of every set field (ranges, non-empty strings, roles).
    /// Throws one `AIError` 5006 listing every problem.
    public func validate() throws(AIError) {
        let problems = validationProblems(promptMalformed: false, messagesMalformed: false)
        if !problems.isEmpty { throw AIError.invalidInput(problems.joined(separator: ", ")) }
    }

    /// `promptMalformed` / `messagesMalformed`: the field was present but had type errors
    /// already reported (it still counts as given for the oneOf rule).
    func validationProblems(promptMalformed: Bool, messagesMalformed: Bool) -> [String] {
        var problems: [String] = []
        switch (promptMalformed ? "?" : prompt, messagesMalformed ? [] : messages) {
        case (nil, nil):
            problems.append("Error: oneOf at '/' not met, 0 matches: required properties at '/' are 'prompt', required properties at '/' are 'messages'")
        case (.some, .some):
            problems.append("Error: oneOf at '/' not met, 2 matches: 'prompt' and 'messages' cannot both be given, send exactly one of them")
        default:
            break
        }
        if let prompt, prompt.isEmpty {
            problems.append("String too short at '/prompt': length 0 < minimum 1")
        }
        if let messages {
            if messages.isEmpty && !messagesMalformed { problems.append("Array too short at '/messages': 0 items < minimum 1") }
            for (n, m) in messages.enumerated() {
                if !AIMessage.roles.contains(m.role) {
                    problems.append("Value of '/messages/\(n)/role' must be one of 'system', 'user', 'assistant', 'tool', got '\(m.role)'")
                }
                if m.content.isEmpty && (m.role != "assistant" || (m.toolCalls ?? []).isEmpty) {
                    problems.append("String too short at '/messages/\(n)/content': length 0 < minimum 1")
                }
                if m.toolCalls != nil && m.role != "assistant" {
                    problems.append("Property '/messages/\(n)/tool_calls' is only valid in an 'assistant' message")
                }
            }
            if raw == true {
                problems.append("Property '/raw' is only valid with 'prompt', not with 'messages'")
            }
        }
        func check(_ field: CodingKeys, _ v: Double?, _ r: ClosedRange<Double>) {
            guard let v else { return }
            if v.isNaN || !r.contains(v) { problems.append(Self.rangeError(field.rawValue, v, r.lowerBound, r.upperBound)) }
        }
        func check(_ field: CodingKeys, _ v: Int?, _ r: ClosedRange<Int>) {
            guard let v else { return }
            if !r.contains(v) { problems.append(Self.rangeError(field.rawValue, Double(v), Double(r.lowerBound), Double(r.upperBound))) }
        }
        if let maxTokens, maxTokens < Bounds.minMaxTokens {
            problems.append("Value of '/max_tokens' out of range: \(maxTokens) < minimum \(Bounds.minMaxTokens)")
        }
        check(.temperature, temperature, Bounds.temperature)
        check(.topP, topP, Bounds.topP)
        check(.topK, topK, Bounds.topK)
        check(.seed, seed, Bounds.seed)
        check(.repetitionPenalty, repetitionPenalty, Bounds.repetitionPenalty)
        check(.frequencyPenalty, frequencyPenalty, Bounds.frequencyPenalty)
        check(.presencePenalty, presencePenalty, Bounds.presencePenalty)
        check(.minP, minP, Bounds.minP)
        if tools != nil && messages == nil {
            problems.append("Property '/tools' is only valid with 'messages', not with 'prompt'")
        }
        if responseFormat != nil && stream == true {
            problems.append("Property '/response_format' cannot be used with '/stream': \(AIError.jsonModeStreamMessage)")
        }
        problems += Self.toolRuleProblems(tools: tools, toolChoice: toolChoice, responseFormat: responseFormat)
        return problems
    }

    /// The rules among `tools`, `tool_choice` and `response_format`.
    static func toolRuleProblems(tools: [AITool]?, toolChoice: AIToolChoice?, responseFormat: AIResponseFormat?) -> [String] {
        var problems: [String] = []
        if let tools {
            if responseFormat != nil && !tools.isEmpty && toolChoice != AIToolChoice.none {
                problems.append("Property '/tools' cannot be used with '/response_format': the answer is either tool calls or a JSON document")
            }
            var seen = Set<String>()
            for (i, t) in tools.enumerated() {
                if t.name.isEmpty { problems.append("String too short at '/tools/\(i)/name': length 0 < minimum 1") }
                if !seen.insert(t.name).inserted { problems.append("Value of '/tools/\(i)/name' repeats the tool name '\(t.name)'") }
            }
        }
        if let toolChoice {
            switch toolChoice {
            case .required where (tools ?? []).isEmpty:
                problems.append("Value of '/tool_choice' is 'required' but no '/tools' are given")
            case .function(let name) where !(tools ?? []).contains(where: { $0.name == name }):
                problems.append("Value of '/tool_choice' names the function '\(name)', which is not among '/tools'")
            default: break
            }
        }
        if let responseFormat {
            if responseFormat.type == .jsonSchema && responseFormat.schema == nil {
                problems.append("required properties at '/response_format' are 'type,json_schema' for type 'json_schema'")
            }
            if responseFormat.type == .jsonObject && responseFormat.schema != nil {
                problems.append("Property '/response_format/json_schema' is only valid with type 'json_schema'")
            }
        }
        return problems
    }

    /// `tools`, `tool_choice` and `response_format` of a request body (absent or null: nil), parsed
    /// as the Workers AI body parses them, with the rules among them: for other dialects of the
    /// same request (the OpenAI routes). Throws 5006 naming every problem. (The rules with the
    /// rest of the request, messages and stream, are `validate()`'s.)
    public static func parseToolFields(tools: JSONValue?, toolChoice: JSONValue?, responseFormat: JSONValue?) throws(AIError)
        -> (tools: [AITool]?, toolChoice: AIToolChoice?, responseFormat: AIResponseFormat?) {
        let f = toolFields(tools: tools, toolChoice: toolChoice, responseFormat: responseFormat)
        let problems = f.problems + toolRuleProblems(tools: f.tools, toolChoice: f.toolChoice, responseFormat: f.responseFormat)
        if !problems.isEmpty { throw AIError.invalidInput(problems.joined(separator: ", ")) }
        return (f.tools, f.toolChoice, f.responseFormat)
    }

    static func toolFields(tools tv: JSONValue?, toolChoice cv: JSONValue?, responseFormat rf: JSONValue?)
        -> (tools: [AITool]?, toolChoice: AIToolChoice?, responseFormat: AIResponseFormat?, problems: [String]) {
        var problems: [String] = []
        var tools: [AITool]?, toolChoice: AIToolChoice?, responseFormat: AIResponseFormat?
        if let rf {
            switch parseResponseFormat(rf) {
            case .success(let f): responseFormat = f
            case .failure(let p): problems.append(p.message)
            }
        }
        if let tv {
            if case .array(let list) = tv {
                var parsed: [AITool] = []
                for (i, t) in list.enumerated() {
                    switch AITool.parse(t, path: "/tools/\(i)") {
                    case .success(let tool): parsed.append(tool)
                    case .failure(let e): problems.append(e.message)
                    }
                }
                tools = parsed
            } else {
                problems.append("Type mismatch of '/tools', '\(tv.typeName)' not in 'array'")
            }
        }
        if let cv, cv != .null {
            switch AIToolChoice.parse(cv) {
            case .success(let c): toolChoice = c
            case .failure(let e): problems.append(e.message)
            }
        }
        return (tools, toolChoice, responseFormat, problems)
    }

    /// `response_format`: `{"type": "json_object"}`, `{"type": "json_schema", "json_schema": SCHEMA}`
    /// (Workers AI) or `{"type": "json_schema", "json_schema": {"name": …, "schema": SCHEMA, "strict": …}}`
    /// (OpenAI: recognized by its `schema` key, which is no JSON Schema keyword).
    static func parseResponseFormat(_ v: JSONValue) -> Result<AIResponseFormat, AIError> {
        let path = "/response_format"
        guard case .object = v else {
            return .failure(.invalidInput("Type mismatch of '\(path)', '\(v.typeName)' not in 'object'"))
        }
        guard let t = v["type"] else { return .failure(.invalidInput("required properties at '\(path)' are 'type'")) }
        guard case .string(let name) = t, let kind = AIResponseFormat.Kind(rawValue: name) else {
            return .failure(.invalidInput("Value of '\(path)/type' must be one of 'json_object', 'json_schema', got \(t.jsonText)"))
        }
        for key in v.objectKeys where key != "type" && key != "json_schema" {
            return .failure(.invalidInput("Property '\(path)/\(key)' is not allowed (response_format has 'type' and 'json_schema')"))
        }
        guard var schema = v["json_schema"] else {
            return kind == .jsonSchema
                ? .failure(.invalidInput("required properties at '\(path)' are 'type,json_schema' for type 'json_schema'"))
                : .success(.jsonObject)
        }
        guard kind == .jsonSchema else {
            return .failure(.invalidInput("Property '\(path)/json_schema' is only valid with type 'json_schema'"))
        }
        if case .object = schema, let inner = schema["schema"] {
            // OpenAI's envelope
            for key in schema.objectKeys where !["name", "schema", "strict", "description"].contains(key) {
                return .failure(.invalidInput("Property '\(path)/json_schema/\(key)' is not allowed in OpenAI's json_schema envelope (name, schema, strict, description)"))
            }
            if let n = schema["name"], case .string = n {} else if schema["name"] != nil {
                return .failure(.invalidInput("Type mismatch of '\(path)/json_schema/name', '\(schema["name"]!.typeName)' not in 'string'"))
            }
            if let s = schema["strict"], case .bool = s {} else if schema["strict"] != nil {
                return .failure(.invalidInput("Type mismatch of '\(path)/json_schema/strict', '\(schema["strict"]!.typeName)' not in 'boolean'"))
            }
            schema = inner
        }
        switch schema {
        case .object, .bool: break
        default:
            return .failure(.invalidInput("Type mismatch of '\(path)/json_schema', '\(schema.typeName)' not in 'object'"))
        }
        return .success(.jsonSchema(schema))
    }

    /// Parse and validate a Workers AI request body. Unparseable JSON, wrong JSON types,
    /// missing or conflicting fields and out-of-range values all throw `AIError` 5006.
    /// Unknown keys are ignored, as Workers AI does.
    public init(json bytes: some Collection<UInt8>) throws(AIError) {
        let value: JSONValue
        do {
            value = try JSONParser.parse(bytes)
        } catch {
            throw AIError.invalidInput("Invalid JSON in request body: \(error.description)")
        }
        try self.init(jsonValue: value)
    }

    public init(jsonValue root: JSONValue) throws(AIError) {
        self.init()
        guard case .object = root else {
            throw AIError.invalidInput("Type mismatch of '/', '\(root.typeName)' not in 'object'")
        }
        var problems: [String] = []
        func mismatch(_ path: String, _ v: JSONValue, _ expected: String) {
            let got = (expected == "integer" && v.typeName == "number") ? "number" : v.typeName
            problems.append("Type mismatch of '\(path)', '\(got)' not in '\(expected)'")
        }
        func string(_ key: String) -> String? {
            guard let v = root[key] else { return nil }
            if case .string(let s) = v { return s }
            mismatch("/\(key)", v, "string")
            return nil
        }
        func bool(_ key: String) -> Bool? {
            guard let v = root[key] else { return nil }
            if case .bool(let b) = v { return b }
            mismatch("/\(key)", v, "boolean")
            return nil
        }
        func number(_ key: String) -> Double? {
            guard let v = root[key] else { return nil }
            if case .number(let d, _) = v { return d }
            mismatch("/\(key)", v, "number")
            return nil
        }
        /// An integer (a JSON number without fractional part, as JSON Schema defines it).
        /// Values beyond Int's range are clamped so the range rules report them.
        func integer(_ key: String) -> Int? {
            guard let v = root[key] else { return nil }
            guard case .number(let d, let literal) = v, d == d.rounded() else {
                mismatch("/\(key)", v, "integer")
                return nil
            }
            if let exact = Int(literal) { return exact }
            if d >= 9.2e18 { return Int.max }
            if d <= -9.2e18 { return Int.min }
            return Int(d)
        }

        for key in root.objectKeys {
            if let why = Self.unsupportedFields[key] { problems.append("Property '/\(key)' is not supported: \(why)") }
        }

        prompt = string("prompt")
        var messagesMalformed = false
        let problemsBeforeMessages = problems.count
        if let mv = root["messages"] {
            defer { messagesMalformed = problems.count > problemsBeforeMessages }
            if case .array(let items) = mv {
                var list: [AIMessage] = []
                for (n, item) in items.enumerated() {
                    let path = "/messages/\(n)"
                    guard case .object = item else {
                        mismatch(path, item, "object")
                        continue
                    }
                    var calls: [AIToolCall]? = nil
                    if let tv = item["tool_calls"], tv != .null {
                        if case .array(let list) = tv {
                            calls = []
                            for (k, c) in list.enumerated() {
                                switch AIToolCall.parse(c, path: "\(path)/tool_calls/\(k)") {
                                case .success(let call): calls!.append(call)
                                case .failure(let e): problems.append(e.message)
                                }
                            }
                        } else {
                            mismatch(path + "/tool_calls", tv, "array")
                        }
                    }
                    // an assistant message with tool calls may have no content (OpenAI sends null)
                    let contentValue: JSONValue? = item["content"].flatMap { $0 == .null && calls != nil ? nil : $0 } ?? (calls != nil ? .string("") : nil)
                    guard let rv = item["role"], let cv = contentValue else {
                        problems.append("required properties at '\(path)' are 'role,content'")
                        continue
                    }
                    var toolCallID: String? = nil, toolName: String? = nil
                    if let v = item["tool_call_id"], v != .null {
                        if case .string(let id) = v { toolCallID = id } else { mismatch(path + "/tool_call_id", v, "string") }
                    }
                    if let v = item["name"], v != .null {
                        if case .string(let n) = v { toolName = n } else { mismatch(path + "/name", v, "string") }
                    }
                    var role: String? = nil
                    if case .string(let r) = rv { role = r } else { mismatch(path + "/role", rv, "string") }
                    var content: String? = nil
                    switch cv {
                    case .string(let c):
                        content = c
                    case .array(let parts):
                        // newer schemas: [{"type": "text", "text": "…"}]
                        var text = ""
                        var ok = true
                        for (k, part) in parts.enumerated() {
                            guard case .object = part, case .string("text")? = part["type"], case .string(let t)? = part["text"] else {
                                problems.append("Value of '\(path)/content/\(k)' must be {\"type\": \"text\", \"text\": string}")
                                ok = false
                                continue
                            }
                            text += t
                        }
                        if ok { content = text }
                    default:
                        mismatch(path + "/content", cv, "string")
                    }
                    if let role, let content {
                        list.append(AIMessage(role: role, content: content, toolCalls: calls, toolCallID: toolCallID, name: toolName))
                    }
                }
                messages = list
            } else {
                mismatch("/messages", mv, "array")
            }
        }
        raw = bool("raw")
        stream = bool("stream")
        maxTokens = integer("max_tokens")
        temperature = number("temperature")
        topP = number("top_p")
        topK = integer("top_k")
        seed = integer("seed")
        repetitionPenalty = number("repetition_penalty")
        frequencyPenalty = number("frequency_penalty")
        presencePenalty = number("presence_penalty")
        minP = number("min_p")
        let fields = Self.toolFields(tools: root["tools"], toolChoice: root["tool_choice"], responseFormat: root["response_format"])
        (tools, toolChoice, responseFormat) = (fields.tools, fields.toolChoice, fields.responseFormat)
        problems += fields.problems

        let promptMalformed = root["prompt"] != nil && prompt == nil
        problems += validationProblems(promptMalformed: promptMalformed, messagesMalformed: messagesMalformed)
        if !problems.isEmpty { throw AIError.invalidInput(problems.joined(separator: ", ")) }
    }
}
