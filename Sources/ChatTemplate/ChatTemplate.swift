import Foundation

/// A chat template: a Jinja2 template rendered the way Hugging Face `apply_chat_template` renders
/// it (trim_blocks, lstrip_blocks, loop controls, an immutable sandbox, `raise_exception`,
/// `strftime_now`, a `tojson` that matches Python's `json.dumps`).
///
/// Parse once, render many times; a `ChatTemplate` is immutable and can be shared between threads.
public struct ChatTemplate: Sendable {
    let body: [Stmt]
    /// The template source as given.
    public let source: String

    /// Parses `source`. Throws `TemplateError` (kind `.syntax`) with the line and column of the problem.
    public init(_ source: String) throws {
        self.source = source
        self.body = try Parser.parse(source)
    }

    /// Renders with the given top-level variables, within `RenderLimits.default`.
    public func render(_ context: [String: TemplateValue]) throws -> String {
        try render(values: context.mapValues(Value.init), limits: .default).0
    }

    /// Renders with the given top-level variables within `limits`; a limit that is hit throws a
    /// `TemplateError` with `limit` set.
    public func render(_ context: [String: TemplateValue], limits: RenderLimits) throws -> String {
        try render(values: context.mapValues(Value.init), limits: limits).0
    }

    /// Renders and reports what the render used (steps, bytes) next to the limits it ran under.
    public func renderMeasured(_ context: [String: TemplateValue], limits: RenderLimits = .default) throws
        -> (output: String, usage: RenderUsage, limits: RenderLimits) {
        let (out, usage, scaled) = try render(values: context.mapValues(Value.init), limits: limits)
        return (out, usage, scaled)
    }

    /// Renders a conversation with the variables `apply_chat_template` passes: `messages`
    /// (keys ordered as `ordered(_:)` says),
    /// `add_generation_prompt`, `bos_token`, `eos_token`, plus `extra` (e.g. `tools`, `documents`,
    /// `enable_thinking`, other special tokens). Values in `extra` override the others.
    public func render(messages: [[String: TemplateValue]], addGenerationPrompt: Bool, bosToken: String = "",
                       eosToken: String = "", extra: [String: TemplateValue] = [:],
                       limits: RenderLimits = .default) throws -> String {
        var ctx: [String: TemplateValue] = [
            "messages": .array(messages.map { .object(ChatTemplate.ordered($0)) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
        ]
        for (k, v) in extra { ctx[k] = v }
        return try render(ctx, limits: limits)
    }

    /// Swift dictionaries have no order; messages get "role" and "content" first (the usual JSON
    /// order, visible when a template prints a message with `tojson`), then the other keys sorted.
    static func ordered(_ m: [String: TemplateValue]) -> TemplateObject {
        func rank(_ k: String) -> Int { k == "role" ? 0 : (k == "content" ? 1 : 2) }
        let keys = m.keys.sorted { (rank($0), $0) < (rank($1), $1) }
        return TemplateObject(keys.map { ($0, m[$0] ?? .null) })
    }

    /// Renders a conversation given as ordered message objects (keys keep their order, which
    /// matters when a template prints a message with `tojson`).
    public func render(messages: [TemplateValue], addGenerationPrompt: Bool, bosToken: String = "",
                       eosToken: String = "", extra: [String: TemplateValue] = [:],
                       limits: RenderLimits = .default) throws -> String {
        var ctx: [String: TemplateValue] = [
            "messages": .array(messages),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "bos_token": .string(bosToken),
            "eos_token": .string(eosToken),
        ]
        for (k, v) in extra { ctx[k] = v }
        return try render(ctx, limits: limits)
    }

    /// Total bytes of the strings in the input (what the limits are scaled by).
    static func inputBytes(_ values: [String: Value]) -> Int {
        var total = 0
        var stack = Array(values.values)
        while let v = stack.popLast() {
            switch v {
            case .string(let s), .markup(let s): total &+= s.utf8.count
            case .list(let a), .tuple(let a): stack += a
            case .dict(let d):
                stack += d.values
                for k in d.keys { if let s = k.stringValue { total &+= s.utf8.count } }
            default: break
            }
        }
        return total
    }

    func render(values: [String: Value], limits: RenderLimits = .default) throws -> (String, RenderUsage, RenderLimits) {
        let (now, tz) = TemplateClock.current()
        let inputBytes = ChatTemplate.inputBytes(values)
        let scaled = limits.scaled(inputBytes: inputBytes)
        let interp = Interpreter(now: now, timeZone: tz, limits: scaled, inputBytes: inputBytes)
        let globals = Scope(parent: nil)
        globals.vars = Builtins.globals()
        let scope = Scope(parent: globals)
        scope.vars = values
        var out = ""
        defer {
            // break reference cycles through namespaces
            for ns in interp.namespaces { ns.attrs = PyDict() }
        }
        do {
            _ = try RenderBudget.$valueBytes.withValue(scaled.valueBytes) {
                try interp.exec(body, scope, &out)
            }
        } catch let e as EvalError {
            let p = e.pos ?? .none
            throw TemplateError(kind: e.kind, message: e.message, line: Int(p.line), column: Int(p.col), limit: e.limit)
        }
        return (out, interp.usage, scaled)
    }
}

/// The clock behind `strftime_now`. By default the real time in the local time zone (as
/// `datetime.now()`); tests fix it.
public enum TemplateClock {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var fixedDate: Date? = nil
    nonisolated(unsafe) private static var zone: TimeZone? = nil

    /// Fixes `strftime_now` to `date`, formatted in `timeZone` (nil: the local time zone).
    /// Pass nil to return to the real clock.
    public static func fix(_ date: Date?, timeZone: TimeZone? = nil) {
        lock.lock()
        defer { lock.unlock() }
        fixedDate = date
        zone = timeZone
    }

    /// Fixes the clock at a wall-clock time (interpreted in UTC and formatted in UTC), e.g.
    /// `fix(year: 2024, month: 7, day: 26, hour: 12)`.
    public static func fix(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        var cal = Calendar(identifier: .gregorian)
        let utc = TimeZone(identifier: "UTC") ?? TimeZone(secondsFromGMT: 0) ?? .current
        cal.timeZone = utc
        let d = cal.date(from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second))
        fix(d, timeZone: utc)
    }

    static func current() -> (Date, TimeZone) {
        lock.lock()
        defer { lock.unlock() }
        return (fixedDate ?? Date(), zone ?? TimeZone.current)
    }
}
