import Dispatch
import Foundation
import GGUF
import Tokenizer
import Transformer

// Workers AI's text-embeddings contract over local BERT GGUF models (e.g.
// `@cf/sentence-transformers/all-minilm-l6-v2`):
//
//   input   {"text": "…" | ["…", …], "pooling"?: "mean" | "cls", "truncate"?: bool}
//   output  {"shape": [n, dim], "data": [[…], …], "pooling": "mean" | "cls"}
//
// 1 to 100 strings, none empty. A string longer than the model's positions (512 for BERT, with
// [CLS] and [SEP]) is refused with 5006 unless `truncate: true` (an EdgeAI extension): then its
// tokens are cut to fit, keeping [CLS] … [SEP]. `pooling` defaults to the model's own (its
// sentence-transformers pooling, recorded in the GGUF); vectors are L2-normalized when the model
// says so (all-MiniLM-L6-v2 does). All strings of a request run as one batch.

/// An embeddings request (`{text, pooling?, truncate?}`).
public struct EmbeddingInput: Sendable, Equatable {
    public var text: [String]
    /// nil: the model's own pooling.
    public var pooling: EncoderModel.Pooling?
    /// Cut inputs longer than the model's positions instead of refusing them (EdgeAI extension).
    public var truncate: Bool

    /// Most strings in one request (Workers AI's limit).
    public static let maxStrings = 100

    public init(text: [String], pooling: EncoderModel.Pooling? = nil, truncate: Bool = false) {
        self.text = text
        self.pooling = pooling
        self.truncate = truncate
    }

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
        guard case .object = root else {
            throw AIError.invalidInput("Type mismatch of '/', '\(root.typeName)' not in 'object'")
        }
        var problems: [String] = []
        var texts: [String] = []
        switch root["text"] {
        case nil:
            problems.append("Required properties at '/' are 'text'")
        case .string(let s)?:
            texts = [s]
        case .array(let a)?:
            for (i, v) in a.enumerated() {
                if case .string(let s) = v { texts.append(s) } else {
                    problems.append("Type mismatch of '/text/\(i)', '\(v.typeName)' not in 'string'")
                }
            }
            if a.isEmpty { problems.append("Array at '/text' must have at least 1 item") }
            if a.count > Self.maxStrings { problems.append("Array at '/text' must have at most \(Self.maxStrings) items, got \(a.count)") }
        case let v?:
            problems.append("Type mismatch of '/text', '\(v.typeName)' not in 'string, array'")
        }
        var pooling: EncoderModel.Pooling? = nil
        if let v = root["pooling"] {
            if case .string(let s) = v {
                if let p = EncoderModel.Pooling(rawValue: s) { pooling = p } else {
                    problems.append("Value of '/pooling' must be one of 'mean', 'cls', got '\(s)'")
                }
            } else {
                problems.append("Type mismatch of '/pooling', '\(v.typeName)' not in 'string'")
            }
        }
        var truncate = false
        if let v = root["truncate"] {
            if case .bool(let b) = v { truncate = b } else {
                problems.append("Type mismatch of '/truncate', '\(v.typeName)' not in 'boolean'")
            }
        }
        if problems.isEmpty {
            var single = false
            if case .string? = root["text"] { single = true }
            for (i, t) in texts.enumerated() where t.isEmpty {
                problems.append(single ? "String at '/text' must not be empty" : "String at '/text/\(i)' must not be empty")
            }
        }
        guard problems.isEmpty else { throw AIError.invalidInput(problems.joined(separator: "; ")) }
        self.init(text: texts, pooling: pooling, truncate: truncate)
    }

    /// The same rules for values built in Swift.
    public func validate() throws(AIError) {
        guard !text.isEmpty else { throw AIError.invalidInput("Array at '/text' must have at least 1 item") }
        guard text.count <= Self.maxStrings else {
            throw AIError.invalidInput("Array at '/text' must have at most \(Self.maxStrings) items, got \(text.count)")
        }
        if let i = text.firstIndex(where: \.isEmpty) { throw AIError.invalidInput("String at '/text/\(i)' must not be empty") }
    }
}

/// An embeddings answer: `{shape: [n, dim], data, pooling}` (+ token counts, not in the JSON).
public struct EmbeddingOutput: Sendable, Equatable {
    public var shape: [Int]
    public var data: [[Float]]
    public var pooling: EncoderModel.Pooling
    /// Tokens per string, [CLS] and [SEP] included (after truncation).
    public var tokenCounts: [Int]
    public var promptTokens: Int { tokenCounts.reduce(0, +) }

    public var jsonBytes: [UInt8] {
        var w = JSONWriter()
        w.raw("{\"shape\":[\(shape[0]),\(shape[1])],\"data\":[")
        for (i, v) in data.enumerated() {
            if i > 0 { w.raw(",") }
            w.raw("[")
            for (j, x) in v.enumerated() {
                if j > 0 { w.raw(",") }
                w.raw(x.isFinite ? "\(x)" : "null")
            }
            w.raw("]")
        }
        w.raw("],")
        w.key("pooling"); w.string(pooling.rawValue)
        w.raw("}")
        return w.bytes
    }
}

