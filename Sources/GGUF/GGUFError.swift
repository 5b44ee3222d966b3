/// An error found while reading, validating or writing a GGUF file.
///
/// `kind` classifies the problem (tests and callers switch on it); `message`
/// says what is wrong and where (byte offset, key or tensor name).
public struct GGUFError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The file ends before a structure it announces.
        case truncated
        /// The first four bytes are not `GGUF`.
        case badMagic
        /// Header version other than 2 or 3.
        case unsupportedVersion
        /// A metadata value type number that GGUF does not define.
        case badValueType
        /// A string length that is absurd, or an empty key.
        case badString
        /// An array element count that is absurd, or arrays nested too deeply.
        case badArray
        /// A count or size that cannot be represented (overflow, absurd counts).
        case tooLarge
        /// A malformed tensor-table entry (too many dimensions, bad name).
        case badTensor
        /// A tensor shape that is invalid (negative dimension, row not divisible by the block size).
        case badShape
        /// The same key or tensor name twice.
        case duplicate
        /// `general.alignment` is not a power of two, or a tensor offset is not a multiple of it.
        case misaligned
        /// Two tensors share bytes.
        case overlap
        /// A tensor lies outside the data section.
        case outOfBounds
        /// A tensor type number that ggml does not define (or has removed).
        case unknownTensorType
        /// A known tensor type that this library cannot convert (Q4_K, Q6_K, ...).
        case unsupportedTensorType
        /// A required metadata key is absent.
        case missingKey
        /// A metadata value has a type incompatible with the requested one.
        case typeMismatch
        /// Operating-system error (open, mmap, write, ...).
        case io
        /// A value passed by the caller is invalid (row index, buffer size, writer input).
        case invalidArgument
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

extension GGUFError.Kind {
    /// Spelling used in an early draft of the interface notes.
    @available(*, deprecated, renamed: "unknownTensorType")
    public static var unknentTensorType: GGUFError.Kind { .unknownTensorType }
}
