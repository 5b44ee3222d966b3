// Pre-tokenizers: split text into the words that BPE merges within.
//
// llama.cpp applies a list of regular expressions per `tokenizer.ggml.pre`;
// each expression splits every current piece further, keeping both the
// matches and the text between them as pieces. Here each expression is a
// hand-written scanner over code points and their Unicode classes. The
// scanners reproduce llama.cpp's behaviour exactly, including its quirks:
//
// * Expressions llama.cpp implements by hand (GPT-2, Llama 3, Qwen2,
//   Qwen3.5) follow those implementations.
// * Expressions it runs through std::regex see a "collapsed" text in which a
//   non-ASCII code point stands for its class; `\s` is ASCII white space plus
//   every non-ASCII White_Space code point; `$` is the end of the piece.
// * Expressions with literal non-ASCII ranges (DeepSeek) run through
//   std::wregex on code points, where non-ASCII white space has been
//   replaced by U+000B, so such code points never match a literal range.

enum PreTokenizerKind: Sendable, Equatable {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    case gpt2
    /// `\p{N}` (each digit alone), then GPT-2.
    case digitsThenGPT2
    /// Llama 3: `(?i:'s|…)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    case llama3
    /// Qwen2: as Llama 3 with `\p{N}` instead of `\p{N}{1,3}`.
    case qwen2
    /// Qwen3.5: as Qwen2, letters runs also take combining marks.
    case qwen35
    case deepseekLLM
    case deepseekCoder
    case falcon
    /// llama.cpp's fallback for BPE vocabularies without a known `pre`.
    case bpeDefault
    /// `[^\n]+|[\n]+` (Gemma 4 and other SentencePiece-style BPE).
    case newlines
}

/// Scratch buffers reused across the pieces of one `encode` call.
final class PreTokenizerScratch {
    let cps = ScratchBuffer<UInt32>()
    let cls = ScratchBuffer<UInt8>()
    let offs = ScratchBuffer<Int32>()
    let cutsA = ScratchBuffer<Int32>()
    let cutsB = ScratchBuffer<Int32>()
}

// MARK: - UTF-8

/// Length of a UTF-8 sequence from its first byte, as llama.cpp computes it
/// (continuation bytes count as 1).
@inline(__always)
func utf8SequenceLength(_ b: UInt8) -> Int {
    switch b >> 4 {
    case 0xC, 0xD: return 2
    case 0xE: return 3
    case 0xF: return 4
    default: return 1
    }
}

