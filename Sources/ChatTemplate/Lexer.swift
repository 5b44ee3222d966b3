// Jinja2 lexer, configured like Hugging Face's chat-template environment:
// default delimiters, trim_blocks and lstrip_blocks on, keep_trailing_newline off,
// newlines normalized to "\n".

enum TokenKind: Equatable, Sendable {
    case data          // template text
    case variableBegin // {{
    case variableEnd   // }}
    case blockBegin    // {%
    case blockEnd      // %}
    case name
    case string
    case integer
    case float
    case op            // operator; text holds it
    case eof
}

struct Token: Sendable {
    var kind: TokenKind
    var text: String = ""
    var intValue: Int = 0
    var doubleValue: Double = 0
    var pos: Pos
}

struct Lexer {
    let src: [Unicode.Scalar]
    var pos = 0
    var line = 1
    var col = 1
    var tokens: [Token] = []
    var lineStarting = true
    let trimBlocks = true
    let lstripBlocks = true

    init(_ source: String) {
        // Normalize \r\n, \r and \n to \n and drop one trailing newline (keep_trailing_newline=False).
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(source.unicodeScalars.count)
        var it = source.unicodeScalars.makeIterator()
        var pendingCR = false
        while let c = it.next() {
            if pendingCR {
                pendingCR = false
                if c == "\n" { continue }
            }
            if c == "\r" { out.append("\n"); pendingCR = true } else { out.append(c) }
        }
        if out.last == "\n" { out.removeLast() }
        src = out
    }

    private func syntaxError(_ msg: String, _ p: Pos) -> TemplateError {
        TemplateError(kind: .syntax, message: msg, line: Int(p.line), column: Int(p.col))
    }

    private var here: Pos { Pos(line, col) }

    /// Advances over `n` scalars, keeping line/column up to date.
    private mutating func advance(_ n: Int) {
        var k = 0
        while k < n, pos < src.count {
            if src[pos] == "\n" { line += 1; col = 1 } else { col += 1 }
            pos += 1
            k += 1
        }
    }

    private func starts(_ s: String, at p: Int) -> Bool {
        var q = p
        for c in s.unicodeScalars {
            guard q < src.count, src[q] == c else { return false }
            q += 1
        }
        return true
    }

    private func string(_ a: Int, _ b: Int) -> String {
        var s = String.UnicodeScalarView()
        s.append(contentsOf: src[a..<b])
        return String(s)
    }

    mutating func tokenize() throws -> [Token] {
        while pos < src.count {
            // Find the next tag start: {{, {% or {#.
            var p = pos
            var tagKind: Character? = nil
            while p + 1 < src.count {
                if src[p] == "{" {
                    let n = src[p + 1]
                    if n == "{" || n == "%" || n == "#" { tagKind = Character(n); break }
                }
                p += 1
            }
            guard let kind = tagKind else {
                emitData(pos, src.count, sign: nil, lstrip: false)
                advance(src.count - pos)
                break
            }
            let signPos = p + 2
            var sign: Unicode.Scalar? = nil
            if signPos < src.count, src[signPos] == "-" || src[signPos] == "+" { sign = src[signPos] }

            // A raw block: {% raw %} … {% endraw %}
            if kind == "%", let rawEnd = matchRawBegin(at: p) {
                emitData(pos, p, sign: sign, lstrip: true)
                advance(p - pos)
                let startPos = here
                let beginText = string(p, rawEnd)
                advance(rawEnd - p)
                lineStarting = beginText.unicodeScalars.last == "\n"
                try lexRawBody(startPos)
                continue
            }

            emitData(pos, p, sign: sign, lstrip: kind != "{")
            advance(p - pos)
            let tagPos = here
            advance(sign == nil ? 2 : 3)
            lineStarting = false
            switch kind {
            case "#":
                try lexComment(tagPos)
            case "{":
                tokens.append(Token(kind: .variableBegin, pos: tagPos))
                try lexTag(isBlock: false)
            default:
                tokens.append(Token(kind: .blockBegin, pos: tagPos))
                try lexTag(isBlock: true)
            }
        }
        tokens.append(Token(kind: .eof, pos: here))
        return tokens
    }

