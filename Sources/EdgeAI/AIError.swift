/// The one error type of the EdgeAI API, numbered as Workers AI numbers its errors.
/// Described as `"<code>: <message>"`, like the binding's `AiError`.
public struct AIError: Error, CustomStringConvertible, Equatable, Hashable, Sendable {
    public let code: Int
    public let message: String

    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// 5006: the input fails the schema (the message names the field and the rule).
    public static let invalidInputCode = 5006
    /// 5007: no model under that id.
    public static let noSuchModelCode = 5007
    /// 5021: prompt tokens + max_tokens exceed the model's context window.
    public static let contextWindowCode = 5021
    /// JSON mode: generation ended (max_tokens) before the JSON document was complete. Workers AI's
    /// text is "JSON Mode couldn't be met"; the contract notes give no code for it, so this uses
    /// 5023, the code they document for JSON mode's other refusal (JSON mode with streaming).
    public static let jsonModeNotMetCode = 5023
    /// 3008: the request was cancelled.
    public static let abortedCode = 3008
    /// 3001: anything else went wrong (model file missing or unreadable, internal failure).
    public static let internalCode = 3001

    public static func invalidInput(_ message: String) -> AIError { AIError(code: invalidInputCode, message: message) }

    public static func noSuchModel(_ id: String) -> AIError {
        AIError(code: noSuchModelCode, message: "No such model \(id) or task")
    }

    public static func contextWindow(estimated: Int, limit: Int) -> AIError {
        AIError(code: contextWindowCode, message: "The estimated number of input and maximum output tokens (\(estimated)) exceeded this model context window limit (\(limit)).")
    }

    public static func jsonModeNotMet(maxTokens: Int) -> AIError {
        AIError(code: jsonModeNotMetCode, message: "JSON Mode couldn't be met: max_tokens (\(maxTokens)) ended generation before the JSON document was complete; raise max_tokens or simplify the schema")
    }

    /// The text of the 5006 for `stream: true` with `response_format` (Workers AI's wording).
    public static let jsonModeStreamMessage = "JSON Schema mode is not supported with stream mode."

    public static let aborted = AIError(code: abortedCode, message: "Request was aborted")

    /// 3040: every slot of the model is busy and its queue is full.
    public static let capacityCode = 3040

    public static func capacityExceeded(model: String, busySlots: Int, waiting: Int) -> AIError {
        AIError(code: capacityCode, message: "Capacity temporarily exceeded, please try again later: all \(busySlots) slots of \(model) are busy and \(waiting) requests are waiting (raise the slots or queue settings to allow more)")
    }

    public static func `internal`(_ message: String) -> AIError { AIError(code: internalCode, message: message) }

    /// The HTTP status Workers AI's REST API answers with for this error.
    public var httpStatus: Int {
        switch code {
        case 5006, 5007, 5004, 5023, 3003: return 400
        case 5021, 3006: return 413
        case 3007, 3008: return 408
        case 3036, 3040: return 429
        case 10000: return 401   // authentication error (a remote backend's, or the worker's API key)
        default: return 500
        }
    }

    /// The REST API failure envelope:
    /// `{"result":null,"success":false,"errors":[{"code":…,"message":"…"}],"messages":[]}`.
    public var envelopeJSON: [UInt8] {
        var w = JSONWriter()
        w.raw("{")
        w.key("result"); w.null(); w.raw(",")
        w.key("success"); w.bool(false); w.raw(",")
        w.key("errors"); w.raw("[{")
        w.key("code"); w.int(code); w.raw(",")
        w.key("message"); w.string(message)
        w.raw("}],")
        w.key("messages"); w.raw("[]")
        w.raw("}")
        return w.bytes
    }
}