/// Decodes one code point at `i` (llama.cpp's rules: a malformed sequence
/// yields U+FFFD and consumes one byte). Returns (code point, length).
@inline(__always)
func decodeCodepoint(_ p: UnsafePointer<UInt8>, _ i: Int, _ n: Int) -> (UInt32, Int) {
    let b0 = UInt32(p[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 & 0x40 == 0 { return (0xFFFD, 1) }
    if b0 & 0x20 == 0 {
        guard i + 1 < n, p[i + 1] & 0xC0 == 0x80 else { return (0xFFFD, 1) }
        return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2)
    }
    if b0 & 0x10 == 0 {
        guard i + 2 < n, p[i + 1] & 0xC0 == 0x80, p[i + 2] & 0xC0 == 0x80 else { return (0xFFFD, 1) }
        return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3)
    }
    if b0 & 0x08 == 0 {
        guard i + 3 < n, p[i + 1] & 0xC0 == 0x80, p[i + 2] & 0xC0 == 0x80, p[i + 3] & 0xC0 == 0x80 else { return (0xFFFD, 1) }
        return ((b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6 | UInt32(p[i + 3] & 0x3F), 4)
    }
    return (0xFFFD, 1)
}

// MARK: - Class helpers

@inline(__always) private func cat(_ c: UInt8) -> UInt8 { c & CPClass.categoryMask }
@inline(__always) private func isLetter(_ c: UInt8) -> Bool { c & CPClass.categoryMask == CPClass.letter }
@inline(__always) private func isNumber(_ c: UInt8) -> Bool { c & CPClass.categoryMask == CPClass.number }
@inline(__always) private func isMark(_ c: UInt8) -> Bool { c & CPClass.categoryMask == CPClass.mark }
@inline(__always) private func isPunct(_ c: UInt8) -> Bool { c & CPClass.categoryMask == CPClass.punctuation }
@inline(__always) private func isSpace(_ c: UInt8) -> Bool { c & CPClass.whitespace != 0 }
/// `[^\s\p{L}\p{N}]` for an in-range code point (c != 0).
@inline(__always) private func isOtherLN(_ c: UInt8) -> Bool {
    c != 0 && !isSpace(c) && !isLetter(c) && !isNumber(c)
}

/// Appends cut positions in increasing order, dropping duplicates.
private struct Cuts {
    var out: UnsafeMutablePointer<Int32>
    var count = 0
    var last: Int
    init(_ out: UnsafeMutablePointer<Int32>, start: Int) { self.out = out; self.last = start }
    @inline(__always) mutating func cut(_ pos: Int) {
        if pos > last {
            out[count] = Int32(truncatingIfNeeded: pos)
            count += 1
            last = pos
        }
    }
}

private struct Text {
    let cp: UnsafePointer<UInt32>
    let cl: UnsafePointer<UInt8>
}

// MARK: - Hand-written scanners (llama.cpp's custom implementations)

/// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
private func scanGPT2(_ t: Text, _ a: Int, _ b: Int, _ c: inout Cuts) {
    let cp = t.cp, cl = t.cl
    @inline(__always) func k(_ i: Int) -> UInt8 { i < b ? cl[i] : 0 }
    var pos = a
    while pos < b {
        let ch = cp[pos]
        let f = cl[pos]
        if ch == 0x27 && pos + 1 < b {
            let n1 = cp[pos + 1]
            if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 { // s t m d
                pos += 2; c.cut(pos); continue
            }
            if pos + 2 < b {
                let n2 = cp[pos + 2]
                if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) { // re ve ll
                    pos += 3; c.cut(pos); continue
                }
            }
        }
        let f2 = ch == 0x20 ? k(pos + 1) : f
        if isLetter(f2) {
            if ch == 0x20 { pos += 1 }
            while isLetter(k(pos)) { pos += 1 }
            c.cut(pos); continue
        }
        if isNumber(f2) {
            if ch == 0x20 { pos += 1 }
            while isNumber(k(pos)) { pos += 1 }
            c.cut(pos); continue
        }
        if isOtherLN(f2) {
            if ch == 0x20 { pos += 1 }
            while isOtherLN(k(pos)) { pos += 1 }
            c.cut(pos); continue
        }
        var nws = 0
        while isSpace(k(pos + nws)) { nws += 1 }
        if nws > 1 && pos + nws < b {
            pos += nws - 1; c.cut(pos); continue
        }
        if nws > 0 {
            pos += nws; c.cut(pos); continue
        }
        pos += 1; c.cut(pos)
    }
}

@inline(__always) private func asciiLower(_ x: UInt32) -> UInt32 {
    (x >= 0x41 && x <= 0x5A) ? x + 0x20 : x
}

/// Contractions, case-insensitive: returns the end or -1.
@inline(__always)
private func contractionCI(_ cp: UnsafePointer<UInt32>, _ pos: Int, _ b: Int) -> Int {
    guard cp[pos] == 0x27, pos + 1 < b else { return -1 }
    let n1 = asciiLower(cp[pos + 1])
    if n1 == 0x73 || n1 == 0x74 || n1 == 0x6D || n1 == 0x64 { return pos + 2 }
    if pos + 2 < b {
        let n2 = asciiLower(cp[pos + 2])
        if (n1 == 0x72 && n2 == 0x65) || (n1 == 0x76 && n2 == 0x65) || (n1 == 0x6C && n2 == 0x6C) { return pos + 3 }
    }
    return -1
}

