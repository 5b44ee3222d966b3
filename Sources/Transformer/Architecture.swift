import GGUF

/// One model family: how to read its hyper-parameters, which tensors a block has, and the order
/// of operations in a block. Each lives in one short file in `Architectures/`; the shared core
/// (`Forward`, `TransformerSession`) provides the operations and knows nothing else about them.
protocol Architecture: Sendable {
    /// `general.architecture` value.
    static var name: String { get }
    /// Hyper-parameters from `<name>.*` metadata.
    static func config(_ r: MetadataReader) throws -> ModelConfig
    /// Tensors of block `i`.
    static func loadLayer(_ i: Int, _ load: TensorLoader, _ c: ModelConfig) throws -> LayerWeights
    /// Block `l` of the forward pass: reads and updates the residual stream `.x` of the batch.
    static func block(_ f: Forward, _ l: Int, _ w: LayerWeights, _ c: ModelConfig)
}

/// The registry: architectures by `general.architecture`.
public enum Architectures {
    static let all: [any Architecture.Type] = [Llama.self, Qwen2.self, Qwen3.self, Gemma2.self, Gemma3.self, Phi3.self]

    /// Names of the supported architectures.
    public static var names: [String] { all.map { $0.name } }

    static func definition(named name: String) -> (any Architecture.Type)? {
        all.first { $0.name == name }
    }

    /// The definition for a file's `general.architecture`; an unknown one is an error listing
    /// the supported names.
    static func definition(for file: GGUFFile) throws -> any Architecture.Type {
        let arch: String
        do {
            guard let a = try file.string("general.architecture") else { throw ModelError.missingKey("general.architecture") }
            arch = a
        } catch let e as ModelError { throw e } catch {
            throw ModelError.badMetadata(key: "general.architecture", message: "\(error)")
        }
        guard let def = definition(named: arch) else { throw ModelError.unsupportedArchitecture(arch) }
        return def
    }
}
