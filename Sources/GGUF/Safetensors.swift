import Foundation

/// An error found while reading a safetensors file. `kind` classifies it; `message` names the
/// file, the tensor and the byte offsets involved.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        /// The file ends before the header or a tensor it announces.
        case truncated
        /// The header is not a JSON object of tensor entries (bad JSON, bad field types).
        case badHeader
        /// A dtype this reader does not know (or cannot convert to Float where asked to).
        case unsupportedDType
        /// A tensor entry whose shape, offsets and dtype do not agree, or that overlaps another.
        case badTensor
        /// No tensor of that name.
        case missingTensor
        /// Operating-system error (open, mmap).
        case io
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Element types of the safetensors format.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u64 = "U64", u32 = "U32", u16 = "U16", u8 = "U8"
    case bool = "BOOL", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"

    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8e4m3, .f8e5m2: return 1
        }
    }
}

/// One tensor of a safetensors file: name, dtype, shape (outermost first, as PyTorch writes it)
/// and its bytes' range inside the data section.
public struct SafetensorsTensor: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let dataRange: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file (Hugging Face's format: an 8-byte little-endian header length,
/// a JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {…}}`, then
/// the data). Every entry is checked when the file is opened: a truncated or corrupt file is a
/// `SafetensorsError`, never a crash.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String?
    /// Tensors in data order.
    public let tensors: [SafetensorsTensor]
    /// The header's `__metadata__` strings.
    public let metadata: [String: String]
    private let mapping: Mapping
    private let dataStart: Int
    private let byName: [String: Int]

    /// Largest header accepted (the format's own limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    public convenience init(path: String) throws {
        let mapping: Mapping
        do {
            mapping = try Mapping(path: path)
        } catch let e as GGUFError {
            throw SafetensorsError(e.kind == .truncated ? .truncated : .io,
                                   e.kind == .truncated ? "'\(path)' is empty (0 bytes); a safetensors file starts with an 8-byte header length" : e.message)
        }
        try self.init(mapping: mapping, path: path)
    }

    /// Parses an in-memory copy (tests).
    public convenience init(bytes: [UInt8]) throws {
        try self.init(mapping: Mapping(bytes: bytes), path: nil)
    }

    private init(mapping: Mapping, path: String?) throws {
        self.mapping = mapping
        self.path = path
        let what = path.map { "'\($0)'" } ?? "safetensors data"
        let size = mapping.size
        guard size >= 8 else {
            throw SafetensorsError(.truncated, "\(what) has \(size) bytes; a safetensors file starts with an 8-byte header length")
        }
        let n = UInt64(littleEndian: mapping.base.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(Self.maxHeaderBytes) else {
            throw SafetensorsError(.badHeader, "\(what): header length \(n) bytes exceeds the format's limit of \(Self.maxHeaderBytes)")
        }
        guard Int(n) <= size - 8 else {
            throw SafetensorsError(.truncated, "\(what): header of \(n) bytes announced but only \(size - 8) bytes follow the length")
        }
        let headerBytes = Data(bytes: mapping.base + 8, count: Int(n))
        guard let root = try? JSONSerialization.jsonObject(with: headerBytes, options: []) as? [String: Any] else {
            throw SafetensorsError(.badHeader, "\(what): the \(n)-byte header is not a JSON object")
        }
        dataStart = 8 + Int(n)
        let dataSize = size - dataStart
        var meta: [String: String] = [:]
        var list: [SafetensorsTensor] = []
        for (name, value) in root {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else {
                    throw SafetensorsError(.badHeader, "\(what): __metadata__ is not an object")
                }
                for (k, v) in m { if let s = v as? String { meta[k] = s } }
                continue
            }
            guard let entry = value as? [String: Any] else {
                throw SafetensorsError(.badHeader, "\(what): entry '\(name)' is not an object")
            }
            guard let dtypeName = entry["dtype"] as? String else {
                throw SafetensorsError(.badHeader, "\(what): tensor '\(name)' has no string 'dtype'")
            }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw SafetensorsError(.unsupportedDType, "\(what): tensor '\(name)' has unknown dtype '\(dtypeName)' (known: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shapeAny = entry["shape"] as? [Any], let shape = Self.ints(shapeAny), shape.allSatisfy({ $0 >= 0 }) else {
                throw SafetensorsError(.badHeader, "\(what): tensor '\(name)' has no 'shape' list of non-negative integers")
            }
            guard let offAny = entry["data_offsets"] as? [Any], let off = Self.ints(offAny), off.count == 2,
                  off[0] >= 0, off[0] <= off[1] else {
                throw SafetensorsError(.badHeader, "\(what): tensor '\(name)' has no valid 'data_offsets' [begin, end]")
            }
            var elements = 1
            for d in shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                guard !o, p <= Int(Int32.max) * 64 else {
                    throw SafetensorsError(.badTensor, "\(what): tensor '\(name)' shape \(shape) is too large")
                }
                elements = p
            }
            guard off[1] - off[0] == elements * dtype.byteSize else {
                throw SafetensorsError(.badTensor, "\(what): tensor '\(name)' (\(dtypeName) \(shape)) needs \(elements * dtype.byteSize) bytes but data_offsets \(off) span \(off[1] - off[0])")
            }
            guard off[1] <= dataSize else {
                throw SafetensorsError(.truncated, "\(what): tensor '\(name)' ends at data byte \(off[1]) but the file has only \(dataSize) data bytes (truncated?)")
            }
            list.append(SafetensorsTensor(name: name, dtype: dtype, shape: shape, dataRange: off[0]..<off[1]))
        }
        list.sort { ($0.dataRange.lowerBound, $0.name) < ($1.dataRange.lowerBound, $1.name) }
        for i in list.indices.dropFirst() where list[i].dataRange.lowerBound < list[i - 1].dataRange.upperBound && !list[i - 1].dataRange.isEmpty {
            throw SafetensorsError(.badTensor, "\(what): tensors '\(list[i - 1].name)' and '\(list[i].name)' overlap")
        }
        tensors = list
        metadata = meta
        var index: [String: Int] = [:]
        for (i, t) in list.enumerated() { index[t.name] = i }
        byName = index
    }

    private static func ints(_ a: [Any]) -> [Int]? {
        var out: [Int] = []
        for v in a {
            // JSONSerialization gives NSNumber; refuse fractions.
            guard let n = v as? NSNumber else { return nil }
            let d = n.doubleValue
            guard d == d.rounded(), abs(d) < 9e15 else { return nil }
            out.append(Int(d))
        }
        return out
    }

    public func tensor(named name: String) -> SafetensorsTensor? { byName[name].map { tensors[$0] } }

    /// The raw bytes of a tensor (valid while this object lives).
    public func bytes(of t: SafetensorsTensor) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: mapping.base + dataStart + t.dataRange.lowerBound, count: t.dataRange.count)
    }

    /// A floating-point tensor's elements as Float (F32, F16, BF16, F64); other dtypes are a
    /// `.unsupportedDType` error.
    public func floats(_ name: String) throws -> [Float] {
        guard let t = tensor(named: name) else {
            throw SafetensorsError(.missingTensor, "\(path.map { "'\($0)'" } ?? "safetensors data") has no tensor '\(name)'")
        }
        return try floats(t)
    }

    public func floats(_ t: SafetensorsTensor) throws -> [Float] {
        let raw = bytes(of: t)
        let n = t.elementCount
        var out = [Float](repeating: 0, count: n)
        switch t.dtype {
        case .f32:
            out.withUnsafeMutableBytes { $0.copyMemory(from: raw) }
        case .f16:
            for i in 0..<n { out[i] = Half.toFloat(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0..<n {
                out[i] = Float(bitPattern: UInt32(raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .f64:
            for i in 0..<n { out[i] = Float(raw.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
        default:
            throw SafetensorsError(.unsupportedDType, "tensor '\(t.name)' has dtype \(t.dtype.rawValue); only F32, F16, BF16 and F64 convert to Float")
        }
        return out
    }
}