    /// Emits src[a..<b] as data, applying `{%-` stripping or lstrip_blocks.
    private mutating func emitData(_ a: Int, _ b: Int, sign: Unicode.Scalar?, lstrip: Bool) {
        var end = b
        if sign == "-" {
            while end > a, PyText.isSpace(src[end - 1]) { end -= 1 }
        } else if sign != "+", lstripBlocks, lstrip {
            // lstrip_blocks: strip spaces between the last newline (or a line start) and the tag.
            var lpos = b
            while lpos > a, src[lpos - 1] != "\n" { lpos -= 1 }
            if lpos > a || lineStarting {
                var allSpace = lpos < b
                var q = lpos
                while q < b { if !PyText.isSpace(src[q]) { allSpace = false; break }; q += 1 }
                if allSpace { end = lpos }
            }
        }
        if end > a {
            tokens.append(Token(kind: .data, text: string(a, end), pos: here))
        }
    }

    /// Matches `{%[-+]?\s*raw\s*(-%}\s*|%})` at p; returns the end index.
    private func matchRawBegin(at p: Int) -> Int? {
        var q = p + 2
        if q < src.count, src[q] == "-" || src[q] == "+" { q += 1 }
        while q < src.count, PyText.isSpace(src[q]) { q += 1 }
        guard starts("raw", at: q) else { return nil }
        q += 3
        while q < src.count, PyText.isSpace(src[q]) { q += 1 }
        if starts("-%}", at: q) {
            q += 3
            while q < src.count, PyText.isSpace(src[q]) { q += 1 }
            return q
        }
        if starts("%}", at: q) { return q + 2 }
        return nil
    }

    private mutating func lexRawBody(_ startPos: Pos) throws {
        // Find `{%[-+]?\s*endraw\s*(\+%}|-%}\s*|%}\n?)`
        var p = pos
        while p + 1 < src.count {
            if src[p] == "{", src[p + 1] == "%" {
                var q = p + 2
                var sign: Unicode.Scalar? = nil
                if q < src.count, src[q] == "-" || src[q] == "+" { sign = src[q]; q += 1 }
                while q < src.count, PyText.isSpace(src[q]) { q += 1 }
                if starts("endraw", at: q) {
                    q += 6
                    while q < src.count, PyText.isSpace(src[q]) { q += 1 }
                    var end: Int? = nil
                    if starts("+%}", at: q) {
                        end = q + 3
                    } else if starts("-%}", at: q) {
                        q += 3
                        while q < src.count, PyText.isSpace(src[q]) { q += 1 }
                        end = q
                    } else if starts("%}", at: q) {
                        q += 2
                        if trimBlocks, q < src.count, src[q] == "\n" { q += 1 }
                        end = q
                    }
                    if let end {
                        emitData(pos, p, sign: sign, lstrip: true)
                        let last = src[end - 1]
                        advance(end - pos)
                        lineStarting = last == "\n"
                        return
                    }
                }
            }
            p += 1
        }
        throw syntaxError("Missing end of raw directive", startPos)
    }

    private mutating func lexComment(_ startPos: Pos) throws {
        var p = pos
        while p + 1 < src.count {
            if src[p] == "#", src[p + 1] == "}" {
                var end = p + 2
                if p > pos, src[p - 1] == "-" {
                    while end < src.count, PyText.isSpace(src[end]) { end += 1 }
                } else if p > pos, src[p - 1] == "+" {
                    // keep the following newline
                } else if trimBlocks, end < src.count, src[end] == "\n" {
                    end += 1
                }
                let last = src[end - 1]
                advance(end - pos)
                lineStarting = last == "\n"
                return
            }
            p += 1
        }
        throw syntaxError("Missing end of comment tag", startPos)
    }

