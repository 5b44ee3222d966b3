/// An error from parsing or rendering a template.
///
/// `line` and `column` are 1-based positions in the template source (after Jinja's newline
/// normalization); they point at the tag or expression that failed. For errors that do not come
/// from a template position (for example invalid JSON input) they describe the input instead, or are 0.
public struct TemplateError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Equatable {
        /// The template text is not valid Jinja (Jinja2's `TemplateSyntaxError`/`TemplateAssertionError`).
        case syntax
        /// The template called `raise_exception(message)`.
        case raised
        /// Rendering failed: an undefined value was used, a type error, a sandbox violation, …
        case runtime
    }

    /// A resource limit that stopped rendering (see `RenderLimits`).
    public enum Limit: String, Sendable, Equatable {
        case steps, outputBytes, valueBytes, builtBytes, recursionDepth
    }

    public let kind: Kind
    public let message: String
    public let line: Int
    public let column: Int
    /// Set when rendering stopped at a resource limit (`kind` is then `.runtime`, as Jinja2's
    /// own `RecursionError`/`MemoryError`/`OverflowError` are).
    public let limit: Limit?

    public init(kind: Kind, message: String, line: Int, column: Int, limit: Limit? = nil) {
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column
        self.limit = limit
    }

    public var description: String {
        let what: String
        switch kind {
        case .syntax: what = "template syntax error"
        case .raised: what = "template raised an exception"
        case .runtime: what = "template error"
        }
        if line > 0 { return "\(what) at line \(line), column \(column): \(message)" }
        return "\(what): \(message)"
    }
}

/// Position in the template source (1-based).
struct Pos: Sendable, Equatable {
    var line: Int32
    var col: Int32
    init(_ line: Int, _ col: Int) {
        self.line = Int32(clamping: line)
        self.col = Int32(clamping: col)
    }
    static let none = Pos(0, 0)
}

/// Internal error thrown while evaluating; gets a position attached on the way out.
struct EvalError: Error {
    var kind: TemplateError.Kind
    var message: String
    var pos: Pos?
    var limit: TemplateError.Limit? = nil

    static func limit(_ limit: TemplateError.Limit, _ message: String) -> EvalError {
        EvalError(kind: .runtime, message: message, pos: nil, limit: limit)
    }

    static func type(_ message: String) -> EvalError { EvalError(kind: .runtime, message: message, pos: nil) }
    static func undefined(_ message: String) -> EvalError { EvalError(kind: .runtime, message: message, pos: nil) }
}
