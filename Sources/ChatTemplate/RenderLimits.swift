/// Resource limits for rendering a template. A chat template comes from a model file, so it is
/// untrusted code: rendering is bounded in steps (time), output size, the size of any one value,
/// the bytes built in total (memory) and nesting depth, and stops with a `TemplateError` whose
/// `limit` says which bound was hit.
///
/// The defaults are far above what real chat templates use (the llama.cpp and Hugging Face
/// templates in the test fixtures stay below 1% of each) and low enough that a hostile template
/// stops within about a second and a few tens of MB.
///
/// Step, output, value and memory limits grow with the input: each byte of the strings passed in
/// (messages, tools, documents) adds `perInputByte` bytes to the byte limits and one step per
/// input byte, so a long conversation never trips a limit a short one does not.
public struct RenderLimits: Sendable, Equatable {
    /// Evaluation steps: one per statement executed and expression evaluated, plus the work a
    /// builtin does on big operands (one per list element, one per `bytesPerStep` string bytes).
    public var steps: Int
    /// Bytes of rendered text (the result, and any `set` block or macro body).
    public var outputBytes: Int
    /// Size of any one value: bytes of a string, or 16 bytes per element of a list or dict.
    public var valueBytes: Int
    /// Bytes of strings and containers built during one render, in total: an upper bound on the
    /// memory a render holds.
    public var builtBytes: Int
    /// Nested macro calls and recursive loops.
    public var recursionDepth: Int
    /// Bytes added to `outputBytes`, `valueBytes` and `builtBytes` per byte of input strings.
    public var perInputByte: Int

    /// String bytes a builtin can scan for one step.
    static let bytesPerStep = 4

    public init(steps: Int = 1_000_000, outputBytes: Int = 4 << 20, valueBytes: Int = 4 << 20,
                builtBytes: Int = 64 << 20, recursionDepth: Int = 200, perInputByte: Int = 4) {
        self.steps = steps
        self.outputBytes = outputBytes
        self.valueBytes = valueBytes
        self.builtBytes = builtBytes
        self.recursionDepth = recursionDepth
        self.perInputByte = perInputByte
    }

    public static let `default` = RenderLimits()

    /// The limits for a render whose input strings total `inputBytes` bytes.
    func scaled(inputBytes: Int) -> RenderLimits {
        var l = self
        let extra = inputBytes.multipliedReportingOverflow(by: perInputByte)
        func add(_ a: Int, _ b: Int) -> Int { let (r, o) = a.addingReportingOverflow(b); return o ? Int.max : r }
        let e = extra.overflow ? Int.max : extra.partialValue
        l.outputBytes = add(outputBytes, e)
        l.valueBytes = add(valueBytes, e)
        l.builtBytes = add(builtBytes, e)
        l.steps = add(steps, inputBytes)
        return l
    }
}

/// What a render used, for tests and tuning (`ChatTemplate.render(_:limits:usage:)`).
public struct RenderUsage: Sendable, Equatable {
    public var steps = 0
    public var outputBytes = 0
    /// Largest value checked (string bytes, or 16 bytes per container element).
    public var largestValueBytes = 0
    public var builtBytes = 0
    public var recursionDepth = 0
    /// Bytes of input strings (what the limits were scaled by).
    public var inputBytes = 0
    public init() {}
}

/// The value-size limit, for the static helpers (`Py.str`, `tojson`, repetition) that have no
/// interpreter at hand. Bound for the duration of a render.
enum RenderBudget {
    @TaskLocal static var valueBytes: Int = RenderLimits.default.valueBytes
}