    private mutating func lexTag(isBlock: Bool) throws {
        var balance: [Unicode.Scalar] = []
        while true {
            guard pos < src.count else { return }  // the parser reports the unexpected end
            let tokPos = here
            // End of the tag (only when brackets are balanced).
            if balance.isEmpty {
                if isBlock {
                    if starts("+%}", at: pos) {
                        advance(3)
                        tokens.append(Token(kind: .blockEnd, pos: tokPos))
                        lineStarting = false
                        return
                    }
                    if starts("-%}", at: pos) {
                        advance(3)
                        var last: Unicode.Scalar = "}"
                        while pos < src.count, PyText.isSpace(src[pos]) { last = src[pos]; advance(1) }
                        tokens.append(Token(kind: .blockEnd, pos: tokPos))
                        lineStarting = last == "\n"
                        return
                    }
                    if starts("%}", at: pos) {
                        advance(2)
                        lineStarting = false
                        if trimBlocks, pos < src.count, src[pos] == "\n" { advance(1); lineStarting = true }
                        tokens.append(Token(kind: .blockEnd, pos: tokPos))
                        return
                    }
                } else {
                    if starts("-}}", at: pos) {
                        advance(3)
                        var last: Unicode.Scalar = "}"
                        while pos < src.count, PyText.isSpace(src[pos]) { last = src[pos]; advance(1) }
                        tokens.append(Token(kind: .variableEnd, pos: tokPos))
                        lineStarting = last == "\n"
                        return
                    }
                    if starts("}}", at: pos) {
                        advance(2)
                        tokens.append(Token(kind: .variableEnd, pos: tokPos))
                        lineStarting = false
                        return
                    }
                }
            }
            let c = src[pos]
            if PyText.isSpace(c) {
                while pos < src.count, PyText.isSpace(src[pos]) { advance(1) }
                continue
            }
            if let n = matchFloat() {
                let text = string(pos, pos + n).replacingOccurrences(of: "_", with: "")
                advance(n)
                guard let d = Double(text) else { throw syntaxError("invalid float literal", tokPos) }
                tokens.append(Token(kind: .float, text: text, doubleValue: d, pos: tokPos))
                continue
            }
            if let (n, value) = try matchInteger(tokPos) {
                advance(n)
                tokens.append(Token(kind: .integer, intValue: value, pos: tokPos))
                continue
            }
            if Lexer.isNameStart(c) {
                var q = pos + 1
                while q < src.count, Lexer.isNameContinue(src[q]) { q += 1 }
                let text = string(pos, q)
                advance(q - pos)
                tokens.append(Token(kind: .name, text: text, pos: tokPos))
                continue
            }
            if c == "'" || c == "\"" {
                var q = pos + 1
                var closed = false
                while q < src.count {
                    if src[q] == "\\" { q += 2; continue }
                    if src[q] == c { closed = true; break }
                    q += 1
                }
                if closed {
                    let value = try unescape(pos + 1, q, tokPos)
                    advance(q + 1 - pos)
                    tokens.append(Token(kind: .string, text: value, pos: tokPos))
                    continue
                }
                throw syntaxError("unexpected char \(PyText.repr(String(Character(c)))) at \(pos)", tokPos)
            }
            if let op = matchOperator() {
                advance(op.unicodeScalars.count)
                switch op {
                case "{": balance.append("}")
                case "(": balance.append(")")
                case "[": balance.append("]")
                case "}", ")", "]":
                    guard let expected = balance.popLast() else {
                        throw syntaxError("unexpected '\(op)'", tokPos)
                    }
                    if String(Character(expected)) != op {
                        throw syntaxError("unexpected '\(op)', expected '\(Character(expected))'", tokPos)
                    }
                default: break
                }
                tokens.append(Token(kind: .op, text: op, pos: tokPos))
                continue
            }
            throw syntaxError("unexpected char \(PyText.repr(String(Character(c)))) at \(pos)", tokPos)
        }
    }

    private static let operators2: [String] = ["//", "**", "==", "!=", ">=", "<="]
    private static let operators1: Set<Unicode.Scalar> = [
        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";",
    ]

    private func matchOperator() -> String? {
        for op in Lexer.operators2 where starts(op, at: pos) { return op }
        if Lexer.operators1.contains(src[pos]) { return String(Character(src[pos])) }
        return nil
    }

    /// Python identifiers (ASCII fast path, Unicode XID otherwise).
    static func isNameStart(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 128 { return (v >= 65 && v <= 90) || (v >= 97 && v <= 122) || v == 95 }
        return c.properties.isXIDStart
    }

    static func isNameContinue(_ c: Unicode.Scalar) -> Bool {
        let v = c.value
        if v < 128 { return (v >= 65 && v <= 90) || (v >= 97 && v <= 122) || v == 95 || (v >= 48 && v <= 57) }
        return c.properties.isXIDContinue
    }

    private func isDigit(_ q: Int) -> Bool { q < src.count && src[q].value >= 48 && src[q].value <= 57 }

    /// `(\d+_)*\d+` starting at q; returns the end or nil.
    private func digitRun(_ q0: Int) -> Int? {
        guard isDigit(q0) else { return nil }
        var q = q0
        while true {
            while isDigit(q) { q += 1 }
            if q < src.count, src[q] == "_", isDigit(q + 1) { q += 1; continue }
            return q
        }
    }