/// Llama 3 (digits 3), Qwen2 (digits 1) and Qwen3.5 (digits 1, marks join letters).
private func scanLlama3Family(_ t: Text, _ a: Int, _ b: Int, _ c: inout Cuts, maxDigits: Int, marks: Bool) {
    let cp = t.cp, cl = t.cl
    @inline(__always) func k(_ i: Int) -> UInt8 { i < b ? cl[i] : 0 }
    @inline(__always) func isWordChar(_ f: UInt8) -> Bool { isLetter(f) || (marks && isMark(f)) }
    @inline(__always) func isPunctRun(_ f: UInt8) -> Bool {
        f != 0 && !isSpace(f) && !isLetter(f) && !isNumber(f) && !(marks && isMark(f))
    }
    var pos = a
    while pos < b {
        let ch = cp[pos]
        let f = cl[pos]
        let ce = contractionCI(cp, pos, b)
        if ce >= 0 { pos = ce; c.cut(pos); continue }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(ch == 0x0D || ch == 0x0A || isNumber(f)) {
            if isWordChar(f) || isWordChar(k(pos + 1)) {
                pos += 1
                while isWordChar(k(pos)) { pos += 1 }
                c.cut(pos); continue
            }
        }
        // \p{N}{1,maxDigits}
        if isNumber(f) {
            var ini = pos
            while isNumber(k(pos)) {
                pos += 1
                if pos - ini >= maxDigits { c.cut(pos); ini = pos }
            }
            c.cut(pos); continue
        }
        // <space>?[^\s\p{L}\p{N}]+[\r\n]*
        let f2 = ch == 0x20 ? k(pos + 1) : f
        if isPunctRun(f2) || (f2 == 0 && f != 0) {
            if ch == 0x20 { pos += 1 }
            while isPunctRun(k(pos)) { pos += 1 }
            while pos < b && (cp[pos] == 0x0D || cp[pos] == 0x0A) { pos += 1 }
            c.cut(pos); continue
        }
        var nws = 0
        var lastRN = 0
        while isSpace(k(pos + nws)) {
            let c2 = cp[pos + nws]
            if c2 == 0x0D || c2 == 0x0A { lastRN = pos + nws + 1 }
            nws += 1
        }
        if lastRN > 0 { pos = lastRN; c.cut(pos); continue }          // \s*[\r\n]+
        if nws > 1 && pos + nws < b { pos += nws - 1; c.cut(pos); continue } // \s+(?!\S)
        if nws > 0 { pos += nws; c.cut(pos); continue }               // \s+
        pos += 1; c.cut(pos)
    }
}

// MARK: - Regular-expression stages (llama.cpp's std::regex / std::wregex paths)

/// A pattern tried at each position; returns the match end or -1.
private protocol Matcher {
    func match(_ t: Text, _ pos: Int, _ end: Int) -> Int
}

/// Splits a piece at the leftmost-first matches of `m` (matches and gaps both become pieces).
@inline(__always)
private func regexSplit<M: Matcher>(_ m: M, _ t: Text, _ a: Int, _ b: Int, _ c: inout Cuts) {
    var p = a
    while p < b {
        let e = m.match(t, p, b)
        if e > p {
            c.cut(p)
            c.cut(e)
            p = e
        } else {
            p += 1
        }
    }
    c.cut(b)
}

/// `[\r\n]`
private struct MatchCRLF: Matcher {
    func match(_ t: Text, _ pos: Int, _ end: Int) -> Int {
        let ch = t.cp[pos]
        return (ch == 0x0A || ch == 0x0D) ? pos + 1 : -1
    }
}

/// A character class over code points.
private protocol CharClass {
    func contains(_ cp: UInt32, _ cl: UInt8) -> Bool
}

