import CKernels

/// A ggml tensor type, identified by its number in ggml's `enum ggml_type`.
///
/// Every type ggml defines is known by name, block size and bytes per block,
/// so files using any of them open and can be listed; only some can be
/// converted to `Float` (`canDequantize`).
public struct GGMLType: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32

    struct Traits: Sendable {
        let name: String
        let blockSize: Int
        let bytesPerBlock: Int
    }

    /// ggml's type table (numbers from ggml.h; block sizes and block byte
    /// counts from the `block_*` structs in ggml-common.h). Numbers 4, 5,
    /// 31...33 and 36...38 were removed from ggml and are unknown here.
    static let table: [UInt32: Traits] = [
        0: Traits(name: "F32", blockSize: 1, bytesPerBlock: 4),
        1: Traits(name: "F16", blockSize: 1, bytesPerBlock: 2),
        2: Traits(name: "Q4_0", blockSize: 32, bytesPerBlock: 18),
        3: Traits(name: "Q4_1", blockSize: 32, bytesPerBlock: 20),
        6: Traits(name: "Q5_0", blockSize: 32, bytesPerBlock: 22),
        7: Traits(name: "Q5_1", blockSize: 32, bytesPerBlock: 24),
        8: Traits(name: "Q8_0", blockSize: 32, bytesPerBlock: 34),
        9: Traits(name: "Q8_1", blockSize: 32, bytesPerBlock: 36),
        10: Traits(name: "Q2_K", blockSize: 256, bytesPerBlock: 84),
        11: Traits(name: "Q3_K", blockSize: 256, bytesPerBlock: 110),
        12: Traits(name: "Q4_K", blockSize: 256, bytesPerBlock: 144),
        13: Traits(name: "Q5_K", blockSize: 256, bytesPerBlock: 176),
        14: Traits(name: "Q6_K", blockSize: 256, bytesPerBlock: 210),
        15: Traits(name: "Q8_K", blockSize: 256, bytesPerBlock: 292),
        16: Traits(name: "IQ2_XXS", blockSize: 256, bytesPerBlock: 66),
        17: Traits(name: "IQ2_XS", blockSize: 256, bytesPerBlock: 74),
        18: Traits(name: "IQ3_XXS", blockSize: 256, bytesPerBlock: 98),
        19: Traits(name: "IQ1_S", blockSize: 256, bytesPerBlock: 50),
        20: Traits(name: "IQ4_NL", blockSize: 32, bytesPerBlock: 18),
        21: Traits(name: "IQ3_S", blockSize: 256, bytesPerBlock: 110),
        22: Traits(name: "IQ2_S", blockSize: 256, bytesPerBlock: 82),
        23: Traits(name: "IQ4_XS", blockSize: 256, bytesPerBlock: 136),
        24: Traits(name: "I8", blockSize: 1, bytesPerBlock: 1),
        25: Traits(name: "I16", blockSize: 1, bytesPerBlock: 2),
        26: Traits(name: "I32", blockSize: 1, bytesPerBlock: 4),
        27: Traits(name: "I64", blockSize: 1, bytesPerBlock: 8),
        28: Traits(name: "F64", blockSize: 1, bytesPerBlock: 8),
        29: Traits(name: "IQ1_M", blockSize: 256, bytesPerBlock: 56),
        30: Traits(name: "BF16", blockSize: 1, bytesPerBlock: 2),
        34: Traits(name: "TQ1_0", blockSize: 256, bytesPerBlock: 54),
        35: Traits(name: "TQ2_0", blockSize: 256, bytesPerBlock: 66),
        39: Traits(name: "MXFP4", blockSize: 32, bytesPerBlock: 17),
        40: Traits(name: "NVFP4", blockSize: 64, bytesPerBlock: 36),
        41: Traits(name: "Q1_0", blockSize: 128, bytesPerBlock: 18),
        42: Traits(name: "Q2_0", blockSize: 64, bytesPerBlock: 18),
    ]

    /// A type known to ggml; nil for numbers ggml does not define.
    public init?(rawValue: UInt32) {
        guard GGMLType.table[rawValue] != nil else { return nil }
        self.rawValue = rawValue
    }

    /// Looks a type up by name, case-insensitively ("q8_0", "F16", ...).
    public init?(name: String) {
        let upper = name.uppercased()
        guard let entry = GGMLType.table.first(where: { $0.value.name == upper }) else { return nil }
        self.rawValue = entry.key
    }

    private init(known rawValue: UInt32) { self.rawValue = rawValue }

    private var traits: Traits { GGMLType.table[rawValue] ?? Traits(name: "type \(rawValue)", blockSize: 1, bytesPerBlock: 0) }

    /// ggml's name in upper case: "F32", "Q8_0", "Q4_K", ...
    public var name: String { traits.name }
    /// Elements per block (1 for plain types).
    public var blockSize: Int { traits.blockSize }
    /// Bytes per block.
    public var bytesPerBlock: Int { traits.bytesPerBlock }
    /// Whether `Dequantize` can convert this type to `Float`.
    public var canDequantize: Bool {
        switch rawValue {
        case 0, 1, 2, 3, 8, 30: return true
        // the kernels' per-type table: Q5_0, Q5_1, Q2_K ... Q6_K
        case 6, 7, 10, 11, 12, 13, 14: return ek_type_traits_of(Int32(rawValue))?.pointee.to_float != nil
        default: return false
        }
    }
    /// True for block-quantized types (block size > 1).
    public var isQuantized: Bool { blockSize > 1 }

    public var description: String { name }

    /// Bytes used by `elements` values of this type, or nil when `elements`
    /// is not a multiple of the block size or the size overflows.
    public func byteCount(elements: Int) -> Int? {
        guard elements >= 0, elements % blockSize == 0 else { return nil }
        let (bytes, overflow) = (elements / blockSize).multipliedReportingOverflow(by: bytesPerBlock)
        return overflow ? nil : bytes
    }

    /// All types ggml defines, by number.
    public static let allKnown: [GGMLType] = table.keys.sorted().map { GGMLType(known: $0) }

    public static let f32 = GGMLType(known: 0)
    public static let f16 = GGMLType(known: 1)
    public static let q4_0 = GGMLType(known: 2)
    public static let q4_1 = GGMLType(known: 3)
    public static let q5_0 = GGMLType(known: 6)
    public static let q5_1 = GGMLType(known: 7)
    public static let q8_0 = GGMLType(known: 8)
    public static let q8_1 = GGMLType(known: 9)
    public static let q2_K = GGMLType(known: 10)
    public static let q3_K = GGMLType(known: 11)
    public static let q4_K = GGMLType(known: 12)
    public static let q5_K = GGMLType(known: 13)
    public static let q6_K = GGMLType(known: 14)
    public static let q8_K = GGMLType(known: 15)
    public static let iq2_xxs = GGMLType(known: 16)
    public static let iq2_xs = GGMLType(known: 17)
    public static let iq3_xxs = GGMLType(known: 18)
    public static let iq1_s = GGMLType(known: 19)
    public static let iq4_nl = GGMLType(known: 20)
    public static let iq3_s = GGMLType(known: 21)
    public static let iq2_s = GGMLType(known: 22)
    public static let iq4_xs = GGMLType(known: 23)
    public static let i8 = GGMLType(known: 24)
    public static let i16 = GGMLType(known: 25)
    public static let i32 = GGMLType(known: 26)
    public static let i64 = GGMLType(known: 27)
    public static let f64 = GGMLType(known: 28)
    public static let iq1_m = GGMLType(known: 29)
    public static let bf16 = GGMLType(known: 30)
    public static let tq1_0 = GGMLType(known: 34)
    public static let tq2_0 = GGMLType(known: 35)
    public static let mxfp4 = GGMLType(known: 39)
    public static let nvfp4 = GGMLType(known: 40)
    public static let q1_0 = GGMLType(known: 41)
    public static let q2_0 = GGMLType(known: 42)
}
