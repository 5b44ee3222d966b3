import ChatTemplate
import Foundation
import Grammar
import Tokenizer

// Tool calling ("function calling"), as Workers AI offers it: `tools` in the request reach the
// chat template, the model's answer is parsed for calls in its template family's format, and
// once a call has started its arguments are constrained by the tool's `parameters` schema with
// JSON mode's grammar machinery.
//
// Formats (chosen from the chat template's source):
// - Hermes / Qwen: `<tool_call>{"name": …, "arguments": {…}}</tool_call>`, any number of them.
//   Also the format of our own rendering for templates without tool support (see `ToolPrompt`).
// - Llama 3.x: the whole answer is `{"name": …, "parameters": {…}}` (after an optional `<|python_tag|>`).
// - Mistral: `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]`; the newer
//   `[TOOL_CALLS]name[ARGS]{…}` is parsed but not constrained.

/// A tool the model may call: Workers AI's `{name, description, parameters}` (also accepted as
/// `{type: "function", function: {name, description, parameters}}`).
public struct AITool: Sendable, Equatable, Hashable, Codable {
    public var name: String
    public var description: String?
    /// A JSON Schema of the arguments object (nil: any object).
    public var parameters: JSONValue?

    public init(name: String, description: String? = nil, parameters: JSONValue? = nil) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey { case name, description, parameters }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        if let text = try c.decodeIfPresent(String.self, forKey: .parameters) { parameters = try JSONParser.parse(text) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(description, forKey: .description)
        try c.encodeIfPresent(parameters?.jsonText, forKey: .parameters)
    }

    /// The schema its arguments are constrained by.
    var argumentSchema: JSONValue {
        parameters ?? .object([(key: "type", value: .string("object"))])
    }

    /// `{"type": "function", "function": {"name", "description", "parameters"}}`, the shape
    /// chat templates expect (Hugging Face's convention).
    var templateValue: TemplateValue {
        var f: [(String, TemplateValue)] = [("name", .string(name))]
        if let description { f.append(("description", .string(description))) }
        f.append(("parameters", argumentSchema.templateValue))
        return .object(TemplateObject([("type", .string("function")), ("function", .object(TemplateObject(f)))]))
    }

    func write(_ w: inout JSONWriter) {
        w.raw("{"); w.key("name"); w.string(name)
        if let description { w.raw(","); w.key("description"); w.string(description) }
        if let parameters { w.raw(","); w.key("parameters"); w.value(parameters) }
        w.raw("}")
    }
}

/// A call the model made (or, in a follow-up turn's assistant message, made earlier).
public struct AIToolCall: Sendable, Equatable, Hashable, Codable {
    /// An id (9 letters and digits, as Mistral's templates require); the OpenAI dialect shows it.
    public var id: String?
    public var name: String
    /// The arguments object.
    public var arguments: JSONValue

    public init(id: String? = nil, name: String, arguments: JSONValue) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    enum CodingKeys: String, CodingKey { case id, name, arguments }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        arguments = try JSONParser.parse(try c.decode(String.self, forKey: .arguments))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(arguments.jsonText, forKey: .arguments)
    }

    /// Workers AI's shape: `{"name": …, "arguments": {…}}`.
    func write(_ w: inout JSONWriter) {
        w.raw("{"); w.key("name"); w.string(name); w.raw(","); w.key("arguments"); w.value(arguments); w.raw("}")
    }

    static func writeList(_ calls: [AIToolCall], _ w: inout JSONWriter) {
        w.raw("[")
        for (i, c) in calls.enumerated() { if i > 0 { w.raw(",") }; c.write(&w) }
        w.raw("]")
    }

    /// `{"id"?, "type": "function", "function": {"name", "arguments"}}` for a chat template.
    var templateValue: TemplateValue {
        var o: [(String, TemplateValue)] = []
        if let id { o.append(("id", .string(id))) }
        o.append(("type", .string("function")))
        o.append(("function", .object(TemplateObject([("name", .string(name)), ("arguments", arguments.templateValue)]))))
        return .object(TemplateObject(o))
    }

    static func newID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return String((0..<9).map { _ in chars.randomElement()! })
    }
}