/// `X+` or `\s?X+`.
private struct MatchRun<C: CharClass>: Matcher {
    let cls: C
    let optionalSpace: Bool
    let single: Bool
    func match(_ t: Text, _ pos: Int, _ end: Int) -> Int {
        var p = pos
        if optionalSpace && isSpace(t.cl[p]) && p + 1 < end && cls.contains(t.cp[p + 1], t.cl[p + 1]) {
            p += 1
        }
        guard cls.contains(t.cp[p], t.cl[p]) else { return -1 }
        p += 1
        if single { return p }
        while p < end && cls.contains(t.cp[p], t.cl[p]) { p += 1 }
        return p
    }
}

/// `[0-9][0-9][0-9]`
private struct MatchThreeDigits: Matcher {
    func match(_ t: Text, _ pos: Int, _ end: Int) -> Int {
        guard pos + 3 <= end else { return -1 }
        for i in pos..<(pos + 3) where !(t.cp[i] >= 0x30 && t.cp[i] <= 0x39) { return -1 }
        return pos + 3
    }
}

/// Collapsed `\p{N}` / `\p{L}` / `\p{P}`: the code point's category.
private struct CategoryClass: CharClass {
    let category: UInt8
    @inline(__always) func contains(_ cp: UInt32, _ cl: UInt8) -> Bool { cl & CPClass.categoryMask == category }
}

/// `[\p{P}\$\+<=>\^~\|]` (and with the backtick for Falcon).
private struct PunctuationAndSymbolsClass: CharClass {
    let backtick: Bool
    @inline(__always) func contains(_ cp: UInt32, _ cl: UInt8) -> Bool {
        if isPunct(cl) { return true }
        switch cp {
        case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: return true
        case 0x60: return backtick
        default: return false
        }
    }
}

/// A literal class of code point ranges as std::wregex sees it: non-ASCII
/// white space was replaced by U+000B and so never matches.
private struct RangesClass: CharClass {
    let ranges: [(UInt32, UInt32)]
    @inline(__always) func contains(_ cp: UInt32, _ cl: UInt8) -> Bool {
        if cp >= 0x80 && isSpace(cl) { return false }
        // binary search over sorted, non-overlapping ranges
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) >> 1
            if ranges[mid].1 < cp { lo = mid + 1 } else { hi = mid }
        }
        return lo < ranges.count && ranges[lo].0 <= cp
    }
}

// Character classes of DeepSeek's pre-tokenizer (from its tokenizer.json, as llama.cpp lists them).
private let deepseekLetterRanges: [(UInt32, UInt32)] = [
    (0x41, 0x5A), (0x61, 0x7A), (0xB5, 0xB5), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x1BA), (0x1BC, 0x1BF),
    (0x1C4, 0x293), (0x295, 0x2AF), (0x370, 0x373), (0x376, 0x377), (0x37B, 0x37D), (0x37F, 0x37F),
    (0x386, 0x386), (0x388, 0x38A), (0x38C, 0x38C), (0x38E, 0x3A1), (0x3A3, 0x3F5), (0x3F7, 0x481),
    (0x48A, 0x52F), (0x531, 0x556), (0x10A0, 0x10C5), (0x13A0, 0x13F5), (0x13F8, 0x13FD), (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF), (0x1D00, 0x1D2B), (0x1D6B, 0x1D77), (0x1D79, 0x1D9A), (0x1E00, 0x1F15), (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45), (0x1F48, 0x1F4D), (0x1F50, 0x1F57), (0x1F59, 0x1F59), (0x1F5B, 0x1F5B), (0x1F5D, 0x1F5D),
    (0x1F5F, 0x1F7D), (0x1F80, 0x1FB4), (0x1FB6, 0x1FBC), (0x1FBE, 0x1FBE), (0x1FC2, 0x1FC4), (0x1FC6, 0x1FCC),
    (0x1FD0, 0x1FD3), (0x1FD6, 0x1FDB), (0x1FE0, 0x1FEC), (0x1FF2, 0x1FF4), (0x1FF6, 0x1FFC), (0x2102, 0x2102),
    (0x2107, 0x2107), (0x210A, 0x2113), (0x2115, 0x2115), (0x2119, 0x211D), (0x2124, 0x2124), (0x2126, 0x2126),
    (0x2128, 0x2128), (0x212A, 0x212D), (0x212F, 0x2134), (0x2139, 0x2139), (0x213C, 0x213F), (0x2145, 0x2149),
    (0x214E, 0x214E), (0x2183, 0x2184), (0x2C00, 0x2C7B), (0x2C7E, 0x2CE4), (0x2CEB, 0x2CEE), (0x2CF2, 0x2CF3),
    (0xA640, 0xA66D), (0xA680, 0xA69B), (0xA722, 0xA76F), (0xA771, 0xA787), (0xA78B, 0xA78E), (0xAB70, 0xABBF),
    (0xFB00, 0xFB06), (0xFB13, 0xFB17), (0xFF21, 0xFF3A), (0xFF41, 0xFF5A), (0x10400, 0x1044F), (0x104B0, 0x104D3),
    (0x104D8, 0x104FB), (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2), (0x118A0, 0x118DF), (0x1E900, 0x1E943),
]
private let deepseekPunctRanges: [(UInt32, UInt32)] = [
    (0x21, 0x2F), (0x3A, 0x7E), (0x2018, 0x201F), (0x3000, 0x3002), (0xFF01, 0xFF0F), (0xFF1A, 0xFF5E),
]
/// `[一-龥ࠀ-一가-퟿]` (the first two ranges overlap at U+4E00).
private let deepseekCJKRanges: [(UInt32, UInt32)] = [
    (0x800, 0x9FA5), (0xAC00, 0xD7FF),
]

