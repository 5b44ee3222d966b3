/// Why a tokenizer could not be built (or an input could not be handled).
public struct TokenizerError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        /// A required `tokenizer.*` key is absent.
        case missingKey
        /// A `tokenizer.*` key has the wrong type or an inconsistent value.
        case badMetadata
        /// `tokenizer.ggml.model` names a tokenizer kind this library does not implement.
        case unsupportedModel
        /// `tokenizer.ggml.pre` names a pre-tokenizer this library does not implement.
        case unsupportedPreTokenizer
        /// A token id outside the vocabulary.
        case invalidTokenID
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