/// Whether and which tool the model must call (OpenAI's `tool_choice`; beyond Workers AI's schema).
public enum AIToolChoice: Sendable, Equatable, Hashable, Codable {
    /// The model decides (the default).
    case auto
    /// No tool: the tools are not shown to the model.
    case none
    /// The answer starts with a call of one of the tools.
    case required
    /// The answer starts with a call of this tool.
    case function(String)

    public init(from decoder: any Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        switch s {
        case "auto": self = .auto
        case "none": self = .none
        case "required": self = .required
        default: self = .function(s.hasPrefix("function:") ? String(s.dropFirst(9)) : s)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .auto: try c.encode("auto")
        case .none: try c.encode("none")
        case .required: try c.encode("required")
        case .function(let n): try c.encode("function:" + n)
        }
    }

    func write(_ w: inout JSONWriter) {
        switch self {
        case .auto: w.string("auto")
        case .none: w.string("none")
        case .required: w.string("required")
        case .function(let n):
            w.raw("{"); w.key("type"); w.string("function"); w.raw(",")
            w.key("function"); w.raw("{"); w.key("name"); w.string(n); w.raw("}}")
        }
    }
}

extension JSONValue {
    /// The value as a chat template sees it (integers stay integers).
    var templateValue: TemplateValue {
        switch self {
        case .null: return .null
        case .bool(let b): return .bool(b)
        case .number(let d, let literal):
            if !literal.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }), let i = Int(literal) { return .int(i) }
            return .double(d)
        case .string(let s): return .string(s)
        case .array(let items): return .array(items.map(\.templateValue))
        case .object(let members): return .object(TemplateObject(members.map { ($0.key, $0.value.templateValue) }))
        }
    }
}

// MARK: - Request parsing

extension AITool {
    /// One entry of `tools`, in either Workers AI shape.
    static func parse(_ v: JSONValue, path: String) -> Result<AITool, AIError> {
        guard case .object = v else { return .failure(.invalidInput("Type mismatch of '\(path)', '\(v.typeName)' not in 'object'")) }
        var body = v
        var at = path
        if let t = v["type"] {
            guard case .string("function") = t else {
                return .failure(.invalidInput("Value of '\(path)/type' must be 'function', got \(t.jsonText)"))
            }
            guard let f = v["function"], case .object = f else {
                return .failure(.invalidInput("required properties at '\(path)' are 'type,function' (an object with name, description, parameters)"))
            }
            body = f
            at = path + "/function"
        }
        guard let nv = body["name"] else { return .failure(.invalidInput("required properties at '\(at)' are 'name'")) }
        guard case .string(let name) = nv, !name.isEmpty else {
            return .failure(.invalidInput("Value of '\(at)/name' must be a non-empty string, got \(nv.jsonText)"))
        }
        var description: String? = nil
        if let d = body["description"], d != .null {
            guard case .string(let s) = d else { return .failure(.invalidInput("Type mismatch of '\(at)/description', '\(d.typeName)' not in 'string'")) }
            description = s
        }
        var parameters: JSONValue? = nil
        if let p = body["parameters"], p != .null {
            switch p {
            case .object, .bool: parameters = p
            default: return .failure(.invalidInput("Type mismatch of '\(at)/parameters', '\(p.typeName)' not in 'object'"))
            }
        }
        return .success(AITool(name: name, description: description, parameters: parameters))
    }
}