// MARK: - Stages and kinds

private enum Stage {
    case gpt2, llama3, qwen2, qwen35
    case digitEach                      // \p{N}
    case digitRun                       // \p{N}+
    case crlf                           // [\r\n]
    case spaceLetters                   // \s?\p{L}+
    case spacePunct                     // \s?\p{P}+
    case deepseekLetters                // \s?[A-Za-zµÀ-Ö…]+
    case deepseekPunct                  // \s?[!-/:-~！-／：-～‘-‟　-。]+
    case trailingSpace                  // \s+$
    case cjk                            // [一-龥ࠀ-一가-퟿]+
    case punctSymbols(backtick: Bool)   // [\p{P}\$\+<=>\^~\|]+ (+ ` for Falcon)
    case threeDigits                    // [0-9][0-9][0-9]
    case newlines                       // [^\n]+|[\n]+
}

extension PreTokenizerKind {
    fileprivate var stages: [Stage] {
        switch self {
        case .gpt2: return [.gpt2]
        case .digitsThenGPT2: return [.digitEach, .gpt2]
        case .llama3: return [.llama3]
        case .qwen2: return [.qwen2]
        case .qwen35: return [.qwen35]
        case .deepseekLLM: return [.crlf, .deepseekLetters, .deepseekPunct, .trailingSpace, .cjk, .digitRun]
        case .deepseekCoder: return [.crlf, .spaceLetters, .spacePunct, .cjk, .digitEach]
        case .falcon: return [.punctSymbols(backtick: true), .gpt2, .threeDigits]
        case .bpeDefault: return [.punctSymbols(backtick: false), .gpt2, .digitRun, .threeDigits]
        case .newlines: return [.newlines]
        }
    }
}

