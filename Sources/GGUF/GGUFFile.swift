/// One tensor of a GGUF file: its name, type, shape and byte range.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    public let type: GGMLType
    /// ggml order: `shape[0]` is the row length (ne0).
    public let shape: [Int]
    /// Byte offset relative to the start of the data section.
    public let offset: Int
    public let byteCount: Int

    public init(name: String, type: GGMLType, shape: [Int], offset: Int, byteCount: Int) {
        self.name = name
        self.type = type
        self.shape = shape
        self.offset = offset
        self.byteCount = byteCount
    }

    public var elementCount: Int { shape.reduce(1, &*) }
    /// Elements per row (`shape[0]`; 1 for a 0-dimensional tensor).
    public var rowLength: Int { shape.first ?? 1 }
    /// Product of `shape[1...]`.
    public var rowCount: Int { shape.dropFirst().reduce(1, &*) }
    /// Bytes per row.
    public var rowByteCount: Int { (rowLength / max(type.blockSize, 1)) &* type.bytesPerBlock }
    /// Dimensions as ggml counts them: trailing dimensions of size 1 do not count (ggml_n_dims).
    public var dimensionCount: Int {
        var n = shape.count
        while n > 1 && shape[n - 1] == 1 { n -= 1 }
        return max(n, 1)
    }
}

/// A GGUF file (versions 2 and 3), memory-mapped read-only and fully
/// validated on open. Tensor data are zero-copy views into the mapping.
public final class GGUFFile: @unchecked Sendable {
    public let version: UInt32
    public let alignment: Int
    /// Absolute byte offset of the data section (aligned end of the tensor table).
    public let dataOffset: Int
    public let fileSize: Int
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let metadata: [String: GGUFValue]
    /// Tensors in file order.
    public let tensors: [GGUFTensorInfo]
    /// Path the file was opened from (nil for in-memory files).
    public let path: String?

    private let mapping: Mapping
    private let tensorIndex: [String: Int]

    /// Memory-maps `path` and validates header, metadata and tensor table.
    public convenience init(path: String) throws {
        try self.init(mapping: Mapping(path: path), path: path)
    }

    /// Parses an in-memory copy of a GGUF file (tests, fuzzing).
    public convenience init(bytes: [UInt8]) throws {
        try self.init(mapping: Mapping(bytes: bytes), path: nil)
    }