extension AIToolCall {
    /// One entry of an assistant message's `tool_calls`: `{name, arguments}` (Workers AI) or
    /// `{id, type: "function", function: {name, arguments}}` (OpenAI); arguments an object or its JSON text.
    static func parse(_ v: JSONValue, path: String) -> Result<AIToolCall, AIError> {
        guard case .object = v else { return .failure(.invalidInput("Type mismatch of '\(path)', '\(v.typeName)' not in 'object'")) }
        var body = v, at = path
        var id: String? = nil
        if case .string(let s)? = v["id"] { id = s }
        if let f = v["function"] {
            guard case .object = f else { return .failure(.invalidInput("Type mismatch of '\(path)/function', '\(f.typeName)' not in 'object'")) }
            body = f
            at = path + "/function"
        }
        guard case .string(let name)? = body["name"], !name.isEmpty else {
            return .failure(.invalidInput("required properties at '\(at)' are 'name' (a non-empty string)"))
        }
        var arguments: JSONValue = .object([])
        switch body["arguments"] ?? body["parameters"] {
        case nil, .null?: break
        case .object(let m)?: arguments = .object(m)
        case .string(let text)?:
            guard let parsed = try? JSONParser.parse(Array(text.utf8)), case .object = parsed else {
                return .failure(.invalidInput("Value of '\(at)/arguments' must be a JSON object (or its JSON text), got \(text.prefix(80).debugDescription)"))
            }
            arguments = parsed
        case let other?:
            return .failure(.invalidInput("Type mismatch of '\(at)/arguments', '\(other.typeName)' not in 'object'"))
        }
        return .success(AIToolCall(id: id, name: name, arguments: arguments))
    }
}

extension AIToolCall {
    /// A call in either shape (`{name, arguments}` or OpenAI's `{id, type, function: {name,
    /// arguments: "<JSON text>"}}`); throws 5006 naming `path`.
    public init(jsonValue: JSONValue, path: String = "") throws(AIError) {
        switch Self.parse(jsonValue, path: path) {
        case .success(let c): self = c
        case .failure(let e): throw e
        }
    }
}

extension AIToolChoice {
    /// `"auto"`, `"none"`, `"required"` (`"any"` as a synonym), or `{"type": "function", "function": {"name": …}}`.
    static func parse(_ v: JSONValue) -> Result<AIToolChoice, AIError> {
        switch v {
        case .string("auto"): return .success(.auto)
        case .string("none"): return .success(.none)
        case .string("required"), .string("any"): return .success(.required)
        case .object:
            if case .string(let n)? = v["function"]?["name"] ?? v["name"] { return .success(.function(n)) }
            return .failure(.invalidInput("Value of '/tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": …}}"))
        default:
            return .failure(.invalidInput("Value of '/tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\": …}}, got \(v.jsonText)"))
        }
    }
}

// MARK: - Formats

/// How a model family writes tool calls.
enum ToolCallFormat: Sendable, Equatable {
    /// `<tool_call>{"name", "arguments"}</tool_call>`; `constrained` false when the template's
    /// calls are not JSON inside the tags (Qwen3-Coder's `<function=…>`).
    case hermes(constrained: Bool)
    /// The whole answer `{"name", "parameters"}`.
    case llama3
    /// `[TOOL_CALLS][{"name", "arguments"}, …]`.
    case mistral
    /// `[TOOL_CALLS]name[ARGS]{…}` (parsed, not constrained).
    case mistralArgs

    /// The format of a chat template's family, and whether the template renders `tools` itself
    /// (when not, `ToolPrompt` renders them into the system message in the Hermes format).
    static func of(template source: String?) -> (format: ToolCallFormat, native: Bool) {
        guard let s = source, s.contains("tools") else { return (.hermes(constrained: true), false) }
        if s.contains("[TOOL_CALLS]") { return (s.contains("[ARGS]") ? .mistralArgs : .mistral, true) }
        if s.contains("<tool_call>") { return (.hermes(constrained: !s.contains("<function=")), true) }
        if s.contains("<|python_tag|>") || s.contains("\"parameters\": dictionary") { return (.llama3, true) }
        return (.hermes(constrained: true), true)
    }

    static let hermesOpen = "<tool_call>", hermesClose = "</tool_call>"
    static let mistralTag = "[TOOL_CALLS]", pythonTag = "<|python_tag|>"

