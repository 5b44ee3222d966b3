/// Python `json.dumps` as Hugging Face's `tojson` filter calls it.
enum JSONText {
    /// `limit`: the largest result (nil: the value limit of the render in progress).
    static func dump(_ v: Value, indent: String?, itemSeparator: String, keySeparator: String, sortKeys: Bool, asciiOnly: Bool,
                     limit: Int? = nil) throws -> String {
        var out = ""
        let limit = limit ?? RenderBudget.valueBytes
        try encode(v, &out, limit: limit, level: 0, indent: indent, itemSep: itemSeparator, keySep: keySeparator, sortKeys: sortKeys, ascii: asciiOnly)
        return out
    }

    static func quote(_ s: String, ascii: Bool) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if c.value < 0x20 || (ascii && c.value > 0x7E) {
                    if c.value > 0xFFFF {
                        let v = c.value - 0x10000
                        out += hex4(0xD800 + (v >> 10)) + hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        out += hex4(c.value)
                    }
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        out += "\""
        return out
    }

    private static func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: max(0, 4 - h.count)) + h
    }

    private static func float(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return PyNumber.repr(d)
    }

    private static func notSerializable(_ v: Value) -> EvalError {
        EvalError.type("TypeError: Object of type \(v.typeName) is not JSON serializable")
    }

    private static func key(_ k: Value) throws -> String {
        switch k {
        case .string(let s), .markup(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return float(d)
        case .bool(let b): return b ? "true" : "false"
        case .none: return "null"
        default: throw EvalError.type("TypeError: keys must be str, int, float, bool or None, not \(k.typeName)")
        }
    }

    private static func encode(_ v: Value, _ out: inout String, limit: Int, level: Int, indent: String?, itemSep: String, keySep: String,
                               sortKeys: Bool, ascii: Bool) throws {
        if level > 0 && level % Py.depthCheckInterval == 0 && Py.valueTooDeep(level) {
            throw EvalError.limit(.recursionDepth, "RecursionError: maximum recursion depth exceeded while encoding a JSON object (\(level) nested values)")
        }
        switch v {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += float(d)
        case .string(let s), .markup(let s):
            if out.utf8.count &+ s.utf8.count > limit { throw Py.sizeError(out.utf8.count &+ s.utf8.count, limit) }
            out += quote(s, ascii: ascii)
        case .list(let a), .tuple(let a):
            if a.isEmpty { out += "[]"; return }
            out += "["
            let inner = indent.map { "\n" + String(repeating: $0, count: level + 1) }
            for (n, item) in a.enumerated() {
                if n > 0 { out += itemSep }
                if let inner { out += inner }
                try encode(item, &out, limit: limit, level: level + 1, indent: indent, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, ascii: ascii)
            }
            if let indent { out += "\n" + String(repeating: indent, count: level) }
            out += "]"
        case .dict(let d):
            if d.count == 0 { out += "{}"; return }
            var pairs = Array(zip(d.keys, d.values))
            if sortKeys {
                pairs = try Sorting.stableSort(pairs) { try Py.less($0.0, $1.0) }
            }
            out += "{"
            let inner = indent.map { "\n" + String(repeating: $0, count: level + 1) }
            for (n, (k, val)) in pairs.enumerated() {
                if n > 0 { out += itemSep }
                if let inner { out += inner }
                out += quote(try key(k), ascii: ascii)
                out += keySep
                try encode(val, &out, limit: limit, level: level + 1, indent: indent, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, ascii: ascii)
            }
            if let indent { out += "\n" + String(repeating: indent, count: level) }
            out += "}"
        default:
            throw notSerializable(v)
        }
        if out.utf8.count > limit { throw Py.sizeError(out.utf8.count, limit) }
    }
}

enum Sorting {
    /// Stable merge sort with a throwing comparator (Python's sort is stable; comparisons may fail).
    static func stableSort<T>(_ a: [T], _ less: (T, T) throws -> Bool) throws -> [T] {
        if a.count < 2 { return a }
        var src = a
        var dst = a
        var width = 1
        let n = a.count
        while width < n {
            var lo = 0
            while lo < n {
                let mid = min(lo + width, n), hi = min(lo + 2 * width, n)
                var i = lo, j = mid, k = lo
                while i < mid && j < hi {
                    // take from the right only if strictly less (keeps stability)
                    if try less(src[j], src[i]) { dst[k] = src[j]; j += 1 } else { dst[k] = src[i]; i += 1 }
                    k += 1
                }
                while i < mid { dst[k] = src[i]; i += 1; k += 1 }
                while j < hi { dst[k] = src[j]; j += 1; k += 1 }
                lo = hi
            }
            swap(&src, &dst)
            width *= 2
        }
        return src
    }
}