    private init(mapping: Mapping, path: String?) throws {
        self.mapping = mapping
        self.path = path
        fileSize = mapping.size
        var r = ByteReader(base: mapping.base, size: mapping.size)

        // Header.
        let magic = (0..<min(4, mapping.size)).map { mapping.base.load(fromByteOffset: $0, as: UInt8.self) }
        if mapping.size < 4 && magic == Array([0x47, 0x47, 0x55, 0x46].prefix(mapping.size)) {
            throw GGUFError(.truncated, "file is truncated: \(mapping.size) bytes is too short for a GGUF header (24 bytes)")
        }
        if magic != [0x47, 0x47, 0x55, 0x46] {
            let shown = magic.map { (0x20..<0x7f).contains($0) ? String(UnicodeScalar($0)) : "\\x" + String($0, radix: 16) }.joined()
            throw GGUFError(.badMagic, "not a GGUF file: the first 4 bytes are '\(shown)', expected 'GGUF'")
        }
        r.pos = 4
        let version = try r.u32("the header version")
        switch version {
        case 2, 3: break
        case 1:
            throw GGUFError(.unsupportedVersion, "GGUF version 1 is not supported (only versions 2 and 3); convert the file with a current llama.cpp")
        default:
            if version & 0xFFFF == 0 {
                throw GGUFError(.unsupportedVersion, "GGUF version \(version) is not supported; the file looks big-endian (version \(version.byteSwapped) byte-swapped), only little-endian files are supported")
            }
            throw GGUFError(.unsupportedVersion, "GGUF version \(version) is not supported (only versions 2 and 3)")
        }
        self.version = version
        let tensorCount64 = try r.u64("the tensor count")
        let kvCount64 = try r.u64("the metadata key-value count")
        let minTensorInfo = 8 + 1 + 4 + 4 + 8        // name length, name, n_dims, type, offset
        let minKV = 8 + 1 + 4 + 1                    // key length, key, type, smallest value
        if tensorCount64 > UInt64(1 << 40) {
            throw GGUFError(.tooLarge, "the header claims \(tensorCount64) tensors, which cannot be right")
        }
        if kvCount64 > UInt64(1 << 40) {
            throw GGUFError(.tooLarge, "the header claims \(kvCount64) metadata key-value pairs, which cannot be right")
        }
        let tensorCount = Int(tensorCount64), kvCount = Int(kvCount64)
        if kvCount * minKV + tensorCount * minTensorInfo > r.remaining {
            throw GGUFError(.truncated, "file is truncated: the header announces \(kvCount) metadata pairs and \(tensorCount) tensors, needing at least \(kvCount * minKV + tensorCount * minTensorInfo) bytes after byte 24, but the file has \(r.remaining)")
        }

        // Metadata.
        var keys = [String]()
        keys.reserveCapacity(kvCount)
        var metadata = [String: GGUFValue](minimumCapacity: kvCount)
        for i in 0..<kvCount {
            let at = r.pos
            let key = try r.string("key of metadata pair \(i)")
            if key.isEmpty {
                throw GGUFError(.badString, "metadata pair \(i) at byte \(at) has an empty key")
            }
            if metadata[key] != nil {
                throw GGUFError(.duplicate, "metadata key '\(key)' appears twice (second at byte \(at))")
            }
            let type = try r.valueType("metadata key '\(key)'")
            metadata[key] = try r.value(type, key: key)
            keys.append(key)
        }
        metadataKeys = keys
        self.metadata = metadata

        var alignment = 32
        if let a = metadata["general.alignment"] {
            guard case .uint32(let v) = a else {
                throw GGUFError(.typeMismatch, "general.alignment must be a u32 but is \(a.type)")
            }
            guard v != 0, v & (v - 1) == 0 else {
                throw GGUFError(.misaligned, "general.alignment is \(v), which is not a power of two")
            }
            alignment = Int(v)
        }
        self.alignment = alignment

        // Tensor table.
        var infos = [GGUFTensorInfo]()
        infos.reserveCapacity(tensorCount)
        var index = [String: Int](minimumCapacity: tensorCount)
        for i in 0..<tensorCount {
            let at = r.pos
            let name = try r.string("name of tensor \(i)")
            if name.utf8.count >= maxTensorNameBytes {
                throw GGUFError(.badTensor, "tensor \(i) at byte \(at) has a \(name.utf8.count)-byte name; names must be shorter than \(maxTensorNameBytes) bytes")
            }
            if index[name] != nil {
                throw GGUFError(.duplicate, "tensor name '\(name)' appears twice (second at byte \(at))")
            }
            let nDims = try r.u32("dimension count of tensor '\(name)'")
            if nDims > UInt32(maxDimensions) {
                throw GGUFError(.badTensor, "tensor '\(name)' at byte \(at) has \(nDims) dimensions; at most \(maxDimensions) are allowed")
            }
            var shape = [Int]()
            shape.reserveCapacity(Int(nDims))
            var elements = 1
            var nonzeroProduct = 1       // product of max(dim, 1): bounds every partial product
            var overflow = false
            for d in 0..<Int(nDims) {
                let n = try r.u64("dimension \(d) of tensor '\(name)'")
                if n > UInt64(Int64.max) {
                    throw GGUFError(.badShape, "tensor '\(name)' dimension \(d) is \(Int64(bitPattern: n)), which is negative")
                }
                shape.append(Int(n))
                if !overflow {
                    let (p, o) = nonzeroProduct.multipliedReportingOverflow(by: max(Int(n), 1))
                    if o { overflow = true } else { nonzeroProduct = p }
                    elements = elements &* Int(n)
                }
            }
            let typeRaw = try r.u32("type of tensor '\(name)'")
            if overflow {
                throw GGUFError(.tooLarge, "tensor '\(name)' has shape \(shape), whose element count overflows a 64-bit integer")
            }
            guard let type = GGMLType(rawValue: typeRaw) else {
                throw GGUFError(.unknownTensorType, "tensor '\(name)' has type number \(typeRaw), which ggml does not define")
            }
            let rowLength = shape.first ?? 1
            if rowLength % type.blockSize != 0 {
                throw GGUFError(.badShape, "tensor '\(name)' of type \(type.name) has rows of \(rowLength) elements, not a multiple of the block size \(type.blockSize)")
            }
            guard let byteCount = type.byteCount(elements: elements), type.byteCount(elements: rowLength) != nil else {
                throw GGUFError(.tooLarge, "tensor '\(name)' with shape \(shape) of type \(type.name) has a byte size that overflows")
            }
            let offset64 = try r.u64("data offset of tensor '\(name)'")
            if offset64 > UInt64(Int64.max) {
                throw GGUFError(.outOfBounds, "tensor '\(name)' has data offset \(offset64), far beyond the end of the file")
            }
            let offset = Int(offset64)
            if offset % alignment != 0 {
                throw GGUFError(.misaligned, "tensor '\(name)' has data offset \(offset), not a multiple of the alignment \(alignment)")
            }
            index[name] = infos.count
            infos.append(GGUFTensorInfo(name: name, type: type, shape: shape, offset: offset, byteCount: byteCount))
        }
        tensors = infos
        tensorIndex = index

        // Data section.
        let headerEnd = r.pos
        let (paddedEnd, padOverflow) = headerEnd.addingReportingOverflow(alignment - 1)
        dataOffset = padOverflow ? headerEnd : paddedEnd / alignment * alignment
        let dataSize = max(0, fileSize - dataOffset)
        // Walk tensors in offset order: no overlaps, everything inside the file.
        let order = infos.indices.sorted { (infos[$0].offset, $0) < (infos[$1].offset, $1) }
        var previousEnd = 0
        var previousName: String? = nil
        for i in order {
            let t = infos[i]
            if t.offset < previousEnd, let prev = previousName {
                throw GGUFError(.overlap, "tensor '\(t.name)' (data offset \(t.offset)) overlaps tensor '\(prev)', which ends at data offset \(previousEnd)")
            }
            let (end, o) = t.offset.addingReportingOverflow(t.byteCount)
            if o || end > dataSize {
                let expected = (previousEnd + alignment - 1) / alignment * alignment
                if !o && t.offset <= max(expected, dataSize) {
                    throw GGUFError(.truncated, "file is truncated: tensor '\(t.name)' needs bytes up to \(dataOffset + end) but the file ends at byte \(fileSize)")
                }
                throw GGUFError(.outOfBounds, "tensor '\(t.name)' (data offset \(t.offset), \(t.byteCount) bytes) lies outside the data section, which has \(dataSize) bytes starting at byte \(dataOffset)")
            }
            previousEnd = end
            previousName = t.name
        }
    }