    /// The grammar of one call after its trigger (`required`: from the first token of the answer).
    func callPieces(_ tools: [AITool], required: Bool) -> [[SchemaCompiler.Piece]]? {
        tools.map { tool in
            let name = SchemaValue.quoted(tool.name)
            let schema = SchemaCompiler.Piece.json(tool.argumentSchema.schemaValue)
            switch self {
            case .hermes:
                return (required ? [.literal(Self.hermesOpen)] : []) + [
                    .whitespace, .literal("{\"name\": \(name), \"arguments\": "), schema, .literal("}"),
                    .whitespace, .literal(Self.hermesClose)]
            case .llama3:
                return [.literal("{\"name\": \(name), \"parameters\": "), schema, .literal("}")]
            case .mistral:
                return [.whitespace, .literal("[{\"name\": \(name), \"arguments\": "), schema, .literal("}]")]
            case .mistralArgs:
                return []
            }
        }
    }

    var isConstrained: Bool {
        switch self {
        case .hermes(let c): return c
        case .llama3, .mistral: return true
        case .mistralArgs: return false
        }
    }

    /// After a constrained call: the answer ends (Llama 3.x, Mistral) or goes on (Hermes: more
    /// calls or text may follow).
    var endsAfterCall: Bool {
        if case .hermes = self { return false }
        return true
    }
}

// MARK: - Rendering for templates without tool support

/// Our rendering of tools for a chat template that does not render them (SmolLM2's ChatML,
/// Gemma 3): a system message in the Hermes format. Assistant calls become
/// `<tool_call>…</tool_call>` text, and `tool` messages become user messages holding
/// `<tool_response>…</tool_response>` (consecutive ones merged), since such templates know only
/// user and assistant turns.
enum ToolPrompt {
    static func systemText(_ tools: [AITool]) -> String {
        var s = "You are a function calling AI model. You may call one or more of the functions below to help with the user's request. Their signatures, as JSON Schema, are within <tools></tools>:\n<tools>\n"
        for t in tools { s += t.templateValue.description + "\n" }
        s += "</tools>\nTo call a function, reply with a JSON object holding its name and arguments within <tool_call></tool_call> tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <arguments-object>}\n</tool_call>"
        return s
    }

    static func callText(_ c: AIToolCall) -> String {
        "<tool_call>\n{\"name\": \(SchemaValue.quoted(c.name)), \"arguments\": \(c.arguments.jsonText)}\n</tool_call>"
    }

    /// Messages for a template without tool support.
    static func lowered(_ messages: [AIMessage], tools: [AITool]) -> [AIMessage] {
        var out: [AIMessage] = []
        for m in messages {
            switch m.role {
            case "assistant" where !(m.toolCalls ?? []).isEmpty:
                let calls = m.toolCalls!.map(callText).joined(separator: "\n")
                out.append(.assistant(m.content.isEmpty ? calls : m.content + "\n" + calls))
            case "tool":
                let text = "<tool_response>\n" + m.content + "\n</tool_response>"
                if let last = out.last, last.role == "user", last.content.hasPrefix("<tool_response>") {
                    out[out.count - 1].content += "\n" + text
                } else {
                    out.append(.user(text))
                }
            default:
                out.append(AIMessage(role: m.role, content: m.content))
            }
        }
        if !tools.isEmpty {
            let text = systemText(tools)
            if let first = out.first, first.role == "system" {
                out[0].content = first.content + "\n\n" + text
            } else {
                out.insert(.system(text), at: 0)
            }
        }
        return out
    }

    /// A message as a template that renders tools sees it.
    static func templateMessage(_ m: AIMessage) -> [String: TemplateValue] {
        var v: [String: TemplateValue] = ["role": .string(m.role), "content": .string(m.content)]
        if let calls = m.toolCalls, !calls.isEmpty { v["tool_calls"] = .array(calls.map(\.templateValue)) }
        if let id = m.toolCallID { v["tool_call_id"] = .string(id) }
        if let name = m.name { v["name"] = .string(name) }
        return v
    }
}

// MARK: - Parsing answers

enum ToolCallParser {
    /// Splits an answer into its text and its calls. Not `final` (streaming): text that may still
    /// become part of a call (an open call, a partial opening tag, a leading `{` in Llama 3.x's
    /// format) is held back. A call that does not parse stays in the text.
    static func split(_ text: String, format: ToolCallFormat, final: Bool) -> (content: String, calls: [AIToolCall]) {
        switch format {
        case .hermes: return hermes(text, final: final)
        case .llama3: return llama3(text, final: final)
        case .mistral, .mistralArgs: return mistral(text, final: final)
        }
    }