private func runStage(_ stage: Stage, _ t: Text, _ a: Int, _ b: Int, _ c: inout Cuts) {
    switch stage {
    case .gpt2: scanGPT2(t, a, b, &c)
    case .llama3: scanLlama3Family(t, a, b, &c, maxDigits: 3, marks: false)
    case .qwen2: scanLlama3Family(t, a, b, &c, maxDigits: 1, marks: false)
    case .qwen35: scanLlama3Family(t, a, b, &c, maxDigits: 1, marks: true)
    case .digitEach:
        regexSplit(MatchRun(cls: CategoryClass(category: CPClass.number), optionalSpace: false, single: true), t, a, b, &c)
    case .digitRun:
        regexSplit(MatchRun(cls: CategoryClass(category: CPClass.number), optionalSpace: false, single: false), t, a, b, &c)
    case .crlf: regexSplit(MatchCRLF(), t, a, b, &c)
    case .spaceLetters:
        regexSplit(MatchRun(cls: CategoryClass(category: CPClass.letter), optionalSpace: true, single: false), t, a, b, &c)
    case .spacePunct:
        regexSplit(MatchRun(cls: CategoryClass(category: CPClass.punctuation), optionalSpace: true, single: false), t, a, b, &c)
    case .deepseekLetters:
        regexSplit(MatchRun(cls: RangesClass(ranges: deepseekLetterRanges), optionalSpace: true, single: false), t, a, b, &c)
    case .deepseekPunct:
        regexSplit(MatchRun(cls: RangesClass(ranges: deepseekPunctRanges), optionalSpace: true, single: false), t, a, b, &c)
    case .cjk:
        regexSplit(MatchRun(cls: RangesClass(ranges: deepseekCJKRanges), optionalSpace: false, single: false), t, a, b, &c)
    case .punctSymbols(let backtick):
        regexSplit(MatchRun(cls: PunctuationAndSymbolsClass(backtick: backtick), optionalSpace: false, single: false), t, a, b, &c)
    case .threeDigits: regexSplit(MatchThreeDigits(), t, a, b, &c)
    case .trailingSpace:
        // `\s+$` matches the run of white space that ends the piece.
        var s = b
        while s > a && isSpace(t.cl[s - 1]) { s -= 1 }
        c.cut(s)
        c.cut(b)
    case .newlines:
        var p = a
        while p < b {
            let nl = t.cp[p] == 0x0A
            while p < b && (t.cp[p] == 0x0A) == nl { p += 1 }
            c.cut(p)
        }
    }
}

extension PreTokenizerKind {
    /// Splits `p[0..<n]` (UTF-8) into words. Appends each word's end offset
    /// (in bytes, relative to `p`) to `wordEnds`. Words are contiguous and
    /// cover the whole input.
    func split(_ p: UnsafePointer<UInt8>, _ n: Int, scratch s: PreTokenizerScratch, wordEnds: inout [Int32]) {
        if n == 0 { return }
        s.cps.ensure(n + 1)
        s.cls.ensure(n + 1)
        s.offs.ensure(n + 1)
        s.cutsA.ensure(n + 2)
        s.cutsB.ensure(n + 2)
        let table = codepointClassTable
        let cps = s.cps.ptr, cls = s.cls.ptr, offs = s.offs.ptr
        // Decode to code points, classes and byte offsets.
        var count = 0
        var i = 0
        while i < n {
            let b0 = p[i]
            if b0 < 0x80 {
                cps[count] = UInt32(b0)
                cls[count] = table[Int(b0)]
                offs[count] = Int32(truncatingIfNeeded: i)
                count += 1
                i += 1
            } else {
                let (cp, len) = decodeCodepoint(p, i, n)
                cps[count] = cp
                cls[count] = codepointClass(cp, table)
                offs[count] = Int32(truncatingIfNeeded: i)
                count += 1
                i += len
            }
        }
        offs[count] = Int32(truncatingIfNeeded: n)
        let text = Text(cp: UnsafePointer(cps), cl: UnsafePointer(cls))

        var inCuts = s.cutsA.ptr, outCuts = s.cutsB.ptr
        inCuts[0] = Int32(truncatingIfNeeded: count)
        var inCount = 1
        for stage in stages {
            var cuts = Cuts(outCuts, start: 0)
            var start = 0
            for j in 0..<inCount {
                let end = Int(inCuts[j])
                runStage(stage, text, start, end, &cuts)
                cuts.cut(end)
                start = end
            }
            swap(&inCuts, &outCuts)
            inCount = cuts.count
        }
        for j in 0..<inCount {
            wordEnds.append(offs[Int(inCuts[j])])
        }
    }
}