/// A loaded embedding model: encoder, tokenizer, and a serial queue for its evaluations.
final class EmbeddingEngine: Sendable {
    let model: EncoderModel
    let tokenizer: Tokenizer
    let queue = DispatchQueue(label: "edgeai.embeddings", qos: .userInitiated)

    init(path: String, threads: Int) throws {
        let file = try GGUFFile(path: path)
        model = try EncoderModel(file: file, threads: threads)
        tokenizer = try Tokenizer(gguf: file)
    }

    /// Token ids per string ([CLS] … [SEP]); too long: 5006, or cut when `truncate`.
    func tokens(_ input: EmbeddingInput) throws(AIError) -> [[Int32]] {
        let limit = model.config.contextLength
        var out: [[Int32]] = []
        for (i, t) in input.text.enumerated() {
            var ids = tokenizer.encode(t, addSpecial: true)
            if ids.count > limit {
                guard input.truncate else {
                    throw AIError.invalidInput("String at '/text/\(i)' is \(ids.count) tokens long, more than this model's \(limit) positions; shorten it or set \"truncate\": true")
                }
                let last = ids.last!
                ids.removeSubrange((limit - 1)...)
                ids.append(last)
            }
            out.append(ids)
        }
        return out
    }

    func embed(_ input: EmbeddingInput) throws -> EmbeddingOutput {
        let ids = try tokens(input)
        let pooling = input.pooling ?? model.config.pooling ?? .mean
        let vectors = try model.embed(ids, pooling: pooling, normalize: model.config.normalize)
        return EmbeddingOutput(shape: [vectors.count, model.config.embeddingLength], data: vectors, pooling: pooling,
                               tokenCounts: ids.map(\.count))
    }
}

/// The embedding engines of an `AI`, by model id (also remembering which ids are not embedding models).
final class EmbeddingEngines: Sendable {
    enum Slot {
        case notEmbedding
        case engine(Task<EmbeddingEngine, Error>)
    }
    let slots = Locked<[String: (ModelInfo, Slot)]>([:])

    func forget(_ id: String) { slots.withLock { _ = $0.removeValue(forKey: id) } }
}

extension AI {
    /// Whether `model` is an embedding model (its GGUF is an encoder, e.g. `bert`): such a model
    /// answers `embed` and the embeddings contract; the text-generation calls refuse it.
    /// Throws 5007 for an unknown id; a missing or unreadable file is "not an embedding model".
    public func isEmbeddingModel(_ model: String) async throws -> Bool {
        try await embeddingEngineTask(model) != nil
    }

    /// Workers AI's text embeddings: one vector per string, all strings in one batch.
    /// Throws `AIError`: 5006 invalid input (or a string too long without `truncate`), 5007 unknown
    /// model or not an embedding model.
    public func embed(_ model: String, _ input: EmbeddingInput) async throws -> EmbeddingOutput {
        try input.validate()
        guard let task = try await embeddingEngineTask(model) else {
            throw AIError.invalidInput("Model \(model) is not an embedding model: send a text-generation input ({prompt} or {messages})")
        }
        let engine: EmbeddingEngine
        do { engine = try await task.value } catch {
            embeddingEngines.forget(model)
            throw AIError.from(error)
        }
        if Task.isCancelled { throw AIError.aborted }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<EmbeddingOutput, Error>) in
            engine.queue.async {
                c.resume(with: Result { () throws -> EmbeddingOutput in
                    do { return try engine.embed(input) } catch let e as AIError { throw e } catch {
                        throw AIError.from(error)
                    }
                })
            }
        }
    }

    /// Request bytes in, Workers AI embedding response bytes out.
    public func embed(_ model: String, json body: some Collection<UInt8>) async throws -> [UInt8] {
        try await embed(model, EmbeddingInput(json: body)).jsonBytes
    }

    /// nil when the model is not an embedding model (decided once per catalog entry from the
    /// file's `general.architecture`).
    func embeddingEngineTask(_ model: String) async throws -> Task<EmbeddingEngine, Error>? {
        let info = try info(model)
        let threads = self.threads
        return embeddingEngines.slots.withLock { slots -> Task<EmbeddingEngine, Error>? in
            if let (known, slot) = slots[model], known == info {
                if case .engine(let t) = slot { return t }
                return nil
            }
            guard let file = try? GGUFFile(path: info.path), EncoderModel.isEncoder(file) else {
                // Remember "not an embedding model" only for a file that exists (it may be fetched later).
                if FileManager.default.fileExists(atPath: info.path) { slots[model] = (info, .notEmbedding) }
                return nil
            }
            let t = Task<EmbeddingEngine, Error>.detached {
                try await withCheckedThrowingContinuation { continuation in
                    DispatchQueue.global(qos: .userInitiated).async {
                        continuation.resume(with: Result { try EmbeddingEngine(path: info.path, threads: threads) })
                    }
                }
            }
            slots[model] = (info, .engine(t))
            return t
        }
    }
}

extension AIError {
    /// 5006: a text-generation input sent to an embedding model.
    static func embeddingModelForText(_ model: String) -> AIError {
        AIError.invalidInput("Model \(model) is an embedding model: send {\"text\": string | string[]}")
    }
}