    /// `{"name": …, "arguments"|"parameters": {…}}` as a call.
    static func call(fromJSON text: Substring) -> AIToolCall? {
        guard let v = try? JSONParser.parse(Array(text.utf8)) else { return nil }
        return call(from: v)
    }

    static func call(from v: JSONValue) -> AIToolCall? {
        guard case .string(let name)? = v["name"], !name.isEmpty else { return nil }
        switch v["arguments"] ?? v["parameters"] {
        case nil: return AIToolCall(name: name, arguments: .object([]))
        case .object(let m)?: return AIToolCall(name: name, arguments: .object(m))
        case .string(let s)?:
            guard let a = try? JSONParser.parse(Array(s.utf8)), case .object = a else { return nil }
            return AIToolCall(name: name, arguments: a)
        default: return nil
        }
    }

    /// The length of the longest suffix of `text` that is a proper prefix of `tag`.
    static func partialTag(_ text: Substring, _ tag: String) -> Int {
        let t = Array(tag.utf8), s = Array(text.utf8.suffix(t.count - 1))
        var k = min(s.count, t.count - 1)
        while k > 0 {
            if Array(s.suffix(k)) == Array(t.prefix(k)) { return k }
            k -= 1
        }
        return 0
    }

    static func dropLastBytes(_ s: Substring, _ n: Int) -> Substring {
        guard n > 0 else { return s }
        let u = s.utf8
        let end = u.index(u.endIndex, offsetBy: -n)
        return Substring(u[u.startIndex..<end])
    }

    static func hermes(_ text: String, final: Bool) -> (String, [AIToolCall]) {
        var content = "", calls: [AIToolCall] = []
        var rest = text[...]
        while let open = rest.range(of: ToolCallFormat.hermesOpen) {
            content += rest[..<open.lowerBound]
            let after = rest[open.upperBound...]
            if let close = after.range(of: ToolCallFormat.hermesClose) {
                let inner = after[..<close.lowerBound].trimmingCharacters(in: .whitespacesAndNewlines)
                if let c = call(fromJSON: inner[...]) { calls.append(c) } else { content += rest[open.lowerBound..<close.upperBound] }
                rest = after[close.upperBound...]
            } else {
                // an open call: held back while streaming; at the end a call without its closing tag
                if final {
                    let inner = after.trimmingCharacters(in: .whitespacesAndNewlines)
                    if let c = call(fromJSON: inner[...]) { calls.append(c) } else { content += rest[open.lowerBound...] }
                }
                return (content, calls)
            }
        }
        content += final ? rest : dropLastBytes(rest, partialTag(rest, ToolCallFormat.hermesOpen))
        return (content, calls)
    }

    static func llama3(_ text: String, final: Bool) -> (String, [AIToolCall]) {
        var body = text.drop(while: \.isWhitespace)
        if body.hasPrefix(ToolCallFormat.pythonTag) { body = body.dropFirst(ToolCallFormat.pythonTag.count).drop(while: \.isWhitespace) }
        if body.isEmpty && !final { return ("", []) }
        guard body.hasPrefix("{") else {
            if !final, text.drop(while: \.isWhitespace).isEmpty || ToolCallFormat.pythonTag.hasPrefix(String(text.drop(while: \.isWhitespace))) { return ("", []) }
            return (text, [])
        }
        if !final { return ("", []) }
        let trimmed = body.trimmingCharacters(in: .whitespacesAndNewlines)
        if let c = call(fromJSON: trimmed[...]) { return ("", [c]) }
        // several calls separated by ';' (Llama 3.2's custom tool output)
        var calls: [AIToolCall] = []
        for part in trimmed.split(separator: ";") {
            guard let c = call(fromJSON: Substring(part.trimmingCharacters(in: .whitespacesAndNewlines))) else { return (text, []) }
            calls.append(c)
        }
        return calls.isEmpty ? (text, []) : ("", calls)
    }

