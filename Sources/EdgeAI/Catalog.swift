import Foundation

/// A model the facade knows: an id (such as `@cf/meta/llama-3.1-8b-instruct`) and a GGUF file.
public struct ModelInfo: Sendable, Equatable, Hashable {
    public var id: String
    /// Absolute path of the GGUF file (it may not exist yet).
    public var path: String
    /// Tokens of prompt + output allowed (5021 beyond); nil: the model's own, capped at 8192.
    public var contextWindow: Int?
    public var isDefault: Bool
    /// Jinja chat template to use instead of the GGUF's `tokenizer.chat_template` (needed for
    /// `messages` on a model whose file has none, e.g. a base model).
    public var chatTemplate: String?

    public init(id: String, path: String, contextWindow: Int? = nil, isDefault: Bool = false, chatTemplate: String? = nil) {
        self.id = id
        self.path = path
        self.contextWindow = contextWindow
        self.isDefault = isDefault
        self.chatTemplate = chatTemplate
    }
}

/// Reads a model catalog (`Models/catalog.json`).
///
/// Accepted shapes: `{"models": [entry, …], "default": "<id>"?}` or a bare `[entry, …]`, where an
/// entry is `{"id": "…", "file": "<name or path>", "context_window": n?, "default": bool?,
/// "chat_template": "<jinja>"?}`
/// (`filename` or `path` may stand for `file`). Relative file names live in the models directory.
public enum ModelCatalog {
    /// `${EDGEAI_MODELS:-${EDGEAI_CACHE:-$HOME/.cache/edgeai}/models}`.
    public static var defaultModelsDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let dir = env["EDGEAI_MODELS"], !dir.isEmpty { return dir }
        let cache: String
        if let c = env["EDGEAI_CACHE"], !c.isEmpty {
            cache = c
        } else {
            let home = env["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
            cache = home + "/.cache/edgeai"
        }
        return cache + "/models"
    }

    /// `$EDGEAI_CATALOG`, else `Models/catalog.json` of this package's source tree, else
    /// `./Models/catalog.json`; nil when none exists.
    public static var defaultCatalogPath: String? {
        let fm = FileManager.default
        if let p = ProcessInfo.processInfo.environment["EDGEAI_CATALOG"], !p.isEmpty { return p }
        let source = URL(fileURLWithPath: #filePath)   // …/Sources/EdgeAI/Catalog.swift
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/catalog.json").path
        if fm.fileExists(atPath: source) { return source }
        let local = fm.currentDirectoryPath + "/Models/catalog.json"
        if fm.fileExists(atPath: local) { return local }
        return nil
    }

    public static func load(path: String, modelsDirectory: String) throws(AIError) -> [ModelInfo] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AIError.internal("Cannot read the model catalog at \(path)")
        }
        return try parse(Array(data), modelsDirectory: modelsDirectory, source: path)
    }

    public static func parse(_ bytes: [UInt8], modelsDirectory: String, source: String = "catalog") throws(AIError) -> [ModelInfo] {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes)
        } catch {
            throw AIError.internal("The model catalog \(source) is not valid JSON: \(error)")
        }
        var defaultID: String? = nil
        let entries: [JSONValue]
        switch root {
        case .array(let a):
            entries = a
        case .object:
            guard case .array(let a)? = root["models"] else {
                throw AIError.internal("The model catalog \(source) has no \"models\" list")
            }
            entries = a
            if case .string(let d)? = root["default"] { defaultID = d }
        default:
            throw AIError.internal("The model catalog \(source) must be an object or a list")
        }
        var models: [ModelInfo] = []
        for (n, e) in entries.enumerated() {
            guard case .string(let id)? = e["id"], !id.isEmpty else {
                throw AIError.internal("The model catalog \(source): entry \(n) has no \"id\"")
            }
            var file: String? = nil
            for k in ["file", "filename", "path"] {
                if case .string(let f)? = e[k] { file = f; break }
            }
            guard let file, !file.isEmpty else {
                throw AIError.internal("The model catalog \(source): entry \(id) has no \"file\"")
            }
            let path = file.hasPrefix("/") ? file : modelsDirectory + "/" + file
            var window: Int? = nil
            if case .number(let w, _)? = e["context_window"], w >= 1, w < 1e9, w == w.rounded() { window = Int(w) }
            var isDefault = false
            if case .bool(let b)? = e["default"] { isDefault = b }
            if id == defaultID { isDefault = true }
            var template: String?
            if case .string(let t)? = e["chat_template"] { template = t }
            models.append(ModelInfo(id: id, path: path, contextWindow: window, isDefault: isDefault, chatTemplate: template))
        }
        return models
    }
}
