#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Little-endian encoder for GGUF structures.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func append<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { u in
            append(UInt64(u.count))
            bytes.append(contentsOf: u)
        }
    }

    mutating func value(_ v: GGUFValue) {
        switch v {
        case .uint8(let x): append(x)
        case .int8(let x): append(x)
        case .uint16(let x): append(x)
        case .int16(let x): append(x)
        case .uint32(let x): append(x)
        case .int32(let x): append(x)
        case .uint64(let x): append(x)
        case .int64(let x): append(x)
        case .float32(let x): append(x.bitPattern)
        case .float64(let x): append(x.bitPattern)
        case .bool(let x): append(UInt8(x ? 1 : 0))
        case .string(let x): string(x)
        case .array(let a): array(a)
        }
    }

    mutating func array(_ a: GGUFValueArray) {
        append(a.elementType.rawValue)
        append(UInt64(a.count))
        switch a {
        case .uint8(let xs): bytes.append(contentsOf: xs)
        case .int8(let xs): for x in xs { append(x) }
        case .uint16(let xs): for x in xs { append(x) }
        case .int16(let xs): for x in xs { append(x) }
        case .uint32(let xs): for x in xs { append(x) }
        case .int32(let xs): for x in xs { append(x) }
        case .uint64(let xs): for x in xs { append(x) }
        case .int64(let xs): for x in xs { append(x) }
        case .float32(let xs): for x in xs { append(x.bitPattern) }
        case .float64(let xs): for x in xs { append(x.bitPattern) }
        case .bool(let xs): for x in xs { append(UInt8(x ? 1 : 0)) }
        case .string(let xs): for x in xs { string(x) }
        case .array(let xs): for x in xs { array(x) }
        }
    }

    mutating func pad(to alignment: Int) {
        let n = (alignment - bytes.count % alignment) % alignment
        bytes.append(contentsOf: repeatElement(0, count: n))
    }
}

/// A tensor-table entry to be written.
struct TensorPlanEntry: Sendable {
    let name: String
    let type: GGMLType
    let shape: [Int]
    let byteCount: Int
}

/// Header bytes (magic ... padding) of a GGUF v3 file and each tensor's data
/// offset. Tensors are laid out in order, each starting at a multiple of
/// `alignment` (as ggml writes them); the data section is padded to it too.
func ggufHeaderLayout(metadata: [(key: String, value: GGUFValue)], tensors: [TensorPlanEntry], alignment: Int) -> (header: [UInt8], offsets: [Int], dataSize: Int) {
    var w = ByteWriter()
    w.bytes.reserveCapacity(1 << 16)
    w.append(UInt32(0x4655_4747))           // "GGUF"
    w.append(UInt32(3))
    w.append(UInt64(tensors.count))
    w.append(UInt64(metadata.count))
    for (key, value) in metadata {
        w.string(key)
        w.append(value.type.rawValue)
        w.value(value)
    }
    var offsets = [Int]()
    var offset = 0
    for t in tensors {
        w.string(t.name)
        w.append(UInt32(t.shape.count))
        for d in t.shape { w.append(UInt64(d)) }
        w.append(t.type.rawValue)
        w.append(UInt64(offset))
        offsets.append(offset)
        offset += (t.byteCount + alignment - 1) / alignment * alignment
    }
    w.pad(to: alignment)
    return (w.bytes, offsets, offset)
}