    // MARK: Metadata

    public subscript(key: String) -> GGUFValue? { metadata[key] }

    /// `general.architecture`, e.g. "llama".
    public var architecture: String? { metadata["general.architecture"]?.stringValue }

    private func mismatch(_ key: String, _ v: GGUFValue, _ wanted: String) -> GGUFError {
        GGUFError(.typeMismatch, "metadata key '\(key)' has type \(v.type)\(v.arrayValue.map { "[\($0.elementType)]" } ?? ""), expected \(wanted)")
    }

    /// An integer value (any width, converted when it fits); nil if absent.
    public func int(_ key: String) throws -> Int? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.intValue else {
            if case .uint64(let u) = v {
                throw GGUFError(.typeMismatch, "metadata key '\(key)' has type u64 and the value \(u), beyond the largest integer supported (\(Int.max))")
            }
            throw mismatch(key, v, "an integer")
        }
        return i
    }

    public func uint32(_ key: String) throws -> UInt32? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.intValue, let u = UInt32(exactly: i) else { throw mismatch(key, v, "an integer in 0...\(UInt32.max)") }
        return u
    }

    public func int64(_ key: String) throws -> Int64? {
        try int(key).map(Int64.init)
    }

    /// A floating-point value (f32, f64 or an integer); nil if absent.
    public func float(_ key: String) throws -> Float? {
        try double(key).map { Float($0) }
    }

    public func double(_ key: String) throws -> Double? {
        guard let v = metadata[key] else { return nil }
        guard let d = v.doubleValue else { throw mismatch(key, v, "a number") }
        return d
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let v = metadata[key] else { return nil }
        guard let b = v.boolValue else { throw mismatch(key, v, "a bool") }
        return b
    }

    public func string(_ key: String) throws -> String? {
        guard let v = metadata[key] else { return nil }
        guard let s = v.stringValue else { throw mismatch(key, v, "a string") }
        return s
    }

    public func array(_ key: String) throws -> GGUFValueArray? {
        guard let v = metadata[key] else { return nil }
        guard let a = v.arrayValue else { throw mismatch(key, v, "an array") }
        return a
    }

    public func strings(_ key: String) throws -> [String]? {
        guard let v = metadata[key] else { return nil }
        guard let s = v.arrayValue?.strings else { throw mismatch(key, v, "an array of strings") }
        return s
    }

    public func floats(_ key: String) throws -> [Float]? {
        guard let v = metadata[key] else { return nil }
        guard let f = v.arrayValue?.floats else { throw mismatch(key, v, "an array of numbers") }
        return f
    }

    public func ints(_ key: String) throws -> [Int]? {
        guard let v = metadata[key] else { return nil }
        guard let i = v.arrayValue?.ints else { throw mismatch(key, v, "an array of integers") }
        return i
    }

    /// Like the optional accessors but throws `.missingKey` when absent.
    public func require<T>(_ key: String, _ get: (String) throws -> T?) throws -> T {
        guard let v = try get(key) else {
            throw GGUFError(.missingKey, "metadata key '\(key)' is missing\(path.map { " in '\($0)'" } ?? "")")
        }
        return v
    }

    // MARK: Tensors

    public func tensor(named name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensors[$0] }
    }

    /// The whole file as mapped.
    public var fileBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mapping.base, count: mapping.size) }

    /// Tells the kernel this process no longer needs the mapped pages of `tensor` (after copying
    /// it elsewhere), so they leave its resident memory; reading the tensor again later still
    /// gives the same bytes (they come back from the file). No effect on in-memory files.
    /// `range` limits this to those bytes of the tensor.
    public func releasePages(of tensor: GGUFTensorInfo, range: Range<Int>? = nil) {
        let b = bytes(of: tensor)
        guard let p = b.baseAddress, b.count > 0 else { return }
        let r = (range ?? 0..<b.count).clamped(to: 0..<b.count)
        mapping.releasePages(offset: p - mapping.base + r.lowerBound, count: r.count)
    }

    /// Zero-copy view of a tensor's data, valid while this `GGUFFile` lives.
    /// Empty if `tensor` does not describe a range inside this file's data section.
    public func bytes(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        let dataSize = max(0, fileSize - dataOffset)
        guard tensor.offset >= 0, tensor.byteCount >= 0, tensor.offset <= dataSize,
              tensor.byteCount <= dataSize - tensor.offset else {
            return UnsafeRawBufferPointer(start: mapping.base, count: 0)
        }
        return UnsafeRawBufferPointer(start: mapping.base + dataOffset + tensor.offset, count: tensor.byteCount)
    }

    /// The tensor's data, checked to be consistent with its shape and inside this file.
    private func checkedData(_ tensor: GGUFTensorInfo) throws -> UnsafeRawBufferPointer {
        try Dequantize.checkSupported(tensor.type, tensor: tensor.name)
        var elements = 1, overflow = false
        for d in tensor.shape {
            let (p, o) = elements.multipliedReportingOverflow(by: max(d, 1))
            overflow = overflow || o || d < 0
            elements = p
        }
        guard !overflow, tensor.rowLength % tensor.type.blockSize == 0,
              tensor.type.byteCount(elements: tensor.elementCount) == tensor.byteCount else {
            throw GGUFError(.invalidArgument, "tensor '\(tensor.name)': shape \(tensor.shape) of type \(tensor.type.name) does not match its \(tensor.byteCount) bytes")
        }
        let data = bytes(of: tensor)
        guard data.count == tensor.byteCount else {
            throw GGUFError(.outOfBounds, "tensor '\(tensor.name)' does not lie inside this file")
        }
        return data
    }

    /// Dequantizes row `row` (of `tensor.rowCount`) into the first `tensor.rowLength` floats of `into`.
    public func dequantizeRow(_ tensor: GGUFTensorInfo, row: Int, into: UnsafeMutableBufferPointer<Float>) throws {
        let data = try checkedData(tensor)
        guard row >= 0, row < tensor.rowCount else {
            throw GGUFError(.invalidArgument, "row \(row) is out of range for tensor '\(tensor.name)' with \(tensor.rowCount) rows")
        }
        guard into.count >= tensor.rowLength, let dst = into.baseAddress else {
            throw GGUFError(.invalidArgument, "buffer of \(into.count) floats is too small for a row of tensor '\(tensor.name)' (\(tensor.rowLength) elements)")
        }
        let rowBytes = tensor.rowByteCount
        guard let src = data.baseAddress else {
            throw GGUFError(.outOfBounds, "tensor '\(tensor.name)' has no data")
        }
        try Dequantize.rows(type: tensor.type, from: src + row * rowBytes, count: tensor.rowLength, into: dst)
    }

    /// Dequantizes a whole tensor to `elementCount` floats.
    public func dequantize(_ tensor: GGUFTensorInfo) throws -> [Float] {
        let data = try checkedData(tensor)
        let n = tensor.elementCount
        if n == 0 { return [] }
        guard let src = data.baseAddress else { return [] }
        var error: GGUFError? = nil
        let out = [Float](unsafeUninitializedCapacity: n) { buf, count in
            do {
                try Dequantize.rows(type: tensor.type, from: src, count: n, into: buf.baseAddress!)
                count = n
            } catch let e as GGUFError {
                error = e
                count = 0
            } catch {
                count = 0
            }
        }
        if let error { throw error }
        return out
    }
}
