// Bounds-checked little-endian reader over a GGUF file's bytes.

/// Limits shared with ggml's reader (gguf.cpp): longer strings or larger
/// arrays are treated as corrupt rather than as a truncated file.
let maxStringLength = 1 << 30
let maxArrayElements = 1 << 30
/// Arrays inside arrays deeper than this are rejected (no recursion blow-up).
let maxArrayDepth = 8
/// ggml's GGML_MAX_NAME: tensor names are shorter than this many bytes.
let maxTensorNameBytes = 64
/// ggml's GGML_MAX_DIMS.
let maxDimensions = 4

struct ByteReader {
    let base: UnsafeRawPointer
    let size: Int
    var pos: Int = 0

    init(base: UnsafeRawPointer, size: Int) {
        self.base = base
        self.size = size
    }

    var remaining: Int { size - pos }

    @inline(__always)
    func need(_ n: Int, _ what: @autoclosure () -> String) throws {
        if n > size - pos {
            throw GGUFError(.truncated, "file is truncated: \(what()) at byte \(pos) needs \(n) bytes but the file ends at byte \(size)")
        }
    }

    @inline(__always)
    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, what())
        let v = base.loadUnaligned(fromByteOffset: pos, as: T.self)
        pos += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    mutating func u32(_ what: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, what()) }
    mutating func u64(_ what: @autoclosure () -> String) throws -> UInt64 { try load(UInt64.self, what()) }

    /// A GGUF string: u64 byte length + UTF-8 bytes (invalid UTF-8 is repaired with U+FFFD).
    @inline(__always)
    mutating func string(_ what: @autoclosure () -> String) throws -> String {
        let start = pos
        let len64 = try u64(what())
        if len64 > UInt64(maxStringLength) {
            throw GGUFError(.badString, "\(what()) at byte \(start) has length \(len64), over the limit of \(maxStringLength) bytes")
        }
        let len = Int(len64)
        if len > size - pos {
            throw GGUFError(.truncated, "file is truncated: \(what()) at byte \(start) has length \(len) but the file ends at byte \(size)")
        }
        let s = String(decoding: UnsafeRawBufferPointer(start: base + pos, count: len), as: UTF8.self)
        pos += len
        return s
    }

    mutating func valueType(_ what: @autoclosure () -> String) throws -> GGUFValueType {
        let at = pos
        let raw = try u32(what())
        guard let t = GGUFValueType(rawValue: raw) else {
            throw GGUFError(.badValueType, "\(what()) at byte \(at) has value type \(raw), which GGUF does not define (0...12)")
        }
        return t
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int = 0) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, "value of key '\(key)'"))
        case .int8: return .int8(try load(Int8.self, "value of key '\(key)'"))
        case .uint16: return .uint16(try load(UInt16.self, "value of key '\(key)'"))
        case .int16: return .int16(try load(Int16.self, "value of key '\(key)'"))
        case .uint32: return .uint32(try load(UInt32.self, "value of key '\(key)'"))
        case .int32: return .int32(try load(Int32.self, "value of key '\(key)'"))
        case .uint64: return .uint64(try load(UInt64.self, "value of key '\(key)'"))
        case .int64: return .int64(try load(Int64.self, "value of key '\(key)'"))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, "value of key '\(key)'")))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, "value of key '\(key)'")))
        case .bool: return .bool(try load(UInt8.self, "value of key '\(key)'") != 0)
        case .string: return .string(try string("string value of key '\(key)'"))
        case .array: return .array(try array(key: key, depth: depth))
        }
    }

    /// Copies `count` fixed-size little-endian elements into a Swift array.
    @inline(__always)
    mutating func fixedArray<T>(_: T.Type, count: Int) -> [T] {
        if count == 0 { return [] }
        let bytes = count * MemoryLayout<T>.stride
        let src = base + pos
        let out = [T](unsafeUninitializedCapacity: count) { buf, n in
            UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(start: src, count: bytes))
            n = count
        }
        pos += bytes
        return out
    }

    mutating func array(key: String, depth: Int) throws -> GGUFValueArray {
        let start = pos
        let elementType = try valueType("element type of the array of key '\(key)'")
        let count64 = try u64("element count of the array of key '\(key)'")
        if count64 > UInt64(maxArrayElements) {
            throw GGUFError(.badArray, "array of key '\(key)' at byte \(start) claims \(count64) elements, over the limit of \(maxArrayElements)")
        }
        let count = Int(count64)
        let minimum = count * elementType.minimumEncodedSize
        if minimum > size - pos {
            throw GGUFError(.truncated, "file is truncated: array of key '\(key)' at byte \(start) has \(count) \(elementType) elements needing at least \(minimum) bytes, but only \(size - pos) remain")
        }
        switch elementType {
        case .uint8: return .uint8(fixedArray(UInt8.self, count: count))
        case .int8: return .int8(fixedArray(Int8.self, count: count))
        case .uint16: return .uint16(fixedArray(UInt16.self, count: count))
        case .int16: return .int16(fixedArray(Int16.self, count: count))
        case .uint32: return .uint32(fixedArray(UInt32.self, count: count))
        case .int32: return .int32(fixedArray(Int32.self, count: count))
        case .uint64: return .uint64(fixedArray(UInt64.self, count: count))
        case .int64: return .int64(fixedArray(Int64.self, count: count))
        case .float32: return .float32(fixedArray(Float.self, count: count))
        case .float64: return .float64(fixedArray(Double.self, count: count))
        case .bool:
            let p = base + pos
            pos += count
            return .bool((0..<count).map { p.load(fromByteOffset: $0, as: UInt8.self) != 0 })
        case .string:
            var out = [String]()
            out.reserveCapacity(count)
            for i in 0..<count {
                out.append(try string("string \(i) of the array of key '\(key)'"))
            }
            return .string(out)
        case .array:
            if depth + 1 >= maxArrayDepth {
                throw GGUFError(.badArray, "array of key '\(key)' at byte \(start) nests arrays more than \(maxArrayDepth) levels deep")
            }
            var out = [GGUFValueArray]()
            out.reserveCapacity(count)
            for _ in 0..<count {
                out.append(try array(key: key, depth: depth + 1))
            }
            return .array(out)
        }
    }
}