    /// Jinja's float_re: (?<!\.)(\d+_)*\d+((\.(\d+_)*\d+)?e[+\-]?(\d+_)*\d+|\.(\d+_)*\d+)
    private func matchFloat() -> Int? {
        if pos > 0, src[pos - 1] == "." { return nil }
        guard let intEnd = digitRun(pos) else { return nil }
        var q = intEnd
        var hasFraction = false
        if q < src.count, src[q] == ".", let f = digitRun(q + 1) { q = f; hasFraction = true }
        if q < src.count, src[q] == "e" || src[q] == "E" {
            var r = q + 1
            if r < src.count, src[r] == "+" || src[r] == "-" { r += 1 }
            if let e = digitRun(r) { return e - pos }
        }
        return hasFraction ? q - pos : nil
    }

    /// Jinja's integer_re (binary, octal, hex, decimal, zero).
    private func matchInteger(_ tokPos: Pos) throws -> (Int, Int)? {
        guard isDigit(pos) else { return nil }
        if src[pos] == "0", pos + 1 < src.count {
            let radixChar = src[pos + 1]
            var radix = 0
            if radixChar == "b" || radixChar == "B" { radix = 2 }
            if radixChar == "o" || radixChar == "O" { radix = 8 }
            if radixChar == "x" || radixChar == "X" { radix = 16 }
            if radix != 0 {
                var q = pos + 2
                var digits = ""
                while q < src.count {
                    var r = q
                    if src[r] == "_" { r += 1 }
                    guard r < src.count, let d = Int(String(Character(src[r])), radix: radix), d >= 0 else { break }
                    digits.append(Character(src[r]))
                    q = r + 1
                }
                if !digits.isEmpty {
                    guard let v = Int(digits, radix: radix) else { throw syntaxError("integer literal too large", tokPos) }
                    return (q - pos, v)
                }
            }
        }
        if src[pos] == "0" {
            var q = pos + 1
            while true {
                if q < src.count, src[q] == "0" { q += 1; continue }
                if q + 1 < src.count, src[q] == "_", src[q + 1] == "0" { q += 2; continue }
                break
            }
            return (q - pos, 0)
        }
        var q = pos + 1
        while true {
            if isDigit(q) { q += 1; continue }
            if q + 1 < src.count, src[q] == "_", isDigit(q + 1) { q += 2; continue }
            break
        }
        let text = string(pos, q).replacingOccurrences(of: "_", with: "")
        guard let v = Int(text) else { throw syntaxError("integer literal too large for this renderer", tokPos) }
        return (q - pos, v)
    }

    /// Python "unicode-escape" decoding of a string literal body (non-ASCII kept as is).
    private func unescape(_ a: Int, _ b: Int, _ p: Pos) throws -> String {
        var out = String.UnicodeScalarView()
        var q = a
        func hexValue(_ n: Int, _ what: String) throws -> UInt32 {
            guard q + n <= b else { throw syntaxError("truncated \\\(what) escape", p) }
            var v: UInt32 = 0
            for k in 0..<n {
                guard let d = Int(String(Character(src[q + k])), radix: 16) else {
                    throw syntaxError("truncated \\\(what) escape", p)
                }
                v = v * 16 + UInt32(d)
            }
            q += n
            return v
        }
        while q < b {
            let c = src[q]
            if c != "\\" || q + 1 >= b {
                out.append(c)
                q += 1
                continue
            }
            let e = src[q + 1]
            q += 2
            switch e {
            case "\n": break  // line continuation
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var v = e.value - 48
                var k = 0
                while k < 2, q < b, src[q].value >= 48, src[q].value <= 55 {
                    v = v * 8 + src[q].value - 48
                    q += 1
                    k += 1
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "x":
                let v = try hexValue(2, "xXX")
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "u":
                let v = try hexValue(4, "uXXXX")
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "U":
                let v = try hexValue(8, "UXXXXXXXX")
                guard let s = Unicode.Scalar(v) else { throw syntaxError("illegal Unicode character", p) }
                out.append(s)
            case "N":
                throw syntaxError("\\N{…} escapes are not supported", p)
            default:
                out.append("\\")
                out.append(e)
            }
        }
        return String(out)
    }
}