/// Validates tensor-table entries before writing; returns the alignment to use.
func validatePlan(metadata: [(key: String, value: GGUFValue)], tensors: [TensorPlanEntry], defaultAlignment: Int) throws -> Int {
    var alignment = defaultAlignment
    var seenKeys = Set<String>()
    for (key, value) in metadata {
        if key.isEmpty { throw GGUFError(.badString, "metadata keys must not be empty") }
        if !seenKeys.insert(key).inserted { throw GGUFError(.duplicate, "metadata key '\(key)' is set twice") }
        if key == "general.alignment" {
            guard case .uint32(let a) = value else {
                throw GGUFError(.typeMismatch, "general.alignment must be a u32 but is \(value.type)")
            }
            alignment = Int(a)
        }
    }
    guard alignment > 0, alignment & (alignment - 1) == 0 else {
        throw GGUFError(.misaligned, "alignment \(alignment) is not a power of two")
    }
    var seen = Set<String>()
    for t in tensors {
        if t.name.utf8.count >= maxTensorNameBytes {
            throw GGUFError(.badTensor, "tensor name '\(t.name)' is \(t.name.utf8.count) bytes; names must be shorter than \(maxTensorNameBytes) bytes")
        }
        if !seen.insert(t.name).inserted { throw GGUFError(.duplicate, "tensor '\(t.name)' is added twice") }
        if t.shape.count > maxDimensions {
            throw GGUFError(.badTensor, "tensor '\(t.name)' has \(t.shape.count) dimensions; at most \(maxDimensions) are allowed")
        }
        if t.shape.contains(where: { $0 < 0 }) {
            throw GGUFError(.badShape, "tensor '\(t.name)' has a negative dimension in shape \(t.shape)")
        }
        var elements = 1
        for d in t.shape {
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            if o { throw GGUFError(.tooLarge, "tensor '\(t.name)' with shape \(t.shape) has too many elements") }
            elements = p
        }
        let rowLength = t.shape.first ?? 1
        if rowLength % t.type.blockSize != 0 {
            throw GGUFError(.badShape, "tensor '\(t.name)' of type \(t.type.name) has rows of \(rowLength) elements, not a multiple of the block size \(t.type.blockSize)")
        }
        guard let expected = t.type.byteCount(elements: elements) else {
            throw GGUFError(.tooLarge, "tensor '\(t.name)' is too large")
        }
        if expected != t.byteCount {
            throw GGUFError(.invalidArgument, "tensor '\(t.name)' (\(t.type.name), shape \(t.shape)) needs \(expected) bytes of data but \(t.byteCount) were given")
        }
    }
    return alignment
}

/// Builds a GGUF version 3 file: metadata in insertion order, then the
/// tensor table, then tensor data, each tensor aligned.
public struct GGUFWriter: Sendable {
    public private(set) var alignment: Int
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    private var tensorEntries: [(entry: TensorPlanEntry, data: [UInt8])] = []

    /// `alignment` other than 32 is recorded as `general.alignment`.
    public init(alignment: Int = 32) {
        self.alignment = alignment
        if alignment != 32 {
            metadata.append((key: "general.alignment", value: .uint32(UInt32(truncatingIfNeeded: alignment))))
        }
    }

    /// Sets a metadata value (replacing an existing key in place).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append((key: key, value: value))
        }
    }

    public mutating func remove(_ key: String) {
        metadata.removeAll { $0.key == key }
    }

    /// Adds a tensor; `data` must hold exactly the encoded tensor (checked when writing).
    public mutating func addTensor(name: String, type: GGMLType, shape: [Int], data: [UInt8]) {
        tensorEntries.append((TensorPlanEntry(name: name, type: type, shape: shape, byteCount: data.count), data))
    }

    /// The complete file.
    public func bytes() throws -> [UInt8] {
        let plan = tensorEntries.map { $0.entry }
        let align = try validatePlan(metadata: metadata, tensors: plan, defaultAlignment: alignment)
        var (out, offsets, dataSize) = ggufHeaderLayout(metadata: metadata, tensors: plan, alignment: align)
        let base = out.count
        out.append(contentsOf: repeatElement(0, count: dataSize))
        for (i, t) in tensorEntries.enumerated() {
            out.replaceSubrange((base + offsets[i])..<(base + offsets[i] + t.data.count), with: t.data)
        }
        return out
    }

    /// Writes the file to `path` (via a temporary file renamed into place).
    public func write(to path: String) throws {
        let data = try bytes()
        try writeFileAtomically(path: path, data)
    }
}

func posixError(_ what: String) -> GGUFError {
    let e = errno
    return GGUFError(.io, "\(what): \(String(cString: strerror(e)))")
}

func writeFileAtomically(path: String, _ data: [UInt8]) throws {
    let tmp = path + ".tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    if fd < 0 { throw posixError("cannot create '\(tmp)'") }
    var ok = false
    defer {
        if !ok { unlink(tmp) }
    }
    do {
        defer { close(fd) }
        try data.withUnsafeBytes { buf in
            var done = 0
            while done < buf.count {
                let n = write(fd, buf.baseAddress! + done, buf.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw posixError("cannot write '\(tmp)'")
                }
                done += n
            }
        }
    }
    unlink(path)       // see quantizeModel: no flush-on-replace
    if rename(tmp, path) != 0 { throw posixError("cannot rename '\(tmp)' to '\(path)'") }
    ok = true
}