    static func mistral(_ text: String, final: Bool) -> (String, [AIToolCall]) {
        guard let tag = text.range(of: ToolCallFormat.mistralTag) else {
            let t = text[...]
            return (String(final ? t : dropLastBytes(t, partialTag(t, ToolCallFormat.mistralTag))), [])
        }
        let content = String(text[..<tag.lowerBound])
        if !final { return (content, []) }
        let rest = text[tag.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
        if rest.hasPrefix("["), let v = try? JSONParser.parse(Array(rest.utf8)), case .array(let items) = v {
            var calls: [AIToolCall] = []
            for item in items {
                guard var c = call(from: item) else { return (text, []) }
                if case .string(let id)? = item["id"] { c.id = id }
                calls.append(c)
            }
            return (content, calls)
        }
        // name[ARGS]{…}, possibly repeated after further [TOOL_CALLS] tags
        var calls: [AIToolCall] = []
        for segment in rest.components(separatedBy: ToolCallFormat.mistralTag) {
            let s = segment.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let args = s.range(of: "[ARGS]") else { return (text, []) }
            let name = s[..<args.lowerBound].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, let a = try? JSONParser.parse(Array(s[args.upperBound...].utf8)), case .object = a else { return (text, []) }
            calls.append(AIToolCall(name: name, arguments: a))
        }
        return (content, calls)
    }
}

// MARK: - Constrained calls during generation

/// A request's tool-calling setup, made before it is scheduled.
final class ToolCallPlan: @unchecked Sendable {
    let format: ToolCallFormat
    /// The grammar of a call after its trigger (nil: calls are not constrained).
    let callGrammar: Grammar?
    /// With `tool_choice` required/function: the grammar from the first token of the answer.
    let requiredGrammar: Grammar?
    let required: Bool

    init(format: ToolCallFormat, tools: [AITool], choice: AIToolChoice) throws(AIError) {
        self.format = format
        var callable = tools
        if case .function(let name) = choice { callable = tools.filter { $0.name == name } }
        switch choice {
        case .required, .function: required = true
        case .auto, .none: required = false
        }
        func compile(_ required: Bool) throws(AIError) -> Grammar? {
            guard format.isConstrained, let pieces = format.callPieces(callable, required: required) else { return nil }
            do {
                return try SchemaCompiler.compileSequence(pieces)
            } catch {
                throw AIError.invalidInput("Invalid tool parameters schema: \(error.message)")
            }
        }
        callGrammar = try compile(false)
        requiredGrammar = required ? try compile(true) : nil
    }
}

/// One sequence's tool-call state: the answer's bytes (special tokens as their text), and the
/// grammar of the call in progress. Confined to the model's queue.
final class ToolCallRun {
    let plan: ToolCallPlan
    private let trie: TokenTrie
    private let endTokens: [Int32]
    /// The answer so far (bytes of every token, special tokens included).
    private(set) var raw: [UInt8] = []
    /// The grammar of the call being generated, if any.
    private(set) var masker: TokenMasker?
    /// Where to look for the next trigger.
    private var scanFrom = 0
    /// Mistral with a required call: the `[TOOL_CALLS]` token comes first.
    private(set) var forced: Int32?
    private var llamaTriggerPossible = true
    /// Calls completed under the grammar.
    private(set) var constrainedCalls = 0
    /// Characters of the answer's text already streamed.
    private var streamed = 0

    init(plan: ToolCallPlan, tokenizer: Tokenizer, trie: TokenTrie) throws(AIError) {
        self.plan = plan
        self.trie = trie
        endTokens = tokenizer.endOfGenerationIDs.sorted()
        if plan.required {
            if plan.format == .mistral, let id = tokenizer.id(forToken: ToolCallFormat.mistralTag), tokenizer.isControl(id) {
                forced = id
            } else if let g = plan.requiredGrammar {
                masker = try Self.masker(g, trie: trie, endTokens: endTokens)
            }
        }
    }

