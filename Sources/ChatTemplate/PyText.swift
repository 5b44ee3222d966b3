import Foundation

/// Python `str` semantics over Unicode scalars (code points), as Jinja2 templates see strings.
enum PyText {
    /// Python's `str.isspace()` for one code point.
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    /// Line boundaries used by `str.splitlines()`.
    static func isLineBreak(_ c: Unicode.Scalar) -> Bool {
        switch c.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029: return true
        default: return false
        }
    }

    static func scalars(_ s: String) -> [Unicode.Scalar] { Array(s.unicodeScalars) }

    static func make<S: Sequence>(_ scalars: S) -> String where S.Element == Unicode.Scalar {
        var v = String.UnicodeScalarView()
        v.append(contentsOf: scalars)
        return String(v)
    }

    static func length(_ s: String) -> Int { s.unicodeScalars.count }

    /// Code-point equality (Python does not apply canonical equivalence, Swift's `==` does).
    static func equal(_ a: String, _ b: String) -> Bool { a.utf8.elementsEqual(b.utf8) }

    /// Code-point ordering (UTF-8 byte order equals code-point order).
    static func less(_ a: String, _ b: String) -> Bool { a.utf8.lexicographicallyPrecedes(b.utf8) }

    // MARK: strip / split

    static func strip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
        let u = scalars(s)
        let set: Set<Unicode.Scalar>? = chars.map { Set($0.unicodeScalars) }
        func strippable(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isSpace(c) }
        var a = 0, b = u.count
        if left { while a < b, strippable(u[a]) { a += 1 } }
        if right { while b > a, strippable(u[b - 1]) { b -= 1 } }
        if a == 0 && b == u.count { return s }
        return make(u[a..<b])
    }

    /// `str.split(sep=None, maxsplit=-1)`.
    static func split(_ s: String, sep: String?, maxsplit: Int) throws -> [String] {
        let u = scalars(s)
        var out: [String] = []
        if let sep {
            let p = scalars(sep)
            if p.isEmpty { throw EvalError.type("ValueError: empty separator") }
            var start = 0, i = 0, splits = 0
            while i + p.count <= u.count {
                if (maxsplit < 0 || splits < maxsplit), u[i] == p[0], Array(u[i..<(i + p.count)]) == p {
                    out.append(make(u[start..<i]))
                    i += p.count
                    start = i
                    splits += 1
                } else {
                    i += 1
                }
            }
            out.append(make(u[start...]))
            return out
        }
        var i = 0, splits = 0
        while i < u.count {
            while i < u.count, isSpace(u[i]) { i += 1 }
            if i >= u.count { break }
            if maxsplit >= 0, splits >= maxsplit {
                var end = u.count
                while end > i, isSpace(u[end - 1]) { end -= 1 }
                out.append(make(u[i..<end]))
                return out
            }
            let start = i
            while i < u.count, !isSpace(u[i]) { i += 1 }
            out.append(make(u[start..<i]))
            splits += 1
        }
        return out
    }

    /// `str.rsplit(sep=None, maxsplit=-1)`.
    static func rsplit(_ s: String, sep: String?, maxsplit: Int) throws -> [String] {
        if maxsplit < 0 { return try split(s, sep: sep, maxsplit: -1) }
        let u = scalars(s)
        var out: [String] = []
        if let sep {
            let p = scalars(sep)
            if p.isEmpty { throw EvalError.type("ValueError: empty separator") }
            var end = u.count, i = u.count - p.count, splits = 0
            while i >= 0 {
                if splits < maxsplit, Array(u[i..<(i + p.count)]) == p {
                    out.append(make(u[(i + p.count)..<end]))
                    end = i
                    i -= p.count
                    splits += 1
                } else {
                    i -= 1
                }
            }
            out.append(make(u[0..<end]))
            return out.reversed()
        }
        var i = u.count, splits = 0
        while i > 0 {
            while i > 0, isSpace(u[i - 1]) { i -= 1 }
            if i == 0 { break }
            if splits >= maxsplit {
                var start = 0
                while start < i, isSpace(u[start]) { start += 1 }
                out.append(make(u[start..<i]))
                return out.reversed()
            }
            let end = i
            while i > 0, !isSpace(u[i - 1]) { i -= 1 }
            out.append(make(u[i..<end]))
            splits += 1
        }
        return out.reversed()
    }

    /// `str.splitlines(keepends=False)`.
    static func splitlines(_ s: String, keepends: Bool = false) -> [String] {
        let u = scalars(s)
        var out: [String] = []
        var start = 0, i = 0
        while i < u.count {
            if isLineBreak(u[i]) {
                var eol = i + 1
                if u[i] == "\r", i + 1 < u.count, u[i + 1] == "\n" { eol = i + 2 }
                out.append(make(u[start..<(keepends ? eol : i)]))
                start = eol
                i = eol
            } else {
                i += 1
            }
        }
        if start < u.count { out.append(make(u[start...])) }
        return out
    }

    static func find(_ s: String, _ sub: String, start: Int? = nil, end: Int? = nil, reverse: Bool = false) -> Int {
        let u = scalars(s), p = scalars(sub)
        let (a, b) = clampRange(start, end, u.count)
        if p.count > b - a { return -1 }
        if reverse {
            var i = b - p.count
            while i >= a {
                if Array(u[i..<(i + p.count)]) == p { return i }
                i -= 1
            }
        } else {
            var i = a
            while i + p.count <= b {
                if Array(u[i..<(i + p.count)]) == p { return i }
                i += 1
            }
        }
        return -1
    }

    static func count(_ s: String, _ sub: String) -> Int {
        let u = scalars(s), p = scalars(sub)
        if p.isEmpty { return u.count + 1 }
        var n = 0, i = 0
        while i + p.count <= u.count {
            if Array(u[i..<(i + p.count)]) == p { n += 1; i += p.count } else { i += 1 }
        }
        return n
    }

    /// Python slice-index clamping for start/end (negative indexes count from the end).
    static func clampRange(_ start: Int?, _ end: Int?, _ n: Int) -> (Int, Int) {
        var a = start ?? 0, b = end ?? n
        if a < 0 { a = max(0, a + n) }
        if b < 0 { b = max(0, b + n) }
        return (min(a, n), min(b, n))
    }

    /// `str.replace(old, new, count=-1)`.
    /// Python `str.replace`; throws at the value-size limit (counted in scalars, at most the bytes).
    static func replace(_ s: String, _ old: String, _ new: String, count: Int = -1) throws -> String {
        let u = scalars(s), o = scalars(old), nw = scalars(new)
        var out: [Unicode.Scalar] = []
        var n = 0
        let limit = RenderBudget.valueBytes
        if o.isEmpty {
            for c in u {
                if count < 0 || n < count {
                    out.append(contentsOf: nw); n += 1
                    if out.count > limit { throw Py.sizeError(out.count, limit) }
                }
                out.append(c)
            }
            if count < 0 || n < count { out.append(contentsOf: nw) }
            return make(out)
        }
        var i = 0
        while i < u.count {
            if (count < 0 || n < count), i + o.count <= u.count, u[i] == o[0], Array(u[i..<(i + o.count)]) == o {
                out.append(contentsOf: nw)
                i += o.count
                n += 1
                if out.count > limit { throw Py.sizeError(out.count, limit) }
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return make(out)
    }

    // MARK: case

    static func upper(_ s: String) -> String { s.uppercased() }
    static func lower(_ s: String) -> String { s.lowercased() }

    static func isCased(_ c: Unicode.Scalar) -> Bool {
        let p = c.properties
        return p.isLowercase || p.isUppercase || p.generalCategory == .titlecaseLetter
    }

    static func titleCase(_ c: Unicode.Scalar) -> String { c.properties.titlecaseMapping }

    /// Python's `str.title()`.
    static func pyTitle(_ s: String) -> String {
        var out = ""
        var prevCased = false
        for c in s.unicodeScalars {
            if prevCased { out += c.properties.lowercaseMapping } else { out += c.properties.titlecaseMapping }
            prevCased = isCased(c)
        }
        return out
    }

    /// Python's `str.capitalize()` (first character title-cased, the rest lower-cased).
    static func capitalize(_ s: String) -> String {
        var out = ""
        var first = true
        for c in s.unicodeScalars {
            out += first ? c.properties.titlecaseMapping : c.properties.lowercaseMapping
            first = false
        }
        return out
    }

    static func swapcase(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            if c.properties.isUppercase { out += c.properties.lowercaseMapping } else if c.properties.isLowercase { out += c.properties.uppercaseMapping } else { out.unicodeScalars.append(c) }
        }
        return out
    }

    /// Jinja's `title` filter: split on runs of `-`, whitespace, `(`, `{`, `[`, `<`; upper-case the
    /// first character of every piece and lower-case the rest.
    static func jinjaTitle(_ s: String) -> String {
        let u = scalars(s)
        func isSep(_ c: Unicode.Scalar) -> Bool { c == "-" || c == "(" || c == "{" || c == "[" || c == "<" || isSpace(c) }
        var out = ""
        var i = 0
        while i < u.count {
            let start = i
            let sep = isSep(u[i])
            while i < u.count, isSep(u[i]) == sep { i += 1 }
            let piece = u[start..<i]
            if let f = piece.first {
                out += make([f]).uppercased()
                out += make(piece.dropFirst()).lowercased()
            }
        }
        return out
    }

    static func isAlpha(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isDecimal(_ c: Unicode.Scalar) -> Bool { c.properties.numericType == .decimal }
    static func isDigit(_ c: Unicode.Scalar) -> Bool { c.properties.numericType == .decimal || c.properties.numericType == .digit }
    static func isNumeric(_ c: Unicode.Scalar) -> Bool { c.properties.numericType != nil }
    static func isAlnum(_ c: Unicode.Scalar) -> Bool { isAlpha(c) || isNumeric(c) }
    /// Regex `\w` for str patterns.
    static func isWord(_ c: Unicode.Scalar) -> Bool { c == "_" || isAlnum(c) }

    /// Python's `str.isprintable()` for one code point.
    static func isPrintable(_ c: Unicode.Scalar) -> Bool {
        if c == " " { return true }
        switch c.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator:
            return false
        default:
            return true
        }
    }

    // MARK: repr

    /// Python's `repr(str)`.
    static func repr(_ s: String) -> String {
        var hasSingle = false, hasDouble = false
        for c in s.unicodeScalars {
            if c == "'" { hasSingle = true }
            if c == "\"" { hasDouble = true }
        }
        let quote: Unicode.Scalar = (hasSingle && !hasDouble) ? "\"" : "'"
        var out = String.UnicodeScalarView()
        out.append(quote)
        for c in s.unicodeScalars {
            switch c {
            case quote, "\\": out.append("\\"); out.append(c)
            case "\n": out.append(contentsOf: "\\n".unicodeScalars)
            case "\r": out.append(contentsOf: "\\r".unicodeScalars)
            case "\t": out.append(contentsOf: "\\t".unicodeScalars)
            default:
                if c.value < 0x7F && c.value >= 0x20 || (c.value >= 0x80 && isPrintable(c)) {
                    out.append(c)
                } else if c.value < 0x100 {
                    out.append(contentsOf: String(format: "\\x%02x", c.value).unicodeScalars)
                } else if c.value < 0x10000 {
                    out.append(contentsOf: String(format: "\\u%04x", c.value).unicodeScalars)
                } else {
                    out.append(contentsOf: String(format: "\\U%08x", c.value).unicodeScalars)
                }
            }
        }
        out.append(quote)
        return String(out)
    }

    /// HTML escaping as markupsafe does it.
    static func htmlEscape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// Python number formatting.
enum PyNumber {
    /// Python's `repr(float)` / `str(float)`: shortest round-trip digits, exponent form when the
    /// decimal exponent is < -4 or >= 16.
    static func repr(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
        let (negative, digits, exp10) = shortestDigits(d)
        // value = 0.d1d2d3... * 10^exp10  → decimal point position = exp10
        let decpt = exp10
        var out = negative ? "-" : ""
        if decpt <= -4 || decpt > 16 {
            // exponent form d.ddde±XX
            out.append(digits.first!)
            if digits.count > 1 { out += "."; out += digits.dropFirst() }
            let e = decpt - 1
            out += e < 0 ? "e-" : "e+"
            let ae = abs(e)
            out += ae < 10 ? "0\(ae)" : "\(ae)"
        } else if decpt <= 0 {
            out += "0." + String(repeating: "0", count: -decpt) + digits
        } else if decpt >= digits.count {
            out += digits + String(repeating: "0", count: decpt - digits.count) + ".0"
        } else {
            let idx = digits.index(digits.startIndex, offsetBy: decpt)
            out += digits[..<idx] + "." + digits[idx...]
        }
        return out
    }

    /// Shortest round-trip decimal digits of a finite non-zero double, from Swift's description
    /// (which is shortest round-trip too): returns (negative, digits without leading/trailing
    /// zeros, exponent such that value = 0.digits × 10^exponent).
    static func shortestDigits(_ d: Double) -> (Bool, String, Int) {
        var s = "\(abs(d))"
        var exp = 0
        if let e = s.firstIndex(where: { $0 == "e" || $0 == "E" }) {
            exp = Int(s[s.index(after: e)...]) ?? 0
            s = String(s[..<e])
        }
        var intPart = s, frac = ""
        if let dot = s.firstIndex(of: ".") {
            intPart = String(s[..<dot])
            frac = String(s[s.index(after: dot)...])
        }
        var digits = intPart + frac
        var pointPos = intPart.count + exp
        // strip leading zeros
        while digits.hasPrefix("0") && digits.count > 1 {
            digits.removeFirst()
            pointPos -= 1
        }
        while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
        return (d < 0, digits, pointPos)
    }

    /// printf-style formatting of a Double with a C conversion (f, e, g, …).
    static func cFormat(_ d: Double, flags: String, width: Int?, precision: Int?, conv: Character) -> String {
        if d.isNaN || d.isInfinite {
            var body = d.isNaN ? "nan" : (d < 0 ? "-inf" : "inf")
            if conv.isUppercase { body = body.uppercased() }
            if d > 0 && d.isInfinite {
                if flags.contains("+") { body = "+" + body } else if flags.contains(" ") { body = " " + body }
            }
            if let width, body.count < width {
                body = flags.contains("-") ? body + String(repeating: " ", count: width - body.count)
                    : String(repeating: " ", count: width - body.count) + body
            }
            return body
        }
        var spec = "%" + flags
        if let width { spec += "\(width)" }
        if let precision { spec += ".\(precision)" }
        spec.append(conv)
        return String(format: spec, d)
    }

    /// Python's `round(x, ndigits)` for floats (round-half-even on the exact binary value).
    static func round(_ x: Double, _ ndigits: Int) -> Double {
        if !x.isFinite { return x }
        if ndigits == 0 { return x.rounded(.toNearestOrEven) }
        if ndigits > 0 {
            if ndigits > 320 { return x }
            let s = String(format: "%.\(ndigits)f", x)
            return Double(s) ?? x
        }
        let p = pow(10.0, Double(-ndigits))
        if !p.isFinite { return 0.0 * x }
        return (x / p).rounded(.toNearestOrEven) * p
    }
}