    static func masker(_ g: Grammar, trie: TokenTrie, endTokens: [Int32]) throws(AIError) -> TokenMasker {
        do {
            return TokenMasker(automaton: try GrammarAutomaton(g), trie: trie, endTokens: endTokens)
        } catch {
            throw AIError.invalidInput("Invalid tool parameters schema: \(error.message)")
        }
    }

    enum Step { case goOn, stop }

    /// After `token` was chosen (and accepted by `masker`, when one was active).
    func observe(_ token: Int32, bytes: [UInt8]) throws(AIError) -> Step {
        let start = raw.count
        raw += bytes
        if forced == token {
            forced = nil
            scanFrom = raw.count
            if let g = plan.callGrammar { masker = try Self.masker(g, trie: trie, endTokens: endTokens) }
            return .goOn
        }
        if let m = masker {
            guard m.isComplete else { return .goOn }
            masker = nil
            constrainedCalls += 1
            scanFrom = raw.count
            llamaTriggerPossible = false
            // a required call is the answer (llama.cpp's grammar for tool_choice required ends there too)
            return plan.format.endsAfterCall || plan.required ? .stop : .goOn
        }
        guard let g = plan.callGrammar else { return .goOn }
        // free text: has a call started in this token?
        var rest: ArraySlice<UInt8>? = nil
        switch plan.format {
        case .hermes, .mistral:
            let tag = Array((plan.format == .mistral ? ToolCallFormat.mistralTag : ToolCallFormat.hermesOpen).utf8)
            let from = max(scanFrom, start - tag.count + 1)
            if let at = Self.find(tag, in: raw, from: from) {
                rest = raw[(at + tag.count)...]
            }
        case .llama3:
            guard llamaTriggerPossible else { return .goOn }
            var i = 0
            let tag = Array(ToolCallFormat.pythonTag.utf8)
            while i < raw.count, raw[i] == 0x20 || raw[i] == 0x0A || raw[i] == 0x09 || raw[i] == 0x0D { i += 1 }
            if raw.count - i < tag.count, Array(raw[i...]) == Array(tag.prefix(raw.count - i)) { return .goOn }
            if raw[i...].starts(with: tag) { i += tag.count }
            while i < raw.count, raw[i] == 0x20 || raw[i] == 0x0A { i += 1 }
            guard i < raw.count else { return .goOn }
            llamaTriggerPossible = false
            if raw[i] == UInt8(ascii: "{") { rest = raw[i...] }
        case .mistralArgs:
            break
        }
        guard let rest else { return .goOn }
        let m = try Self.masker(g, trie: trie, endTokens: endTokens)
        if m.feed(rest) {
            masker = m
        }
        // else: the model wrote something else after the trigger; left unconstrained (and unparsed)
        scanFrom = raw.count
        return .goOn
    }

    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = max(0, from)
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && hay[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// The answer's text so far: the bytes up to the last whole UTF-8 character.
    var text: String {
        var end = raw.count
        var back = 0
        while end - back > 0, back < 4, raw[end - back - 1] & 0xC0 == 0x80 { back += 1 }
        if end - back > 0 {
            let lead = raw[end - back - 1]
            let need = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0
            if need > back { end -= back + 1 }
        }
        return String(decoding: raw[..<end], as: UTF8.self)
    }

    /// Streaming: the new text outside calls since the last call of this (leading and trailing
    /// whitespace held back, as the final answer is trimmed).
    func streamable(final: Bool) -> String {
        let content = ToolCallParser.split(text, format: plan.format, final: final).content
        let trimmed = final ? content.trimmingCharacters(in: .whitespacesAndNewlines)
                            : String(content.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
        guard trimmed.count > streamed else { return "" }
        let out = String(trimmed.dropFirst(streamed))
        streamed = trimmed.count
        return out
    }

    /// The final answer: its text and calls (with fresh ids).
    func finish() -> (content: String, calls: [AIToolCall]) {
        var (content, calls) = ToolCallParser.split(text, format: plan.format, final: true)
        for i in calls.indices where calls[i].id == nil { calls[i].id = AIToolCall.newID() }
        content = content.trimmingCharacters(in: .whitespacesAndNewlines)
        return (content, calls)
    }
}
